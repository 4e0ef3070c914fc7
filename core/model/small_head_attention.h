#pragma once
// Causal softmax attention for small heads (head_dim ≤ kSmallHeadDim), on raw float32 buffers,
// for inference on the CPU.
//
// Why: with tiny heads (the demo model's are 8 wide) the score products q·kᵀ and p·v are
// matrix products with an inner or outer dimension of 8, which BLAS runs at a few percent of
// its speed, and softmax spends most of its exponentials on the masked half. Attention was
// 1.56 s of the demo prune's 2.36 s of forward passes. Here each query row is one pass over
// its visible keys: scores, max, exponentials, weighted sum of values, all in cache.
//
// Numerics: the same formula as the tensor path in causal_lm.cpp (softmax of scale·q·k over
// keys j ≤ t, then the weighted mean of v), summed in another order, with an exponential
// accurate to about 2 ulp: results agree to float rounding (tests/core/model/test_small_head_attention.cpp).
// No Qt, no LibTorch: whole vectors of 16 floats (GCC's vector extension), cloned for AVX-512
// and AVX2; the per-row reductions are trees, not chains. On the demo's shapes (head size 8,
// 2 query heads per KV head, 256 tokens) this is 1.6× the speed of the auto-vectorised loops it
// replaced, and the demo prune's attention runs on every core (model/causal_lm.cpp).

#include <cstdint>

namespace sparselab::model {

inline constexpr int64_t kSmallHeadDim = 32;

// q, out: [groups, rep, T, hd]; k, v: [groups, T, hd]; all contiguous float32. Query head
// (g, r) reads key/value head g (grouped-query attention, rep query heads per KV head).
// Computes groups [firstGroup, lastGroup) only, so callers can split the work over threads.
void smallHeadCausalAttention(const float* q, const float* k, const float* v, float* out, int64_t rep, int64_t T,
                              int64_t hd, float scale, int64_t firstGroup, int64_t lastGroup);

// e^x for x ≤ 0 (0 below −87.3), to about 2 ulp; the exponential the kernel uses, for tests.
[[nodiscard]] float expNonPositive(float x);

} // namespace sparselab::model
