// `prune`: calibrate, compress every linear layer per the plan, optionally evaluate before
// and after, and export a Hugging Face folder with provenance (sparselab.json).

#include "commands.h"
#include "engine_options.h"

#include "data/calibration.h"
#include "eval/perplexity.h"
#include "export/hf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <cstdio>
#include <ctime>
#include <sstream>

namespace sparselab::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The plan: --recipe file, with command-line options as the defaults it starts from.
pipeline::Recipe recipeFromArgs(const Args& args)
{
    pipeline::Recipe recipe;
    if (const auto file = args.value("recipe"))
        recipe = pipeline::Recipe::load(*file);
    recipe.defaults.options = solverOptionsFromArgs(args, recipe.defaults.options, &recipe.defaults.dense);
    return recipe;
}

std::vector<std::string> splitList(const std::string& text)
{
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, ','))
        if (!part.empty())
            parts.push_back(part);
    return parts;
}

json layerJson(const pipeline::LayerReport& r)
{
    return {{"name", r.name},
            {"block", r.block},
            {"rows", r.rows},
            {"cols", r.cols},
            {"method", r.dense ? std::string("dense") : solve::methodName(r.options.method)},
            {"target_sparsity", r.dense ? 0.0 : (r.options.structured() ? double(r.options.nmN) / r.options.nmM
                                                                         : r.options.sparsity)},
            {"nm", r.options.structured() ? json(std::to_string(r.options.nmN) + ":" + std::to_string(r.options.nmM))
                                          : json(nullptr)},
            {"bits", r.dense ? 16 : r.options.quant.bits},
            {"quant", pipeline::quantGridJson(r.options, r.dense)},
            {"sparsity", r.stats.sparsity},
            {"loss", r.stats.loss},
            {"rel_output_error", r.stats.relOutputError},
            {"damp_used", r.stats.dampUsed},
            {"damp_raises", r.stats.dampRaises},
            {"dead_inputs", r.stats.deadInputs},
            {"seconds", r.stats.seconds}};
}

std::string utcNow()
{
    const std::time_t now = std::time(nullptr);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    return buffer;
}

} // namespace

int cmdPrune(const Args& args)
{
    const std::string usage = "sparselab-cli prune MODEL --calib FILE --out OUT_DIR [options]";
    args.requirePositional(1, usage);
    const fs::path modelPath = args.positional().front();
    if (!args.value("calib"))
        throw optionError("--calib", "is required (the calibration text file)");
    if (!args.value("out"))
        throw optionError("--out", "is required (the folder to write the compressed model to)");
    if (args.value("workspace"))
        throw optionError("--workspace", "workspaces are not supported by this version yet");
    const fs::path calibFile = *args.value("calib");
    const fs::path outDir = *args.value("out");
    const std::optional<fs::path> evalFile = args.value("eval") ? std::optional<fs::path>(*args.value("eval"))
                                                                : std::nullopt;
    applyThreadsOption(args);
    const torch::Device device = deviceOption(args);
    const bool quiet = args.flag("quiet");

    // Validate everything cheap before any heavy work, so bad input fails fast and writes nothing.
    const bool fromGguf = io::isGgufFile(modelPath);
    exporting::checkExportTarget(modelPath, outDir);
    const fs::path folder = io::resolveModelPath(modelPath); // a .gguf becomes a converted folder
    const auto config = model::ModelConfig::load(folder);
    data::CalibrationParams calib;
    calib.nsamples = args.intOr("nsamples", 128, 1, 1 << 20);
    calib.seqlen = args.intOr("seqlen", std::min<int64_t>(2048, config.maxPositions), 2, 1 << 20);
    calib.seed = uint64_t(args.intOr("seed", 0, 0, std::numeric_limits<int64_t>::max()));
    if (calib.seqlen > config.maxPositions)
        throw optionError("--seqlen", std::to_string(calib.seqlen) + " exceeds the model's maximum of "
                                          + std::to_string(config.maxPositions) + " positions");
    pipeline::PruneParams params;
    params.recipe = recipeFromArgs(args);
    params.recipeSource = args.valueOr("recipe", "options");
    params.trueSequential = args.flag("true-sequential");
    if (const auto layers = args.value("layers"))
        params.layerFilter = splitList(*layers);

    const std::string calibText = readTextFile(calibFile);
    if (calibText.empty())
        throw inputError(calibFile, "the text is empty");
    std::string evalText;
    if (evalFile) {
        evalText = readTextFile(*evalFile);
        if (evalText.empty())
            throw inputError(*evalFile, "the text is empty");
    }

    torch::NoGradGuard noGrad;
    const auto tokenizer = tokenize::loadTokenizer(folder);
    auto model = model::CausalLM::load(folder, device);
    // The whole plan against the model's layers before any slow step (tokenizing, calibration).
    pipeline::validatePlan(*model, params);
    const auto calibIds = tokenizer->encodeForModel(calibText);
    const auto windows = data::sampleCalibrationWindows(calibIds, calib, calibFile);
    std::vector<int32_t> evalIds;
    eval::PerplexityParams evalParams;
    evalParams.seqlen = calib.seqlen;
    if (evalFile) {
        evalIds = tokenizer->encodeForModel(evalText);
        if (int64_t(evalIds.size()) < calib.seqlen)
            throw inputError(*evalFile, "has " + std::to_string(evalIds.size()) + " tokens, fewer than one window of "
                                            + std::to_string(calib.seqlen));
    }

    const auto progress = stderrProgress(quiet);
    CancelToken& cancel = interruptToken();
    std::optional<eval::PerplexityResult> before, after;
    if (evalFile)
        before = eval::evaluatePerplexity(*model, evalIds, evalParams, progress, &cancel);

    const auto log = [quiet](const std::string& line) {
        if (!quiet)
            std::fprintf(stderr, "\n%s\n", line.c_str());
    };
    const auto result = pipeline::pruneModel(*model, windows, params, progress, &cancel, {}, log);
    if (evalFile)
        after = eval::evaluatePerplexity(*model, evalIds, evalParams, progress, &cancel);

    json layers = json::array();
    for (const auto& r : result.layers)
        layers.push_back(layerJson(r));
    json provenance = {
        {"sparselab_version", SPARSELAB_VERSION},
        {"created_utc", utcNow()},
        {"source_model", fromGguf ? json{{"gguf", fs::absolute(modelPath).string()},
                                         {"sha256", sha256File(modelPath)}}
                                  : json{{"folder", fs::absolute(folder).string()},
                                         {"sha256", exporting::hashModelFolder(folder)}}},
        {"calibration",
         {{"file", fs::absolute(calibFile).string()},
          {"sha256", sha256Hex(calibText)},
          {"nsamples", calib.nsamples},
          {"seqlen", calib.seqlen},
          {"seed", calib.seed}}},
        {"recipe", params.recipe.toJson()},
        {"layer_filter", params.layerFilter},
        {"true_sequential", params.trueSequential},
        {"linear_sparsity", result.linearSparsity()},
        {"prune_seconds", result.seconds},
        {"torch_threads", at::get_num_threads()},
        {"layers", layers},
    };
    if (evalFile) {
        provenance["evaluation"] = {{"file", fs::absolute(*evalFile).string()},
                                    {"sha256", sha256Hex(evalText)},
                                    {"seqlen", before->seqlen},
                                    {"windows", before->windows},
                                    {"perplexity_before", before->perplexity},
                                    {"perplexity_after", after->perplexity}};
    }
    const auto summary = exporting::exportHuggingFaceFolder(*model, outDir, provenance, progress, &cancel);

    if (args.flag("json")) {
        json out = {{"out", fs::absolute(outDir).string()},
                    {"linear_sparsity", result.linearSparsity()},
                    {"seconds", result.seconds},
                    {"layers", layers}};
        if (evalFile) {
            out["perplexity_before"] = before->perplexity;
            out["perplexity_after"] = after->perplexity;
        }
        printJson(out);
    } else {
        std::printf("pruned %zu linear layers in %.1f s; linear-layer sparsity %.4f\n", result.layers.size(),
                    result.seconds, result.linearSparsity());
        if (evalFile)
            std::printf("perplexity %.4f -> %.4f on %s (seqlen %lld)\n", before->perplexity, after->perplexity,
                        evalFile->filename().c_str(), (long long)calib.seqlen);
        std::printf("wrote %s (%lld files, %.1f MB)\n", outDir.c_str(), (long long)summary.files,
                    double(summary.bytes) / 1e6);
    }
    return 0;
}

} // namespace sparselab::cli
