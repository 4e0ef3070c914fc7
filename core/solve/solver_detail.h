#pragma once
// Internal pieces of the solvers, shared by solver.cpp, sparsegpt.cpp and baselines.cpp and
// exposed for the tests. Not part of the public API: front ends use solver.h only.

#include "solve/cpu_column_loop.h"
#include "solve/hessian_factor.h"
#include "solve/solver.h"
#include "util/fork_join.h"

#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sparselab::solve::detail {

// Which implementation of the SparseGPT column loop to run.
//   Auto    — CpuTiled on CPU tensors, Generic elsewhere.
//   Generic — the reference's tensor-op sequence (any device); slow on CPU, kept as the
//             cross-check for CpuTiled and as the CUDA path.
//   CpuTiled — row tiles in parallel over raw float buffers (CPU only).
//   CudaKernels — the hand-written block kernel of core/cuda (CUDA tensors, builds with
//             SPARSELAB_CUDA_SOLVER; Auto picks it for CUDA tensors when blocksize <= 128).
enum class Backend { Auto, Generic, CpuTiled, CudaKernels };

// True when this build has the CUDA kernel path (SPARSELAB_CUDA_SOLVER).
[[nodiscard]] bool cudaKernelsBuilt();

// Upper Cholesky factor U of H⁻¹ (UᵀU = H⁻¹, U upper triangular, positive diagonal) for a
// symmetric positive definite float32 H [n, n] whose diagonal is replaced by `diagonal` [n]
// (dead inputs set to 1, damping added). Only the lower triangle of `h` is read, as the
// reference's torch.linalg.cholesky does. Returns an undefined tensor when the matrix is not
// numerically positive definite. The result may have column-major strides.
// Method (design.md §5): H = R·Rᵀ with R upper triangular, U = R⁻¹ — one Cholesky factorisation
// and one triangular inverse instead of the reference's cholesky → cholesky_inverse →
// cholesky, done together by recursion on 2×2 blocks in the process's BLAS
// (solve/inverse_cholesky.h). Without those functions (or off the CPU, or allowBlas = false)
// ATen's linalg does the same with J the reversal permutation: J·H·J = L·Lᵀ, U = J·L⁻¹·J, the
// inverse by a triangular solve.
[[nodiscard]] torch::Tensor upperCholeskyOfInverse(const torch::Tensor& h, const torch::Tensor& diagonal,
                                                   bool allowBlas = true);
// The same with H's own diagonal.
[[nodiscard]] torch::Tensor upperCholeskyOfInverse(const torch::Tensor& h, bool allowBlas = true);

// The reference sequence, for tests: cholesky(cholesky_inverse(cholesky(h)), upper).
[[nodiscard]] torch::Tensor upperCholeskyOfInverseReference(const torch::Tensor& h);

// Per-row asymmetric (or symmetric) min-max grid as the reference's Quantizer.find_params
// (perchannel, weight=True) over x [rows, k] float32: scale, zero [rows] float32.
struct QuantGrid {
    torch::Tensor scale; // [rows]
    torch::Tensor zero;  // [rows]
    float maxq = 0.0f;   // 2^bits − 1
};
// fp16Scale, signedScale: QuantOptions::fp16Scale, QuantOptions::signedScale.
[[nodiscard]] QuantGrid findQuantGrid(const torch::Tensor& x, int bits, bool symmetric, bool fp16Scale = false,
                                      bool signedScale = false);

// The nearest float16 value of a positive float32 scale (round to nearest even), never 0 (the
// smallest fp16 subnormal instead) and never above the fp16 maximum.
[[nodiscard]] float roundScaleToHalf(float scale);

// GPTQ act-order: column indices by descending `diagonal` [cols] (ties: lower index first),
// int64 [cols] on the CPU.
[[nodiscard]] torch::Tensor actOrderPermutation(const torch::Tensor& diagonal);

// Reference quantize(): scale·(clamp(round(x/scale) + zero, 0, maxq) − zero), with scale and
// zero [rows] broadcast over x [rows, k].
[[nodiscard]] torch::Tensor quantizeWithGrid(const torch::Tensor& x, const QuantGrid& grid);

// tr(A H Aᵀ) for A [rows, cols], H [cols, cols] symmetric (only its upper triangle is read,
// blocked so that the work is about half of the full A·H product). Accumulated in double.
[[nodiscard]] double quadraticTrace(const torch::Tensor& a, const torch::Tensor& h);

// Throws InputError("<what>: ...") when `t` holds NaN or Inf (solve::allFinite).
void requireFinite(const torch::Tensor& t, const char* what);

// The column loop's threads: sparselab::forkJoin (util/fork_join.h says why not at::parallel_for;
// here, in addition, every parallel region is followed by an OpenBLAS GEMM, the lazy update).
using sparselab::forkJoin;

// The preamble of SparseGPT (design.md §3 steps 1-3), shared by solveSparseGpt and the
// teaching stepper: per-row quantization grid from the dense W (if enabled), dead inputs
// zeroed in `w` (in place), then Hinv with damping raised ×10 until the factorisation works.
// InputError when it never does; CancelledError when cancelled.
struct SparseGptSetup {
    QuantGrid grid;              // per-row grid from the dense W (undefined tensors without quantization)
    torch::Tensor hinv;          // [cols, cols] upper Cholesky factor of the damped H⁻¹ (may be column-major)
    int64_t deadInputs = 0;      // columns with H[j,j] == 0
    double dampUsed = 0.0;       // relative damping finally used
    int dampRaises = 0;          // times it was raised
    double dampAbsolute = 0.0;   // amount added to H's diagonal (damp·mean diag)
    // GPTQ extras (QuantOptions::staticGroups / actOrder); undefined when not asked for.
    torch::Tensor staticScale;   // [groups, rows] every group's grid from the whole W, up front
    torch::Tensor staticZero;    // [groups, rows]
    torch::Tensor groupAt;       // [cols] int64 CPU: group of the column at each visiting position (static)
    torch::Tensor groupIndex;    // [cols] int64 CPU: GPTQ's g_idx (with groups)
    torch::Tensor perm;          // [cols] int64 CPU: act-order visiting order; `w` is then permuted
    torch::Tensor wOriginalOrder; // the caller's W tensor (act-order), to copy the result back into
};
// With act-order, `w` is replaced by its column-permuted copy (setup.perm); the caller permutes
// the result back into setup.wOriginalOrder. The teaching stepper rejects act-order.
// With `sharedFactor` (hessian_factor.h; not with act-order) its Hinv and damping are used
// instead of factorising H again.
[[nodiscard]] SparseGptSetup prepareSparseGpt(torch::Tensor& w, const torch::Tensor& h,
                                              const SolverOptions& options, const CancelToken* cancel,
                                              const HessianFactor* sharedFactor = nullptr);
// The SparseGPT column loop on CUDA tensors with core/cuda's block kernel (sparsegpt_cuda.cpp):
// w [rows, cols] float32 contiguous (in place), hinv [cols, cols] upper factor of the damped
// H⁻¹, mask [rows, cols] bool (filled), rowGrid the dense-W grid when quantizing. Unstructured
// masks are chosen per block with the CPU's rule (score <= value at sorted index
// int(numel·sparsity)), N:M and quantization inside the kernel, the lazy update by cuBLAS on the
// tensors' current stream. Returns the loss. Throws std::logic_error in builds without
// SPARSELAB_CUDA_SOLVER, std::runtime_error on a CUDA error.
inline constexpr int64_t kCudaMaxBlockColumns = 128;
[[nodiscard]] double runCudaKernels(torch::Tensor& w, const torch::Tensor& hinv, torch::Tensor& mask,
                                    const SolverOptions& options, const QuantGrid& rowGrid,
                                    ProgressReporter& reporter, const CancelToken* cancel, const std::string& note);

// L⁻¹ of a square lower-triangular float32 CUDA matrix with cuSOLVER's trtri (n³/3 flops, a
// third of a triangular solve against I), on the current stream; an undefined tensor when this
// build or process has no cuSOLVER trtri, or L is singular (the caller then falls back).
[[nodiscard]] torch::Tensor invertLowerTriangularCuda(const torch::Tensor& lower);
// Whether invertLowerTriangularCuda can run here (a CUDA solver build whose process has cuSOLVER).
[[nodiscard]] bool cudaTriangularInverseAvailable();

// SparseGPT proper: W [rows, cols] float32 contiguous (modified in place), H [cols, cols]
// float32 undamped. Fills mask and stats.loss/dampUsed/dampRaises/deadInputs, and sets
// *dampAbsolute to the amount finally added to H's diagonal (damp·mean diag). With `factor`
// non-null its factorisation is used instead of computing one (it must match options.damp).
[[nodiscard]] LayerResult solveSparseGpt(torch::Tensor& w, const torch::Tensor& h,
                                         const SolverOptions& options,
                                         const ProgressCallback& progress, const CancelToken* cancel,
                                         Backend backend, double* dampAbsolute,
                                         const HessianFactor* factor = nullptr);

// Dead inputs, damping (raised as needed) and Hinv of an undamped H: the SparseGPT preamble.
[[nodiscard]] HessianFactor factorHessianImpl(const torch::Tensor& h, double damp, const CancelToken* cancel);

// Magnitude / Wanda / Rtn: W modified in place (masked, then quantized if enabled).
[[nodiscard]] LayerResult solveBaseline(torch::Tensor& w, const torch::Tensor& h,
                                        const SolverOptions& options);

// The implementation behind solveLayer, with the backend selectable (tests).
[[nodiscard]] LayerResult solveLayerWith(torch::Tensor& weight, const torch::Tensor& hessian,
                                         const SolverOptions& options, const ProgressCallback& progress,
                                         const CancelToken* cancel, Backend backend,
                                         const HessianFactor* factor = nullptr, double denseOutputEnergy = -1.0);

// Hinv as the CPU column loop reads it: itself when either stride is 1, else a contiguous copy.
[[nodiscard]] torch::Tensor unitStrideHinv(const torch::Tensor& hinv);

// The CPU column loop's W and Hinv buffers (cpu_column_loop.h) over w [rows, cols] (float32,
// row-major, CPU) and a unitStrideHinv `hinv`, which must outlive the loop, on the kernel
// threads; where the process has no sgemm_ symbol, ATen's addmm_ as the lazy update. The
// solver's CpuTiled backend and the teaching stepper both start from it, so that their lazy
// updates are the same calls.
[[nodiscard]] cpu::ColumnLoop columnLoopOver(const torch::Tensor& w, const torch::Tensor& hinv);

} // namespace sparselab::solve::detail
