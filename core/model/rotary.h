#pragma once
// Rotary position embedding (HF Llama's rotate-half form) in one pass over raw float32
// buffers, for inference on the CPU.
//
// Why: as tensor operations, x·cos + rotate_half(x)·sin is five passes over q and over k, each
// with a fresh [B, H, T, hd] temporary (the product, the negated half, the concatenation, the
// second product, the sum), about 0.14 s of the demo prune's 1.1–1.3 s of forward passes.
//
// Numerics: out = fl(x·cos) + fl(rotate_half(x)·sin) with each product and the sum rounded
// once, as ATen's separate kernels round them — bit-identical to the tensor formula (this
// file is compiled without FMA contraction; tests/core/model/test_rotary.cpp compares bits).
// No Qt, no LibTorch.

#include <cstdint>

namespace sparselab::model {

// x: rows of hd floats (hd even), row r = (b, h, t) with r = (b·H + h)·T + t read at
// x + b·strideB + h·strideH + t·strideT (elements contiguous within a row); cos, sin: [T, hd]
// contiguous; out: [B·H·T, hd] contiguous. Rows [firstRow, lastRow) only, so callers can split
// the work over threads:
//   out[i]        = x[i]·cos[t, i]        − x[i + hd/2]·sin[t, i]          (i < hd/2)
//   out[i + hd/2] = x[i + hd/2]·cos[t, i + hd/2] + x[i]·sin[t, i + hd/2]
void rotateHalfRows(const float* x, int64_t strideB, int64_t strideH, int64_t strideT, int64_t H, int64_t T,
                    int64_t hd, const float* cos, const float* sin, float* out, int64_t firstRow, int64_t lastRow);

} // namespace sparselab::model
