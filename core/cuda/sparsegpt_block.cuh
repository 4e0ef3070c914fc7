#pragma once
// SparseGPT column loop of one column block on the GPU (hand-written CUDA, no LibTorch).
//
// The SparseGPT solve of a layer W [rows, cols] walks the columns in blocks of `count`
// (<= kMaxBlockColumns) columns. Inside a block every row is independent given Hinv1, the
// block's [count, count] slice of the upper Cholesky factor of the damped H⁻¹. For each
// column i of the block and each row r (x = W[r, i1 + i] as updated so far):
//     q    = pruned(r, i) ? 0 : x;   q = quantize(q)            (when bits < 16)
//     loss[r] += (x − q)² / d²,  err[r, i] = (x − q) / d,        d = Hinv1[i, i]
//     W[r, i1 + j] −= err[r, i] · Hinv1[i, j]   for j in (i, count)
// This kernel runs that loop for a whole block in one pass: a CUDA block takes a tile of
// rows, keeps the tile's columns and Hinv1 in shared memory, and writes back q, err and the
// mask. The lazy update of the columns after the block (W[:, i2:] −= err · Hinv[i1:i2, i2:])
// is one GEMM left to the caller (cuBLAS).
//
// Arithmetic: the same float32 operations in the same order as the CPU column loop
// (core/solve/sparsegpt.cpp runTile): products and sums are rounded separately (no FMA
// contraction: __fmul_rn/__fsub_rn/__fdiv_rn), round-half-to-even for quantization, loss
// accumulated in double per row. Given the same inputs, q, err and the N:M mask are
// bit-identical to the CPU's; ties between equal N:M scores go to the lower column index
// (the CPU follows torch.topk's std::nth_element order, which may differ on exact ties).
//
// Mask selection, fused:
//   nmM > 0  — N:M: at the first column of every group of M, the N smallest scores
//              x²/d² among the group's current weights in the row are pruned (the trailing
//              group of g < M columns prunes min(N, g));
//   nmM == 0 — unstructured: the mask of the block's columns must be set by the caller
//              beforehand (it needs a selection over all rows; see solver's CUDA path).
// Quantization (bits 2..8): per-row grid scale/zero [rows], updated in place at GPTQ group
// boundaries (groupSize > 0, grid from W's current columns [i1+i, i1+i+groupSize)).
//
// Pointers are device pointers; everything runs on `stream`, asynchronously. Thread-safety:
// none needed beyond CUDA's (no global state besides a one-time function attribute).

#include <cuda_runtime_api.h>

#include <cstdint>

namespace sparselab::cuda {

inline constexpr int kMaxBlockColumns = 128;

struct SparseGptBlockArgs {
    float* weight = nullptr;       // [rows, ldWeight] row-major; columns [i1, i1+count) updated to q
    int64_t rows = 0;
    int64_t cols = 0;              // columns of the layer (GPTQ groups may extend past the block)
    int64_t ldWeight = 0;          // row stride of weight, in elements (>= cols)
    int64_t i1 = 0;                // first column of the block
    int count = 0;                 // columns in the block, 1..kMaxBlockColumns
    uint8_t* mask = nullptr;       // [rows, ldMask], 1 = pruned (torch.bool layout); block columns
    int64_t ldMask = 0;            //   read (unstructured) or written (N:M)
    const float* hinv1 = nullptr;  // [count, count] row-major contiguous
    float* err = nullptr;          // [rows, count] row-major: (x − q)/d per column
    double* rowLoss = nullptr;     // [rows]: Σ over the block of (x − q)²/d² (overwritten)
    int nmN = 0;                   // N:M pruning when nmM > 0
    int nmM = 0;
    int bits = 16;                 // 2..8 quantizes; 16 = none
    float* scale = nullptr;        // [rows] grid in force (updated at group boundaries)
    float* zero = nullptr;         // [rows]
    int64_t groupSize = 0;         // 0 = per-row grid from the dense W (set by the caller)
    bool symmetric = false;
};

// Enqueues the block on `stream`. Returns cudaErrorInvalidValue for bad sizes, otherwise the
// launch status (cudaGetLastError after the launch); execution errors surface at the next
// synchronisation, as usual in CUDA.
cudaError_t sparseGptBlock(const SparseGptBlockArgs& args, cudaStream_t stream);

} // namespace sparselab::cuda
