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
//   Rtn       — round-to-nearest quantization (the GPTQ paper's baseline): every weight to its
//               grid (per row or per group of columns, from the dense W); prunes nothing
//               (sparsity must be 0, no N:M), needs bits 2..8.
// Magnitude and Wanda apply the quantization grid (if any) after masking, round to nearest.
//
// GPTQ (IST-DASLab/gptq gptq.py fasterquant; tests/data/solver/gptq_* are its outputs): SparseGpt
// with bits 2..8 and sparsity 0 is GPTQ. QuantOptions::actOrder visits the columns by
// descending diag(H) (dead inputs counted as 1; ties by lower index) and permutes the result
// back; with groups the group boundaries are then every groupSize columns of that order, so a
// column's group is groupIndex[j] (GPTQ's g_idx). staticGroups takes every group's grid up
// front from the whole W (after dead inputs are zeroed), groups being consecutive columns of
// the original order whatever the visiting order. Jointly with sparsity the mask is chosen in
// the visiting order and pruned weights stay exactly zero (quantize(0) = 0); act-order with
// N:M is rejected (the pattern holds for consecutive columns of the stored order).
//
// Where SparseLab departs from the reference (all documented choices, not accidents):
//  - sparsity 0 prunes nothing (the reference's `<=` rule would prune the smallest score of
//    every block), so sparsity 0 + bits is plain GPTQ;
//  - N:M with M not dividing cols: the trailing group of g < M columns prunes min(N, g)
//    (the reference prunes N and fails when g < N);
//  - GPTQ groups (QuantOptions::groupSize) with SparseGPT combine IST-DASLab/gptq's rule
//    (grid from the current W at each group boundary) with sparsegpt's loop, and act-order
//    with sparsity permutes W and H before sparsegpt's loop (the reference has no such mode);
//  - a failed Cholesky raises damping ×10 (up to relative damping 10) instead of aborting.
// On CPU the column loop runs in row tiles on plain threads (count: kernelThreads(),
// util/engine_threads.h).
// The in-block arithmetic is the reference's, operation for operation; Hinv comes from one
// Cholesky + a triangular inverse (design.md §5), so results agree with the reference to
// float rounding and masks are identical except for scores within rounding of a threshold.

#include "solve/solver_options.h"
#include "util/progress.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sparselab::solve {

struct LayerResult {
    torch::Tensor mask;              // [rows, cols] bool, true = pruned (on W's device)
    // GPTQ's g_idx: the quantization group of each input column, [cols] int64 on the CPU;
    // defined only with quantization groups (j / groupSize unless act-order without static
    // groups, where it is (position of j in the visiting order) / groupSize).
    torch::Tensor groupIndex;
    LayerStats stats;
};

// Block-level progress: called once per column block with (done, total) blocks.
// Solves in place: `weight` [rows, cols] float32 is overwritten with the compressed weights.
// `hessian` [cols, cols] float32 (undamped, as accumulated) is not modified.
// denseOutputEnergy: tr(W H Wᵀ) of the dense `weight` (outputEnergy below), the denominator
// of LayerStats::relOutputError, when the caller already has it — a scan solving one layer at
// many levels, or the pipeline, which sums the dense layer's squared outputs in its collecting
// pass; negative: computed here, about rows·cols² multiply-adds.
// Throws InputError on non-finite inputs or a Hessian that stays singular after damping,
// CancelledError when cancelled (weight then left unspecified; callers keep a copy).
[[nodiscard]] LayerResult solveLayer(torch::Tensor& weight, const torch::Tensor& hessian,
                                     const SolverOptions& options,
                                     const ProgressCallback& progress = {},
                                     const CancelToken* cancel = nullptr,
                                     double denseOutputEnergy = -1.0);

// tr(W H Wᵀ) in double, for W [rows, cols] and a symmetric H [cols, cols]. With H from
// HessianAccumulator over N sequences it is (2/N)·‖X Wᵀ‖², the energy of the layer's output
// (bias excluded) on the calibration inputs. H's strictly lower blocks are counted twice
// through symmetry instead of being multiplied: about rows·cols² multiply-adds, not 2·rows·cols².
[[nodiscard]] double outputEnergy(const torch::Tensor& weight, const torch::Tensor& hessian);

// Running mean Hessian H = (2/N)·Σ XᵀX over calibration sequences, as the reference's
// add_batch: for each call with x [batch, tokens, cols] (or [tokens, cols] = one sequence),
// H ← H·N/(N+batch); N ← N+batch; H += (2/N)·XᵀX.
// add() updates only the block-upper part with GEMMs (about half the work of XᵀX) and
// hessian() mirrors it on first access after an add, so H is exactly symmetric. add() throws
// InputError ("inputs: ...") on a wrong shape or non-finite values, before touching H.
// Not thread-safe (hessian() may write).
//
// Precision (opt-in, for GPUs): BFloat16 rounds the inputs to bfloat16 and forms each XᵀX
// product by a bfloat16 GEMM (its result rounded to bfloat16), then accumulates the products
// into the float32 H. About 2⁻⁸ relative error per entry; the pipeline reports the deviation
// from float32 it causes (PruneResult::hessianDeviation). Float32, the default, is the
// reference's arithmetic.
// Whether `t` holds no NaN or Inf. Float32 contiguous CPU tensors are checked in one pass on
// the calling thread without allocating (a 128 MiB input costs no page faults; see forkJoin in
// solver_detail.h for why the solvers avoid OpenMP regions); others through ATen.
[[nodiscard]] bool allFinite(const torch::Tensor& t);

enum class HessianPrecision { Float32, BFloat16 };
[[nodiscard]] std::string hessianPrecisionName(HessianPrecision precision); // "fp32", "bf16"
// "fp32"/"float32", "bf16"/"bfloat16"; InputError naming `option` otherwise.
[[nodiscard]] HessianPrecision parseHessianPrecision(const std::string& name, const std::string& option);

class HessianAccumulator {
public:
    HessianAccumulator(int64_t cols, torch::Device device, HessianPrecision precision = HessianPrecision::Float32);
    void add(const torch::Tensor& x);
    // add() once per sequence of x [batch, tokens, cols] (or once for [tokens, cols]): the
    // reference pipelines (opt.py, llama.py) run one calibration window per forward, so their
    // add_batch sees one sequence at a time; the pipelines here forward several windows at
    // once but accumulate H in the reference's order, with its float rounding. (Batched adds
    // differ by rounding only, yet that moves quantization's round-to-nearest decisions: the
    // demo's 50 % + 4-bit perplexity is 24.4002 per sequence, as the reference's 24.40, and
    // 24.6064 with adds of 8 windows.)
    void addSequences(const torch::Tensor& x);
    [[nodiscard]] const torch::Tensor& hessian() const; // [cols, cols] float32, on `device`
    [[nodiscard]] int64_t samples() const { return m_samples; }
private:
    // InputError unless x is [tokens, cols] or [batch, tokens, cols] of finite values.
    void check(const torch::Tensor& x) const;
    // add() without check(), for x already checked (addSequences checks the whole batch once).
    void accumulate(const torch::Tensor& x);
    mutable torch::Tensor m_h;     // upper triangle current; lower valid when m_symmetric
    mutable bool m_symmetric = true;
    int64_t m_samples = 0;
    HessianPrecision m_precision = HessianPrecision::Float32;
};

} // namespace sparselab::solve
