#pragma once
// A Llama GGUF file as a Hugging Face model folder, so that everything that reads folders
// (model::CausalLM::load, tokenize::loadTokenizer, the exporters) reads .gguf files too.
// No LibTorch, no Qt.
//
// The folder holds:
//   config.json            LlamaForCausalLM, from the llama.* keys (gguf_llama.h)
//   model.safetensors      every tensor under its HF name and in HF layout (RoPE permutation
//                          undone); F16 and BF16 tensors keep their dtype (lossless), F32,
//                          Q8_0 and Q4_0 become F32 (dequantized exactly as ggml does);
//                          no lm_head.weight when output.weight is absent (tied)
//   tokenizer.model        for tokenizer.ggml.model "llama" (gguf_vocab.h), or
//   tokenizer.json         for "gpt2"
//   tokenizer_config.json  add_bos_token, add_eos_token, special token strings
//   sparselab_source.json  {"gguf": absolute path of the source file}
// Tensors are written one at a time (peak memory: one dequantized tensor).
//
// Example:
//   const auto folder = sparselab::io::resolveModelPath("model.gguf"); // a temporary folder
//   auto lm = sparselab::model::CausalLM::load(folder);
//   auto tok = sparselab::tokenize::loadTokenizer(folder);

#include "util/progress.h"

#include <filesystem>

namespace sparselab::io {

// True when `path` is a regular file that starts with the GGUF magic.
[[nodiscard]] bool isGgufFile(const std::filesystem::path& path);

// Converts `gguf` into `outFolder`, which must not exist (InputError naming it). The folder is
// assembled under a temporary sibling name and renamed into place when complete. Every
// problem with the GGUF is an InputError naming it. Progress: stage "gguf import", one unit
// per tensor; cancellation between tensors.
void importGgufAsHfFolder(const std::filesystem::path& gguf, const std::filesystem::path& outFolder,
                          const ProgressCallback& progress = {}, const CancelToken* cancel = nullptr);

// For front ends and loaders: `model` itself unless it is a GGUF file; for a GGUF file, a
// folder converted from it under the system temporary directory — once per process and file
// (keyed by canonical path, size and modification time) and removed when the process exits.
// Thread-safe.
[[nodiscard]] std::filesystem::path resolveModelPath(const std::filesystem::path& model);

} // namespace sparselab::io
