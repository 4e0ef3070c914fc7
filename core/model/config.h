#pragma once
// Model architecture read from a Hugging Face `config.json` (no LibTorch, no Qt).
//
// Supported `architectures[0]` / `model_type`:
//   LlamaForCausalLM / llama (also MistralForCausalLM / mistral and Qwen2ForCausalLM / qwen2:
//     grouped-query attention via num_key_value_heads, attention_bias, tie_word_embeddings,
//     rope_theta, rms_norm_eps, head_dim);
//   GPT2LMHeadModel / gpt2 (n_embd, n_layer, n_head, n_inner, n_positions,
//     layer_norm_epsilon, activation_function gelu_new; Conv1D weights stored [in, out]);
//   OPTForCausalLM / opt (hidden_size, ffn_dim, num_hidden_layers, num_attention_heads,
//     max_position_embeddings, learned positions offset 2, activation_function relu,
//     do_layer_norm_before, word_embed_proj_dim == hidden_size, enable_bias).
// Anything else: InputError naming config.json and listing the supported architectures.

#include <cstdint>
#include <filesystem>
#include <string>

namespace sparselab::model {

enum class Architecture { Llama, Gpt2, Opt };

[[nodiscard]] std::string architectureName(Architecture arch); // "LlamaForCausalLM", ...

// The largest sizes SparseLab accepts in a model's configuration (config.json or GGUF keys):
// far above any released model, and low enough that every size, parameter count and byte
// count computed from them stays far from int64 overflow. Beyond them a config is refused
// naming the field, before anything is allocated from it.
inline constexpr int64_t kMaxModelLayers = 10'000;
inline constexpr int64_t kMaxModelWidth = int64_t(1) << 20;    // hidden size, head size, projections
inline constexpr int64_t kMaxModelMlpWidth = int64_t(1) << 22; // intermediate (MLP) size
inline constexpr int64_t kMaxModelHeads = int64_t(1) << 16;    // attention and key/value heads
inline constexpr int64_t kMaxModelVocab = int64_t(1) << 24;    // vocabulary entries
inline constexpr int64_t kMaxModelPositions = int64_t(1) << 40; // context length (only bounds windows)

struct ModelConfig {
    Architecture architecture = Architecture::Llama;
    std::string modelType;            // config's model_type, e.g. "llama", "qwen2"
    int64_t hiddenSize = 0;           // d_model
    int64_t intermediateSize = 0;     // MLP width
    int64_t numLayers = 0;            // decoder blocks
    int64_t numHeads = 0;
    int64_t numKvHeads = 0;           // == numHeads without GQA
    int64_t headDim = 0;              // hiddenSize / numHeads unless config says otherwise
    int64_t vocabSize = 0;
    int64_t maxPositions = 0;         // max_position_embeddings / n_positions
    double normEps = 1e-5;            // rms_norm_eps / layer_norm_epsilon (OPT: 1e-5)
    double ropeTheta = 10000.0;       // Llama family only
    bool attentionBias = false;       // q/k/v(/o) biases (Qwen2: q/k/v only)
    bool attentionOutputBias = false; // o_proj bias
    bool mlpBias = false;
    bool tieWordEmbeddings = false;
    bool doLayerNormBefore = true;    // OPT: pre-norm (true) or post-norm (false)
    std::string activation;           // "silu", "gelu_new", "relu", ...
    std::string torchDtype;           // config's torch_dtype, informational

    // Parses `folder/config.json` (or the given file). InputError naming the file on any
    // missing/invalid field or unsupported architecture.
    static ModelConfig load(const std::filesystem::path& configJsonOrFolder);
};

// InputError naming `option` ("--seqlen", or "Window length" in the GUI) when windows of
// `seqlen` tokens are longer than the model's positions; every command checks this before work.
void requireWindowFits(const ModelConfig& config, int64_t seqlen, const std::string& option = "--seqlen");

} // namespace sparselab::model
