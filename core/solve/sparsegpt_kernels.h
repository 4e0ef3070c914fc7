#pragma once
// Element kernels of the SparseGPT column loop, shared by the solver (sparsegpt.cpp) and the
// teaching stepper (sparsegpt_stepper.cpp) so that both run the very same float operations:
// N:M selection as torch.topk, the quantization grid and rounding of quant.py, and the
// reference's unstructured rank. Internal (solve/ only); plain floats (QuantOptions only for its flags).

#include "solve/solver_options.h"
#include "solve/topk_select.h"
#include "util/cpu_clones.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace sparselab::solve::detail {

// The nearest float16 of a positive scale (solver_detail.h; defined in solver.cpp).
[[nodiscard]] float roundScaleToHalf(float scale);

// The CPU column loop's hot functions carry SPARSELAB_CPU_CLONES (util/cpu_clones.h): AVX-512
// and AVX2 clones with the reference's rounding (element-wise loops, no FMA contraction).

// Rows per tile of the CPU column loop: 32 rows × 128 columns × 4 bytes = 16 KiB per buffer.
// The stepper sums the loss in the same tiles, so that its loss equals the solver's exactly.
inline constexpr int64_t kTileRows = 32;

// ---- N:M selection, as torch.topk(largest=False) on CPU -----------------------------------------

// Marks in `chosen[0..width)` the `n` entries torch.topk(scores, n, largest=False) returns,
// ties included (solve/topk_select.h, shared with the CUDA kernel). `queue` is scratch.
inline void selectSmallest(const float* scores, int64_t width, int64_t n, std::vector<topk::Entry>& queue,
                           uint8_t* chosen)
{
    queue.resize(size_t(width));
    topk::selectSmallest(scores, int(width), int(n), queue.data(), chosen);
}

// ---- quantization on raw floats (same float32 operations as quant.py) -------------------------

inline float quantizeValue(float x, float scale, float zero, float maxq)
{
    float q = std::nearbyint(x / scale) + zero; // torch.round: half to even
    q = std::min(std::max(q, 0.0f), maxq);
    return scale * (q - zero);
}

// quant.py's Quantizer.find_params for one row of one group, plus SparseLab's two options:
// QuantOptions::signedScale (symmetric grid scaled by the signed largest-magnitude value, as
// GGUF Q4_0/Q8_0 do) and fp16Scale (scale rounded to float16 first).
inline void findRowGrid(const float* x, int64_t n, float maxq, const QuantOptions& qo, float& scale, float& zero)
{
    const bool symmetric = qo.symmetric;
    float lo = x[0];
    float hi = x[0];
    for (int64_t k = 1; k < n; ++k) {
        lo = std::min(lo, x[k]);
        hi = std::max(hi, x[k]);
    }
    float xmin = std::min(lo, 0.0f);
    float xmax = std::max(hi, 0.0f);
    if (symmetric && qo.signedScale) {
        const float extreme = -xmin > xmax ? xmin : xmax;
        scale = -extreme / ((maxq + 1.0f) / 2.0f);
        if (scale == 0.0f)
            scale = 1.0f;
        if (qo.fp16Scale)
            scale = std::copysign(roundScaleToHalf(std::fabs(scale)), scale);
        zero = (maxq + 1.0f) / 2.0f;
        return;
    }
    if (symmetric) {
        xmax = std::max(std::fabs(xmin), xmax);
        if (xmin < 0.0f)
            xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    scale = (xmax - xmin) / maxq;
    if (qo.fp16Scale)
        scale = roundScaleToHalf(scale);
    zero = symmetric ? (maxq + 1.0f) / 2.0f : std::nearbyint(-xmin / scale);
}

// Index of the unstructured threshold among `numel` block scores.
inline int64_t unstructuredRank(int64_t numel, double sparsity)
{
    // Python's int(numel * sparsity), clamped to a valid index.
    const auto k = int64_t(double(numel) * sparsity);
    return std::clamp<int64_t>(k, 0, numel - 1);
}

} // namespace sparselab::solve::detail
