// Writes a synthetic Llama checkpoint folder for the streaming / memory benchmarks:
// `blocks` decoder blocks of the given shape (default 7B-shaped: hidden 4096, MLP 11008,
// 32 heads), F16 on disk, one safetensors shard per block plus one for the embeddings, final
// norm and LM head, with model.safetensors.index.json, a config.json, and the bundled demo
// model's SentencePiece tokenizer (vocab 512), so `sparselab-cli prune` runs on it as is.
// Weights: N(0, 0.02²) (Llama's initializer range), norms 1. Deterministic (seed 0). Memory:
// one tensor at a time.
//
//   bench_synthetic_checkpoint OUT_DIR [--blocks 2] [--hidden 4096] [--intermediate 11008]
//                              [--heads 32] [--kv-heads H] [--vocab 512]
// --kv-heads (default: --heads) below --heads gives grouped-query attention: k_proj and v_proj
// are [kv_heads · hidden/heads, hidden]. TinyLlama-1.1B's shapes: --blocks 22 --hidden 2048
// --intermediate 5632 --heads 32 --kv-heads 4 --vocab 32000 (bench/bench_tinyllama_stream.sh).
// Sizes: one 7B-shaped block is 202.4 M parameters = 405 MB in F16.

#include "io/safetensors.h"
#include "util/atomic_file.h"

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using sparselab::io::DType;

namespace {

struct Shape {
    int64_t blocks = 2, hidden = 4096, intermediate = 11008, heads = 32, kvHeads = 0, vocab = 512;
};

void writeShard(const fs::path& file, const std::vector<std::pair<std::string, torch::Tensor>>& tensors)
{
    std::vector<sparselab::io::TensorToWrite> out;
    for (const auto& [name, t] : tensors)
        out.push_back({name, DType::F16, std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), t.data_ptr(),
                       size_t(t.nbytes())});
    sparselab::io::writeSafetensors(file, out);
}

torch::Tensor randomHalf(std::vector<int64_t> shape)
{
    return (torch::randn(shape) * 0.02).to(torch::kHalf).contiguous();
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s OUT_DIR [--blocks N] [--hidden D] [--intermediate I] [--heads H] [--kv-heads H] [--vocab V]\n", argv[0]);
        return 2;
    }
    const fs::path out = argv[1];
    Shape s;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string key = argv[i];
        const int64_t value = std::atoll(argv[i + 1]);
        if (key == "--blocks") s.blocks = value;
        else if (key == "--hidden") s.hidden = value;
        else if (key == "--intermediate") s.intermediate = value;
        else if (key == "--heads") s.heads = value;
        else if (key == "--kv-heads") s.kvHeads = value;
        else if (key == "--vocab") s.vocab = value;
        else {
            std::fprintf(stderr, "error: unknown option %s\n", key.c_str());
            return 2;
        }
    }
    if (s.kvHeads == 0)
        s.kvHeads = s.heads;
    if (s.blocks < 1 || s.hidden < 1 || s.intermediate < 1 || s.heads < 1 || s.hidden % s.heads != 0
        || s.kvHeads < 1 || s.heads % s.kvHeads != 0) {
        std::fprintf(stderr, "error: need blocks, hidden, intermediate, heads, kv-heads >= 1, heads dividing hidden "
                             "and kv-heads dividing heads\n");
        return 2;
    }
    if (fs::exists(out)) {
        std::fprintf(stderr, "error: %s already exists\n", out.c_str());
        return 2;
    }
    fs::create_directories(out);
    torch::manual_seed(0);
    const int64_t shards = s.blocks + 1;
    auto shardName = [&](int64_t k) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05lld-of-%05lld.safetensors", (long long)(k + 1), (long long)shards);
        return std::string(name);
    };
    nlohmann::json weightMap = nlohmann::json::object();
    int64_t bytes = 0;
    const int64_t d = s.hidden, I = s.intermediate, kv = s.kvHeads * (s.hidden / s.heads);
    for (int64_t b = 0; b < s.blocks; ++b) {
        const std::string p = "model.layers." + std::to_string(b) + ".";
        std::vector<std::pair<std::string, torch::Tensor>> t = {
            {p + "input_layernorm.weight", torch::ones({d}).to(torch::kHalf)},
            {p + "post_attention_layernorm.weight", torch::ones({d}).to(torch::kHalf)},
            {p + "self_attn.q_proj.weight", randomHalf({d, d})},
            {p + "self_attn.k_proj.weight", randomHalf({kv, d})},
            {p + "self_attn.v_proj.weight", randomHalf({kv, d})},
            {p + "self_attn.o_proj.weight", randomHalf({d, d})},
            {p + "mlp.gate_proj.weight", randomHalf({I, d})},
            {p + "mlp.up_proj.weight", randomHalf({I, d})},
            {p + "mlp.down_proj.weight", randomHalf({d, I})},
        };
        for (const auto& [name, tensor] : t) {
            weightMap[name] = shardName(b);
            bytes += int64_t(tensor.nbytes());
        }
        writeShard(out / shardName(b), t);
        std::fprintf(stderr, "\rblock %lld/%lld written", (long long)(b + 1), (long long)s.blocks);
    }
    std::vector<std::pair<std::string, torch::Tensor>> rest = {
        {"model.embed_tokens.weight", randomHalf({s.vocab, d})},
        {"model.norm.weight", torch::ones({d}).to(torch::kHalf)},
        {"lm_head.weight", randomHalf({s.vocab, d})},
    };
    for (const auto& [name, tensor] : rest) {
        weightMap[name] = shardName(s.blocks);
        bytes += int64_t(tensor.nbytes());
    }
    writeShard(out / shardName(s.blocks), rest);
    const nlohmann::json index = {{"metadata", {{"total_size", bytes}}}, {"weight_map", weightMap}};
    sparselab::writeFileAtomically(out / "model.safetensors.index.json", index.dump(2) + "\n");
    const nlohmann::json config = {
        {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", d},
        {"intermediate_size", I}, {"num_hidden_layers", s.blocks}, {"num_attention_heads", s.heads},
        {"num_key_value_heads", s.kvHeads}, {"vocab_size", s.vocab}, {"max_position_embeddings", 2048},
        {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"hidden_act", "silu"},
        {"tie_word_embeddings", false}, {"bos_token_id", 1}, {"eos_token_id", 2}, {"attention_bias", false},
        {"torch_dtype", "float16"}};
    sparselab::writeFileAtomically(out / "config.json", config.dump(2) + "\n");
    const fs::path demo = fs::path(SPARSELAB_SOURCE_RESOURCES) / "models" / "stories260K-hf";
    for (const char* f : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
        fs::copy_file(demo / f, out / f);
    std::fprintf(stderr, "\nwrote %s: %lld blocks, %.2f GB of F16 weights\n", out.c_str(), (long long)s.blocks,
                 double(bytes) / 1e9);
    return 0;
}
