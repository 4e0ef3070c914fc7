#pragma once
// Layer-wise pruning solvers on LibTorch tensors (any torch::Device).
//
// The problem for one linear layer: weight W [rows, cols] (= [out, in]) and the Hessian of
// the layer-wise reconstruction loss H = (2/N)·Σ XᵀX [cols, cols] over N calibration
// sequences (HessianAccumulator builds it exactly as the SparseGPT reference does).
//
// Methods (design.md §3, IST-DASLab/sparsegpt behaviour; tests/data/solver holds goldens made
// by the published code):
//   SparseGpt — OBS updates column by column in blocks of `blocksize`, unstructured mask per
//               block from the updated weights (score w²/diag(Hinv1)²) or N:M per group of M
//               columns; optional joint quantization (per-row asymmetric min-max grid from the
//               dense W; zeros stay zero).
//   Magnitude — per matrix, prune |W| <= the value at sorted index int(numel·p); N:M per group.
//   Wanda     — score |W_ij|·sqrt(H_jj/2) (= ‖X_j‖ mean over sequences), the int(cols·p)
//               smallest per output row; N:M per row per group; no weight update.
// Magnitude and Wanda apply the quantization grid (if any) after masking, round to nearest.
//
// Where SparseLab departs from the reference (all documented choices, not accidents):
//  - sparsity 0 prunes nothing (the reference's `<=` rule would prune the smallest score of
//    every block), so sparsity 0 + bits is plain GPTQ;
//  - N:M with M not dividing cols: the trailing group of g < M columns prunes min(N, g)
//    (the reference prunes N and fails when g < N);
//  - GPTQ groups (QuantOptions::groupSize) with SparseGPT combine IST-DASLab/gptq's rule
//    (grid from the current W at each group boundary) with sparsegpt's loop; act-order is not
//    implemented;
//  - a failed Cholesky raises damping ×10 (up to relative damping 10) instead of aborting.
// On CPU the column loop runs in row tiles on plain threads (count: at::get_num_threads()).
// The in-block arithmetic is the reference's, operation for operation; Hinv comes from one
// Cholesky + a triangular inverse (design.md §5), so results agree with the reference to
// float rounding and masks are identical except for scores within rounding of a threshold.

#include "util/progress.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sparselab::solve {

enum class Method { SparseGpt, Magnitude, Wanda };

[[nodiscard]] std::string methodName(Method method);           // "sparsegpt", "magnitude", "wanda"
[[nodiscard]] Method parseMethod(const std::string& name);      // InputError on unknown names

struct QuantOptions {
    int bits = 16;             // 2..8 quantizes; 16 = no quantization
    int64_t groupSize = 0;     // 0 = per row; else columns per group (GPTQ)
    bool symmetric = false;    // symmetric grid, zero = (maxq+1)/2
    [[nodiscard]] bool enabled() const { return bits < 16; }
};

struct SolverOptions {
    Method method = Method::SparseGpt;
    double sparsity = 0.5;     // fraction pruned, [0, 1); ignored when nmM > 0
    int nmN = 0;               // N:M — N zeros in every M consecutive inputs of a row
    int nmM = 0;               // 0 = unstructured
    int64_t blocksize = 128;   // SparseGPT column block (M must divide it)
    double damp = 0.01;        // relative damping: H += damp·mean(diag H)·I
    QuantOptions quant;
    // Validates ranges; InputError naming the option on failure.
    void validate(int64_t cols) const;
    [[nodiscard]] bool structured() const { return nmM > 0; }
};

struct LayerStats {
    double sparsity = 0.0;           // achieved fraction of exact zeros in W
    double loss = 0.0;               // SparseGPT OBS loss Σ (w−q)²/Hinv1[i,i]²/2 (0 for baselines)
    double relOutputError = 0.0;     // ‖XWᵀ − XŴᵀ‖² / ‖XWᵀ‖² on the calibration inputs
    double dampUsed = 0.0;           // relative damping finally used
    int dampRaises = 0;              // times damping was raised (×10) for Cholesky to succeed
    int64_t deadInputs = 0;          // columns with H[j,j] == 0
    double seconds = 0.0;
};

struct LayerResult {
    torch::Tensor mask;              // [rows, cols] bool, true = pruned (on W's device)
    LayerStats stats;
};

// Block-level progress: called once per column block with (done, total) blocks.
// Solves in place: `weight` [rows, cols] float32 is overwritten with the compressed weights.
// `hessian` [cols, cols] float32 (undamped, as accumulated) is not modified.
// Throws InputError on non-finite inputs or a Hessian that stays singular after damping,
// CancelledError when cancelled (weight then left unspecified; callers keep a copy).
[[nodiscard]] LayerResult solveLayer(torch::Tensor& weight, const torch::Tensor& hessian,
                                     const SolverOptions& options,
                                     const ProgressCallback& progress = {},
                                     const CancelToken* cancel = nullptr);

// Running mean Hessian H = (2/N)·Σ XᵀX over calibration sequences, as the reference's
// add_batch: for each call with x [batch, tokens, cols] (or [tokens, cols] = one sequence),
// H ← H·N/(N+batch); N ← N+batch; H += (2/N)·XᵀX.
// add() updates only the block-upper part with GEMMs (about half the work of XᵀX) and
// hessian() mirrors it on first access after an add, so H is exactly symmetric. add() throws
// InputError ("inputs: ...") on a wrong shape or non-finite values, before touching H.
// Not thread-safe (hessian() may write).
class HessianAccumulator {
public:
    HessianAccumulator(int64_t cols, torch::Device device);
    void add(const torch::Tensor& x);
    [[nodiscard]] const torch::Tensor& hessian() const; // [cols, cols] float32, on `device`
    [[nodiscard]] int64_t samples() const { return m_samples; }
private:
    mutable torch::Tensor m_h;     // upper triangle current; lower valid when m_symmetric
    mutable bool m_symmetric = true;
    int64_t m_samples = 0;
};

} // namespace sparselab::solve
