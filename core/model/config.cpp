#include "model/config.h"

#include "io/checkpoint.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <optional>

namespace sparselab::model {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSupported =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel, OPTForCausalLM";

// Field readers that turn every shape of bad config into one InputError naming the file.
// A JSON null counts as absent, as it does for Hugging Face (e.g. "head_dim": null).
class Fields {
public:
    Fields(const json& j, fs::path file) : m_json(j), m_file(std::move(file)) {}

    [[nodiscard]] bool has(const char* key) const
    {
        return m_json.contains(key) && !m_json.at(key).is_null();
    }

    // A positive integer no larger than `largest` (the kMaxModel* limit for what the field sizes).
    [[nodiscard]] int64_t positiveInt(const char* key, int64_t largest,
                                      std::optional<int64_t> fallback = std::nullopt) const
    {
        if (!has(key)) {
            if (fallback)
                return *fallback;
            throw inputError(m_file, std::string("missing field '") + key + "'");
        }
        const json& v = m_json.at(key);
        // JSON's non-negative integers are unsigned here (up to 2^64 - 1): compared as such, a
        // value above INT64_MAX never wraps to a negative int64.
        const bool positive = v.is_number_unsigned() ? v.get<uint64_t>() > 0
                                                     : v.is_number_integer() && v.get<int64_t>() > 0;
        if (!positive)
            throw inputError(m_file, std::string("field '") + key + "' must be a positive integer, got " + v.dump());
        if (v.get<uint64_t>() > uint64_t(largest))
            throw inputError(m_file, std::string("field '") + key + "' is " + v.dump() + ", above the largest "
                                         + std::to_string(largest) + " SparseLab accepts");
        return v.get<int64_t>();
    }

    [[nodiscard]] double positiveNumber(const char* key, double fallback) const
    {
        if (!has(key))
            return fallback;
        const json& v = m_json.at(key);
        if (!v.is_number() || !(v.get<double>() > 0.0) || !std::isfinite(v.get<double>()))
            throw inputError(m_file, std::string("field '") + key + "' must be a positive number, got " + v.dump());
        return v.get<double>();
    }

    [[nodiscard]] bool boolean(const char* key, bool fallback) const
    {
        if (!has(key))
            return fallback;
        const json& v = m_json.at(key);
        if (!v.is_boolean())
            throw inputError(m_file, std::string("field '") + key + "' must be true or false, got " + v.dump());
        return v.get<bool>();
    }

    // A nested object's fields ("rope_parameters"), or nullopt when absent; InputError when
    // present but not an object.
    [[nodiscard]] std::optional<Fields> object(const char* key) const
    {
        if (!has(key))
            return std::nullopt;
        if (!m_json.at(key).is_object())
            throw inputError(m_file, std::string("field '") + key + "' must be an object, got " + m_json.at(key).dump());
        return Fields(m_json.at(key), m_file);
    }

    [[nodiscard]] std::string string(const char* key, const std::string& fallback) const
    {
        if (!has(key))
            return fallback;
        const json& v = m_json.at(key);
        if (!v.is_string())
            throw inputError(m_file, std::string("field '") + key + "' must be a string, got " + v.dump());
        return v.get<std::string>();
    }

private:
    const json& m_json;
    fs::path m_file;
};

struct ArchName {
    const char* architecture;
    const char* modelType;
    Architecture arch;
};
constexpr ArchName kArchNames[] = {
    {"LlamaForCausalLM", "llama", Architecture::Llama},
    {"MistralForCausalLM", "mistral", Architecture::Llama},
    {"Qwen2ForCausalLM", "qwen2", Architecture::Llama},
    {"GPT2LMHeadModel", "gpt2", Architecture::Gpt2},
    {"OPTForCausalLM", "opt", Architecture::Opt},
};

void loadLlama(ModelConfig& c, const std::string& family, const Fields& f, const fs::path& file)
{
    c.hiddenSize = f.positiveInt("hidden_size", kMaxModelWidth);
    c.intermediateSize = f.positiveInt("intermediate_size", kMaxModelMlpWidth);
    c.numLayers = f.positiveInt("num_hidden_layers", kMaxModelLayers);
    c.numHeads = f.positiveInt("num_attention_heads", kMaxModelHeads);
    c.numKvHeads = f.positiveInt("num_key_value_heads", kMaxModelHeads, c.numHeads);
    if (c.hiddenSize % c.numHeads != 0 && !f.has("head_dim"))
        throw inputError(file, "hidden_size " + std::to_string(c.hiddenSize) + " is not a multiple of num_attention_heads "
                                   + std::to_string(c.numHeads));
    c.headDim = f.positiveInt("head_dim", kMaxModelWidth, c.hiddenSize / c.numHeads);
    if (c.numHeads % c.numKvHeads != 0)
        throw inputError(file, "num_attention_heads " + std::to_string(c.numHeads)
                                   + " is not a multiple of num_key_value_heads " + std::to_string(c.numKvHeads));
    c.vocabSize = f.positiveInt("vocab_size", kMaxModelVocab);
    c.maxPositions = f.positiveInt("max_position_embeddings", kMaxModelPositions, 2048);
    // Defaults are those of the transformers config classes.
    c.normEps = f.positiveNumber("rms_norm_eps", 1e-6);
    c.ropeTheta = f.positiveNumber("rope_theta", 10000.0);
    // transformers 5 writes RoPE as "rope_parameters": {"rope_type": ..., "rope_theta": ...}
    // (and no top-level rope_theta); only the plain ("default") type is computed here.
    if (const auto rope = f.object("rope_parameters")) {
        const std::string type = rope->string("rope_type", "default");
        if (type != "default")
            throw inputError(file, "rope_parameters.rope_type '" + type + "' is not supported (only plain RoPE)");
        c.ropeTheta = rope->positiveNumber("rope_theta", c.ropeTheta);
    }
    if (family == "qwen2") {
        // Qwen2 hard-codes biases on q/k/v and none on o_proj.
        c.attentionBias = true;
        c.attentionOutputBias = false;
    } else if (family == "llama") {
        c.attentionBias = f.boolean("attention_bias", false);
        c.attentionOutputBias = c.attentionBias;
        c.mlpBias = f.boolean("mlp_bias", false);
    }
    c.tieWordEmbeddings = f.boolean("tie_word_embeddings", false);
    c.activation = f.string("hidden_act", "silu");
    if (c.activation != "silu")
        throw inputError(file, "hidden_act '" + c.activation + "' is not supported for " + family + " (only silu)");
    // Scaled RoPE variants (linear, dynamic, llama3, yarn) change the positions' angles;
    // evaluating them as plain RoPE would give silently wrong numbers.
    if (f.has("rope_scaling"))
        throw inputError(file, "rope_scaling is not supported (only plain RoPE)");
}

void loadGpt2(ModelConfig& c, const Fields& f, const fs::path& file)
{
    c.hiddenSize = f.positiveInt("n_embd", kMaxModelWidth);
    c.numLayers = f.positiveInt("n_layer", kMaxModelLayers);
    c.numHeads = f.positiveInt("n_head", kMaxModelHeads);
    if (c.hiddenSize % c.numHeads != 0)
        throw inputError(file, "n_embd " + std::to_string(c.hiddenSize) + " is not a multiple of n_head "
                                   + std::to_string(c.numHeads));
    c.numKvHeads = c.numHeads;
    c.headDim = c.hiddenSize / c.numHeads;
    c.intermediateSize = f.positiveInt("n_inner", kMaxModelMlpWidth, 4 * c.hiddenSize);
    c.vocabSize = f.positiveInt("vocab_size", kMaxModelVocab);
    c.maxPositions = f.positiveInt("n_positions", kMaxModelPositions, 1024);
    c.normEps = f.positiveNumber("layer_norm_epsilon", 1e-5);
    c.attentionBias = true;
    c.attentionOutputBias = true;
    c.mlpBias = true;
    c.tieWordEmbeddings = f.boolean("tie_word_embeddings", true);
    c.activation = f.string("activation_function", "gelu_new");
    if (c.activation != "gelu_new" && c.activation != "gelu_pytorch_tanh" && c.activation != "gelu"
        && c.activation != "relu")
        throw inputError(file, "activation_function '" + c.activation
                                   + "' is not supported (gelu_new, gelu_pytorch_tanh, gelu, relu)");
    if (!f.boolean("scale_attn_weights", true) || f.boolean("scale_attn_by_inverse_layer_idx", false))
        throw inputError(file, "non-default attention scaling (scale_attn_weights / "
                               "scale_attn_by_inverse_layer_idx) is not supported");
}

void loadOpt(ModelConfig& c, const Fields& f, const fs::path& file)
{
    c.hiddenSize = f.positiveInt("hidden_size", kMaxModelWidth);
    c.intermediateSize = f.positiveInt("ffn_dim", kMaxModelMlpWidth);
    c.numLayers = f.positiveInt("num_hidden_layers", kMaxModelLayers);
    c.numHeads = f.positiveInt("num_attention_heads", kMaxModelHeads);
    if (c.hiddenSize % c.numHeads != 0)
        throw inputError(file, "hidden_size " + std::to_string(c.hiddenSize) + " is not a multiple of num_attention_heads "
                                   + std::to_string(c.numHeads));
    c.numKvHeads = c.numHeads;
    c.headDim = c.hiddenSize / c.numHeads;
    c.vocabSize = f.positiveInt("vocab_size", kMaxModelVocab);
    c.maxPositions = f.positiveInt("max_position_embeddings", kMaxModelPositions, 2048);
    c.normEps = 1e-5; // OPT's LayerNorms use PyTorch's default epsilon
    c.doLayerNormBefore = f.boolean("do_layer_norm_before", true);
    const bool bias = f.boolean("enable_bias", true);
    c.attentionBias = bias;
    c.attentionOutputBias = bias;
    c.mlpBias = bias;
    c.tieWordEmbeddings = f.boolean("tie_word_embeddings", true);
    c.activation = f.string("activation_function", "relu");
    if (c.activation != "relu" && c.activation != "gelu")
        throw inputError(file, "activation_function '" + c.activation + "' is not supported for OPT (relu, gelu)");
    const int64_t proj = f.positiveInt("word_embed_proj_dim", kMaxModelWidth, c.hiddenSize);
    if (proj != c.hiddenSize)
        throw inputError(file, "word_embed_proj_dim " + std::to_string(proj) + " differs from hidden_size "
                                   + std::to_string(c.hiddenSize)
                                   + " (OPT-350m-style project_in/project_out is not supported)");
    if (!f.boolean("layer_norm_elementwise_affine", true))
        throw inputError(file, "layer_norm_elementwise_affine = false is not supported");
}

} // namespace

std::string architectureName(Architecture arch)
{
    switch (arch) {
    case Architecture::Llama: return "LlamaForCausalLM";
    case Architecture::Gpt2: return "GPT2LMHeadModel";
    case Architecture::Opt: return "OPTForCausalLM";
    }
    return "?";
}

ModelConfig ModelConfig::load(const fs::path& configJsonOrFolder)
{
    std::error_code ec;
    const fs::path file = fs::is_directory(configJsonOrFolder, ec) ? configJsonOrFolder / "config.json"
                                                                   : configJsonOrFolder;
    if (io::isPickleWeightsName(file))
        throw inputError(file, "is a PyTorch pickle file, not a model folder: " + io::pickleRefusal());
    const json j = readJsonFile(file);
    if (!j.is_object())
        throw inputError(file, "not a JSON object");
    const Fields f(j, file);

    // architectures[0] decides; model_type is the fallback for configs without it.
    std::string archName;
    if (f.has("architectures")) {
        const json& a = j.at("architectures");
        if (!a.is_array() || a.empty() || !a[0].is_string())
            throw inputError(file, "field 'architectures' must be a non-empty list of names");
        archName = a[0].get<std::string>();
    }
    const std::string modelType = f.string("model_type", "");
    const ArchName* match = nullptr;
    for (const ArchName& n : kArchNames) {
        if (archName.empty() ? modelType == n.modelType : archName == n.architecture)
            match = &n;
    }
    if (!match) {
        const std::string shown = !archName.empty() ? archName : !modelType.empty() ? modelType : "(none given)";
        throw inputError(file, "unsupported architecture '" + shown + "' (supported: " + kSupported + ")");
    }

    ModelConfig c;
    c.architecture = match->arch;
    c.modelType = modelType.empty() ? match->modelType : modelType;
    c.torchDtype = f.string("torch_dtype", f.string("dtype", "")); // "dtype" since transformers 5
    switch (c.architecture) {
    case Architecture::Llama: loadLlama(c, match->modelType, f, file); break;
    case Architecture::Gpt2: loadGpt2(c, f, file); break;
    case Architecture::Opt: loadOpt(c, f, file); break;
    }
    return c;
}

void requireWindowFits(const ModelConfig& config, int64_t seqlen, const std::string& option)
{
    if (seqlen > config.maxPositions)
        throw optionError(option, std::to_string(seqlen) + " exceeds the model's maximum of "
                                      + std::to_string(config.maxPositions) + " positions");
}

} // namespace sparselab::model
