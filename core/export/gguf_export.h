#pragma once
// Export of a (compressed) Llama model as one GGUF file for llama.cpp.
//
// The model's current weights (linear layers as the solver left them, everything else as
// loaded) are written with llama.cpp's names, layouts and metadata (io/gguf_llama.h), the
// tokenizer from the model's folder (io/gguf_vocab.h). Pruned entries stay exact zeros in
// every type (a Q8_0/Q4_0 block of zeros decodes to zeros; a zero inside a block decodes to
// zero whenever the block's codes allow it, which they always do: code 0 / 8).
//
// Lossless quantized export: pass the solver's GPTQ grids (4-bit → Q4_0, 8-bit → Q8_0,
// symmetric, groups of 32 input columns, fp16 scales) in GgufExportParams::grids; each such
// tensor is packed from its codes and checked against the weight bit for bit.
//
// Where the grids come from (CLI `export`, GUI export dialog): gridsFromProvenance reads the
// model folder's sparselab.json (written by `prune`): every layer whose recorded grid is
// symmetric with fp16 scales and contiguous groups (per row, or groups that are multiples of
// 32; not act-order with dynamic groups) has its blocks recovered from the weight itself
// (recoverBlockGrid) — 4-bit (and narrower) grids as Q4_0 when the requested type is q4_0,
// otherwise (and 5..8 bits) as Q8_0. Other layers and tensors are quantized by the writer's
// round to nearest (llama.cpp's algorithm) or fall back to F16 when their width is not a
// multiple of 32 (gguf_llama.h).
//
// Atomic (temporary sibling, renamed when complete); nothing is left on failure or cancel.

#include "io/gguf_llama.h"
#include "util/progress.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace sparselab::model { class CausalLM; }

namespace sparselab::exporting {

struct GgufExportParams {
    io::GgufFileType type = io::GgufFileType::F16;  // tensor type for matrices (default f16)
    std::string name;                               // general.name; "" = the model folder's name
    std::map<std::string, io::GgufQuantGrid> grids; // lossless grids by HF weight name (optional)
};

struct GgufExportSummary {
    std::filesystem::path file;
    int64_t tensors = 0;
    uint64_t bytes = 0;
    std::map<std::string, int64_t> tensorTypes; // "F32" → count, ...
};

// InputError when the model is not a Llama/Mistral model or its folder's tokenizer cannot be
// stored in GGUF; std::invalid_argument for a grid that does not match its weight;
// CancelledError when cancelled. Progress: stage "gguf", one unit per tensor.
[[nodiscard]] GgufExportSummary exportGguf(const model::CausalLM& model, const std::filesystem::path& out,
                                           const GgufExportParams& params, const ProgressCallback& progress = {},
                                           const CancelToken* cancel = nullptr);

// The fp16 block grid of a weight w [rows, cols] row-major (cols a multiple of 32) when every
// block of 32 values is exactly d·k, d an fp16 value, k an integer in
// [−2^(bits−1), 2^(bits−1) − 1] (bits 4 or 8); nullopt otherwise. For a block with smallest
// nonzero |value| m the candidates d = ±m/t, t = 1..2^(bits−1), are tried in order (a GPTQ
// block with fp16 scale s has m = s·t₀ exactly, so d = s is among them); any d that
// reproduces the block bit for bit is lossless. All-zero blocks get d = 0.
[[nodiscard]] std::optional<io::GgufQuantGrid> recoverBlockGrid(const float* w, int64_t rows, int64_t cols, int bits);

// Lossless grids for exportGguf from `model.folder()/sparselab.json` (none when the file is
// absent or records no such grid) for the requested type. InputError naming sparselab.json
// when it records a grid that the layer's weight is not on.
[[nodiscard]] std::map<std::string, io::GgufQuantGrid> gridsFromProvenance(const model::CausalLM& model,
                                                                           io::GgufFileType type);
// The same from the "layers" array of a provenance object (each {"name", "quant"}), for front
// ends that hold the record in memory (the GUI); `source` is named in errors.
[[nodiscard]] std::map<std::string, io::GgufQuantGrid> gridsFromLayerRecords(const model::CausalLM& model,
                                                                             const nlohmann::json& layers,
                                                                             io::GgufFileType type,
                                                                             const std::filesystem::path& source);

} // namespace sparselab::exporting
