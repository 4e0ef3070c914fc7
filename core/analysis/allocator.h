#pragma once
// Per-layer allocation of sparsity and bit-width under a budget, from a sensitivity scan.
// No LibTorch.
//
// Every scanned layer ℓ picks one level (s, b) of the scan's grid. The predicted model error
// is the sum over layers of the scan's error of the chosen level (relative error
// tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) by default, or the absolute tr(ΔW H ΔWᵀ)). The budget is either
//   - an average sparsity S over the scanned layers' weights: Σ s_ℓ·n_ℓ ≥ S·Σ n_ℓ, with the
//     bit-width held at `bits` (the grid's largest by default) since sparsity alone does not
//     price bits; or
//   - a size in bytes for the whole model (pipeline/size_model.h: scanned layers at their
//     level, every other parameter at fp16): Σ bytes_ℓ(s, b) + fixed ≤ B.
// This is a multiple-choice knapsack, solved exactly up to cost rounding by dynamic
// programming over the budget in `resolution` units, with every level's cost rounded *up*,
// so the allocation always meets the budget (it may leave up to layers·unit unused).
//
// The uniform allocation at the same budget, for comparison: with a sparsity budget, every
// layer at s = S (which need not be a grid level; its predicted error is then interpolated
// linearly between the neighbouring levels, and marked so); with a bytes budget, the one grid
// level (s, b) shared by all layers that fits and has the least predicted error.

#include "pipeline/recipe.h"
#include "analysis/sensitivity.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace sparselab::analysis {

enum class BudgetKind { AverageSparsity, ModelBytes };
// Relative: relError; Absolute: absError; KindNormalized: relError divided by the mean
// relError, over all levels of the scan, of the layers of the same kind (q_proj, down_proj, …):
// reconstruction errors of different kinds feed the model's loss with different gains, so
// this metric only trades sparsity between layers of one kind (across blocks) and not, on
// the strength of incomparable numbers, between kinds.
enum class ErrorMetric { Relative, Absolute, KindNormalized };

struct AllocatorParams {
    BudgetKind kind = BudgetKind::AverageSparsity;
    double averageSparsity = 0.5;   // AverageSparsity: the target S in [0, 1)
    int64_t modelBytes = 0;         // ModelBytes: the cap B on the whole model's bytes
    int bits = 0;                   // AverageSparsity: the bit-width used (0 = the grid's largest)
    ErrorMetric metric = ErrorMetric::Relative;
    double maxSparsity = 1.0;       // levels above this are not used (e.g. 0.8)
    int64_t resolution = 20000;     // DP units the budget is divided into
};

struct LayerAllocation {
    std::string name;
    int64_t params = 0;             // rows · cols
    double sparsity = 0.0;
    int bits = 16;
    double predictedError = 0.0;    // in the chosen metric
    int64_t bytes = 0;              // size model
};

struct Allocation {
    std::vector<LayerAllocation> layers;
    double predictedError = 0.0;    // Σ over layers
    double averageSparsity = 0.0;   // weighted by layer size, scanned layers
    int64_t modelBytes = 0;         // whole model, size model
    [[nodiscard]] nlohmann::json toJson() const;
};

struct AllocationResult {
    Allocation allocated;
    Allocation uniform;
    bool uniformInterpolated = false; // the uniform level is not on the grid (see above)
    std::string budgetText;          // e.g. "average sparsity 0.5 at 16 bits"
};

// InputError ("--budget…", "--bits") when the budget cannot be met by any allocation or the
// parameters are out of range.
[[nodiscard]] AllocationResult allocate(const SensitivityResult& scan, const AllocatorParams& params);

// A recipe that applies `allocation` (one rule per layer, exact module names) on top of
// `base` (method, damp, blocksize, group, sym). Layers not in the allocation keep
// `base`'s defaults unless `othersDense` (then "dense").
[[nodiscard]] pipeline::Recipe allocationRecipe(const Allocation& allocation, const solve::SolverOptions& base,
                                      bool othersDense = true);

} // namespace sparselab::analysis
