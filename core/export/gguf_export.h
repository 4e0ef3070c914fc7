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
// Atomic (temporary sibling, renamed when complete); nothing is left on failure or cancel.

#include "io/gguf_llama.h"
#include "util/progress.h"

#include <cstdint>
#include <filesystem>
#include <map>
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

} // namespace sparselab::exporting
