// Front door of the solvers: option validation, input checks, dispatch, statistics, and the
// Hessian accumulator. The methods themselves live in sparsegpt.cpp and baselines.cpp.

#include "solve/solver.h"
#include "solve/cpu_solver.h"
#include "solve/fortran_blas.h"
#include "solve/solver_detail.h"

#include "util/cpu_clones.h"
#include "util/engine_threads.h"
#include "util/errors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <climits>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace sparselab::solve {

namespace {

bool isCpuFloatContiguous(const torch::Tensor& t)
{
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
}

using cpu::symmetricBlock;

// H ← beta·H + alpha·XᵀX for X [tokens, cols], on H's upper triangle; the lower one is left
// stale. With the process's BLAS (float32 on the CPU) it is one ssyrk: X's row-major buffer
// read column-major is Xᵀ, so H = alpha·Xᵀ·(Xᵀ)ᵀ + beta·H with trans = "N", and H's upper
// triangle is the column-major lower one. ssyrk runs OpenBLAS's GEMM kernel on the triangle's
// blocks with the same panels over the tokens as the GEMMs below, so it gives their floats
// wherever they ran that kernel (bench/compare_builds_solve_layer.sh; blocks small enough for
// OpenBLAS's small-matrix kernel rounded differently, by ≤ 2.6e-7 in the demo's pruned
// weights), and it skips the GEMMs' work below the diagonal of their diagonal blocks (0.67 →
// 0.87 of sgemm at 4096 columns on one thread, bench/results/HISTORY.md). Otherwise (bfloat16
// inputs, CUDA, no BLAS symbols): GEMMs over the block-upper trapezoid (rows of a column block
// × its columns and those to the right), the scaling folded into the GEMM's beta so that no
// elementwise pass (and no OpenMP region, see forkJoin) sits between the BLAS calls.
void upperRankUpdate(torch::Tensor& h, const torch::Tensor& x, double beta, double alpha)
{
    const int64_t cols = h.size(0);
    const auto ssyrk = fortran::functions().ssyrk;
    if (ssyrk && isCpuFloatContiguous(h) && isCpuFloatContiguous(x) && x.size(0) <= INT32_MAX && cols <= INT32_MAX) {
        cpu::rankUpdateUpper(h.data_ptr<float>(), cols, x.data_ptr<float>(), x.size(0), float(beta), float(alpha));
        return;
    }
    const int64_t bs = symmetricBlock(cols);
    const bool lowPrecision = x.scalar_type() != torch::kFloat; // bfloat16 inputs: GEMM in x's type
    for (int64_t c0 = 0; c0 < cols; c0 += bs) {
        const int64_t len = std::min(bs, cols - c0);
        auto target = h.narrow(0, c0, len).narrow(1, c0, cols - c0);
        if (lowPrecision) {
            const auto product = at::mm(x.narrow(1, c0, len).t(), x.narrow(1, c0, cols - c0)).to(torch::kFloat);
            target.mul_(beta).add_(product, alpha);
        } else {
            target.addmm_(x.narrow(1, c0, len).t(), x.narrow(1, c0, cols - c0), beta, alpha);
        }
    }
}

// Copies the strict upper triangle of h [n, n] onto the lower one, in 64×64 tiles.
void mirrorUpperToLower(torch::Tensor& h)
{
    if (!isCpuFloatContiguous(h)) {
        h.copy_(at::triu(h) + at::triu(h, 1).t());
        return;
    }
    cpu::mirrorUpperToLower(h.data_ptr<float>(), h.size(0), kernelThreads());
}

} // namespace

bool allFinite(const torch::Tensor& t)
{
    if (t.numel() == 0)
        return true;
    if (!(t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous()))
        return at::isfinite(t).all().item<bool>();
    return cpu::allFinite(t.data_ptr<float>(), t.numel(), kernelThreads());
}

namespace detail {

void requireFinite(const torch::Tensor& t, const char* what)
{
    if (!allFinite(t))
        throw InputError(std::string(what) + ": contains non-finite values (NaN or Inf)");
}

torch::Tensor actOrderPermutation(const torch::Tensor& diagonal)
{
    auto d = diagonal.to(torch::kCPU, torch::kFloat).contiguous();
    return std::get<1>(at::sort(d, /*stable=*/true, /*dim=*/0, /*descending=*/true)).to(torch::kLong).contiguous();
}

QuantGrid findQuantGrid(const torch::Tensor& x, int bits, bool symmetric, bool fp16Scale, bool signedScale)
{
    if (signedScale && symmetric) {
        QuantGrid grid;
        grid.maxq = float((int64_t(1) << bits) - 1);
        const auto zeros = torch::zeros({x.size(0)}, x.options());
        const auto lo = at::minimum(std::get<0>(x.min(1)), zeros);
        const auto hi = at::maximum(std::get<0>(x.max(1)), zeros);
        const auto extreme = at::where(-lo > hi, lo, hi);
        auto scale = -extreme / float(int64_t(1) << (bits - 1));
        scale = scale.masked_fill(scale == 0, 1.0);
        if (fp16Scale) {
            auto cpu = scale.to(torch::kCPU).contiguous();
            float* data = cpu.data_ptr<float>();
            for (int64_t i = 0; i < cpu.numel(); ++i)
                data[i] = std::copysign(roundScaleToHalf(std::fabs(data[i])), data[i]);
            scale = cpu.to(x.device());
        }
        grid.scale = scale;
        grid.zero = torch::full_like(scale, (grid.maxq + 1.0f) / 2.0f);
        return grid;
    }
    // Transcribes quant.py Quantizer.find_params(x, weight=True) with perchannel=True; every
    // step is the same float32 operation so that grids match the reference bit for bit.
    QuantGrid grid;
    grid.maxq = float((int64_t(1) << bits) - 1);
    auto zeros = torch::zeros({x.size(0)}, x.options());
    auto xmin = at::minimum(std::get<0>(x.min(1)), zeros);
    auto xmax = at::maximum(std::get<0>(x.max(1)), zeros);
    if (symmetric) {
        xmax = at::maximum(xmin.abs(), xmax);
        xmin = at::where(xmin < 0, -xmax, xmin);
    }
    auto both = (xmin == 0).logical_and(xmax == 0);
    xmin = xmin.masked_fill(both, -1.0);
    xmax = xmax.masked_fill(both, 1.0);
    grid.scale = (xmax - xmin) / grid.maxq;
    if (fp16Scale) {
        auto cpu = grid.scale.to(torch::kCPU).contiguous();
        float* data = cpu.data_ptr<float>();
        for (int64_t i = 0; i < cpu.numel(); ++i)
            data[i] = roundScaleToHalf(data[i]);
        grid.scale = cpu.to(x.device());
    }
    if (symmetric)
        grid.zero = torch::full_like(grid.scale, (grid.maxq + 1.0f) / 2.0f);
    else
        grid.zero = at::round(-xmin / grid.scale);
    return grid;
}

torch::Tensor quantizeWithGrid(const torch::Tensor& x, const QuantGrid& grid)
{
    auto scale = grid.scale.unsqueeze(1);
    auto zero = grid.zero.unsqueeze(1);
    auto q = at::clamp(at::round(x / scale) + zero, 0.0, double(grid.maxq));
    return scale * (q - zero);
}

double quadraticTrace(const torch::Tensor& a, const torch::Tensor& h)
{
    // tr(A H Aᵀ) = Σ_b ⟨A_b, A_b H_bb + 2·A_{>b} H_{>b,b}⟩ over column blocks b: the strictly
    // lower blocks are counted twice through symmetry instead of being multiplied.
    const int64_t cols = a.size(1);
    if (isCpuFloatContiguous(h) && a.device().is_cpu() && a.scalar_type() == torch::kFloat && a.stride(1) == 1
        && cpu::available())
        return cpu::quadraticTrace(a.data_ptr<float>(), a.size(0), cols, a.stride(0), h.data_ptr<float>());
    const int64_t bs = symmetricBlock(cols);
    double total = 0.0;
    for (int64_t c0 = 0; c0 < cols; c0 += bs) {
        const int64_t len = std::min(bs, cols - c0);
        auto ab = a.narrow(1, c0, len);
        auto p = at::mm(ab, h.narrow(0, c0, len).narrow(1, c0, len)); // [rows, len]
        if (c0 + len < cols)
            p.addmm_(a.narrow(1, c0 + len, cols - c0 - len),
                     h.narrow(0, c0, len).narrow(1, c0 + len, cols - c0 - len).t(), 1.0, 2.0);
        if (a.device().is_cpu() && a.scalar_type() == torch::kFloat && a.stride(1) == 1 && p.is_contiguous()) {
            // ⟨A_b, P⟩ in double on this thread (no OpenMP region between the GEMMs).
            const float* pa = ab.data_ptr<float>();
            const float* pp = p.data_ptr<float>();
            const int64_t lda = a.stride(0);
            for (int64_t r = 0; r < a.size(0); ++r) {
                double row = 0.0;
                for (int64_t j = 0; j < len; ++j)
                    row += double(pa[r * lda + j]) * double(pp[r * len + j]);
                total += row;
            }
        } else {
            total += at::sum(ab * p, at::kDouble).item<double>();
        }
    }
    return total;
}

LayerResult solveLayerWith(torch::Tensor& weight, const torch::Tensor& hessian,
                           const SolverOptions& options, const ProgressCallback& progress,
                           const CancelToken* cancel, Backend backend, const HessianFactor* factor,
                           double denseOutputEnergy)
{
    const auto start = std::chrono::steady_clock::now();
    if (!weight.defined() || weight.dim() != 2)
        throw InputError("weight: expected a 2-D tensor [rows, cols]");
    const int64_t cols = weight.size(1);
    if (!hessian.defined() || hessian.dim() != 2 || hessian.size(0) != cols || hessian.size(1) != cols)
        throw InputError("hessian: expected shape [" + std::to_string(cols) + ", " + std::to_string(cols)
                         + "] to match the weight's " + std::to_string(cols) + " input columns");
    options.validate(cols);
    torch::NoGradGuard noGrad;
    // The dense W for the output-error statistic. On the CPU it is copied in the pass that
    // checks W for NaN and Inf (copyAllFinite, on the kernel threads: an OpenMP region next to
    // the solver's BLAS calls costs more than it saves).
    torch::Tensor original; // [rows, cols]
    if (isCpuFloatContiguous(weight)) {
        original = torch::empty_like(weight);
        if (!cpu::copyAllFinite(weight.data_ptr<float>(), weight.numel(), original.data_ptr<float>(), kernelThreads()))
            throw InputError("weight: contains non-finite values (NaN or Inf)");
    } else {
        requireFinite(weight, "weight");
    }
    requireFinite(hessian, "hessian");
    throwIfCancelled(cancel);

    // Work in float32, contiguous; written back into `weight` at the end if that is a copy.
    auto w = weight.to(torch::kFloat).contiguous();
    auto h = hessian.to(w.device(), torch::kFloat).contiguous();
    const bool cpu = isCpuFloatContiguous(w);
    if (!original.defined())
        original = w.clone();

    double dampAbsolute = 0.0;
    LayerResult result = options.method == Method::SparseGpt
        ? solveSparseGpt(w, h, options, progress, cancel, backend, &dampAbsolute, factor)
        : solveBaseline(w, h, options);
    if (options.method != Method::SparseGpt && progress) {
        ProgressReporter reporter(progress, "solve", 1);
        reporter.report(1, methodName(options.method));
    }

    // Statistics. ‖XWᵀ − XŴᵀ‖²/‖XWᵀ‖² = tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) with the undamped H ∝ XᵀX.
    LayerStats& stats = result.stats;
    if (cpu && cpu::available()) {
        // The plain-C++ statistics (cpu_solver.h), the ones `solve-layer` computes without LibTorch.
        // `original` is this call's own copy: the statistics may overwrite it with ΔW.
        cpu::layerStatistics(original.data_ptr<float>(), w.data_ptr<float>(), w.size(0), cols, h.data_ptr<float>(),
                             options.method == Method::SparseGpt, dampAbsolute, denseOutputEnergy, kernelThreads(),
                             stats, original.data_ptr<float>());
    } else {
        // The same with tensor operations (other devices).
        const double denominator = denseOutputEnergy >= 0.0 ? denseOutputEnergy : quadraticTrace(original, h);
        original.sub_(w); // ΔW
        const int64_t zeros = (w == 0).sum().item<int64_t>();
        const double deltaSquares =
            at::sum(original.pow(2) * (at::diag(h) != 0).unsqueeze(0), at::kDouble).item<double>();
        stats.sparsity = w.numel() > 0 ? double(zeros) / double(w.numel()) : 0.0;
        const double twiceLoss = 2.0 * stats.loss;
        const double dampTerm = dampAbsolute * deltaSquares;
        double numerator = twiceLoss - dampTerm;
        if (!(options.method == Method::SparseGpt && dampTerm <= 0.95 * twiceLoss))
            numerator = quadraticTrace(original, h);
        stats.relOutputError = denominator > 0.0 ? std::max(0.0, numerator) / denominator : 0.0;
    }

    if (!w.is_same(weight))
        weight.copy_(w);
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

} // namespace detail

LayerResult solveLayer(torch::Tensor& weight, const torch::Tensor& hessian, const SolverOptions& options,
                       const ProgressCallback& progress, const CancelToken* cancel, double denseOutputEnergy)
{
    return detail::solveLayerWith(weight, hessian, options, progress, cancel, detail::Backend::Auto, nullptr,
                                  denseOutputEnergy);
}

double outputEnergy(const torch::Tensor& weight, const torch::Tensor& hessian)
{
    if (!weight.defined() || weight.dim() != 2 || !hessian.defined() || hessian.dim() != 2
        || hessian.size(0) != weight.size(1) || hessian.size(1) != weight.size(1))
        throw std::invalid_argument("outputEnergy: expected W [rows, cols] and H [cols, cols]");
    torch::NoGradGuard noGrad;
    const torch::Tensor w = weight.to(torch::kFloat).contiguous();
    return detail::quadraticTrace(w, hessian.to(w.device(), torch::kFloat).contiguous());
}

HessianFactor factorHessian(const torch::Tensor& hessian, double damp, const CancelToken* cancel)
{
    if (!hessian.defined() || hessian.dim() != 2 || hessian.size(0) != hessian.size(1))
        throw InputError("hessian: expected a square 2-D tensor [cols, cols]");
    if (!(damp >= 0.0))
        throw InputError("--damp: must be >= 0");
    detail::requireFinite(hessian, "hessian");
    torch::NoGradGuard noGrad;
    return detail::factorHessianImpl(hessian.to(torch::kFloat).contiguous(), damp, cancel);
}

LayerResult solveLayerWithFactor(torch::Tensor& weight, const torch::Tensor& hessian, const HessianFactor& factor,
                                 const SolverOptions& options, const ProgressCallback& progress,
                                 const CancelToken* cancel, double denseOutputEnergy)
{
    return detail::solveLayerWith(weight, hessian, options, progress, cancel, detail::Backend::Auto,
                                  options.method == Method::SparseGpt ? &factor : nullptr, denseOutputEnergy);
}

std::string hessianPrecisionName(HessianPrecision precision)
{
    return precision == HessianPrecision::BFloat16 ? "bf16" : "fp32";
}

HessianPrecision parseHessianPrecision(const std::string& name, const std::string& option)
{
    if (name == "fp32" || name == "float32")
        return HessianPrecision::Float32;
    if (name == "bf16" || name == "bfloat16")
        return HessianPrecision::BFloat16;
    throw optionError(option, "expects fp32 or bf16, got '" + name + "'");
}

HessianAccumulator::HessianAccumulator(int64_t cols, torch::Device device, HessianPrecision precision)
    : m_h(torch::zeros({cols, cols}, torch::TensorOptions().dtype(torch::kFloat).device(device))), m_precision(precision)
{
}

void HessianAccumulator::add(const torch::Tensor& x)
{
    check(x);
    accumulate(x);
}

void HessianAccumulator::check(const torch::Tensor& x) const
{
    const int64_t cols = m_h.size(0);
    if (!x.defined() || (x.dim() != 2 && x.dim() != 3) || x.size(-1) != cols)
        throw InputError("inputs: expected [tokens, " + std::to_string(cols) + "] or [batch, tokens, "
                         + std::to_string(cols) + "]");
    if (x.numel() > 0) {
        torch::NoGradGuard noGrad;
        detail::requireFinite(x.reshape({-1, cols}).to(m_h.device(), torch::kFloat).contiguous(), "inputs");
    }
}

void HessianAccumulator::accumulate(const torch::Tensor& x)
{
    // Transcribes SparseGPT.add_batch: H ← H·N/(N+b); N ← N+b; H += (2/N)·XᵀX with X all
    // tokens of the b sequences. The reference scales H, then X by sqrt(2/N), then adds XᵀX;
    // here one GEMM per column block does all three (beta = N/(N+b), alpha = 2/N): equal up
    // to float rounding, without extra passes over H or X.
    const int64_t cols = m_h.size(0);
    const int64_t batch = x.dim() == 3 ? x.size(0) : 1;
    if (batch == 0)
        return;
    torch::NoGradGuard noGrad;
    auto rows = x.reshape({-1, cols}).to(m_h.device(), torch::kFloat).contiguous(); // [tokens, cols]
    const double beta = double(m_samples) / double(m_samples + batch);
    m_samples += batch;
    if (rows.size(0) > 0) {
        if (m_precision == HessianPrecision::BFloat16)
            rows = rows.to(torch::kBFloat16);
        upperRankUpdate(m_h, rows, beta, 2.0 / double(m_samples));
    } else {
        m_h.mul_(beta);
    }
    m_symmetric = false;
}

void HessianAccumulator::addSequences(const torch::Tensor& x)
{
    if (!x.defined() || x.dim() != 3) {
        add(x);
        return;
    }
    // Checked once for the whole batch (one pass over every input), then added window by window.
    check(x);
    for (int64_t j = 0; j < x.size(0); ++j)
        accumulate(x.narrow(0, j, 1));
}

const torch::Tensor& HessianAccumulator::hessian() const
{
    if (!m_symmetric) {
        torch::NoGradGuard noGrad;
        mirrorUpperToLower(m_h);
        m_symmetric = true;
    }
    return m_h;
}

} // namespace sparselab::solve
