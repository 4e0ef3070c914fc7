// The SparseGPT column loop over plain float buffers (cpu_column_loop.h says what it promises).

#include "solve/cpu_column_loop.h"

#include "solve/fortran_blas.h"
#include "solve/sparsegpt_kernels.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/team_barrier.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace sparselab::solve::cpu {

namespace {

using detail::findRowGrid;
using detail::kTileRows;
using detail::quantizeValue;
using detail::selectSmallest;
using detail::unstructuredRank;

// The state one solve shares between its workers.
struct Problem {
    float* w;       // [rows, cols], updated in place
    bool* mask;     // [rows, cols], filled
    const SolverOptions& options;
    int64_t rows = 0;
    int64_t cols = 0;
    // The grid in force for each row [rows] (the dense W's, replaced at each group boundary
    // with GPTQ groups; it carries over from one block to the next).
    float* scale = nullptr;
    float* zero = nullptr;
    // Static groups (QuantOptions::staticGroups): every group's grid [groups, rows] computed
    // up front, and the group of the column at each visiting position [cols].
    const float* staticScale = nullptr;
    const float* staticZero = nullptr;
    const int64_t* groupAt = nullptr;
};

// Buckets of the unstructured threshold's histograms: a score's top 16 bits.
constexpr size_t kScoreBuckets = size_t(1) << 16;

// Buffers of the unstructured block threshold, kept across blocks.
struct ThresholdScratch {
    // The scores [rows, count] of block b in scores[b % 2]: the tiles of block b write the mask
    // from them while other workers already score block b + 1, whose rows (of another width
    // in the last block) may fall where another worker's rows of block b are.
    std::vector<float> scores[2];
    float* scoresOf(int64_t block) { return scores[block % 2].data(); }
    std::vector<uint32_t> histograms;  // [workers, kScoreBuckets], all zero between blocks
    std::vector<uint32_t> lowest;      // [workers]: the smallest bucket each worker counted in
    std::vector<uint32_t> highest;     // [workers]: the largest
    std::vector<float> d2;             // [cols]: Hinv's diagonal, squared
    std::vector<float> candidates;     // the scores in the bucket of the k-th
};

// Per-thread scratch of one row tile (column-major: element (row r, block column j) at j·kTileRows + r).
struct TileScratch {
    std::vector<float> t;       // current weights, then q
    std::vector<float> e;       // err = (w − q)/d
    std::vector<uint8_t> m;     // pruned flags
    std::vector<double> loss;   // per row
    std::vector<float> scale, zero;
    std::vector<topk::Entry> queue;
    std::vector<float> groupScores;
    std::vector<uint8_t> chosen;
    void resize(int64_t count, int64_t nmM)
    {
        t.assign(size_t(count * kTileRows), 0.0f);
        e.assign(size_t(count * kTileRows), 0.0f);
        m.assign(size_t(count * kTileRows), 0);
        loss.assign(size_t(kTileRows), 0.0);
        scale.assign(size_t(kTileRows), 1.0f);
        zero.assign(size_t(kTileRows), 0.0f);
        groupScores.assign(size_t(std::max<int64_t>(nmM, 1)), 0.0f);
        chosen.assign(size_t(std::max<int64_t>(nmM, 1)), 0);
    }
};

// The rank-1 update of the block's later columns with err[r], r < kTileRows. The row loop has
// a compile-time bound so that it vectorises (two AVX-512 registers per column); with
// -ffp-contract=off, w −= err·h is rounded like the reference's (no FMA).
inline void updateLaterColumns(float* __restrict t, const float* __restrict err, const float* __restrict hrow,
                               int64_t i, int64_t count)
{
    for (int64_t j = i + 1; j < count; ++j) {
        const float h = hrow[j];
        float* __restrict tj = t + j * kTileRows;
        for (int64_t r = 0; r < kTileRows; ++r)
            tj[r] -= err[r] * h;
    }
}

// The same for two consecutive columns i and i + 1 on the columns from `from` on: each element
// takes column i's update, then column i + 1's, as the reference orders them, while it is in
// a register (one load and one store for both). Written with 64-byte vectors (GCC's vector
// extension: one AVX-512 register, two AVX2 ones, four SSE ones per half tile column) so that
// both errors stay in registers and the row loop is unrolled whatever the clone.
using Float16 = float __attribute__((vector_size(64)));
static_assert(kTileRows == 32, "two 16-float vectors per tile column");
inline void updateLaterColumnsTwice(float* __restrict t, const float* __restrict err0, const float* __restrict hrow0,
                                    const float* __restrict err1, const float* __restrict hrow1, int64_t from,
                                    int64_t count)
{
    Float16 e0[2];
    Float16 e1[2];
    for (int k = 0; k < 2; ++k) {
        std::memcpy(&e0[k], err0 + 16 * k, sizeof(Float16));
        std::memcpy(&e1[k], err1 + 16 * k, sizeof(Float16));
    }
    for (int64_t j = from; j < count; ++j) {
        const float h0 = hrow0[j];
        const float h1 = hrow1[j];
        float* __restrict tj = t + j * kTileRows;
        for (int k = 0; k < 2; ++k) {
            Float16 x;
            std::memcpy(&x, tj + 16 * k, sizeof(Float16));
            x -= e0[k] * h0;
            x -= e1[k] * h1;
            std::memcpy(tj + 16 * k, &x, sizeof(Float16));
        }
    }
}

// dst[c·dstStride + r] = src[r·srcStride + c] for r, c < 8: an 8 × 8 transpose in registers
// (GCC's vector extension; each clone lowers the shuffles to its own instructions).
using Float8 = float __attribute__((vector_size(32)));
using Index8 = int32_t __attribute__((vector_size(32)));
[[gnu::always_inline]] inline void transpose8x8(const float* __restrict src, int64_t srcStride, float* __restrict dst,
                                                int64_t dstStride)
{
    Float8 r[8];
    for (int k = 0; k < 8; ++k)
        std::memcpy(&r[k], src + k * srcStride, sizeof(Float8));
    // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves exchanged.
    Float8 a[8];
    for (int k = 0; k < 8; k += 2) {
        a[k] = __builtin_shuffle(r[k], r[k + 1], Index8{0, 8, 1, 9, 4, 12, 5, 13});
        a[k + 1] = __builtin_shuffle(r[k], r[k + 1], Index8{2, 10, 3, 11, 6, 14, 7, 15});
    }
    Float8 b[8];
    for (int k = 0; k < 8; k += 4) {
        b[k] = __builtin_shuffle(a[k], a[k + 2], Index8{0, 1, 8, 9, 4, 5, 12, 13});
        b[k + 1] = __builtin_shuffle(a[k], a[k + 2], Index8{2, 3, 10, 11, 6, 7, 14, 15});
        b[k + 2] = __builtin_shuffle(a[k + 1], a[k + 3], Index8{0, 1, 8, 9, 4, 5, 12, 13});
        b[k + 3] = __builtin_shuffle(a[k + 1], a[k + 3], Index8{2, 3, 10, 11, 6, 7, 14, 15});
    }
    for (int k = 0; k < 4; ++k) {
        const Float8 low = __builtin_shuffle(b[k], b[k + 4], Index8{0, 1, 2, 3, 8, 9, 10, 11});
        const Float8 high = __builtin_shuffle(b[k], b[k + 4], Index8{4, 5, 6, 7, 12, 13, 14, 15});
        std::memcpy(dst + k * dstStride, &low, sizeof(Float8));
        std::memcpy(dst + (k + 4) * dstStride, &high, sizeof(Float8));
    }
}

// Column i of a tile without quantization: q = w or 0, err = (w − q)/d, the loss (w − q)²/d²
// summed per row in double. Separate from the quantizing case so that it vectorises.
inline void pruneColumn(float* __restrict ti, float* __restrict ei, const uint8_t* __restrict mi,
                        double* __restrict loss, float d, float d2)
{
    for (int64_t r = 0; r < kTileRows; ++r) {
        const float x = ti[r];
        const float q = mi[r] ? 0.0f : x;
        const float diff = x - q;
        loss[r] += double((diff * diff) / d2);
        ei[r] = diff / d;
        ti[r] = q;
    }
}

// One tile of kTileRows rows through one block of `count` columns: load, the column loop,
// write back; `nextTile` is the tile this thread takes next (−1: none or unknown). `pruneAbove`
// is the unstructured block's threshold: an entry is pruned when its score w²/d² (taken at the
// block's start) is <= it; `blockScores` are those scores as scoreRows wrote them ([rows, count]
// row-major; null for N:M, which selects in the loop instead).
SPARSELAB_CPU_CLONES
void runTile(const Problem& p, int64_t tile, int64_t nextTile, int64_t i1, int64_t count, const float* hinv1,
             float pruneAbove, const float* blockScores, float* errT, TileScratch& s, double& tileLoss)
{
    const SolverOptions& o = p.options;
    const QuantOptions& qo = o.quant;
    const int64_t r0 = tile * kTileRows;
    const int64_t nr = std::min(kTileRows, p.rows - r0);
    float* w = p.w;
    bool* mask = p.mask;
    const int64_t cols = p.cols;
    float* t = s.t.data();
    // err = (w − q)/d by columns: a whole tile writes it straight into Errᵀ (its columns are
    // runs of rows there, one store each instead of a copy at the end); a partial tile works in
    // its scratch, whose padding rows must not land on the next tile's rows.
    const bool wholeTile = nr == kTileRows;
    float* const e = wholeTile ? errT + r0 : s.e.data();
    const int64_t eStride = wholeTile ? p.rows : kTileRows;
    uint8_t* m = s.m.data();
    // Whole tiles of whole 8-column groups move in 8 × 8 transposes, the rest element by element.
    const bool byBlocks = nr == kTileRows && count % 8 == 0;

    // Load the tile (pad rows beyond the matrix with zeros: they stay zero and cost nothing).
    std::fill(s.loss.begin(), s.loss.end(), 0.0);
    if (byBlocks) {
        for (int64_t r = 0; r < kTileRows; r += 8)
            for (int64_t j = 0; j < count; j += 8)
                transpose8x8(w + (r0 + r) * cols + i1 + j, cols, t + j * kTileRows + r, kTileRows);
    } else {
        std::fill(s.t.begin(), s.t.end(), 0.0f);
        for (int64_t r = 0; r < nr; ++r) {
            const float* src = w + (r0 + r) * cols + i1;
            for (int64_t j = 0; j < count; ++j)
                t[j * kTileRows + r] = src[j];
        }
    }
    if (o.structured()) {
        std::fill(s.m.begin(), s.m.end(), uint8_t(0));
    } else {
        for (int64_t j = 0; j < count; ++j) {
            const float d = hinv1[j * count + j];
            const float d2 = d * d;
            const float* tj = t + j * kTileRows;
            uint8_t* mj = m + j * kTileRows;
            for (int64_t r = 0; r < kTileRows; ++r)
                mj[r] = (tj[r] * tj[r]) / d2 <= pruneAbove ? 1 : 0;
        }
    }
    const float maxq = qo.enabled() ? float((int64_t(1) << qo.bits) - 1) : 0.0f;
    if (qo.enabled()) {
        for (int64_t r = 0; r < nr; ++r) {
            s.scale[size_t(r)] = p.scale[r0 + r];
            s.zero[size_t(r)] = p.zero[r0 + r];
        }
    }

    // Column i: the N:M selection at a group's first column, the quantization grid, then
    // q, err and the loss.
    const auto finishColumn = [&](int64_t i) __attribute__((always_inline)) {
        if (o.structured() && i % o.nmM == 0) {
            const int64_t width = std::min<int64_t>(o.nmM, count - i);
            for (int64_t r = 0; r < nr; ++r) {
                for (int64_t k = 0; k < width; ++k) {
                    const float x = t[(i + k) * kTileRows + r];
                    const float d = hinv1[(i + k) * count + (i + k)];
                    s.groupScores[size_t(k)] = (x * x) / (d * d);
                }
                selectSmallest(s.groupScores.data(), width, o.nmN, s.queue, s.chosen.data());
                for (int64_t k = 0; k < width; ++k)
                    if (s.chosen[size_t(k)])
                        m[(i + k) * kTileRows + r] = 1;
            }
        }
        if (qo.enabled() && p.groupAt) {
            const int64_t g = p.groupAt[i1 + i];
            const float* gs = p.staticScale + g * p.rows + r0;
            const float* gz = p.staticZero + g * p.rows + r0;
            for (int64_t r = 0; r < nr; ++r) {
                s.scale[size_t(r)] = gs[r];
                s.zero[size_t(r)] = gz[r];
            }
        } else if (qo.enabled() && qo.groupSize > 0 && (i1 + i) % qo.groupSize == 0) {
            // GPTQ reads the group from W, whose block columns still hold their values from
            // the start of the block (the tile writes back only at its end).
            const int64_t len = std::min(qo.groupSize, cols - i1 - i);
            for (int64_t r = 0; r < nr; ++r)
                findRowGrid(w + (r0 + r) * cols + i1 + i, len, maxq, qo, s.scale[size_t(r)], s.zero[size_t(r)]);
        }
        const float d = hinv1[i * count + i];
        const float d2 = d * d;
        float* ti = t + i * kTileRows;
        float* ei = e + i * eStride;
        const uint8_t* mi = m + i * kTileRows;
        if (qo.enabled()) {
            for (int64_t r = 0; r < kTileRows; ++r) {
                const float x = ti[r];
                const float q = quantizeValue(mi[r] ? 0.0f : x, s.scale[size_t(r)], s.zero[size_t(r)], maxq);
                const float diff = x - q;
                s.loss[size_t(r)] += double((diff * diff) / d2);
                ei[r] = diff / d;
                ti[r] = q;
            }
        } else {
            pruneColumn(ti, ei, mi, s.loss.data(), d, d2);
        }
    };
    // Columns go in pairs where the second does not start an N:M group (its selection needs
    // the first's update on the whole group first): column i is finished and updates column
    // i + 1 alone, which is then finished, and both update the later columns in one pass.
    // Every element sees the same operations in the same order as one column at a time.
    // Meanwhile the next tile's rows of this block (`nextTile`, this thread's next, or −1) are
    // fetched towards L2, one row per column: the previous block's GEMM left them in memory, and
    // loading them cold was a fifth of a tile's time.
    const int64_t prefetchRows = nextTile >= 0 ? std::min(kTileRows, p.rows - nextTile * kTileRows) : 0;
    const auto prefetchRow = [&](int64_t k) __attribute__((always_inline)) {
        if (k >= prefetchRows)
            return;
        const char* row = reinterpret_cast<const char*>(w + (nextTile * kTileRows + k) * cols + i1);
        for (int64_t byte = 0; byte < count * int64_t(sizeof(float)); byte += 64)
            __builtin_prefetch(row + byte, 0, 2);
    };
    for (int64_t i = 0; i < count;) {
        const float* hrow = hinv1 + i * count;
        prefetchRow(i);
        finishColumn(i);
        const bool pair = i + 1 < count && !(o.structured() && (i + 1) % o.nmM == 0);
        if (!pair) {
            updateLaterColumns(t, e + i * eStride, hrow, i, count);
            i += 1;
            continue;
        }
        updateLaterColumns(t, e + i * eStride, hrow, i, i + 2);
        prefetchRow(i + 1);
        finishColumn(i + 1);
        updateLaterColumnsTwice(t, e + i * eStride, hrow, e + (i + 1) * eStride, hrow + count, i + 2, count);
        i += 2;
    }

    // Write back err (a partial tile's; errT is Errᵀ [count, rows]), q and the mask.
    if (!wholeTile)
        for (int64_t j = 0; j < count; ++j)
            std::memcpy(errT + j * p.rows + r0, e + j * kTileRows, sizeof(float) * size_t(nr));
    if (byBlocks) {
        for (int64_t r = 0; r < kTileRows; r += 8)
            for (int64_t j = 0; j < count; j += 8)
                transpose8x8(t + j * kTileRows + r, kTileRows, w + (r0 + r) * cols + i1 + j, cols);
    } else {
        for (int64_t r = 0; r < nr; ++r) {
            float* dst = w + (r0 + r) * cols + i1;
            for (int64_t j = 0; j < count; ++j)
                dst[j] = t[j * kTileRows + r];
        }
    }
    // The mask: an unstructured one compares the block's scores again, row by row, which
    // vectorises (the same scores as the tile's flags, the same comparison); reading the
    // flags back is a gather of bytes 32 apart, a sixth of the tile's time on AVX-512.
    double total = 0.0;
    for (int64_t r = 0; r < nr; ++r) {
        bool* mdst = mask + (r0 + r) * cols + i1;
        if (blockScores) {
            const float* scores = blockScores + (r0 + r) * count;
            for (int64_t j = 0; j < count; ++j)
                mdst[j] = scores[j] <= pruneAbove;
        } else {
            for (int64_t j = 0; j < count; ++j)
                mdst[j] = m[j * kTileRows + r] != 0;
        }
        total += s.loss[size_t(r)];
        if (qo.enabled()) {
            p.scale[r0 + r] = s.scale[size_t(r)];
            p.zero[r0 + r] = s.zero[size_t(r)];
        }
    }
    tileLoss = total;
}

// Scores w²/d² of one block's rows [r0, r1) into scores (row-major [rows, count]), counting
// them by their top 16 bits, and the range of buckets counted into [lowest, highest] (widened,
// not reset). Scores are never negative, and non-negative floats order like their bit
// patterns, so the counts locate the k-th smallest without sorting.
SPARSELAB_CPU_CLONES
void scoreRows(const float* __restrict w, int64_t cols, int64_t i1, int64_t count, const float* __restrict d2,
               int64_t r0, int64_t r1, float* __restrict scores, uint32_t* __restrict histogram, uint32_t& lowest,
               uint32_t& highest)
{
    uint32_t lo = lowest << 16;
    uint32_t hi = highest << 16;
    // The block's rows are a row of W apart and come from memory (the lazy update wrote them
    // long before, among the later columns), so rows ahead are fetched while this one is
    // scored: loading each row on demand was most of this pass's time.
    constexpr int64_t kRowsAhead = 8;
    const auto prefetchRow = [&](int64_t r) __attribute__((always_inline)) {
        const char* row = reinterpret_cast<const char*>(w + r * cols + i1);
        for (int64_t byte = 0; byte < count * int64_t(sizeof(float)); byte += 64)
            __builtin_prefetch(row + byte, 0, 3);
    };
    for (int64_t r = r0; r < std::min(r1, r0 + kRowsAhead); ++r)
        prefetchRow(r);
    for (int64_t r = r0; r < r1; ++r) {
        if (r + kRowsAhead < r1)
            prefetchRow(r + kRowsAhead);
        const float* __restrict wr = w + r * cols + i1;
        float* __restrict sr = scores + r * count;
        for (int64_t j = 0; j < count; ++j) {
            const float x = wr[j];
            const float score = (x * x) / d2[j];
            sr[j] = score;
            uint32_t bits;
            std::memcpy(&bits, &score, sizeof bits);
            lo = std::min(lo, bits);
            hi = std::max(hi, bits);
        }
        for (int64_t j = 0; j < count; ++j) {
            uint32_t bits;
            std::memcpy(&bits, sr + j, sizeof bits);
            ++histogram[bits >> 16];
        }
    }
    lowest = lo >> 16;
    highest = hi >> 16;
}

// Appends to `out` the scores whose top 16 bits are `bucket`, in order. Few scores fall in the
// k-th's bucket, so runs of 64 are first tested for any at all (an OR that vectorises).
SPARSELAB_CPU_CLONES
void collectBucket(const float* __restrict scores, int64_t n, uint32_t bucket, std::vector<float>& out)
{
    constexpr int64_t kRun = 64;
    const auto inBucket = [&](int64_t e) {
        uint32_t bits;
        std::memcpy(&bits, scores + e, sizeof bits);
        return uint32_t((bits >> 16) == bucket);
    };
    int64_t e = 0;
    for (; e + kRun <= n; e += kRun) {
        uint32_t any = 0;
        for (int64_t k = 0; k < kRun; ++k)
            any |= inBucket(e + k);
        if (any != 0)
            for (int64_t k = 0; k < kRun; ++k)
                if (inBucket(e + k))
                    out.push_back(scores[e + k]);
    }
    for (; e < n; ++e)
        if (inBucket(e))
            out.push_back(scores[e]);
}

// Hinv1 = Hinv[i1 : i1+count, i1 : i1+count] into `out` [count, count] row-major. From a
// column-major Hinv (the CPU preamble's) it goes in 8 × 8 transposes: read element by element,
// the source's rows are a column apart, and 128 of them, 4 KiB-aligned, all fall into one set
// of the L1 cache (this was about a tenth of the team's serial step per block).
SPARSELAB_CPU_CLONES
void copyHinvBlock(const ColumnLoop& in, int64_t i1, int64_t count, float* __restrict out)
{
    const float* block = in.hinv + i1 * in.hinvRowStride + i1 * in.hinvColStride;
    if (in.hinvRowStride == 1 && count % 8 == 0) {
        for (int64_t b = 0; b < count; b += 8)
            for (int64_t a = 0; a < count; a += 8)
                transpose8x8(block + b * in.hinvColStride + a, in.hinvColStride, out + a * count + b, count);
        return;
    }
    for (int64_t a = 0; a < count; ++a)
        for (int64_t b = 0; b < count; ++b)
            out[a * count + b] = block[a * in.hinvRowStride + b * in.hinvColStride];
}

// Unstructured threshold of one block: the reference scores w²/d² over all rows jointly and
// prunes score <= the value at sorted index k = int(numel·sparsity), the value
// std::nth_element (its kthvalue) finds. Found here without sorting: each worker scores its own
// rows and counts them in its histogram of the scores' top 16 bits (scoreRows); then one
// thread locates the bucket of the k-th and takes the k-th within it (nth_element on that
// bucket's few entries). The tiles score their entries again the same way for their own flags
// and write the mask from the stored scores.
float blockThreshold(ThresholdScratch& scratch, int64_t block, int64_t rows, int64_t count, double sparsity,
                     int workers)
{
    const int64_t k = unstructuredRank(rows * count, sparsity);
    int64_t below = 0;
    uint32_t bucket = *std::min_element(scratch.lowest.begin(), scratch.lowest.begin() + workers);
    for (;; ++bucket) {
        int64_t inBucket = 0;
        for (int t = 0; t < workers; ++t)
            inBucket += scratch.histograms[size_t(t) * kScoreBuckets + bucket];
        if (below + inBucket > k)
            break;
        below += inBucket;
    }
    scratch.candidates.clear();
    collectBucket(scratch.scoresOf(block), rows * count, bucket, scratch.candidates);
    const auto rank = scratch.candidates.begin() + (k - below);
    std::nth_element(scratch.candidates.begin(), rank, scratch.candidates.end());
    // Cleared whole once; after each block only the buckets counted into (a few hundred of
    // the 2¹⁶: the scores span a few binary orders of magnitude).
    for (int t = 0; t < workers; ++t) {
        uint32_t& lowest = scratch.lowest[size_t(t)];
        uint32_t& highest = scratch.highest[size_t(t)];
        if (lowest <= highest) {
            uint32_t* histogram = scratch.histograms.data() + size_t(t) * kScoreBuckets;
            std::fill(histogram + lowest, histogram + highest + 1, 0u);
        }
        lowest = uint32_t(kScoreBuckets - 1);
        highest = 0;
    }
    return *rank;
}

// The column loop on a team of workers that stays together for the whole solve. Worker w owns
// a fixed run of whole tiles (rows), and for each block:
//   - runs its tiles (the block's column loop on those rows);
//   - applies the lazy update to its rows, W[rows, i2:] −= Err[rows]·Hinv[block, i2:], one GEMM;
//   - with an unstructured mask, scores its rows of the next block and counts them in its
//     histogram;
//   - waits for the others at the team's barrier, whose completion step (one thread, all
//     others waiting) adds the tiles' losses in tile order, stops the team on cancel or
//     failure, and sets up the next block: its Hinv1 and its threshold from every worker's
//     counts.
// Rows are independent inside a block and a worker's GEMM writes only its rows, so one barrier
// per block is all the synchronisation. This replaced a fork and join for each phase of each
// block, three per block, whose thread starts cost ≈ 0.2 ms each in a process of this size on
// this project's virtual machines. Static runs of rows measured faster than slices taken as
// they come. With several workers OpenBLAS is held to the calling thread: its pool threads
// would spin against the workers for the same cores. The barrier spins before it sleeps
// (util/team_barrier.h): with std::barrier, which sleeps almost at once, the waiting worker's
// wake-up cost about 1 ms per worker over a 2048-column solve on two threads.
// The workers are threads of their own, not forkJoin units: the barrier needs every worker
// running at once, which forkJoin does not promise (it may run units one after another), and a
// worker that cannot be started must leave the barrier (arrive_and_drop) rather than be waited
// for.
// On one worker the weights are those of one GEMM over all rows per block, bit for bit. With
// several, the masks are the same and a weight can move in its last bit (≤ 2.3e-8 on
// bench/compare_builds_solve_layer.sh's problems): OpenBLAS does not round every product the
// same for every run of rows. Splitting a block's GEMM by columns as well, to score the next
// block's columns while they were in cache, moved the weights of the teaching stepper's
// problems (core_test_sparsegpt_stepper) and gained nothing measurable.
// The number of workers runColumnLoop's team has for `workers` asked and `tiles` row tiles, and
// the first tile of worker k: fixed runs of whole tiles.
int teamSize(int workers, int64_t tiles)
{
    return int(std::clamp<int64_t>(workers, 1, std::max<int64_t>(tiles, 1)));
}
int64_t firstTileOf(int worker, int team, int64_t tiles)
{
    return tiles * worker / team;
}

// W[r0 : r0+nr, i2:] −= Errᵀ[:count, r0 : r0+nr]ᵀ · Hinv[i1 : i1+count, i2:] (i2 = i1 + count), as
// one sgemm. Column-major this is Cᵀ = Cᵀ − Hinv[block, i2:]ᵀ·Errᵀ: the call ATen's addmm_ made
// for these layouts when this ran through it (same transposes and leading dimensions, so the
// same OpenBLAS kernels and rounding).
void lazyUpdateRows(const ColumnLoop& in, int64_t r0, int64_t nr, int64_t i1, int64_t count, const float* errT)
{
    const int64_t i2 = i1 + count;
    if (in.lazyUpdate) {
        in.lazyUpdate(r0, nr, i1, count, i2, errT);
        return;
    }
    const int m = int(in.cols - i2);
    const int n = int(nr);
    const int k = int(count);
    const char transA = in.hinvRowStride == 1 ? 'T' : 'N';
    const int lda = int(in.hinvRowStride == 1 ? in.hinvColStride : in.hinvRowStride);
    const int ldb = int(in.rows);
    const int ldc = int(in.cols);
    const float alpha = -1.0f;
    const float beta = 1.0f;
    fortran::functions().sgemm(&transA, "T", &m, &n, &k, &alpha,
                               in.hinv + i1 * in.hinvRowStride + i2 * in.hinvColStride, &lda, errT + r0, &ldb,
                               &beta, in.w + r0 * in.cols + i2, &ldc, 1, 1);
}
} // namespace

void applyLazyUpdate(const ColumnLoop& in, int64_t i1, int64_t count, const float* errT)
{
    if (!fortran::functions().sgemm && !in.lazyUpdate)
        throw std::logic_error("applyLazyUpdate: the process has no sgemm_ and no lazyUpdate was given");
    if (i1 + count >= in.cols)
        return;
    const int64_t tiles = (in.rows + kTileRows - 1) / kTileRows;
    const int team = teamSize(in.workers, tiles);
    std::optional<BlasOnCallingThread> blasOnCallingThread;
    if (team > 1)
        blasOnCallingThread.emplace();
    for (int worker = 0; worker < team; ++worker) {
        const int64_t r0 = firstTileOf(worker, team, tiles) * kTileRows;
        const int64_t r1 = std::min(in.rows, firstTileOf(worker + 1, team, tiles) * kTileRows);
        lazyUpdateRows(in, r0, r1 - r0, i1, count, errT);
    }
}

bool columnLoopAvailable()
{
    return fortran::functions().sgemm != nullptr;
}

double runColumnLoop(const ColumnLoop& in, ProgressReporter& reporter, const CancelToken* cancel,
                     const std::string& note)
{
    if (!fortran::functions().sgemm && !in.lazyUpdate)
        throw std::logic_error("runColumnLoop: the process has no sgemm_ and no lazyUpdate was given");
    if (in.options == nullptr || in.w == nullptr || in.mask == nullptr || in.hinv == nullptr)
        throw std::invalid_argument("runColumnLoop: missing buffer or options");
    const SolverOptions& o = *in.options;
    Problem p{in.w, in.mask, o, in.rows, in.cols, nullptr, nullptr, in.staticScale, in.staticZero, in.groupAt};
    const int64_t blocks = (p.cols + o.blocksize - 1) / o.blocksize;
    const int64_t tiles = (p.rows + kTileRows - 1) / kTileRows;
    const bool unstructured = !o.structured() && o.sparsity > 0.0;
    const int team = teamSize(in.workers, tiles);

    // Errᵀ [blocksize, rows]: the tiles write it by runs of rows, the lazy update reads it
    // transposed (a narrower last block uses its first rows).
    std::vector<float> err(size_t(std::min(o.blocksize, p.cols) * p.rows));
    std::vector<double> tileLoss(size_t(tiles), 0.0);
    std::vector<TileScratch> tileScratch(static_cast<size_t>(team));
    ThresholdScratch threshold;
    if (unstructured) {
        for (auto& scores : threshold.scores)
            scores.resize(size_t(p.rows * std::min(o.blocksize, p.cols)));
        threshold.histograms.assign(size_t(team) * kScoreBuckets, 0u);
        threshold.lowest.assign(size_t(team), uint32_t(kScoreBuckets - 1));
        threshold.highest.assign(size_t(team), 0u);
        const float* u = in.hinv;
        const int64_t diagonalStep = in.hinvRowStride + in.hinvColStride;
        threshold.d2.resize(size_t(p.cols));
        for (int64_t c = 0; c < p.cols; ++c)
            threshold.d2[size_t(c)] = u[c * diagonalStep] * u[c * diagonalStep];
    }
    // The grid in force for each row, carried from block to block (replaced at GPTQ group
    // boundaries).
    std::vector<float> scale, zero;
    if (o.quant.enabled()) {
        if (in.rowScale == nullptr || in.rowZero == nullptr)
            throw std::invalid_argument("runColumnLoop: quantization needs the rows' grid");
        scale.assign(in.rowScale, in.rowScale + p.rows);
        zero.assign(in.rowZero, in.rowZero + p.rows);
        p.scale = scale.data();
        p.zero = zero.data();
    }
    std::optional<BlasOnCallingThread> blasOnCallingThread;
    if (team > 1)
        blasOnCallingThread.emplace();

    // The team's shared state: written only by the barrier's completion step.
    int64_t block = -1;      // the block the team works on
    std::vector<float> hinv1(size_t(std::min(o.blocksize, p.cols) * std::min(o.blocksize, p.cols))); // its Hinv [count, count]
    float pruneAbove = -1.0f;
    double loss = 0.0;
    bool stop = false;
    std::atomic<bool> failed{false};
    std::exception_ptr failure;
    std::mutex failureMutex;
    const auto recordFailure = [&]() {
        std::lock_guard lock(failureMutex);
        if (!failure)
            failure = std::current_exception();
        failed.store(true);
    };
    const auto blockStart = [&](int64_t b) { return b * o.blocksize; };
    const auto blockCount = [&](int64_t b) { return std::min(o.blocksize, p.cols - blockStart(b)); };
    auto completion = [&]() noexcept {
        if (stop)
            return;
        try {
            if (block >= 0)
                for (double l : tileLoss)
                    loss += l / 2.0;
            if (failed.load() || (cancel && cancel->cancelled()) || block + 1 >= blocks) {
                stop = true;
                return;
            }
            ++block;
            const int64_t i1 = blockStart(block);
            const int64_t count = blockCount(block);
            copyHinvBlock(in, i1, count, hinv1.data());
            pruneAbove = unstructured ? blockThreshold(threshold, block, p.rows, count, o.sparsity, team) : -1.0f;
        } catch (...) {
            recordFailure();
            stop = true;
        }
    };
    // A team larger than the threads the machine gives this process (machineThreads: its CPUs,
    // or OMP_NUM_THREADS) sleeps at once instead of spinning.
    TeamBarrier sync(team, completion, team <= machineThreads() ? BarrierWait::SpinThenSleep : BarrierWait::Sleep);

    const auto work = [&](int worker) {
        const int64_t firstTile = firstTileOf(worker, team, tiles);
        const int64_t endTile = firstTileOf(worker + 1, team, tiles);
        const int64_t r0 = firstTile * kTileRows;
        const int64_t nr = std::min(p.rows, endTile * kTileRows) - r0;
        TileScratch& s = tileScratch[size_t(worker)];
        const auto guarded = [&](auto&& fn) {
            if (failed.load())
                return;
            try {
                fn();
            } catch (...) {
                recordFailure();
            }
        };
        // Scores and counts of block b on this worker's rows.
        const auto score = [&](int64_t b) {
            const int64_t i1 = blockStart(b);
            const int64_t count = blockCount(b);
            scoreRows(p.w, p.cols, i1, count, threshold.d2.data() + i1, r0, r0 + nr,
                      threshold.scoresOf(b), threshold.histograms.data() + size_t(worker) * kScoreBuckets,
                      threshold.lowest[size_t(worker)], threshold.highest[size_t(worker)]);
        };
        if (unstructured)
            guarded([&] { score(0); });
        sync.arrive_and_wait();
        while (!stop) {
            guarded([&] {
                if (worker == 0 && block > 0)
                    reporter.report(block, note);
                // Cancelled (perhaps by that report): skip the block; the barrier stops the team.
                if (cancel && cancel->cancelled())
                    return;
                const int64_t i1 = blockStart(block);
                const int64_t count = blockCount(block);
                const int64_t i2 = i1 + count;
                s.resize(count, o.nmM);
                const float* h1 = hinv1.data();
                float* errT = err.data();
                for (int64_t tile = firstTile; tile < endTile; ++tile)
                    runTile(p, tile, tile + 1 < endTile ? tile + 1 : -1, i1, count, h1, pruneAbove,
                            unstructured ? threshold.scoresOf(block) : nullptr, errT, s, tileLoss[size_t(tile)]);
                if (i2 >= p.cols)
                    return;
                lazyUpdateRows(in, r0, nr, i1, count, errT); // W[rows, i2:] −= Err[rows]·Hinv[block, i2:]
                if (unstructured)
                    score(block + 1);
            });
            sync.arrive_and_wait();
        }
    };

    std::vector<std::thread> helpers;
    helpers.reserve(size_t(team - 1));
    for (int worker = 1; worker < team; ++worker) {
        try {
            helpers.emplace_back(work, worker);
        } catch (...) {
            // No thread for this worker and those after it: they leave the team before it starts.
            recordFailure();
            for (int missing = worker; missing < team; ++missing)
                sync.arrive_and_drop();
            break;
        }
    }
    work(0);
    for (auto& helper : helpers)
        helper.join();
    if (failure)
        std::rethrow_exception(failure);
    throwIfCancelled(cancel);
    reporter.report(blocks, note);
    return loss;
}
} // namespace sparselab::solve::cpu
