#pragma once
// OWL — outlier-weighted layer-wise sparsity (Yin et al., 2024, "Outlier Weighed Layerwise
// Sparsity"; llm-compressor's sparsity_profile="owl"), as published:
//
//   per decoder block b, over all weights of its linear layers, with the Wanda score
//     A_ij = |W_ij| · ‖X_j‖₂   (‖X_j‖ the norm of input feature j over the calibration tokens,
//                               the dense model's inputs, blocks run in order),
//   D_b = share of the block's A_ij above M · mean(A) (mean over the block's weights), M = 5;
//   D' = (D − min D) / (max D − min D) · 2λ;   keep_b = D'_b − mean(D') + (1 − S);
//   sparsity_b = 1 − keep_b,   λ = 0.08,
//
// so blocks with more outliers are pruned less, the block with the most outliers exactly 2λ
// less than the one with the fewest (the paper's "within S ± λ" holds for two blocks; in
// general the band is 2λ wide and contains S), and the average over blocks is exactly S
// (every block of a decoder has the same weights, so the weighted average is S too). When
// every block has the same D, all blocks get S. This is the published code's arithmetic.

#include "data/calibration.h"
#include "pipeline/recipe.h"
#include "util/progress.h"

#include <cstdint>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::allocation {

struct OwlParams {
    double targetSparsity = 0.5;   // S: the average over blocks, exact
    double lambda = 0.08;          // λ: the band of block sparsities is 2λ wide
    double outlierMultiple = 5.0;  // M: an outlier's score exceeds M × the block's mean score
    int64_t forwardBatch = 8;      // windows per block forward pass
    // InputError naming the option ("--budget-sparsity", "--owl-lambda", "--owl-m").
    void validate() const;
};

struct OwlResult {
    std::vector<double> outlierRatio;   // D_b per block
    std::vector<double> blockSparsity;  // sparsity_b per block
    double averageSparsity = 0.0;       // over blocks (= S)
};

// Runs the calibration windows through the dense model block by block (streamed models one
// block at a time) and applies the rule above. Progress "owl" per block; cancel between blocks.
[[nodiscard]] OwlResult owlAllocation(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                                      const OwlParams& params, const ProgressCallback& progress = {},
                                      const CancelToken* cancel = nullptr);

// The sparsity rule alone, from per-block outlier ratios (what owlAllocation applies).
[[nodiscard]] std::vector<double> owlSparsities(const std::vector<double>& outlierRatio, double targetSparsity,
                                                double lambda);

// A recipe with `base` as defaults and one rule per linear layer giving its block's sparsity.
[[nodiscard]] pipeline::Recipe owlRecipe(const OwlResult& owl, const model::CausalLM& model,
                                         const solve::SolverOptions& base);

} // namespace sparselab::allocation
