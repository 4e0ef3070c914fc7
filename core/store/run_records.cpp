#include "store/run_records.h"

#include "io/mapped_file.h"

#include "eval/perplexity.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <torch/types.h>

#include <cstring>
#include <map>

namespace sparselab::store {

namespace fs = std::filesystem;

PackedMask zeroMask(const at::Tensor& weight)
{
    TORCH_CHECK(weight.dim() == 2, "zeroMask: weight must be [rows, cols]");
    const torch::Tensor zeros = weight.eq(0).to(torch::kCPU, torch::kUInt8).contiguous();
    return PackedMask::pack(zeros.data_ptr<uint8_t>(), weight.size(0), weight.size(1));
}

std::map<std::string, PackedMask> zeroMasks(const model::CausalLM& model)
{
    std::map<std::string, PackedMask> masks;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b)) {
            // A streamed model's finished blocks live in their spill files (stored dtype and
            // layout; zeros stay zeros in every float format), one layer in memory at a time.
            // The spill's pages are released once copied: read all at once they were the
            // whole pruned model resident again (1.9 GB of a TinyLlama-shaped run's 2.9 GB peak).
            if (const auto spilled = layer.weight.is_meta() ? model.finishedWeight(layer.name) : std::nullopt) {
                const at::Tensor w = model::toFloatTensor(*spilled);
                io::releaseMappedPages(spilled->data, spilled->nbytes);
                masks.emplace(pipeline::moduleName(layer.name), zeroMask(layer.storedTransposed ? w.t() : w));
                continue;
            }
            masks.emplace(pipeline::moduleName(layer.name), zeroMask(layer.weight));
        }
    return masks;
}

PerplexityRecord perplexityRecord(const eval::PerplexityResult& result)
{
    PerplexityRecord p;
    p.perplexity = result.perplexity;
    p.tokens = result.tokens;
    p.windows = result.windows;
    p.seqlen = result.seqlen;
    p.seconds = result.seconds;
    p.windowLoss = result.windowLoss;
    p.tokenNll = result.tokenNll;
    return p;
}

ModelIdentity modelIdentity(const model::CausalLM& model, const CancelToken* cancel)
{
    ModelIdentity m;
    const auto& config = model.config();
    m.path = fs::absolute(model.folder()).lexically_normal().string();
    m.architecture = model::architectureName(config.architecture);
    m.modelType = config.modelType;
    m.numBlocks = config.numLayers;
    m.hiddenSize = config.hiddenSize;
    m.vocabSize = config.vocabSize;
    m.parameters = model.parameterCount();
    m.dtype = model.storedDtype();
    std::error_code ec;
    if (fs::is_directory(model.folder(), ec)) {
        for (const auto& entry : fs::directory_iterator(model.folder()))
            if (entry.is_regular_file())
                m.fileSha256[entry.path().filename().string()] = sha256File(entry.path(), cancel);
    } else {
        m.fileSha256[model.folder().filename().string()] = sha256File(model.folder(), cancel);
    }
    return m;
}

BlockCheckpoint blockCheckpoint(const model::CausalLM& model, int64_t block,
                                const std::vector<solve::LayerRecord>& records)
{
    BlockCheckpoint checkpoint;
    checkpoint.block = block;
    checkpoint.layers = records;
    for (const auto& layer : model.linears(block)) {
        const torch::Tensor w = layer.weight.to(torch::kCPU, torch::kFloat).contiguous(); // [out, in]
        BlockCheckpoint::Weight weight;
        weight.name = layer.name;
        weight.rows = w.size(0);
        weight.cols = w.size(1);
        weight.values.assign(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
        checkpoint.weights.push_back(std::move(weight));
    }
    return checkpoint;
}

void restoreBlock(model::CausalLM& model, const BlockCheckpoint& checkpoint, const fs::path& source)
{
    if (checkpoint.block < 0 || checkpoint.block >= model.numBlocks())
        throw inputError(source, "block " + std::to_string(checkpoint.block) + " is outside the model");
    auto& layers = model.linears(checkpoint.block);
    if (checkpoint.weights.size() != layers.size())
        throw inputError(source, "holds " + std::to_string(checkpoint.weights.size()) + " weights, the block has "
                                     + std::to_string(layers.size()) + " linear layers");
    std::map<std::string, const BlockCheckpoint::Weight*> byName;
    for (const auto& w : checkpoint.weights)
        byName[w.name] = &w;
    for (auto& layer : layers) {
        const auto it = byName.find(layer.name);
        if (it == byName.end())
            throw inputError(source, "has no weight for " + layer.name);
        const auto& w = *it->second;
        if (w.rows != layer.weight.size(0) || w.cols != layer.weight.size(1)
            || int64_t(w.values.size()) != w.rows * w.cols)
            throw inputError(source, "weight " + layer.name + " has the wrong shape");
        const torch::Tensor values =
            torch::from_blob(const_cast<float*>(w.values.data()), {w.rows, w.cols}, torch::kFloat);
        layer.weight.copy_(values);
    }
}

} // namespace sparselab::store
