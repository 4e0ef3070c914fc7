#include "solve/teaching_problems.h"

#include "solve/solver_detail.h"
#include "solve/sparsegpt_stepper.h"
#include "util/errors.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

namespace sparselab::solve {

namespace {

// Standard normal from two uniforms (Box–Muller): std::normal_distribution differs between
// standard libraries, this does not.
double standardNormal(std::mt19937_64& gen)
{
    constexpr double kTwoPi = 6.283185307179586;
    const double u1 = (double(gen() >> 11) + 1.0) * 0x1.0p-53; // (0, 1]
    const double u2 = double(gen() >> 11) * 0x1.0p-53;         // [0, 1)
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

// Columns sampled for a curve: `points` values in 1..cols, ascending, always ending at cols.
std::vector<int64_t> sampleColumns(int64_t cols, int points)
{
    const int64_t n = std::clamp<int64_t>(points, 2, cols);
    std::vector<int64_t> out;
    for (int64_t k = 1; k <= n; ++k) {
        const int64_t c = std::max<int64_t>(1, (k * cols + n - 1) / n);
        if (out.empty() || c > out.back())
            out.push_back(c);
    }
    if (out.back() != cols)
        out.push_back(cols);
    return out;
}

} // namespace

std::string hessianPresetName(HessianPreset preset)
{
    switch (preset) {
    case HessianPreset::Identity: return "identity";
    case HessianPreset::Correlated: return "correlated";
    case HessianPreset::RandomInputs: return "random-inputs";
    }
    return "unknown";
}

torch::Tensor correlatedHessian(int64_t n, double rho)
{
    auto h = torch::empty({n, n}, torch::kFloat);
    float* p = h.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            p[i * n + j] = float(std::pow(rho, double(std::abs(i - j))));
    return h;
}

SyntheticProblem makeSyntheticProblem(const SyntheticProblemParams& params)
{
    if (params.rows < 1 || params.rows > 4096)
        throw optionError("rows", "must be between 1 and 4096 (got " + std::to_string(params.rows) + ")");
    if (params.cols < 1 || params.cols > 4096)
        throw optionError("cols", "must be between 1 and 4096 (got " + std::to_string(params.cols) + ")");
    if (!(std::fabs(params.rho) < 1.0))
        throw optionError("rho", "must lie strictly between -1 and 1");
    std::mt19937_64 gen(params.seed);
    SyntheticProblem problem;
    problem.weight = torch::empty({params.rows, params.cols}, torch::kFloat);
    float* w = problem.weight.data_ptr<float>();
    for (int64_t k = 0; k < params.rows * params.cols; ++k)
        w[k] = float(int64_t(gen() % 201) - 100) / 100.0f;
    const int64_t n = params.cols;
    switch (params.preset) {
    case HessianPreset::Identity:
        problem.hessian = torch::eye(n, torch::kFloat);
        break;
    case HessianPreset::Correlated:
        problem.hessian = correlatedHessian(n, params.rho);
        break;
    case HessianPreset::RandomInputs: {
        const int64_t tokens = 4 * n;
        auto x = torch::empty({tokens, n}, torch::kFloat);
        float* px = x.data_ptr<float>();
        for (int64_t t = 0; t < tokens; ++t) {
            double previous = 0.0;
            for (int64_t j = 0; j < n; ++j) {
                const double v = standardNormal(gen) + 0.6 * previous;
                px[t * n + j] = float(v);
                previous = v;
            }
        }
        HessianAccumulator acc(n, torch::kCPU);
        acc.add(x);
        problem.hessian = acc.hessian().clone();
        break;
    }
    }
    return problem;
}

torch::Tensor parseMatrixText(const std::string& text, const std::string& what)
{
    std::vector<std::vector<float>> rows;
    std::string normalised = text;
    std::replace(normalised.begin(), normalised.end(), ';', '\n');
    std::istringstream lines(normalised);
    std::string line;
    int lineNumber = 0;
    while (std::getline(lines, line)) {
        ++lineNumber;
        std::replace(line.begin(), line.end(), ',', ' ');
        std::replace(line.begin(), line.end(), '\t', ' ');
        std::istringstream fields(line);
        std::string field;
        std::vector<float> row;
        while (fields >> field) {
            size_t used = 0;
            float value = 0.0f;
            try {
                value = std::stof(field, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != field.size() || !std::isfinite(value))
                throw InputError(what + ": row " + std::to_string(rows.size() + 1) + ": '" + field
                                 + "' is not a finite number");
            row.push_back(value);
        }
        if (row.empty())
            continue;
        if (!rows.empty() && row.size() != rows.front().size())
            throw InputError(what + ": row " + std::to_string(rows.size() + 1) + " has " + std::to_string(row.size())
                             + " numbers, row 1 has " + std::to_string(rows.front().size()));
        rows.push_back(std::move(row));
    }
    if (rows.empty())
        throw InputError(what + ": no numbers");
    const auto r = int64_t(rows.size());
    const auto c = int64_t(rows.front().size());
    auto out = torch::empty({r, c}, torch::kFloat);
    for (int64_t i = 0; i < r; ++i)
        std::copy(rows[size_t(i)].begin(), rows[size_t(i)].end(), out.data_ptr<float>() + i * c);
    return out;
}

std::vector<ColumnCurve> compareOnLayer(const torch::Tensor& weight, const torch::Tensor& hessian,
                                        const ComparisonParams& params, const ProgressCallback& progress,
                                        const CancelToken* cancel)
{
    torch::NoGradGuard noGrad;
    struct Pattern {
        std::string name;
        SolverOptions options;
    };
    std::vector<Pattern> patterns;
    SolverOptions base = params.options;
    base.nmN = 0;
    base.nmM = 0;
    if (params.unstructured) {
        std::ostringstream s;
        s << int(std::lround(base.sparsity * 100.0)) << "%";
        patterns.push_back({s.str(), base});
    }
    if (params.nm24 && base.blocksize % 4 == 0) {
        SolverOptions nm = base;
        nm.nmN = 2;
        nm.nmM = 4;
        patterns.push_back({"2:4", nm});
    }
    const auto dense = weight.to(torch::kCPU, torch::kFloat).contiguous();
    const auto h = hessian.to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t cols = dense.size(1);
    const auto columns = sampleColumns(cols, params.points);
    ProgressReporter reporter(progress, "compare", int64_t(patterns.size() * 2 * columns.size()));
    int64_t done = 0;

    std::vector<ColumnCurve> curves;
    for (const auto& pattern : patterns) {
        // SparseGPT through the stepper (its loss curve is the solver's running loss).
        SparseGptStepper stepper(dense, h, pattern.options);
        const auto hd = stepper.dampedHessian();
        const double denominator = detail::quadraticTrace(dense, h);
        auto relative = [&](const torch::Tensor& w) {
            return denominator > 0.0 ? detail::quadraticTrace(dense - w, h) / denominator : 0.0;
        };

        // Magnitude: the baseline's compressed weights column by column.
        ColumnCurve magnitude;
        magnitude.label = "magnitude " + pattern.name;
        {
            SolverOptions o = pattern.options;
            o.method = Method::Magnitude;
            auto compressed = dense.clone();
            (void)solveLayer(compressed, h, o);
            magnitude.sparsity = (compressed == 0).to(torch::kDouble).mean().item<double>();
            for (int64_t c : columns) {
                throwIfCancelled(cancel);
                auto w = dense.clone();
                w.narrow(1, 0, c).copy_(compressed.narrow(1, 0, c));
                magnitude.columns.push_back(c);
                magnitude.loss.push_back(detail::quadraticTrace(dense - w, hd) / 2.0);
                magnitude.relOutputError.push_back(relative(w));
                reporter.report(++done, magnitude.label);
            }
        }

        ColumnCurve sparseGpt;
        sparseGpt.label = "SparseGPT " + pattern.name;
        for (int64_t c : columns) {
            throwIfCancelled(cancel);
            while (stepper.columnsDone() < c)
                stepper.stepColumn();
            sparseGpt.columns.push_back(c);
            sparseGpt.loss.push_back(stepper.loss());
            sparseGpt.relOutputError.push_back(relative(stepper.effectiveWeight()));
            reporter.report(++done, sparseGpt.label);
        }
        sparseGpt.sparsity = stepper.stats().sparsity;
        curves.push_back(std::move(magnitude));
        curves.push_back(std::move(sparseGpt));
    }
    return curves;
}

} // namespace sparselab::solve
