#include "export/gguf_export.h"

#include "io/gguf_vocab.h"
#include "model/causal_lm.h"
#include "util/errors.h"

#include <torch/types.h>

#include <stdexcept>

namespace sparselab::exporting {

namespace fs = std::filesystem;

GgufExportSummary exportGguf(const model::CausalLM& model, const fs::path& out, const GgufExportParams& params,
                             const ProgressCallback& progress, const CancelToken* cancel)
{
    const model::ModelConfig& config = model.config();
    if (config.architecture != model::Architecture::Llama || (config.modelType != "llama" && config.modelType != "mistral"))
        throw inputError(model.folder() / "config.json",
                         "GGUF export supports Llama and Mistral models; this one is "
                             + model::architectureName(config.architecture) + " (model_type '" + config.modelType + "')");
    const io::GgufVocab vocab = io::vocabFromModelFolder(model.folder(), config.vocabSize);

    // Linear weights come from the layers (the solver's current tensors), the rest from the
    // parameter table. Tied checkpoints may store the embedding as lm_head.weight only.
    std::map<std::string, torch::Tensor> linears;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const model::LinearLayer& layer : model.linears(b)) {
            linears[layer.name] = layer.weight;
            if (layer.bias.defined())
                linears[layer.name.substr(0, layer.name.size() - std::string("weight").size()) + "bias"] = layer.bias;
        }
    torch::Tensor current; // keeps the data handed out alive until the next call
    const io::LlamaTensorSource source = [&](const std::string& name) -> io::FloatTensorRef {
        torch::Tensor t;
        if (const auto it = linears.find(name); it != linears.end())
            t = it->second;
        else if (const auto p = model.parameters().find(name); p != model.parameters().end())
            t = p->second;
        else if (name == "model.embed_tokens.weight" && model.parameters().count("lm_head.weight"))
            t = model.parameters().at("lm_head.weight");
        else
            throw std::invalid_argument("GGUF export: the model has no tensor '" + name + "'");
        current = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
        return {current.sizes().vec(), current.data_ptr<float>()};
    };

    io::LlamaGgufParams p;
    p.type = params.type;
    p.name = params.name.empty() ? fs::absolute(model.folder()).lexically_normal().filename().string() : params.name;
    if (p.name.empty())
        p.name = fs::absolute(model.folder()).lexically_normal().parent_path().filename().string();
    p.grids = params.grids;

    torch::NoGradGuard noGrad;
    const io::LlamaGgufSummary s = io::writeLlamaGguf(out, config, source, vocab, p, progress, cancel);
    return GgufExportSummary{out, s.tensors, s.bytes, s.tensorTypes};
}

} // namespace sparselab::exporting
