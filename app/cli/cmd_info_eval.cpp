// `info` and `eval`: describe a model folder; measure perplexity on a text.
// Kept in one translation unit because both pull in LibTorch headers (slow to compile).

#include "commands.h"
#include "io/gguf_import.h"
#include "engine_options.h"

#include "eval/perplexity.h"
#include "model/causal_lm.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <torch/types.h>

#include <cmath>
#include <cstdio>
#include <iostream>

namespace sparselab::cli {

namespace fs = std::filesystem;

namespace {

fs::path modelArgument(const Args& args, const std::string& usage)
{
    if (args.positional().size() > 1)
        throw InputError("usage: " + usage);
    if (args.positional().empty())
        return bundledResource("models/stories260K-hf");
    return io::resolveModelPath(args.positional().front()); // a .gguf becomes a converted folder
}

std::string formatCount(int64_t n)
{
    // Built forwards rather than with std::string::insert, which trips GCC 12's -Wrestrict.
    const std::string digits = std::to_string(n);
    std::string grouped;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-')
            grouped.push_back(',');
        grouped.push_back(digits[i]);
    }
    return grouped;
}

} // namespace

int cmdInfo(const Args& args)
{
    const fs::path folder = modelArgument(args, "sparselab-cli info MODEL [--json]");
    applyThreadsOption(args);
    torch::NoGradGuard noGrad;
    const auto model = model::CausalLM::load(folder);
    const auto tokenizer = tokenize::loadTokenizer(folder);
    const auto& config = model->config();

    nlohmann::json layers = nlohmann::json::array();
    int64_t linearParams = 0;
    for (int64_t b = 0; b < model->numBlocks(); ++b)
        for (const auto& layer : model->linears(b)) {
            layers.push_back({{"name", layer.name},
                              {"kind", layer.kind},
                              {"block", b},
                              {"rows", layer.weight.size(0)},
                              {"cols", layer.weight.size(1)}});
            linearParams += layer.weight.numel();
        }

    if (args.flag("json")) {
        printJson({{"model", fs::absolute(folder).string()},
                   {"architecture", model::architectureName(config.architecture)},
                   {"model_type", config.modelType},
                   {"hidden_size", config.hiddenSize},
                   {"intermediate_size", config.intermediateSize},
                   {"blocks", config.numLayers},
                   {"heads", config.numHeads},
                   {"kv_heads", config.numKvHeads},
                   {"vocab_size", config.vocabSize},
                   {"max_positions", config.maxPositions},
                   {"parameters", model->parameterCount()},
                   {"linear_parameters", linearParams},
                   {"dtype", model->storedDtype()},
                   {"tokenizer", tokenizer->description()},
                   {"linear_layers", layers}});
        return 0;
    }
    std::printf("model         %s\n", fs::absolute(folder).c_str());
    std::printf("architecture  %s (%s)\n", model::architectureName(config.architecture).c_str(),
                config.modelType.c_str());
    std::printf("dimensions    hidden %lld, MLP %lld, %lld blocks, %lld heads (%lld KV), vocab %lld, "
                "max positions %lld\n",
                (long long)config.hiddenSize, (long long)config.intermediateSize, (long long)config.numLayers,
                (long long)config.numHeads, (long long)config.numKvHeads, (long long)config.vocabSize,
                (long long)config.maxPositions);
    std::printf("parameters    %s (%s in prunable linear layers)\n", formatCount(model->parameterCount()).c_str(),
                formatCount(linearParams).c_str());
    std::printf("dtype         %s\n", model->storedDtype().c_str());
    std::printf("tokenizer     %s\n", tokenizer->description().c_str());
    std::printf("linear layers %zu\n", layers.size());
    for (const auto& l : layers)
        std::printf("  %-48s %6lld x %-6lld\n", l["name"].get<std::string>().c_str(),
                    (long long)l["rows"].get<int64_t>(), (long long)l["cols"].get<int64_t>());
    return 0;
}

int cmdEval(const Args& args)
{
    const fs::path folder = modelArgument(args, "sparselab-cli eval MODEL --text FILE [--seqlen N] "
                                                "[--max-windows K] [--json]");
    const fs::path textFile = args.value("text") ? fs::path(*args.value("text"))
                                                 : bundledResource("text/tinystories_eval.txt");
    applyThreadsOption(args);
    const torch::Device device = deviceOption(args);
    torch::NoGradGuard noGrad;

    const auto config = model::ModelConfig::load(folder);
    eval::PerplexityParams params;
    params.seqlen = args.intOr("seqlen", 0, 2, 1 << 20);
    params.maxWindows = args.intOr("max-windows", 0, 0, int64_t(1) << 40);
    params.batchSize = args.intOr("batch", 8, 1, 4096);
    model::requireWindowFits(config, params.seqlen);

    const std::string text = readTextFile(textFile);
    if (text.empty())
        throw inputError(textFile, "the text is empty");
    const auto tokenizer = tokenize::loadTokenizer(folder);
    const auto model = model::CausalLM::load(folder, device);
    applyDefaultThreads(args, *model);
    const std::vector<int32_t> ids = tokenizer->encodeForModel(text, &interruptToken());
    const int64_t seqlen = params.seqlen > 0 ? params.seqlen : std::min<int64_t>(config.maxPositions, 2048);
    if (int64_t(ids.size()) < seqlen)
        throw inputError(textFile, "has " + std::to_string(ids.size())
                                       + " tokens, fewer than one window of " + std::to_string(seqlen));

    const bool quiet = args.flag("quiet");
    const auto result = eval::evaluatePerplexity(*model, ids, params, stderrProgress(quiet), &interruptToken());
    if (args.flag("json")) {
        printJson({{"perplexity", result.perplexity},
                   {"tokens", result.tokens},
                   {"windows", result.windows},
                   {"seqlen", result.seqlen},
                   {"seconds", result.seconds}});
    } else {
        std::printf("perplexity %.4f  (%lld windows of %lld tokens, %lld tokens in %s, %.1f s)\n",
                    result.perplexity, (long long)result.windows, (long long)result.seqlen,
                    (long long)result.tokens, textFile.filename().c_str(), result.seconds);
    }
    return 0;
}

} // namespace sparselab::cli
