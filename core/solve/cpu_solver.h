#pragma once
// SparseGPT for one layer on the CPU over plain float buffers: the Hessian from inputs, the
// preamble (dead inputs, damping, Hinv), the column loop (cpu_column_loop.h) and the layer's
// statistics. No LibTorch here: `sparselab-cli solve-layer` runs a CPU SparseGPT solve in a
// process that never loads it (its start-up alone took 0.65 s on the project's EPYC machine),
// and the engine's solver (solver.cpp, sparsegpt.cpp) runs its CPU solves through these same
// functions, so both give the same bytes.
//
// The BLAS and LAPACK are the process's, looked up by name (fortran_blas.h): LibTorch's
// OpenBLAS in the engine, the one linked into the front end otherwise. available() says
// whether every function needed is there.

#include "solve/solver_options.h"
#include "util/progress.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sparselab::solve::cpu {

// True when the process has every BLAS/LAPACK function these solvers call (sgemm_, ssyrk_,
// strmm_, spotrf_, strtri_).
[[nodiscard]] bool available();

// Whether x[0..n) holds no NaN or Inf: one pass, units of 2²⁰ values on `threads`, a bad
// value ending the pass early. Allocates nothing (a 128 MiB input costs no page faults).
[[nodiscard]] bool allFinite(const float* x, int64_t n, int threads);

// Copies x[0..n) to out and says whether every value was finite: allFinite and the copy in one
// pass (the solver keeps the dense W for its statistics and had read it twice for this). `out`
// is written whole either way.
[[nodiscard]] bool copyAllFinite(const float* x, int64_t n, float* out, int threads);

// Column block of the symmetric products (quadraticTrace; the engine's non-BLAS Hessian
// update): the whole width up to 512 columns, 256 above.
[[nodiscard]] int64_t symmetricBlock(int64_t cols);

// ---- the Hessian -------------------------------------------------------------------------------

// H ← beta·H + alpha·XᵀX on the upper triangle of the row-major h [cols, cols] (the strictly
// lower part is left stale), x [tokens, cols] row-major: one ssyrk. The reference's add_batch
// scales H, then X by sqrt(2/N), then adds XᵀX; the scaling folded into ssyrk's alpha and beta
// is equal up to float rounding, without extra passes over H or X.
void rankUpdateUpper(float* h, int64_t cols, const float* x, int64_t tokens, float beta, float alpha);

// Copies the strict upper triangle of h [n, n] onto the lower one (64 × 64 tiles on `threads`).
void mirrorUpperToLower(float* h, int64_t n, int threads);

// ---- the preamble -----------------------------------------------------------------------------

// The float32 mean of x[0..n) as LibTorch's torch.mean computes it on the CPU (its cascade of
// float sums over `lanes`-wide vectors in four interleaved rows, then the division by n), so
// that damping = percdamp·mean(diag H) rounds as the reference's. `lanes` is the width of
// ATen's Vectorized<float>: 16 with ATEN_CPU_CAPABILITY=avx512, else 8 (atenFloatLanes()).
// Exact for n < 32768 (ATen splits larger sums between its threads when it has several).
[[nodiscard]] float torchMean(const float* x, int64_t n, int lanes);
// ATen's Vectorized<float> width in this process (from ATEN_CPU_CAPABILITY, as ATen reads it).
[[nodiscard]] int atenFloatLanes();

// U with UᵀU = H⁻¹ (solve/inverse_cholesky.h) into `out`, n·n floats: U column-major, its
// strictly lower part zero. H is the symmetric h [n, n] row-major (only its lower triangle is
// read, as the reference's Cholesky reads it) with its diagonal replaced by `diagonal` [n].
// False when H is not numerically positive definite (`out` is then unspecified). Needs
// available(); n < 46341. The copy runs on `threads`, the factorisation on the BLAS's own.
[[nodiscard]] bool upperCholeskyOfInverse(const float* h, const float* diagonal, int64_t n, float* out, int threads);

// The preamble's damping schedule: factorWith(relDamp) from `damp`, raised ×10 (from 1e-3
// when damp is 0) while it returns false, up to relative damping 10; then InputError
// ("hessian: not positive definite even with relative damping ..."). CancelledError before
// each try. Shared by the CPU preamble below and the engine's for other devices.
struct Damping {
    double relative = 0.0; // the relative damping that worked
    int raises = 0;        // times it was raised
};
[[nodiscard]] Damping raiseDampingUntilFactored(double damp, const CancelToken* cancel,
                                                const std::function<bool(double relDamp)>& factorWith);

// Dead inputs, damping and Hinv of an undamped H (design.md §3 steps 1-3).
struct Factor {
    std::vector<uint8_t> dead; // [cols] 1 where H[j,j] == 0
    int64_t deadInputs = 0;
    double dampUsed = 0.0;     // relative damping finally used
    int dampRaises = 0;        // times it was raised ×10
    double dampAbsolute = 0.0; // added to H's diagonal: float32(mean(diag H)) · float32(damp)
};
// h: row-major [n, n] symmetric float32; only its lower triangle and diagonal are read (the
// reference's Cholesky reads the lower one). hinv: n·n floats, on return U column-major (its
// strictly lower part zero), UᵀU = (H + dampAbsolute·I)⁻¹ with dead inputs' diagonal 1.
// Damping is raised ×10 (from 1e-3 when damp = 0) while the factorisation fails, up to 10;
// then InputError("hessian: not positive definite ..."). CancelledError when cancelled.
// Needs available(); n < 46341.
[[nodiscard]] Factor factorHessian(const float* h, int64_t n, double damp, float* hinv, int threads,
                                   const CancelToken* cancel);

// factorHessian with U written into h's own buffer instead of a second n·n one (64 MiB fewer
// fresh pages at 4096 columns): on success h's lower triangle and diagonal hold U column-major
// (element (i, j ≥ i) of U at h[j·n + i], i.e. row-major h[j][i] = U(i, j): Uᵀ), and its strict
// upper triangle still holds H's, which the factorisation never touches. The first try reads
// H's lower triangle, as factorHessian does, so U is bit for bit factorHessian's; a
// raised-damping retry first copies the upper triangle onto the lower one, so H is taken as
// symmetric there (a Hessian that is not, bit for bit, is factored from its upper triangle
// after a raise, where factorHessian keeps reading the lower one). H's diagonal is not kept:
// the caller saves it first if it needs it. Errors as factorHessian.
[[nodiscard]] Factor factorHessianInPlace(float* h, int64_t n, double damp, int threads, const CancelToken* cancel);

// The progress note of a solve whose damping was raised ("" when it was not).
[[nodiscard]] std::string dampNote(int raises, double relDamp);

// ---- statistics -------------------------------------------------------------------------------

// tr(A H Aᵀ) in double for A [rows, cols] row-major with leading dimension lda, H [cols, cols]
// row-major symmetric: per column block b, ⟨A_b, A_b H_bb + 2·A_{>b} H_{>b,b}⟩ (the strictly
// lower blocks counted twice through symmetry instead of multiplied), about rows·cols²
// multiply-adds. Reads only H's diagonal and strict upper triangle.
[[nodiscard]] double quadraticTrace(const float* a, int64_t rows, int64_t cols, int64_t lda, const float* h);

// The statistics of a solved layer (LayerStats: sparsity, relOutputError) from the dense
// `original` and the solved `w` [rows, cols], the undamped h (its diagonal and strict upper
// triangle; the lower one is not read), the solve's loss, and the
// damping it added (SparseGPT; 0 for the baselines). denseOutputEnergy: tr(W H Wᵀ) when the
// caller has it, negative to compute it. `original` is only read (it may be a mapped file's).
// scratch: rows·cols floats the statistics may overwrite with W − Ŵ when they need it (every
// baseline; SparseGPT only when the damping term nearly cancels the loss), e.g. the caller's
// own copy of W, which may be `original` itself; null: allocated then.
// ‖XWᵀ − XŴᵀ‖²/‖XWᵀ‖² = tr(ΔW H ΔWᵀ)/tr(W H Wᵀ); for SparseGPT tr(ΔW H ΔWᵀ) = 2·loss −
// damp·‖ΔW‖² over live inputs, without a second product, unless that nearly cancels.
void layerStatistics(const float* original, const float* w, int64_t rows, int64_t cols, const float* h,
                     bool sparseGpt, double dampAbsolute, double denseOutputEnergy, int threads, LayerStats& stats,
                     float* scratch = nullptr);

// ---- one layer --------------------------------------------------------------------------------

// SparseGPT without quantization (options.quant.bits 16; validated by the caller) on w [rows,
// cols] row-major (solved in place) with the undamped h [cols, cols] (symmetric): writes every
// entry of mask [rows, cols] (true = pruned; it need not be cleared first) and the statistics,
// seconds included. `threads` for the column loop's team and the O(rows·cols) passes. Progress
// one step per block ("solve").
// h is also Hinv's storage (factorHessianInPlace: no second cols² buffer, 64 MiB at 4096
// columns): after a normal return its diagonal and strict upper triangle hold H again and its
// strict lower triangle holds U's strict upper part, transposed; after an exception only the
// strict upper triangle is H's.
// The statistics read H's diagonal and upper triangle.
// InputError on a W holding NaN or Inf (its copy for the statistics checks it) or a Hessian
// that stays singular; CancelledError.
// dense: the dense W, rows·cols finite values the caller has checked and keeps unchanged until
// the call returns (e.g. the problem file's own, memory-mapped), read for the statistics
// instead of a copy of w: 64 MiB fewer fresh pages at 4096 × 4096. Null: w is copied, and
// checked, first.
[[nodiscard]] LayerStats solveSparseGpt(float* w, int64_t rows, int64_t cols, float* h,
                                        const SolverOptions& options, bool* mask, int threads,
                                        const ProgressCallback& progress, const CancelToken* cancel,
                                        const float* dense = nullptr);

} // namespace sparselab::solve::cpu
