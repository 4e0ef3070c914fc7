#pragma once
// The per-layer record (solve/layer_record.h) as one JSON row: the row of sparselab.json's
// "layers", of `prune --json`, and of a sweep point's "layers" (analysis/sweep.h).
//
//   {"name", "block", "rows", "cols", "method": "dense" | "sparsegpt" | …, "target_sparsity",
//    "nm": "N:M" | null, "bits", "quant": quantGridJson(…) | null, "sparsity", "loss",
//    "rel_output_error", "damp_used", "damp_raises", "dead_inputs", "seconds"}
//
// Reading a row back gives the record that was written, except what the row does not hold:
// the sub-layer kind ("" read back) and the asked blocksize and damping (the solver's
// defaults read back). Rows of sweep files of version 2 hold only "name", "sparsity",
// "rel_output_error" and "loss"; they read as a record with those statistics and nothing asked.

#include "solve/layer_record.h"

#include <nlohmann/json.hpp>

#include <string>

namespace sparselab::pipeline {

[[nodiscard]] nlohmann::json layerRecordJson(const solve::LayerRecord& layer);

// InputError naming `source` when a field is missing or of the wrong type, or the method or
// N:M is unknown.
[[nodiscard]] solve::LayerRecord layerRecordFromJson(const nlohmann::json& row, const std::string& source);

} // namespace sparselab::pipeline
