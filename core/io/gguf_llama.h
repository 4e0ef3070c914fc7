#pragma once
// Llama-architecture models in GGUF, as llama.cpp's convert_hf_to_gguf.py writes them.
// No LibTorch, no Qt: tensors travel as float32 row-major buffers in Hugging Face layout.
//
// Metadata written (read back by describeLlamaGguf; llama.cpp's key names):
//   general.architecture                     STRING  "llama"
//   general.type / general.name              STRING  "model" / the model's name
//   general.alignment                        UINT32  32
//   general.file_type                        UINT32  llama_ftype: 0 F32, 1 F16, 7 Q8_0, 2 Q4_0
//   general.quantization_version             UINT32  2 (only when a tensor is Q8_0/Q4_0)
//   llama.vocab_size                         UINT32  config vocab_size
//   llama.context_length                     UINT32  max_position_embeddings
//   llama.embedding_length                   UINT32  hidden_size
//   llama.block_count                        UINT32  num_hidden_layers
//   llama.feed_forward_length                UINT32  intermediate_size
//   llama.attention.head_count               UINT32  num_attention_heads
//   llama.attention.head_count_kv            UINT32  num_key_value_heads
//   llama.rope.freq_base                     FLOAT32 rope_theta
//   llama.attention.layer_norm_rms_epsilon   FLOAT32 rms_norm_eps
//   llama.rope.dimension_count               UINT32  head_dim
//   llama.attention.key_length/value_length  UINT32  head_dim, only when ≠ hidden/heads
//   tokenizer.ggml.*                                 see gguf_vocab.h
// Reading accepts any integer type for the counts and FLOAT32/FLOAT64 for the floats, and
// refuses other architectures, RoPE scaling and experts (InputError naming the file).
//
// Tensors (HF name → GGUF name; GGUF ne is the HF shape reversed):
//   model.embed_tokens.weight                        token_embd.weight
//   model.layers.N.input_layernorm.weight            blk.N.attn_norm.weight
//   model.layers.N.self_attn.q_proj.{weight,bias}    blk.N.attn_q.{weight,bias}      rows permuted (*)
//   model.layers.N.self_attn.k_proj.{weight,bias}    blk.N.attn_k.{weight,bias}      rows permuted (*)
//   model.layers.N.self_attn.v_proj.{weight,bias}    blk.N.attn_v.{weight,bias}
//   model.layers.N.self_attn.o_proj.{weight,bias}    blk.N.attn_output.{weight,bias}
//   model.layers.N.post_attention_layernorm.weight   blk.N.ffn_norm.weight
//   model.layers.N.mlp.gate_proj.{weight,bias}       blk.N.ffn_gate.{weight,bias}
//   model.layers.N.mlp.up_proj.{weight,bias}         blk.N.ffn_up.{weight,bias}
//   model.layers.N.mlp.down_proj.{weight,bias}       blk.N.ffn_down.{weight,bias}
//   model.norm.weight                                output_norm.weight
//   lm_head.weight                                   output.weight (absent when tied)
// (*) HF rotates halves of each head (rotate_half); GGML's RoPE rotates adjacent pairs. As
//     convert_hf_to_gguf.py's permute(w, n_head, n_head_kv) does, the rows of a head are
//     reordered: HF row h·hd + j·hd/2 + i → GGUF row h·hd + 2i + j (i < hd/2, j ∈ {0,1});
//     n_head is num_attention_heads for q and num_key_value_heads for k. The reader undoes it.
//
// Tensor types: norms and biases F32; matrices take the requested type, except that
// Q8_0/Q4_0 fall back to F16 for matrices whose row length (ne[0], the input width) is not a
// multiple of 32. A matrix with a GPTQ grid (LlamaGgufParams::grids) is packed from the grid
// instead: Q4_0 for 4 bits, Q8_0 for 8 bits, whatever the requested type (lossless; see
// GgufQuantGrid).

#include "io/gguf.h"
#include "io/gguf_vocab.h"
#include "model/config.h"
#include "util/progress.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sparselab::io {

enum class GgufFileType { F32, F16, Q8_0, Q4_0 };

// "f32", "f16", "q8_0", "q4_0" (case-insensitive); nullopt otherwise.
[[nodiscard]] std::optional<GgufFileType> parseGgufFileType(std::string_view name);
[[nodiscard]] std::string_view ggufFileTypeName(GgufFileType type); // "f32", ...
[[nodiscard]] uint32_t llamaFtype(GgufFileType type);              // general.file_type value

// A symmetric GPTQ grid with groups of 32 consecutive input columns (no act-order, or
// act-order with static groups so the groups stay contiguous), to export losslessly:
//   value[r][c] = scales[r · cols/32 + c/32] · (codes[r · cols + c] − 2^(bits−1)).
// The solver must round each scale to fp16 *before* quantizing with it (scales that are not
// exactly fp16 values are refused), so that the grid is exactly a Q4_0/Q8_0 block (gguf.h).
// The export checks that the grid reproduces the model's weight bit for bit.
struct GgufQuantGrid {
    int bits = 4;               // 4 → Q4_0, 8 → Q8_0
    std::vector<float> scales;  // [rows, cols/32], fp16-exact
    std::vector<uint8_t> codes; // [rows, cols], each < 2^bits
};

// A borrowed float32 tensor in HF layout (row-major).
struct FloatTensorRef {
    std::vector<int64_t> shape;
    const float* data = nullptr;
};

// Returns the tensor of an HF name; the data must stay valid until the next call.
// Throws (any exception) when the model has no such tensor.
using LlamaTensorSource = std::function<FloatTensorRef(const std::string& hfName)>;

struct LlamaGgufParams {
    GgufFileType type = GgufFileType::F16;      // the requested tensor type
    std::string name;                           // general.name
    std::map<std::string, GgufQuantGrid> grids; // by HF weight name ("model.layers.0.mlp.up_proj.weight")
};

struct LlamaGgufSummary {
    int64_t tensors = 0;
    uint64_t bytes = 0;                          // file size
    std::map<std::string, int64_t> tensorTypes;  // "Q4_0" → count
};

// One tensor of a Llama model: names, HF shape, and (export) the GGUF type chosen.
struct LlamaTensorEntry {
    std::string hfName;
    std::string ggufName;
    std::vector<int64_t> hfShape;  // [rows, cols] or [n]
    GgmlType type = GgmlType::F32; // in the file
    int64_t ropeHeads = 0;         // > 0: rows permuted for RoPE with this many heads
};

// The tensors a Llama config has, in file order (see the table above); `tied` leaves out
// output.weight. Types are F32 here; writeLlamaGguf chooses them.
[[nodiscard]] std::vector<LlamaTensorEntry> llamaTensorEntries(const model::ModelConfig& config, bool tied);

// Writes a Llama model (config.architecture must be Llama with model_type llama or mistral;
// std::invalid_argument otherwise, or for a grid that does not fit its tensor). Atomic.
// Progress: stage "gguf", one unit per tensor; cancellation between tensors.
LlamaGgufSummary writeLlamaGguf(const std::filesystem::path& out, const model::ModelConfig& config,
                                const LlamaTensorSource& source, const GgufVocab& vocab,
                                const LlamaGgufParams& params, const ProgressCallback& progress = {},
                                const CancelToken* cancel = nullptr);

// A Llama GGUF's configuration and tensor table, validated: architecture "llama", required
// keys, every tensor known, of a readable type (F32, F16, BF16, Q8_0, Q4_0) and of the shape
// the configuration implies, none missing (output.weight may be absent: tied embeddings).
struct LlamaGguf {
    model::ModelConfig config; // architecture Llama, model_type "llama", activation "silu"
    std::string name;          // general.name ("" when absent)
    std::optional<GgufVocab> vocab; // absent when the file has no tokenizer.ggml.model
    std::vector<LlamaTensorEntry> tensors; // in the file's order
    std::optional<int32_t> bosId, eosId;
};
[[nodiscard]] LlamaGguf describeLlamaGguf(const GgufFile& file);

// One tensor dequantized to float32 in HF layout (RoPE permutation undone).
[[nodiscard]] std::vector<float> readLlamaTensor(const GgufFile& file, const LlamaTensorEntry& entry);

// llama.cpp's RoPE row permutation on rows of `rowBytes` bytes (any element type, including
// quantized rows): rows = nHead · headDim. toGguf = true applies it, false undoes it.
// std::invalid_argument when the rows do not split into nHead heads of even size.
void permuteRopeRows(std::span<std::byte> data, int64_t rows, size_t rowBytes, int64_t nHead, bool toGguf);

} // namespace sparselab::io
