#include "export/gguf_export.h"
#include "util/json_file.h"

#include "io/gguf_vocab.h"
#include "model/causal_lm.h"
#include "util/errors.h"

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cmath>
#include <fstream>
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

std::optional<io::GgufQuantGrid> recoverBlockGrid(const float* w, int64_t rows, int64_t cols, int bits)
{
    if ((bits != 4 && bits != 8) || cols % 32 != 0)
        return std::nullopt;
    const int half = 1 << (bits - 1);
    io::GgufQuantGrid grid;
    grid.bits = bits;
    grid.scales.resize(size_t(rows * cols / 32));
    grid.codes.resize(size_t(rows * cols));
    for (int64_t b = 0; b < rows * cols / 32; ++b) {
        const float* x = w + b * 32;
        uint8_t* codes = grid.codes.data() + b * 32;
        float m = 0.0f;
        for (int j = 0; j < 32; ++j) {
            const float a = std::fabs(x[j]);
            if (!std::isfinite(a))
                return std::nullopt;
            if (a > 0.0f && (m == 0.0f || a < m))
                m = a;
        }
        bool found = false;
        if (m == 0.0f) {
            grid.scales[size_t(b)] = 0.0f;
            std::fill(codes, codes + 32, uint8_t(half));
            found = true;
        }
        for (int attempt = 0; attempt < 2 * half && !found; ++attempt) {
            const int t = attempt / 2 + 1;
            const float d = (attempt % 2 == 0 ? 1.0f : -1.0f) * m / float(t); // a signed scale may be negative
            if (io::fp16ToFp32(io::fp32ToFp16(d)) != d)
                continue;
            found = true;
            for (int j = 0; j < 32 && found; ++j) {
                const float k = x[j] / d;
                if (k != std::nearbyint(k) || k < float(-half) || k > float(half - 1) || k * d != x[j]) {
                    found = false;
                } else {
                    codes[j] = uint8_t(int(k) + half);
                }
            }
            if (found)
                grid.scales[size_t(b)] = d;
        }
        if (!found)
            return std::nullopt;
    }
    return grid;
}

std::map<std::string, io::GgufQuantGrid> gridsFromProvenance(const model::CausalLM& model, io::GgufFileType type)
{
    std::map<std::string, io::GgufQuantGrid> grids;
    if (type != io::GgufFileType::Q4_0 && type != io::GgufFileType::Q8_0)
        return grids;
    const fs::path file = model.folder() / "sparselab.json";
    std::error_code ec;
    if (!fs::is_regular_file(file, ec))
        return grids;
    nlohmann::json provenance = readJsonFile(file);
    if (!provenance.is_object() || !provenance.contains("layers") || !provenance["layers"].is_array())
        return grids;
    return gridsFromLayerRecords(model, provenance["layers"], type, file);
}

std::map<std::string, io::GgufQuantGrid> gridsFromLayerRecords(const model::CausalLM& model, const nlohmann::json& layers,
                                                               io::GgufFileType type, const fs::path& file)
{
    std::map<std::string, io::GgufQuantGrid> grids;
    if ((type != io::GgufFileType::Q4_0 && type != io::GgufFileType::Q8_0) || !layers.is_array())
        return grids;
    std::map<std::string, torch::Tensor> weights;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const model::LinearLayer& layer : model.linears(b))
            weights[layer.name] = layer.weight;
    for (const auto& layer : layers) {
        if (!layer.is_object() || !layer.contains("quant") || !layer["quant"].is_object() || !layer.contains("name"))
            continue;
        const auto& q = layer["quant"];
        const int bits = q.value("bits", 16);
        const int64_t group = q.value("group", int64_t(0));
        const bool contiguous = group == 0 || group % 32 == 0;
        const bool permutedGroups = q.value("act_order", false) && !q.value("static_groups", false) && group > 0;
        if (!(q.value("sym", false) && q.value("fp16_scale", false) && bits >= 2 && bits <= 8 && contiguous
              && !permutedGroups))
            continue;
        const std::string name = layer["name"].get<std::string>() + ".weight";
        const auto it = weights.find(name);
        if (it == weights.end())
            throw inputError(file, "records a grid for '" + name + "', which the model does not have");
        const auto w = it->second.detach().to(torch::kCPU, torch::kFloat).contiguous();
        if (w.dim() != 2 || w.size(1) % 32 != 0)
            continue; // the writer keeps such a matrix F16 (documented fallback)
        const int target = bits <= 4 && type == io::GgufFileType::Q4_0 ? 4 : 8;
        auto grid = recoverBlockGrid(w.data_ptr<float>(), w.size(0), w.size(1), target);
        if (!grid)
            throw inputError(file, "records a " + std::to_string(bits) + "-bit symmetric fp16 grid for '" + name
                                       + "', but its weights are not on such a grid");
        grids.emplace(name, std::move(*grid));
    }
    return grids;
}

} // namespace sparselab::exporting
