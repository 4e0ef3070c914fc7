#pragma once
// The storage model used to price a compressed linear layer (sweeps, the allocator, reports).
// No LibTorch, no Qt.
//
// A layer of rows × cols weights, pruned to sparsity s (fraction of exact zeros) and stored
// with b bits per kept value, costs
//     values: ceil(kept · b / 8) bytes,  kept = n − round(s · n), n = rows · cols
//     mask:   ceil(n / 8) bytes (one bit per weight)         only when s > 0
//     grid:   4 bytes per quantization row or group (fp16 scale + fp16 zero)  only when b < 16
// where b = 16 means fp16 values and no grid. A dense fp16 layer costs exactly 2·n bytes.
// This is the size of a plain bitmask + packed-values layout (what a sparse kernel or a
// compressed checkpoint would store), not the size of the exported safetensors (which keep
// the dense layout with exact zeros). Everything that is not a linear layer (embeddings,
// norms, the LM head) is counted at fp16 (2 bytes per parameter) by modelBytes().

#include <cstdint>

namespace sparselab::analysis {

// Bytes of one linear layer [rows, cols] at `sparsity` and `bits` (2..8 or 16); `group` = 0
// for one grid per row, else columns per quantization group.
[[nodiscard]] int64_t linearLayerBytes(int64_t rows, int64_t cols, double sparsity, int bits, int64_t group = 0);

// Bytes of `parameters` non-prunable parameters at fp16.
[[nodiscard]] inline int64_t fixedParameterBytes(int64_t parameters) { return 2 * parameters; }

} // namespace sparselab::analysis
