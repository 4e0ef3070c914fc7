// `prune`: calibrate, compress every linear layer per the plan, optionally evaluate before
// and after, and export a Hugging Face folder with provenance (sparselab.json).
// With --workspace W.h5 the run is recorded there (store/workspace.h), and every finished
// decoder block is checkpointed in W.h5.resume/ (store/resume.h): a prune killed mid-way
// continues from the last finished block when restarted with the same settings.
// Test hook: SPARSELAB_TEST_KILL_AFTER_BLOCK=k makes the process SIGKILL itself right after
// block k's checkpoint is written, SPARSELAB_TEST_INTERRUPT_AFTER_BLOCK=k sends it a SIGINT
// there (both used by tests/cli/test_cli_workspace.cpp).

#include "cli_plan.h"
#include "cli_workspace.h"
#include "commands.h"
#include "engine_options.h"

#include "data/calibration.h"
#include "eval/perplexity.h"
#include "export/hf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "store/resume.h"
#include "store/run_records.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
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
    const std::optional<fs::path> workspace = args.value("workspace")
                                                  ? std::optional<fs::path>(*args.value("workspace"))
                                                  : std::nullopt;
    const auto startedAt = std::chrono::steady_clock::now();
    const fs::path calibFile = *args.value("calib");
    // "newdir/" names the folder newdir (a trailing separator is not part of the name).
    fs::path outDir = *args.value("out");
    while (!outDir.empty() && !outDir.has_filename() && outDir.has_parent_path() && outDir != outDir.root_path())
        outDir = outDir.parent_path();
    if (outDir.empty())
        throw optionError("--out", "is empty: give the folder to write the compressed model to");
    const std::optional<fs::path> evalFile = args.value("eval") ? std::optional<fs::path>(*args.value("eval"))
                                                                : std::nullopt;
    const bool stream = args.flag("stream");
    if (stream && evalFile)
        throw optionError("--stream", "cannot be combined with --eval yet (evaluate the exported model instead)");
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
    model::requireWindowFits(config, calib.seqlen);
    // Memory: refuse before loading anything when the run cannot fit (--dry-run: show the plan).
    const auto memoryPlan = planForArgs(folder, args, calib.nsamples, calib.seqlen);
    if (args.flag("dry-run")) {
        printPlan(memoryPlan, args.flag("json"));
        if (!memoryPlan.fits())
            throw inputError(folder, memoryPlan.refusal());
        return 0;
    }
    if (!memoryPlan.fits())
        throw inputError(folder, memoryPlan.refusal() + " (see sparselab-cli plan)");
    pipeline::PruneParams params;
    params.recipe = recipeFromArgs(args);
    params.recipeSource = args.valueOr("recipe", "options");
    params.trueSequential = args.flag("true-sequential");
    params.hessianPrecision = solve::parseHessianPrecision(args.valueOr("hessian-dtype", "fp32"), "--hessian-dtype");
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
    auto model = model::CausalLM::load(folder, device, stream);
    std::optional<store::ModelIdentity> identity;
    if (workspace) {
        identity = store::modelIdentity(*model, &interruptToken()); // hashes every file of the folder
        checkWorkspaceFor(*workspace, *identity);
    }
    // The whole plan against the model's layers before any slow step (tokenizing, calibration).
    pipeline::validatePlan(*model, params);
    const auto calibIds = tokenizer->encodeForModel(calibText, &interruptToken());
    calib.vocabSize = model->config().vocabSize;
    const auto windows = data::sampleCalibrationWindows(calibIds, calib, calibFile);
    std::vector<int32_t> evalIds;
    eval::PerplexityParams evalParams;
    evalParams.seqlen = calib.seqlen;
    if (evalFile) {
        evalIds = tokenizer->encodeForModel(evalText, &interruptToken());
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
    // Resume: restore the finished blocks of an interrupted run with identical settings.
    std::optional<store::ResumeStore> resume;
    pipeline::BlockFinishedCallback blockFinished;
    if (workspace) {
        const json keySettings = {{"sparselab_version", SPARSELAB_VERSION},
                                  {"model_sha256", identity->fileSha256},
                                  {"calib_sha256", sha256Hex(calibText)},
                                  {"nsamples", calib.nsamples},
                                  {"seqlen", calib.seqlen},
                                  {"seed", calib.seed},
                                  {"recipe", params.recipe.toJson()},
                                  {"layer_filter", params.layerFilter},
                                  {"true_sequential", params.trueSequential},
                                  {"forward_batch", params.forwardBatch},
                                  {"device", device.str()},
                                  {"hessian_dtype", solve::hessianPrecisionName(params.hessianPrecision)},
                                  {"torch_threads", at::get_num_threads()}};
        resume.emplace(*workspace, store::resumeKey(keySettings.dump()));
        const int64_t finished = resume->finishedBlocks();
        if (finished == 0 && resume->hasCheckpoints()) {
            log("discarding the checkpoints in " + resume->folder().string() + " (made with other settings)");
            resume->clear();
        }
        for (int64_t b = 0; b < finished; ++b) {
            // The reports now; the weights when the pipeline has the block in memory (a
            // streamed model holds one block at a time).
            const auto checkpoint = resume->loadBlock(b);
            for (const auto& layer : checkpoint.layers)
                params.finishedLayers.push_back(store::layerReport(layer));
        }
        params.restoreFinishedBlock = [&](int64_t b) {
            store::restoreBlock(*model, resume->loadBlock(b), resume->blockFile(b));
        };
        params.startBlock = finished;
        if (finished > 0)
            log("resuming: " + std::to_string(finished) + " of " + std::to_string(model->numBlocks())
                + " blocks restored from " + resume->folder().string());
        const char* killHook = std::getenv("SPARSELAB_TEST_KILL_AFTER_BLOCK");
        const int64_t killAfter = killHook ? std::atoll(killHook) : -1;
        // Test hook, as the kill: a Ctrl-C (SIGINT) delivered right after block k's checkpoint.
        const char* interruptHook = std::getenv("SPARSELAB_TEST_INTERRUPT_AFTER_BLOCK");
        const int64_t interruptAfter = interruptHook ? std::atoll(interruptHook) : -1;
        blockFinished = [&, killAfter, interruptAfter](int64_t block, const std::vector<pipeline::LayerReport>& layers) {
            resume->saveBlock(store::blockCheckpoint(*model, block, layers));
            if (block == killAfter)
                std::raise(SIGKILL);
            if (block == interruptAfter)
                std::raise(SIGINT);
        };
    }
    const auto result = [&] {
        try {
            return pipeline::pruneModel(*model, windows, params, progress, &cancel, {}, log, {}, blockFinished);
        } catch (const CancelledError&) {
            const int64_t kept = resume ? resume->finishedBlocks() : 0;
            if (kept == 0)
                throw;
            // The checkpoints stay on purpose: the same command resumes from them.
            throw CancelledError("no model was written; " + std::to_string(kept) + " of "
                                 + std::to_string(model->numBlocks()) + " finished blocks are kept in "
                                 + resume->folder().string() + " and the same command resumes from them");
        }
    }();
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
                                         {"sha256", identity ? json(identity->fileSha256)
                                                             : exporting::hashModelFolder(folder, &interruptToken())}}},
        {"calibration",
         {{"file", fs::absolute(calibFile).string()},
          {"sha256", sha256Hex(calibText)},
          {"nsamples", calib.nsamples},
          {"seqlen", calib.seqlen},
          {"seed", calib.seed}}},
        {"recipe", params.recipe.toJson()},
        {"layer_filter", params.layerFilter},
        {"true_sequential", params.trueSequential},
        {"streamed", stream},
        {"hessian_dtype", solve::hessianPrecisionName(params.hessianPrecision)},
        {"linear_sparsity", result.linearSparsity()},
        {"prune_seconds", result.seconds},
        {"torch_threads", at::get_num_threads()},
        {"layers", layers},
    };
    if (!result.hessianDeviation.empty()) {
        json deviation = json::array();
        for (const auto& d : result.hessianDeviation)
            deviation.push_back({{"name", d.name},
                                 {"rel_frobenius", d.relFrobenius},
                                 {"rel_output_error_fp32_hessian", d.relOutputErrorFp32}});
        provenance["hessian_deviation_from_fp32"] = deviation;
    }
    if (evalFile) {
        provenance["evaluation"] = {{"file", fs::absolute(*evalFile).string()},
                                    {"sha256", sha256Hex(evalText)},
                                    {"seqlen", before->seqlen},
                                    {"windows", before->windows},
                                    {"perplexity_before", before->perplexity},
                                    {"perplexity_after", after->perplexity}};
    }
    const auto exportStarted = std::chrono::steady_clock::now();
    const auto summary = exporting::exportHuggingFaceFolder(*model, outDir, provenance, progress, &cancel);
    const auto seconds = [](auto since) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    };

    std::string runId;
    if (workspace) {
        store::RunRecord run;
        run.label = recipeLabel(params.recipe, params.recipeSource);
        run.kind = "prune";
        run.recipeJson = params.recipe.toJson().dump();
        run.layerFilter = params.layerFilter;
        run.trueSequential = params.trueSequential;
        run.linearSparsity = result.linearSparsity();
        run.exportPath = fs::absolute(outDir).string();
        run.sizeBytes = summary.bytes;
        run.calibration = store::CalibrationSettings{fs::absolute(calibFile).string(), sha256Hex(calibText),
                                                     int64_t(calibIds.size()), calib.nsamples, calib.seqlen,
                                                     calib.seed};
        if (evalFile) {
            run.evaluation = store::EvaluationSettings{fs::absolute(*evalFile).string(), sha256Hex(evalText),
                                                       int64_t(evalIds.size()), before->seqlen, 0};
            run.perplexityBefore = store::perplexityRecord(*before);
            run.perplexityAfter = store::perplexityRecord(*after);
            run.timings.evalSeconds = before->seconds + after->seconds;
        }
        for (const auto& r : result.layers)
            run.layers.push_back(store::layerRecord(r));
        run.masks = store::zeroMasks(*model);
        run.timings.pruneSeconds = result.seconds;
        run.timings.exportSeconds = seconds(exportStarted);
        run.timings.totalSeconds = seconds(startedAt);
        run.provenance = store::currentProvenance();
        run.provenance.threads = at::get_num_threads();
        run.provenance.device = device.str();
        store::updateWorkspaceSettings(*workspace, identity, run.calibration, run.evaluation);
        runId = store::appendRun(*workspace, run);
        resume->clear(); // recorded: the checkpoints have served their purpose
    }

    if (args.flag("json")) {
        json out = {{"out", fs::absolute(outDir).string()},
                    {"linear_sparsity", result.linearSparsity()},
                    {"seconds", result.seconds},
                    {"layers", layers}};
        if (provenance.contains("hessian_deviation_from_fp32"))
            out["hessian_deviation_from_fp32"] = provenance["hessian_deviation_from_fp32"];
        if (workspace) {
            out["workspace"] = fs::absolute(*workspace).string();
            out["run_id"] = runId;
        }
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
        if (workspace)
            std::printf("recorded %s in %s\n", runId.c_str(), workspace->c_str());
    }
    return 0;
}

} // namespace sparselab::cli
