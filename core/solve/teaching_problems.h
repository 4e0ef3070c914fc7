#pragma once
// Small synthetic layer problems for the teaching mode: a weight matrix and a Hessian that a
// class can follow by hand, and the comparison curves of the teaching view.
//
// Hessian presets ([cols, cols] float32, symmetric positive definite):
//   Identity     — H = I: Hinv is diagonal (1/√(1+damp)), so pruning moves nothing onto the
//                  other columns; saliency is plain w² up to a constant.
//   Correlated   — H_ij = ρ^|i−j| (an AR(1) covariance). Its inverse is tridiagonal and the
//                  upper Cholesky factor U of H⁻¹ (UᵀU = H⁻¹) is bidiagonal:
//                  U_ii = 1/√(1−ρ²) (i < n−1), U_{n−1,n−1} = 1, U_{i,i+1} = −ρ/√(1−ρ²).
//                  With damp = 0 pruning w_i therefore adds exactly ρ·w_i to w_{i+1}:
//                  err = w/U_ii, w_{i+1} −= err·U_{i,i+1}.
//   RandomInputs — H = (2/N)·XᵀX (HessianAccumulator, one sequence) for X [4·cols, cols] with
//                  standard normal entries from the seed, neighbouring inputs mixed
//                  (x_j += 0.6·x_{j−1}) so that the inputs are correlated.
// Weights: uniform on the grid {−1.00, −0.99, …, 1.00} from the seed (two decimals, easy to
// read). Random numbers come from std::mt19937_64 with our own transforms, so a seed gives
// the same problem on every platform.

#include "solve/solver.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sparselab::solve {

enum class HessianPreset { Identity, Correlated, RandomInputs };

[[nodiscard]] std::string hessianPresetName(HessianPreset preset); // "identity", "correlated", "random-inputs"

struct SyntheticProblemParams {
    int64_t rows = 8;
    int64_t cols = 16;
    HessianPreset preset = HessianPreset::Correlated;
    double rho = 0.5;       // Correlated: correlation of neighbouring inputs, (−1, 1)
    uint64_t seed = 0;
};

struct SyntheticProblem {
    torch::Tensor weight;   // [rows, cols] float32 CPU
    torch::Tensor hessian;  // [cols, cols] float32 CPU
};

// InputError on sizes outside 1..4096 or |rho| >= 1.
[[nodiscard]] SyntheticProblem makeSyntheticProblem(const SyntheticProblemParams& params);

// H_ij = rho^|i−j| [n, n] float32.
[[nodiscard]] torch::Tensor correlatedHessian(int64_t n, double rho);

// A matrix typed by a user: rows separated by newlines or ';', numbers by spaces, tabs or
// commas; blank lines ignored. InputError("<what>: …") on a non-number, ragged rows or an
// empty text. Returns [rows, cols] float32.
[[nodiscard]] torch::Tensor parseMatrixText(const std::string& text, const std::string& what);

// ---- comparison curves ---------------------------------------------------------------------

// One method's error after each column of a left-to-right sweep.
struct ColumnCurve {
    std::string label;                    // e.g. "SparseGPT 50%", "magnitude 2:4"
    std::vector<int64_t> columns;         // columns finished (x axis), ascending, ends at cols
    // SparseGPT: its running loss Σ(w−q)²/[H⁻¹]ᵢᵢ²/2 (the solver's); magnitude: ½·tr(ΔW H_d ΔWᵀ)
    // of its pruned entries in the finished columns, H_d the damped Hessian SparseGPT factorises
    // (the quantity SparseGPT's loss equals for its own ΔW, so the two curves compare directly).
    std::vector<double> loss;
    // ‖XWᵀ − XŴᵀ‖²/‖XWᵀ‖² = tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) (undamped H) of the weights after that column
    // (SparseGPT: with the pending updates applied, see SparseGptStepper::effectiveWeight).
    std::vector<double> relOutputError;
    double sparsity = 0.0;                // of the final weights
};

struct ComparisonParams {
    SolverOptions options;                // sparsity, blocksize, damp, quant; nm ignored
    bool unstructured = true;             // curves at options.sparsity
    bool nm24 = true;                     // curves at 2:4 (skipped when blocksize % 4 != 0)
    int points = 64;                      // columns sampled per curve (at most cols), ≥ 2
};

// Magnitude vs SparseGPT on one layer, unstructured and/or 2:4, in the order
// [magnitude, SparseGPT] per pattern. Progress: stage "compare", one step per curve point.
[[nodiscard]] std::vector<ColumnCurve> compareOnLayer(const torch::Tensor& weight, const torch::Tensor& hessian,
                                                      const ComparisonParams& params,
                                                      const ProgressCallback& progress = {},
                                                      const CancelToken* cancel = nullptr);

} // namespace sparselab::solve
