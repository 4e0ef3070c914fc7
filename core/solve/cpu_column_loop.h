#pragma once
// The SparseGPT column loop on the CPU, over plain float buffers: no LibTorch here, so that a
// process that solves one layer on the CPU (`sparselab-cli solve-layer`) need not load it. The
// engine's solver (sparsegpt.cpp) runs its CPU solves through this same function.
//
// Rows are independent inside a block, so a team of workers (`workers` threads, together for
// the whole solve) each owns a run of tiles of kTileRows rows. A tile is copied column-major
// into a small buffer (8 × 8 transposes) and runs the column loop there with Hinv1 (blocksize²,
// 64 KiB at 128) in cache, two columns per pass over the later ones where N:M allows. Every
// element sees the same float32 operations in the same order as the reference (w − q,
// (w − q)/d, w −= err·h, no FMA), so the in-block arithmetic is bit-identical; the lazy update
// is one sgemm per block and worker that reads Errᵀ, which the tiles write by runs of rows.
// Masks follow the reference's rules exactly: unstructured prunes score <= the value at sorted
// index int(numel·sparsity) (found from histograms, then nth_element); N:M reproduces
// torch.topk's CPU selection (nth_element/partial_sort on (score, index) pairs), ties included.

#include "solve/solver_options.h"
#include "util/progress.h"

#include <cstdint>
#include <functional>
#include <string>

namespace sparselab::solve::cpu {

// One solve's buffers. Element (i, j) of Hinv is hinv[i·hinvRowStride + j·hinvColStride]; one
// of the two strides must be 1 (row- or column-major).
struct ColumnLoop {
    float* w = nullptr;           // [rows, cols] row-major, float32, updated in place
    bool* mask = nullptr;         // [rows, cols] row-major, every entry written (true = pruned)
    int64_t rows = 0;
    int64_t cols = 0;
    const float* hinv = nullptr;  // upper Cholesky factor U of the damped H⁻¹ (UᵀU = H⁻¹); only
                                  // its diagonal and upper part are read, so the rest of the
                                  // buffer may hold other data (cpu::factorHessianInPlace keeps H
                                  // there)
    int64_t hinvRowStride = 0;
    int64_t hinvColStride = 0;
    const SolverOptions* options = nullptr;
    // Quantization (options->quant.enabled()): the per-row grid from the dense W [rows].
    const float* rowScale = nullptr;
    const float* rowZero = nullptr;
    // Static groups: every group's grid [groups, rows], and the group of the column at each
    // visiting position [cols]; null otherwise.
    const float* staticScale = nullptr;
    const float* staticZero = nullptr;
    const int64_t* groupAt = nullptr;
    int workers = 1; // the team's size (at most one per tile of kTileRows rows)
    // The lazy update W[r0 : r0+nr, i2:] −= Errᵀ[:count, r0 : r0+nr]ᵀ · Hinv[i1 : i1+count, i2:]
    // (errT: Errᵀ [count, rows] row-major), for a process without sgemm_ (the engine passes
    // ATen's addmm_ there); empty: sgemm_.
    std::function<void(int64_t r0, int64_t nr, int64_t i1, int64_t count, int64_t i2, const float* errT)> lazyUpdate;
};

// True when the process has the BLAS's sgemm_, which runColumnLoop calls unless given a lazyUpdate.
[[nodiscard]] bool columnLoopAvailable();

// Runs the column loop (design.md §3 step 4): fills `mask`, updates `w`, reports one step per
// block to `reporter` (on the calling thread) with `note`, and returns the loss
// Σ (w − q)²/Hinv1[i,i]²/2. CancelledError when `cancel` is set between blocks (w is then left
// part-way). With one worker the weights are those of one GEMM over all rows per block, bit for
// bit; with several the masks are the same and a weight can move in its last bit.
[[nodiscard]] double runColumnLoop(const ColumnLoop& problem, ProgressReporter& reporter, const CancelToken* cancel,
                                   const std::string& note);

// The lazy update after block [i1, i1 + count) as runColumnLoop applies it with
// problem.workers workers: W[rows, i1+count:] −= Err[rows]·Hinv[i1 : i1+count, i1+count:], one
// sgemm per worker on the run of row tiles that worker owns, with the same transposes, leading
// dimensions and OpenBLAS threads, so that the floats are the solver's (OpenBLAS does not round
// every product the same for every shape: its small-matrix kernels on AVX-512 sum in another
// order than its blocked ones). errT: Errᵀ [count, rows] row-major. The teaching stepper
// (sparsegpt_stepper.h) reproduces the solver's weights with it. Needs columnLoopAvailable().
void applyLazyUpdate(const ColumnLoop& problem, int64_t i1, int64_t count, const float* errT);

} // namespace sparselab::solve::cpu
