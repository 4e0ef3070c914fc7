#include "allocation/sweep_allocator.h"

#include "model/causal_lm.h"
#include "util/errors.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>

namespace sparselab::allocation {

namespace {

std::string pointName(const analysis::SweepPointSpec& spec)
{
    char sparsity[32];
    std::snprintf(sparsity, sizeof sparsity, "%g", spec.sparsity);
    return "sweep point " + std::to_string(spec.index) + " (" + spec.allocation + " at sparsity " + sparsity + ")";
}

// The search of one sparsity level: a sparsity budget over SparseGPT variants at 16 bits with
// the sweep's damping and block size.
SearchParams searchAt(const SweepAllocationParams& params, double sparsity, const solve::SolverOptions& pointOptions)
{
    SearchParams search = params.search;
    search.budgetBytes = 0;
    search.bits = {16};
    search.targetSparsity = sparsity;
    search.base = pointOptions;
    search.base.method = solve::Method::SparseGpt;
    search.base.sparsity = sparsity;
    search.base.nmN = search.base.nmM = 0;
    search.base.quant.bits = 16;
    return search;
}

// What the allocator keeps between points.
struct AllocatorState {
    const model::CausalLM* dense = nullptr;
    const data::CalibrationWindows* windows = nullptr;
    SweepAllocationParams params;
    std::optional<std::vector<double>> owlOutlierRatio;      // per block, any S
    std::map<double, SearchResult> searched;                // by S
};

} // namespace

nlohmann::json SweepAllocationParams::toJson(const analysis::SweepGrid& grid) const
{
    nlohmann::json j = nlohmann::json::object();
    const auto uses = [&](const char* name) {
        return std::find(grid.allocations.begin(), grid.allocations.end(), name) != grid.allocations.end();
    };
    if (uses("owl"))
        j["owl"] = {{"lambda", owl.lambda}, {"outlier_multiple", owl.outlierMultiple}};
    if (uses("search"))
        j["search"] = {{"generations", search.generations},   {"offspring", search.offspring},
                       {"survivors", search.survivors},       {"max_mutations", search.maxMutations},
                       {"fitness_windows", search.fitnessWindows}, {"level_step", search.levelStep},
                       {"levels_each_side", search.levelsEachSide}, {"max_sparsity", search.maxSparsity},
                       {"time_limit_seconds", search.timeLimitSeconds}, {"seed", search.seed}};
    return j;
}

void validateSweepAllocations(const analysis::SweepGrid& grid, const std::vector<int64_t>& indices,
                              const SweepAllocationParams& params)
{
    for (int64_t index : indices) {
        const auto spec = analysis::sweepPointSpec(grid, index);
        try {
            if (spec.allocation == "owl") {
                OwlParams owl = params.owl;
                owl.targetSparsity = spec.sparsity;
                owl.validate();
            } else if (spec.allocation == "search") {
                searchAt(params, spec.sparsity, solve::SolverOptions{}).validate();
            }
        } catch (const InputError& e) {
            // The allocators name `allocate`'s budget option; a sweep's levels are --sparsities.
            std::string message = e.what();
            const std::string budget = "--budget-sparsity";
            if (const auto at = message.find(budget); at != std::string::npos)
                message.replace(at, budget.size(), "--sparsities");
            throw InputError(pointName(spec) + ": " + message);
        }
    }
}

analysis::SweepAllocator sweepAllocator(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                                        const SweepAllocationParams& params)
{
    auto state = std::make_shared<AllocatorState>();
    state->dense = &dense;
    state->windows = &windows;
    state->params = params;
    return [state](const analysis::SweepPointSpec& spec, const pipeline::Recipe& uniform,
                   const ProgressCallback& progress, const CancelToken* cancel) -> pipeline::Recipe {
        const solve::SolverOptions& options = uniform.defaults.options;
        if (spec.allocation == "owl") {
            OwlParams owl = state->params.owl;
            owl.targetSparsity = spec.sparsity;
            owl.validate();
            if (!state->owlOutlierRatio)
                state->owlOutlierRatio = owlAllocation(*state->dense, *state->windows, owl, progress, cancel).outlierRatio;
            OwlResult result;
            result.outlierRatio = *state->owlOutlierRatio;
            result.blockSparsity = owlSparsities(result.outlierRatio, spec.sparsity, owl.lambda);
            return owlRecipe(result, *state->dense, options);
        }
        if (spec.allocation == "search") {
            auto found = state->searched.find(spec.sparsity);
            if (found == state->searched.end()) {
                SearchParams search = searchAt(state->params, spec.sparsity, options);
                search.fitnessWindows = std::min<int64_t>(search.fitnessWindows, state->windows->nsamples);
                SearchObserver observer;
                observer.progress = progress;
                observer.cancel = cancel;
                found = state->searched.emplace(spec.sparsity, searchAllocation(*state->dense, *state->windows, search, observer))
                            .first;
            }
            // The point's own method and bits as the defaults; the rules carry the sparsities only.
            return searchRecipe(found->second, options);
        }
        throw std::logic_error("sweepAllocator: no per-layer allocation '" + spec.allocation + "'");
    };
}

} // namespace sparselab::allocation
