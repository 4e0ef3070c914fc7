// `prune`: the CLI's adapter over the one compression run (workflow/compression_run.h):
// options in, the run, the Hugging Face export with its sparselab.json, the record.
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

#include "export/hf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "tokenize/tokenizer.h"
#include "util/errors.h"
#include "workflow/compression_run.h"

#include <torch/types.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <limits>

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

// Test hooks (see the top of this file): the block after whose checkpoint the process kills
// or interrupts itself, -1 when unset.
int64_t hookBlock(const char* variable)
{
    const char* value = std::getenv(variable);
    return value ? std::atoll(value) : -1;
}

// --out as given; "newdir/" names the folder newdir (a trailing separator is not part of the name).
fs::path outDirFromArgs(const Args& args)
{
    if (!args.value("out"))
        throw optionError("--out", "is required (the folder to write the compressed model to)");
    fs::path outDir = *args.value("out");
    while (!outDir.empty() && !outDir.has_filename() && outDir.has_parent_path() && outDir != outDir.root_path())
        outDir = outDir.parent_path();
    if (outDir.empty())
        throw optionError("--out", "is empty: give the folder to write the compressed model to");
    return outDir;
}

// The run's spec from the options that need no model: texts, evaluation, workspace, device.
workflow::CompressionSpec specFromArgs(const Args& args, const fs::path& modelPath, const torch::Device& device)
{
    workflow::CompressionSpec spec;
    spec.source = modelPath;
    spec.calibrationFile = *args.value("calib");
    if (const auto eval = args.value("eval"))
        spec.evaluationFile = fs::path(*eval);
    spec.evaluation.maxWindows = args.intOr("eval-windows", 0, 0, std::numeric_limits<int64_t>::max());
    spec.streamed = args.flag("stream");
    if (spec.streamed && spec.evaluationFile)
        throw optionError("--stream", "cannot be combined with --eval yet (evaluate the exported model instead)");
    if (const auto workspace = args.value("workspace"))
        spec.workspace = fs::path(*workspace);
    spec.device = device.str();
    spec.createdBy = "sparselab-cli prune";
    if (const auto name = args.value("name"))
        spec.label = *name;
    return spec;
}

// The plan and solver options (after the memory check: they need no model either).
void addPlanFromArgs(const Args& args, workflow::CompressionSpec& spec)
{
    spec.prune.recipe = recipeFromArgs(args);
    spec.prune.recipeSource = args.valueOr("recipe", "options");
    spec.prune.trueSequential = args.flag("true-sequential");
    spec.prune.hessianPrecision =
        solve::parseHessianPrecision(args.valueOr("hessian-dtype", "fp32"), "--hessian-dtype");
    if (const auto layers = args.value("layers"))
        spec.prune.layerFilter = splitList(*layers);
    spec.recovery = recoveryParamsFromArgs(args, spec.calibration.nsamples);
    if (spec.recovery.enabled() && spec.streamed && spec.recovery.loss == recovery::RecoveryLoss::LogitKl)
        throw optionError("--recover-loss", "kl needs the whole model in memory; use --recover-loss block with --stream");
}

// Progress on stderr (unless --quiet), Ctrl-C cancels, and the test hooks.
workflow::RunObserver terminalObserver(bool quiet)
{
    workflow::RunObserver observer;
    observer.prune.progress = stderrProgress(quiet);
    observer.prune.cancel = &interruptToken();
    observer.prune.log = [quiet](const std::string& line) {
        if (!quiet)
            std::fprintf(stderr, "\n%s\n", line.c_str());
    };
    observer.onPhaseProgress = [progress = observer.prune.progress](workflow::RunPhase phase, const Progress& p) {
        if (progress && phase != workflow::RunPhase::Pruning && phase != workflow::RunPhase::Tokenizing)
            progress(p);
    };
    const int64_t killAfter = hookBlock("SPARSELAB_TEST_KILL_AFTER_BLOCK");
    const int64_t interruptAfter = hookBlock("SPARSELAB_TEST_INTERRUPT_AFTER_BLOCK");
    observer.afterCheckpoint = [killAfter, interruptAfter](int64_t block, const std::vector<solve::LayerRecord>&) {
        if (block == killAfter)
            std::raise(SIGKILL);
        if (block == interruptAfter)
            std::raise(SIGINT);
    };
    return observer;
}

// What the run did, as --json or as lines for a person.
void printOutcome(const Args& args, const workflow::CompressionSpec& spec, const workflow::CompressionOutcome& outcome,
                  const fs::path& outDir, const exporting::ExportSummary& summary, double exportSeconds,
                  const std::string& runId)
{
    const auto& run = outcome.record;
    const pipeline::PrunePhaseSeconds& phases = outcome.prune.phases;
    if (args.flag("json")) {
        json out = {{"out", fs::absolute(outDir).string()},
                    {"linear_sparsity", run.linearSparsity},
                    {"seconds", run.timings.pruneSeconds},
                    {"phase_seconds",
                     {{"block_io", phases.blockIo},
                      {"forward", phases.forward},
                      {"hessian", phases.hessian},
                      {"solve", phases.solve},
                      {"evaluation", run.timings.evalSeconds},
                      {"export", exportSeconds}}},
                    {"layers", outcome.provenance["layers"]}};
        if (outcome.provenance.contains("hessian_deviation_from_fp32"))
            out["hessian_deviation_from_fp32"] = outcome.provenance["hessian_deviation_from_fp32"];
        if (spec.workspace) {
            out["workspace"] = fs::absolute(*spec.workspace).string();
            out["run_id"] = runId;
        }
        if (run.perplexityBefore && run.perplexityAfter) {
            out["perplexity_before"] = run.perplexityBefore->perplexity;
            out["perplexity_after"] = run.perplexityAfter->perplexity;
        }
        if (outcome.provenance.contains("recovery"))
            out["recovery"] = outcome.provenance["recovery"];
        printJson(out);
        return;
    }
    std::printf("pruned %zu linear layers in %.1f s; linear-layer sparsity %.4f\n", run.layers.size(),
                run.timings.pruneSeconds, run.linearSparsity);
    std::printf("time: forward passes %.1f s, Hessians %.1f s, solves %.1f s, block I/O %.1f s, evaluation "
                "%.1f s, export %.1f s\n",
                phases.forward, phases.hessian, phases.solve, phases.blockIo, run.timings.evalSeconds, exportSeconds);
    if (outcome.recovery)
        std::printf("recovered with %s distillation: %lld steps in %.1f s (stopped by %s); nonzero weights "
                    "%lld before, %lld after\n",
                    recovery::lossName(spec.recovery.loss), (long long)outcome.recovery->stepsRun,
                    outcome.recovery->seconds, outcome.recovery->stoppedBy.c_str(),
                    (long long)outcome.recovery->nonzeroBefore, (long long)outcome.recovery->nonzeroAfter);
    if (run.perplexityBefore && run.perplexityAfter && outcome.pruned)
        std::printf("perplexity %.4f -> %.4f pruned -> %.4f recovered on %s (seqlen %lld)\n",
                    run.perplexityBefore->perplexity, outcome.pruned->perplexity, run.perplexityAfter->perplexity,
                    spec.evaluationFile->filename().c_str(), (long long)run.perplexityAfter->seqlen);
    else if (run.perplexityBefore && run.perplexityAfter)
        std::printf("perplexity %.4f -> %.4f on %s (seqlen %lld)\n", run.perplexityBefore->perplexity,
                    run.perplexityAfter->perplexity, spec.evaluationFile->filename().c_str(),
                    (long long)run.perplexityAfter->seqlen);
    std::printf("wrote %s (%lld files, %.1f MB)\n", outDir.c_str(), (long long)summary.files,
                double(summary.bytes) / 1e6);
    if (spec.workspace)
        std::printf("recorded %s in %s\n", runId.c_str(), spec.workspace->c_str());
}

} // namespace

int cmdPrune(const Args& args)
{
    const std::string usage = "sparselab-cli prune MODEL --calib FILE --out OUT_DIR [options]";
    args.requirePositional(1, usage);
    const fs::path modelPath = args.positional().front();
    if (!args.value("calib"))
        throw optionError("--calib", "is required (the calibration text file)");
    const fs::path outDir = outDirFromArgs(args);
    applyThreadsOption(args);
    workflow::CompressionSpec spec = specFromArgs(args, modelPath, deviceOption(args));

    // Validate everything cheap before any heavy work, so bad input fails fast and writes nothing.
    exporting::checkExportTarget(modelPath, outDir);
    const fs::path folder = io::resolveModelPath(modelPath); // a .gguf becomes a converted folder
    const auto config = model::ModelConfig::load(folder);
    spec.calibration = calibrationFromArgs(args, config);
    // Memory: refuse before loading anything when the run cannot fit (--dry-run: show the plan).
    const auto memoryPlan = planForArgs(folder, args, spec.calibration.nsamples, spec.calibration.seqlen);
    if (args.flag("dry-run")) {
        printPlan(memoryPlan, args.flag("json"));
        if (!memoryPlan.fits())
            throw inputError(folder, memoryPlan.refusal());
        return 0;
    }
    if (!memoryPlan.fits())
        throw inputError(folder, memoryPlan.refusal() + " (see sparselab-cli plan)");
    addPlanFromArgs(args, spec);

    torch::NoGradGuard noGrad;
    const auto tokenizer = tokenize::loadTokenizer(folder);
    auto model = model::CausalLM::load(folder, torch::Device(spec.device), spec.streamed);
    applyDefaultThreads(args, *model);
    const workflow::RunObserver observer = terminalObserver(args.flag("quiet"));
    auto outcome = workflow::runCompression(*model, *tokenizer, spec, observer);
    const auto exportStarted = std::chrono::steady_clock::now();
    const auto summary = exporting::exportHuggingFaceFolder(*model, outDir, outcome.provenance,
                                                            observer.prune.progress, &interruptToken());
    const double exportSeconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - exportStarted).count();
    const std::string runId =
        workflow::recordRun(spec, outcome, fs::absolute(outDir).string(), int64_t(summary.bytes), exportSeconds);
    printOutcome(args, spec, outcome, outDir, summary, exportSeconds, runId);
    return 0;
}

} // namespace sparselab::cli
