// SparseGPT in-block column loop (see sparsegpt_block.cuh for the contract).
//
// Layout: one CUDA block per tile of kTileRows rows, kThreads threads = kTileRows rows ×
// kLanes column lanes. Shared memory: Hinv1 [count, count] (64 KiB at 128 columns), the
// tile's weights column-major with a padded row stride (so that a warp reading one column
// hits 32 different banks), the tile's mask, and the current column's err per row.
// Per column: the first warp (one thread per row) selects the N:M group, updates the GPTQ
// grid, computes q / err / loss; then all threads apply the rank-1 update to the later
// columns of the block. Why not one thread per row for everything: the update is count/2
// multiply-subtracts per row and column, which the column lanes share.

#include "cuda/sparsegpt_block.cuh"
#include "solve/topk_select.h"

#include <cfloat>

namespace sparselab::cuda {

namespace {

constexpr int kTileRows = 32;            // rows per CUDA block (= one warp in phase 1)
constexpr int kLanes = 8;                // column lanes per row in the update
constexpr int kThreads = kTileRows * kLanes;
constexpr int kTileStride = kTileRows + 1; // padded column stride of the shared tile

__device__ __forceinline__ int64_t minIndex(int64_t x, int64_t y) { return x < y ? x : y; }

__device__ __forceinline__ float quantizeValue(float x, float scale, float zero, float maxq)
{
    // Same operations as the CPU's quantizeValue: nearbyint(x/scale) + zero, clamp, scale·(q − zero).
    float q = __fadd_rn(rintf(__fdiv_rn(x, scale)), zero);
    q = fminf(fmaxf(q, 0.0f), maxq);
    return __fmul_rn(scale, __fsub_rn(q, zero));
}

__device__ void findRowGrid(const float* x, int64_t n, float maxq, bool symmetric, float& scale, float& zero)
{
    float lo = x[0];
    float hi = x[0];
    for (int64_t k = 1; k < n; ++k) {
        lo = fminf(lo, x[k]);
        hi = fmaxf(hi, x[k]);
    }
    float xmin = fminf(lo, 0.0f);
    float xmax = fmaxf(hi, 0.0f);
    if (symmetric) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0.0f)
            xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    scale = __fdiv_rn(__fsub_rn(xmax, xmin), maxq);
    zero = symmetric ? __fdiv_rn(__fadd_rn(maxq, 1.0f), 2.0f) : rintf(__fdiv_rn(-xmin, scale));
}

__global__ void __launch_bounds__(kThreads) sparseGptBlockKernel(SparseGptBlockArgs a)
{
    extern __shared__ float shared[];
    const int count = a.count;
    float* h = shared;                                  // [count, count]
    float* t = h + count * count;                       // [count, kTileStride] column-major tile
    float* e = t + count * kTileStride;                 // [kTileRows] err of the current column
    uint8_t* m = reinterpret_cast<uint8_t*>(e + kTileRows); // [count, kTileStride]

    const int tid = int(threadIdx.x);
    const int64_t r0 = int64_t(blockIdx.x) * kTileRows;
    const int nr = int(minIndex(kTileRows, a.rows - r0));
    const bool structured = a.nmM > 0;
    const bool quant = a.bits < 16;
    const float maxq = quant ? float((1 << a.bits) - 1) : 0.0f;

    for (int k = tid; k < count * count; k += kThreads)
        h[k] = a.hinv1[k];
    // Coalesced along the row; rows beyond the matrix are zero and stay zero.
    for (int k = tid; k < kTileRows * count; k += kThreads) {
        const int r = k / count;
        const int j = k % count;
        float x = 0.0f;
        uint8_t pruned = 0;
        if (r < nr) {
            x = a.weight[(r0 + r) * a.ldWeight + a.i1 + j];
            if (!structured)
                pruned = a.mask[(r0 + r) * a.ldMask + a.i1 + j];
        }
        t[j * kTileStride + r] = x;
        m[j * kTileStride + r] = pruned;
    }
    __syncthreads();

    // Phase-1 state of this thread's row (first warp only).
    double loss = 0.0;
    float scale = 1.0f;
    float zero = 0.0f;
    const bool rowThread = tid < kTileRows && tid < nr;
    if (rowThread && quant) {
        scale = a.scale[r0 + tid];
        zero = a.zero[r0 + tid];
    }

    for (int i = 0; i < count; ++i) {
        if (tid < kTileRows) {
            const int r = tid;
            float err = 0.0f;
            if (rowThread) {
                if (structured && i % a.nmM == 0) {
                    const int width = min(a.nmM, count - i);
                    const int keep = min(a.nmN, width);
                    // The group's scores, then the entries torch.topk(largest=False) takes on the
                    // CPU, ties included: solve/topk_select.h is the CPU loop's own selection.
                    float scores[kMaxBlockColumns];
                    solve::topk::Entry work[kMaxBlockColumns];
                    unsigned char chosen[kMaxBlockColumns];
                    for (int k = 0; k < width; ++k) {
                        const float xk = t[(i + k) * kTileStride + r];
                        const float dk = h[(i + k) * count + (i + k)];
                        scores[k] = __fdiv_rn(__fmul_rn(xk, xk), __fmul_rn(dk, dk));
                    }
                    solve::topk::selectSmallest(scores, width, keep, work, chosen);
                    for (int k = 0; k < width; ++k)
                        m[(i + k) * kTileStride + r] = chosen[k];
                }
                if (quant && a.groupSize > 0 && (a.i1 + i) % a.groupSize == 0) {
                    // GPTQ reads the group from W in global memory, which still holds the values
                    // from the start of the block (the tile is written back at the end).
                    const int64_t len = minIndex(a.groupSize, a.cols - a.i1 - i);
                    findRowGrid(a.weight + (r0 + r) * a.ldWeight + a.i1 + i, len, maxq, a.symmetric, scale, zero);
                }
                const float d = h[i * count + i];
                const float d2 = __fmul_rn(d, d);
                const float x = t[i * kTileStride + r];
                float q = m[i * kTileStride + r] ? 0.0f : x;
                if (quant)
                    q = quantizeValue(q, scale, zero, maxq);
                const float diff = __fsub_rn(x, q);
                loss += double(__fdiv_rn(__fmul_rn(diff, diff), d2));
                err = __fdiv_rn(diff, d);
                t[i * kTileStride + r] = q;
                a.err[(r0 + r) * count + i] = err;
            }
            e[r] = err;
        }
        __syncthreads();
        // Rank-1 update of the block's later columns: t[j, r] −= err[r] · Hinv1[i, j].
        {
            const int r = tid % kTileRows;
            const float er = e[r];
            const float* hrow = h + i * count;
            for (int j = i + 1 + tid / kTileRows; j < count; j += kLanes) {
                float& tj = t[j * kTileStride + r];
                tj = __fsub_rn(tj, __fmul_rn(er, hrow[j]));
            }
        }
        __syncthreads();
    }

    for (int k = tid; k < nr * count; k += kThreads) {
        const int r = k / count;
        const int j = k % count;
        a.weight[(r0 + r) * a.ldWeight + a.i1 + j] = t[j * kTileStride + r];
        if (structured)
            a.mask[(r0 + r) * a.ldMask + a.i1 + j] = m[j * kTileStride + r];
    }
    if (rowThread) {
        a.rowLoss[r0 + tid] = loss;
        if (quant) {
            a.scale[r0 + tid] = scale;
            a.zero[r0 + tid] = zero;
        }
    }
}

size_t sharedBytes(int count)
{
    return sizeof(float) * (size_t(count) * size_t(count) + size_t(count) * kTileStride + kTileRows)
        + size_t(count) * kTileStride;
}

} // namespace

cudaError_t sparseGptBlock(const SparseGptBlockArgs& args, cudaStream_t stream)
{
    if (args.count < 1 || args.count > kMaxBlockColumns || args.rows < 1 || args.i1 < 0
        || args.i1 + args.count > args.cols || args.ldWeight < args.cols || args.ldMask < args.cols
        || !args.weight || !args.mask || !args.hinv1 || !args.err || !args.rowLoss
        || (args.nmM > 0 && (args.nmN < 1 || args.nmN >= args.nmM))
        || (args.bits < 16 && (args.bits < 2 || args.bits > 8 || !args.scale || !args.zero)))
        return cudaErrorInvalidValue;
    const size_t bytes = sharedBytes(args.count);
    // More than the default 48 KiB of dynamic shared memory needs an opt-in per kernel; it is
    // cheap, and setting it every call keeps this function free of global state.
    cudaError_t status = cudaFuncSetAttribute(sparseGptBlockKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              int(sharedBytes(kMaxBlockColumns)));
    if (status != cudaSuccess)
        return status;
    const auto tiles = unsigned((args.rows + kTileRows - 1) / kTileRows);
    sparseGptBlockKernel<<<tiles, kThreads, bytes, stream>>>(args);
    return cudaGetLastError();
}

} // namespace sparselab::cuda
