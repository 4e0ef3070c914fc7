#pragma once
// Conversions between the engine's results (eval, model weights) and the workspace's plain
// records (store/workspace.h, store/resume.h). Per-layer results need none: the pipeline
// reports solve::LayerRecord, the type the workspace stores.

#include "store/resume.h"
#include "store/workspace.h"
#include "util/progress.h"

#include <filesystem>
#include <vector>

namespace at { class Tensor; }
namespace sparselab::model { class CausalLM; }
namespace sparselab::eval { struct PerplexityResult; }

namespace sparselab::store {

// Bit-packed mask of the exact zeros of `weight` [rows, cols] (any device, any float dtype).
// After a prune these are the pruned entries (plus any kept weight that quantized to 0).
[[nodiscard]] PackedMask zeroMask(const at::Tensor& weight);
// Masks of every linear layer of the model, by module name ("model.layers.0.mlp.up_proj").
[[nodiscard]] std::map<std::string, PackedMask> zeroMasks(const model::CausalLM& model);

[[nodiscard]] PerplexityRecord perplexityRecord(const eval::PerplexityResult& result);

// Model identity: absolute folder, architecture from config, file hashes (every regular file
// of the folder, SHA-256 — reads them all), parameter count and stored dtype.
[[nodiscard]] ModelIdentity modelIdentity(const model::CausalLM& model, const CancelToken* cancel = nullptr);

// The compressed weights of block `block` (float32 CPU copies) with the block's records.
[[nodiscard]] BlockCheckpoint blockCheckpoint(const model::CausalLM& model, int64_t block,
                                              const std::vector<solve::LayerRecord>& records);
// Writes a checkpoint's weights back into the model (InputError naming `source` when a name
// or shape does not match the model).
void restoreBlock(model::CausalLM& model, const BlockCheckpoint& checkpoint, const std::filesystem::path& source);

} // namespace sparselab::store
