#include "analysis/allocator.h"

#include "analysis/size_model.h"
#include "util/errors.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>

namespace sparselab::analysis {

using pipeline::Recipe;
using pipeline::RecipeRule;
using nlohmann::json;

namespace {

struct Choice {
    size_t sparsityIndex = 0;
    size_t bitsIndex = 0;
    int64_t cost = 0;       // in budget quantities (kept weights, or bytes)
    double error = 0.0;
};

double cellError(const SensitivityCell& cell, ErrorMetric metric)
{
    return metric == ErrorMetric::Absolute ? cell.absError : cell.relError;
}

// Per-layer factor the cell error is multiplied by (1 except for KindNormalized).
std::vector<double> layerScales(const SensitivityResult& scan, ErrorMetric metric)
{
    std::vector<double> scales(scan.layers.size(), 1.0);
    if (metric != ErrorMetric::KindNormalized)
        return scales;
    std::map<std::string, std::pair<double, int64_t>> byKind; // kind → (Σ relError, cells)
    for (const auto& layer : scan.layers)
        for (const auto& cell : layer.cells) {
            byKind[layer.kind].first += cell.relError;
            byKind[layer.kind].second += 1;
        }
    for (size_t l = 0; l < scan.layers.size(); ++l) {
        const auto& [sum, count] = byKind[scan.layers[l].kind];
        const double mean = count > 0 ? sum / double(count) : 0.0;
        scales[l] = mean > 0.0 ? 1.0 / mean : 1.0;
    }
    return scales;
}

LayerAllocation makeLayer(const SensitivityLayer& layer, double sparsity, int bits, double error, int64_t group)
{
    LayerAllocation a;
    a.name = layer.name;
    a.params = layer.rows * layer.cols;
    a.sparsity = sparsity;
    a.bits = bits;
    a.predictedError = error;
    a.bytes = linearLayerBytes(layer.rows, layer.cols, sparsity, bits, group);
    return a;
}

void finish(Allocation& allocation, int64_t fixedBytes)
{
    double weighted = 0.0, total = 0.0;
    allocation.predictedError = 0.0;
    allocation.modelBytes = fixedBytes;
    for (const auto& layer : allocation.layers) {
        allocation.predictedError += layer.predictedError;
        weighted += layer.sparsity * double(layer.params);
        total += double(layer.params);
        allocation.modelBytes += layer.bytes;
    }
    allocation.averageSparsity = total > 0 ? weighted / total : 0.0;
}

std::string formatNumber(double value)
{
    std::ostringstream s;
    s << value;
    return s.str();
}

} // namespace

json Allocation::toJson() const
{
    json rows = json::array();
    for (const auto& layer : layers)
        rows.push_back({{"name", layer.name},
                        {"params", layer.params},
                        {"sparsity", layer.sparsity},
                        {"bits", layer.bits},
                        {"predicted_error", layer.predictedError},
                        {"bytes", layer.bytes}});
    return {{"predicted_error", predictedError},
            {"average_sparsity", averageSparsity},
            {"model_bytes", modelBytes},
            {"layers", rows}};
}

AllocationResult allocate(const SensitivityResult& scan, const AllocatorParams& params)
{
    if (scan.layers.empty())
        throw InputError("sensitivity: the scan has no layers");
    if (params.resolution < 10 || params.resolution > 1000000)
        throw optionError("--resolution", "must lie in [10, 1000000]");
    const int64_t group = scan.base.quant.groupSize;
    const int64_t fixedBytes = fixedParameterBytes(scan.fixedParameters);
    const bool bySparsity = params.kind == BudgetKind::AverageSparsity;

    // Which bit-widths may be used.
    std::vector<size_t> bitsAllowed;
    int sparsityBits = 0;
    if (bySparsity) {
        if (!(params.averageSparsity >= 0.0 && params.averageSparsity < 1.0))
            throw optionError("--budget-sparsity", "must lie in [0, 1)");
        sparsityBits = params.bits > 0 ? params.bits : *std::max_element(scan.bits.begin(), scan.bits.end());
        const auto it = std::find(scan.bits.begin(), scan.bits.end(), sparsityBits);
        if (it == scan.bits.end())
            throw optionError("--bits", std::to_string(sparsityBits) + " is not a bit-width of the scan");
        bitsAllowed.push_back(size_t(it - scan.bits.begin()));
    } else {
        for (size_t j = 0; j < scan.bits.size(); ++j)
            bitsAllowed.push_back(j);
    }

    // Costs and capacity in budget quantities.
    int64_t capacity = 0;
    int64_t totalParams = 0;
    for (const auto& layer : scan.layers)
        totalParams += layer.rows * layer.cols;
    if (bySparsity) {
        capacity = totalParams - int64_t(std::ceil(params.averageSparsity * double(totalParams) - 1e-9));
    } else {
        capacity = params.modelBytes - fixedBytes;
        if (capacity <= 0)
            throw optionError("--budget-bytes", std::to_string(params.modelBytes)
                                                    + " bytes is less than the parameters that are not allocated ("
                                                    + std::to_string(fixedBytes) + " bytes at fp16)");
    }

    const std::vector<double> scale = layerScales(scan, params.metric);
    std::vector<std::vector<Choice>> choices(scan.layers.size());
    for (size_t l = 0; l < scan.layers.size(); ++l) {
        const auto& layer = scan.layers[l];
        const int64_t n = layer.rows * layer.cols;
        for (size_t i = 0; i < scan.sparsities.size(); ++i) {
            if (scan.sparsities[i] > params.maxSparsity + 1e-12)
                continue;
            for (size_t j : bitsAllowed) {
                Choice c;
                c.sparsityIndex = i;
                c.bitsIndex = j;
                c.error = scale[l] * cellError(scan.cell(l, i, j), params.metric);
                c.cost = bySparsity ? n - int64_t(std::llround(scan.sparsities[i] * double(n)))
                                    : linearLayerBytes(layer.rows, layer.cols, scan.sparsities[i], scan.bits[j], group);
                choices[l].push_back(c);
            }
        }
        if (choices[l].empty())
            throw optionError("--max-sparsity", "leaves no level of the scan to choose from");
    }

    // Dynamic programming over budget units (costs rounded up, capacity down: always feasible).
    const int64_t unit = std::max<int64_t>(1, (capacity + params.resolution - 1) / params.resolution);
    const int64_t units = capacity / unit;
    constexpr double kInfeasible = std::numeric_limits<double>::infinity();
    std::vector<double> best(size_t(units + 1), 0.0), next(size_t(units + 1));
    std::vector<std::vector<int32_t>> pick(scan.layers.size(), std::vector<int32_t>(size_t(units + 1), -1));
    for (size_t l = 0; l < scan.layers.size(); ++l) {
        std::fill(next.begin(), next.end(), kInfeasible);
        for (size_t k = 0; k < choices[l].size(); ++k) {
            const int64_t cost = (choices[l][k].cost + unit - 1) / unit;
            for (int64_t c = cost; c <= units; ++c) {
                const double candidate = best[size_t(c - cost)] + choices[l][k].error;
                if (candidate < next[size_t(c)]) {
                    next[size_t(c)] = candidate;
                    pick[l][size_t(c)] = int32_t(k);
                }
            }
        }
        best.swap(next);
    }
    if (!std::isfinite(best[size_t(units)]))
        throw optionError(bySparsity ? "--budget-sparsity" : "--budget-bytes",
                          "cannot be met with the scan's levels (raise --max-sparsity, or scan higher sparsities "
                          "or fewer bits)");

    AllocationResult result;
    std::vector<size_t> chosen(scan.layers.size());
    int64_t c = units;
    for (size_t l = scan.layers.size(); l-- > 0;) {
        const int32_t k = pick[l][size_t(c)];
        chosen[l] = size_t(k);
        c -= (choices[l][size_t(k)].cost + unit - 1) / unit;
    }
    for (size_t l = 0; l < scan.layers.size(); ++l) {
        const Choice& ch = choices[l][chosen[l]];
        result.allocated.layers.push_back(makeLayer(scan.layers[l], scan.sparsities[ch.sparsityIndex],
                                                    scan.bits[ch.bitsIndex], ch.error, group));
    }
    finish(result.allocated, fixedBytes);

    // Uniform at the same budget.
    if (bySparsity) {
        const double s = params.averageSparsity;
        const size_t j = bitsAllowed.front();
        // Neighbouring grid levels for interpolation (the grid need not be sorted).
        for (size_t l = 0; l < scan.layers.size(); ++l) {
            double error = std::numeric_limits<double>::quiet_NaN();
            double below = -1.0, above = 2.0;
            size_t belowIndex = 0, aboveIndex = 0;
            for (size_t i = 0; i < scan.sparsities.size(); ++i) {
                const double level = scan.sparsities[i];
                if (level == s) {
                    error = scale[l] * cellError(scan.cell(l, i, j), params.metric);
                    break;
                }
                if (level < s && level > below) {
                    below = level;
                    belowIndex = i;
                }
                if (level > s && level < above) {
                    above = level;
                    aboveIndex = i;
                }
            }
            if (std::isnan(error)) {
                result.uniformInterpolated = true;
                if (below >= 0.0 && above <= 1.0) {
                    const double t = (s - below) / (above - below);
                    error = scale[l] * ((1.0 - t) * cellError(scan.cell(l, belowIndex, j), params.metric)
                                        + t * cellError(scan.cell(l, aboveIndex, j), params.metric));
                }
            }
            result.uniform.layers.push_back(makeLayer(scan.layers[l], s, sparsityBits, error, group));
        }
        finish(result.uniform, fixedBytes);
        result.budgetText = "average sparsity " + formatNumber(s) + " at " + std::to_string(sparsityBits) + " bits";
    } else {
        double bestError = kInfeasible;
        for (size_t i = 0; i < scan.sparsities.size(); ++i)
            for (size_t j = 0; j < scan.bits.size(); ++j) {
                Allocation candidate;
                for (size_t l = 0; l < scan.layers.size(); ++l)
                    candidate.layers.push_back(makeLayer(scan.layers[l], scan.sparsities[i], scan.bits[j],
                                                         scale[l] * cellError(scan.cell(l, i, j), params.metric),
                                                         group));
                finish(candidate, fixedBytes);
                if (candidate.modelBytes <= params.modelBytes && candidate.predictedError < bestError) {
                    bestError = candidate.predictedError;
                    result.uniform = candidate;
                }
            }
        result.budgetText = "model size <= " + std::to_string(params.modelBytes) + " bytes";
    }
    return result;
}

Recipe allocationRecipe(const Allocation& allocation, const solve::SolverOptions& base, bool othersDense)
{
    Recipe recipe;
    recipe.defaults.options = base;
    recipe.defaults.dense = othersDense;
    for (const auto& layer : allocation.layers) {
        RecipeRule rule;
        rule.pattern = layer.name;
        if (layer.sparsity == 0.0 && layer.bits == 16) {
            rule.dense = true;
        } else {
            rule.dense = false;
            rule.method = base.method;
            rule.sparsity = layer.sparsity;
            rule.bits = layer.bits;
        }
        recipe.rules.push_back(rule);
    }
    return recipe;
}

} // namespace sparselab::analysis
