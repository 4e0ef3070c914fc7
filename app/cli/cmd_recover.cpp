// `recover`: recovery (recovery/recovery.h) for a model pruned earlier — a folder written by
// `prune` or the workbench — with the dense model it came from as the teacher. Options in,
// windows drawn from the calibration text, workflow::prepareTeacher + recovery::recoverModel,
// the Hugging Face export with the pruned folder's sparselab.json plus a "recovery" section.
// Layers the pruned folder's sparselab.json records as quantized stay frozen.

#include "commands.h"
#include "engine_options.h"

#include "data/calibration.h"
#include "eval/perplexity.h"
#include "export/hf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "tokenize/tokenizer.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/json_file.h"
#include "util/sha256.h"
#include "workflow/compression_run.h"
#include "workflow/recovery_step.h"
#include "util/utc_time.h"

#include <torch/types.h>

#include <cstdio>
#include <limits>

namespace sparselab::cli {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> recoveryOptionNames()
{
    return {"recover", "recover-epochs", "recover-loss", "recover-lr", "recover-schedule", "recover-warmup", "recover-batch",
            "recover-seed", "recover-heldout", "recover-eval-every", "recover-patience"};
}

namespace {

// The pruned folder's sparselab.json, or an empty object when it has none (a folder pruned
// by another tool). A file that is there but unreadable or of the wrong shape is an error.
json prunedProvenance(const fs::path& folder)
{
    const fs::path file = folder / "sparselab.json";
    std::error_code ec;
    if (!fs::exists(file, ec))
        return json::object();
    json provenance = readJsonFile(file);
    if (!provenance.is_object())
        throw inputError(file, "is not a JSON object");
    if (provenance.contains("layers") && !provenance["layers"].is_array())
        throw inputError(file, "'layers' is not an array");
    return provenance;
}

// Layers the pruned run quantized ("bits" below 16): frozen during recovery.
std::set<std::string> frozenFromProvenance(const json& provenance, const fs::path& folder)
{
    std::set<std::string> names;
    if (!provenance.contains("layers"))
        return names;
    for (const auto& layer : provenance["layers"]) {
        if (!layer.is_object() || !layer.contains("name") || !layer["name"].is_string())
            throw inputError(folder / "sparselab.json", "a 'layers' entry has no name");
        const auto bits = layer.find("bits");
        if (bits != layer.end() && bits->is_number_integer() && bits->get<int64_t>() < 16)
            names.insert(layer["name"].get<std::string>() + ".weight");
    }
    return names;
}

// The dense model must be the one the pruned folder was made from: same architecture and shapes.
void requireSameShapes(const model::ModelConfig& dense, const model::ModelConfig& pruned, const fs::path& denseFolder,
                       const fs::path& prunedFolder)
{
    if (dense.architecture != pruned.architecture || dense.hiddenSize != pruned.hiddenSize
        || dense.numLayers != pruned.numLayers || dense.intermediateSize != pruned.intermediateSize
        || dense.vocabSize != pruned.vocabSize || dense.numHeads != pruned.numHeads
        || dense.numKvHeads != pruned.numKvHeads)
        throw inputError(denseFolder, "has another architecture or shape than " + prunedFolder.string()
                                          + " (give the dense model the folder was pruned from)");
}

} // namespace

int cmdRecover(const Args& args)
{
    const std::string usage = "sparselab-cli recover PRUNED_DIR --dense MODEL --calib FILE --out OUT_DIR --recover STEPS";
    args.requirePositional(1, usage);
    const fs::path prunedPath = args.positional().front();
    for (const char* required : {"dense", "calib", "out"})
        if (!args.value(required))
            throw optionError(std::string("--") + required, "is required (" + usage + ")");
    const fs::path densePath = *args.value("dense");
    const fs::path calibFile = *args.value("calib");
    const fs::path outDir = *args.value("out");
    applyThreadsOption(args);
    const torch::Device device = deviceOption(args);
    const bool quiet = args.flag("quiet");

    // Everything cheap first: the target, both folders, the pairing, the texts.
    exporting::checkExportTarget(prunedPath, outDir);
    exporting::checkExportTarget(densePath, outDir);
    const fs::path prunedFolder = io::resolveModelPath(prunedPath);
    const fs::path denseFolder = io::resolveModelPath(densePath);
    const auto prunedConfig = model::ModelConfig::load(prunedFolder);
    const auto denseConfig = model::ModelConfig::load(denseFolder);
    requireSameShapes(denseConfig, prunedConfig, denseFolder, prunedFolder);
    json provenance = prunedProvenance(prunedFolder);

    data::CalibrationParams calibration = calibrationFromArgs(args, denseConfig);
    calibration.vocabSize = denseConfig.vocabSize;
    recovery::RecoveryParams params = recoveryParamsFromArgs(args, calibration.nsamples, /*stepsRequired=*/true);
    params.frozenLayers = frozenFromProvenance(provenance, prunedFolder);
    const std::string calibText = workflow::readRunText(calibFile);
    std::string evalText;
    const auto evalFile = args.value("eval");
    if (evalFile)
        evalText = workflow::readRunText(*evalFile);

    torch::NoGradGuard noGrad;
    const auto tokenizer = tokenize::loadTokenizer(denseFolder);
    const std::vector<int32_t> calibIds = tokenizer->encodeForModel(calibText, &interruptToken());
    const data::CalibrationWindows windows = data::sampleCalibrationWindows(calibIds, calibration, calibFile);
    const data::CalibrationWindows heldOut =
        recovery::heldOutWindows(calibIds, windows, params.heldOutWindows, calibFile);
    std::vector<int32_t> evalIds;
    eval::PerplexityParams evalParams;
    evalParams.seqlen = calibration.seqlen;
    evalParams.maxWindows = args.intOr("eval-windows", 0, 0, std::numeric_limits<int64_t>::max());
    evalParams.keepTokenNll = false;
    if (evalFile)
        evalIds = tokenizer->encodeForModel(evalText, &interruptToken());

    const auto dense = model::CausalLM::load(denseFolder, device);
    const auto pruned = model::CausalLM::load(prunedFolder, device);
    applyDefaultThreads(args, *dense);
    const ProgressCallback progress = stderrProgress(quiet);
    std::optional<eval::PerplexityResult> denseEval, prunedEval, recoveredEval;
    if (evalFile) {
        denseEval = eval::evaluatePerplexity(*dense, evalIds, evalParams, progress, &interruptToken());
        prunedEval = eval::evaluatePerplexity(*pruned, evalIds, evalParams, progress, &interruptToken());
    }

    auto teacher = workflow::prepareTeacher(*dense, /*prunedInPlace=*/false, windows, params, &interruptToken());
    recovery::RecoveryObserver observer;
    observer.progress = progress;
    observer.cancel = &interruptToken();
    observer.log = [quiet](const std::string& line) {
        if (!quiet)
            std::fprintf(stderr, "\n%s\n", line.c_str());
    };
    const auto result = recovery::recoverModel(*pruned, teacher.signal, windows, heldOut, params, observer);
    throwIfCancelled(&interruptToken()); // a cancelled recovery writes nothing
    if (evalFile)
        recoveredEval = eval::evaluatePerplexity(*pruned, evalIds, evalParams, progress, &interruptToken());

    json section = workflow::recoveryJson(params, result,
                                          prunedEval ? std::optional<double>(prunedEval->perplexity) : std::nullopt);
    section["created_by"] = "sparselab-cli recover";
    section["created_utc"] = utcNow();
    section["dense_model"] = fs::absolute(denseFolder).string();
    section["pruned_model"] = fs::absolute(prunedFolder).string();
    section["calibration"] = {{"file", fs::absolute(calibFile).string()},
                              {"sha256", sha256Hex(calibText)},
                              {"tokens", int64_t(calibIds.size())},
                              {"nsamples", calibration.nsamples},
                              {"seqlen", calibration.seqlen},
                              {"seed", calibration.seed}};
    section["torch_threads"] = libraryThreads();
    section["device"] = device.str();
    if (evalFile)
        section["evaluation"] = {{"file", fs::absolute(*evalFile).string()},
                                 {"sha256", sha256Hex(evalText)},
                                 {"seqlen", evalParams.seqlen},
                                 {"windows", recoveredEval->windows},
                                 {"perplexity_dense", denseEval->perplexity},
                                 {"perplexity_pruned", prunedEval->perplexity},
                                 {"perplexity_recovered", recoveredEval->perplexity}};
    provenance["recovery"] = section;
    const auto summary = exporting::exportHuggingFaceFolder(*pruned, outDir, provenance, progress, &interruptToken());

    if (args.flag("json")) {
        json out = {{"out", fs::absolute(outDir).string()}, {"recovery", section}};
        printJson(out);
    } else {
        std::printf("recovered with %s distillation: %lld steps in %.1f s (stopped by %s); nonzero weights %lld "
                    "before, %lld after\n",
                    recovery::lossName(params.loss), (long long)result.stepsRun, result.seconds,
                    result.stoppedBy.c_str(), (long long)result.nonzeroBefore, (long long)result.nonzeroAfter);
        if (evalFile)
            std::printf("perplexity dense %.4f, pruned %.4f, recovered %.4f on %s (seqlen %lld)\n",
                        denseEval->perplexity, prunedEval->perplexity, recoveredEval->perplexity,
                        fs::path(*evalFile).filename().c_str(), (long long)evalParams.seqlen);
        std::printf("wrote %s (%lld files, %.1f MB)\n", outDir.c_str(), (long long)summary.files,
                    double(summary.bytes) / 1e6);
    }
    return 0;
}

} // namespace sparselab::cli
