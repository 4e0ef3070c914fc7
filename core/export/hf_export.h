#pragma once
// Export of a compressed model as a Hugging Face folder.
//
// Written: every tensor of the source checkpoint under the same name, dtype and shard layout
// (model.safetensors, or the same shards plus model.safetensors.index.json), with each
// linear layer's weight replaced by the model's current (compressed) weight converted to the
// stored dtype (transposed back for GPT-2 Conv1D) — pruned entries are exact zeros in any
// dtype; untouched tensors are copied byte for byte; `__metadata__` (aliases) is kept.
// Streamed models (CausalLM::streamed): finished blocks' results come from their spill files
// (already in the stored dtype), blocks never materialized are copied unchanged, and mapped
// pages are released as each tensor is written, so the resident set stays small.
// Every other file of the source folder (config.json, tokenizer files, generation config…)
// is copied. `sparselab.json` holds the provenance object passed in.
//
// Atomic: the folder is assembled under a temporary sibling name and renamed into place when
// complete; on failure or cancel nothing is left behind. The output folder must not exist
// and must not be the source folder (InputError naming it).

#include "util/progress.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace sparselab::model { class CausalLM; }

namespace sparselab::exporting {

struct ExportSummary {
    std::filesystem::path folder;
    int64_t files = 0;
    int64_t bytes = 0;
    int64_t tensorsReplaced = 0;
};

[[nodiscard]] ExportSummary exportHuggingFaceFolder(const model::CausalLM& model,
                                                    const std::filesystem::path& outDir,
                                                    const nlohmann::json& provenance,
                                                    const ProgressCallback& progress = {},
                                                    const CancelToken* cancel = nullptr);

// Fails early (InputError) when `outDir` exists or is inside/equal to `sourceDir`.
void checkExportTarget(const std::filesystem::path& sourceDir, const std::filesystem::path& outDir);

// SHA-256 of every regular file in a model folder, by file name (sorted).
[[nodiscard]] nlohmann::json hashModelFolder(const std::filesystem::path& folder, const CancelToken* cancel = nullptr);

} // namespace sparselab::exporting
