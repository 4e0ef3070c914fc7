#include "workflow/compression_run.h"

#include "export/hf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "pipeline/layer_record_json.h"
#include "store/resume.h"
#include "store/run_records.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/sha256.h"
#include "workflow/recovery_step.h"
#include "util/utc_time.h"

#include <chrono>
#include <sstream>

namespace sparselab::workflow {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double steadySeconds()
{
    return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

// Everything that determines a prune's result, as the resume key hashes it.
std::string resumeSettings(const CompressionSpec& spec, const store::ModelIdentity& identity,
                           const std::string& calibrationSha256)
{
    const json settings = {{"sparselab_version", SPARSELAB_VERSION},
                           {"model_sha256", identity.fileSha256},
                           {"calib_sha256", calibrationSha256},
                           {"nsamples", spec.calibration.nsamples},
                           {"seqlen", spec.calibration.seqlen},
                           {"seed", spec.calibration.seed},
                           {"recipe", spec.prune.recipe.toJson()},
                           {"layer_filter", spec.prune.layerFilter},
                           {"true_sequential", spec.prune.trueSequential},
                           {"forward_batch", spec.prune.forwardBatch},
                           {"device", spec.device},
                           {"hessian_dtype", solve::hessianPrecisionName(spec.prune.hessianPrecision)},
                           {"torch_threads", libraryThreads()},
                           {"kernel_threads", kernelThreads()}};
    return settings.dump();
}

// The `source_model` entry: the .gguf the model came from, or its folder's files.
json sourceModelJson(const CompressionSpec& spec, const model::CausalLM& model,
                     const std::optional<store::ModelIdentity>& identity, const CancelToken* cancel)
{
    const fs::path source = spec.source.empty() ? model.folder() : spec.source;
    if (io::isGgufFile(source))
        return {{"gguf", fs::absolute(source).string()}, {"sha256", sha256File(source, cancel)}};
    return {{"folder", fs::absolute(model.folder()).string()},
            {"sha256", identity ? json(identity->fileSha256) : exporting::hashModelFolder(model.folder(), cancel)}};
}

// sparselab.json: the one place its fields are written.
json provenanceJson(const CompressionSpec& spec, const CompressionOutcome& outcome, json sourceModel)
{
    const store::RunRecord& run = outcome.record;
    json layers = json::array();
    for (const auto& layer : run.layers)
        layers.push_back(pipeline::layerRecordJson(layer));
    json provenance = {
        {"sparselab_version", SPARSELAB_VERSION},
        {"created_utc", run.createdUtc},
        {"created_by", spec.createdBy},
        {"run_name", run.label},
        {"source_model", std::move(sourceModel)},
        {"calibration",
         {{"file", run.calibration->file},
          {"sha256", run.calibration->sha256},
          {"tokens", run.calibration->tokens},
          {"nsamples", run.calibration->nsamples},
          {"seqlen", run.calibration->seqlen},
          {"seed", run.calibration->seed}}},
        {"recipe", spec.prune.recipe.toJson()},
        {"layer_filter", spec.prune.layerFilter},
        {"true_sequential", spec.prune.trueSequential},
        {"streamed", spec.streamed},
        {"device", spec.device},
        {"hessian_dtype", solve::hessianPrecisionName(spec.prune.hessianPrecision)},
        {"linear_sparsity", run.linearSparsity},
        {"prune_seconds", run.timings.pruneSeconds},
        {"torch_threads", run.provenance.threads},
        {"kernel_threads", run.provenance.kernelThreads},
        {"cpu_kernels", run.provenance.cpuKernels},
        {"layers", layers},
    };
    if (!outcome.prune.hessianDeviation.empty()) {
        json deviation = json::array();
        for (const auto& d : outcome.prune.hessianDeviation)
            deviation.push_back({{"name", d.name},
                                 {"rel_frobenius", d.relFrobenius},
                                 {"rel_output_error_fp32_hessian", d.relOutputErrorFp32}});
        provenance["hessian_deviation_from_fp32"] = deviation;
    }
    if (outcome.recovery)
        provenance["recovery"] = recoveryJson(outcome.recoveryParams, *outcome.recovery,
                                              outcome.pruned ? std::optional<double>(outcome.pruned->perplexity)
                                                             : std::nullopt);
    if (run.evaluation && run.perplexityBefore && run.perplexityAfter) {
        provenance["evaluation"] = {{"file", run.evaluation->file},
                                    {"sha256", run.evaluation->sha256},
                                    {"tokens", run.evaluation->tokens},
                                    {"seqlen", run.perplexityAfter->seqlen},
                                    {"windows", run.perplexityAfter->windows},
                                    {"max_windows", run.evaluation->maxWindows},
                                    {"perplexity_before", run.perplexityBefore->perplexity},
                                    {"perplexity_after", run.perplexityAfter->perplexity}};
    }
    return provenance;
}

} // namespace

std::string readRunText(const fs::path& file)
{
    std::string text = readTextFile(file);
    if (text.find_first_not_of(" \t\r\n\v\f") == std::string::npos)
        throw inputError(file, "the text is empty");
    return text;
}

std::string recipeLabel(const pipeline::Recipe& recipe, const std::string& source)
{
    if (!recipe.rules.empty())
        return "recipe " + fs::path(source).filename().string();
    const auto& plan = recipe.defaults;
    if (plan.dense)
        return "dense";
    std::ostringstream label;
    label << solve::methodName(plan.options.method) << ' ';
    if (plan.options.structured())
        label << plan.options.nmN << ':' << plan.options.nmM;
    else
        label << plan.options.sparsity * 100 << '%';
    if (plan.options.quant.enabled())
        label << ' ' << plan.options.quant.bits << "-bit";
    return label.str();
}

void checkWorkspaceFor(const fs::path& file, const store::ModelIdentity& model)
{
    std::error_code ec;
    if (!fs::exists(file, ec))
        return;
    const auto contents = store::loadWorkspace(file, {false, false}); // InputError on a bad file
    if (!contents.model)
        return;
    if (contents.model->fileSha256 != model.fileSha256)
        throw inputError(file, "records model " + contents.model->path
                                   + " whose files differ from this model's; use another workspace file");
}

CompressionOutcome runCompression(model::CausalLM& model, const tokenize::Tokenizer& tokenizer,
                                  const CompressionSpec& spec, const RunObserver& observer,
                                  const model::CausalLM* denseBeside)
{
    const auto started = Clock::now();
    const CancelToken* cancel = observer.prune.cancel;
    const auto log = [&](const std::string& line) {
        if (observer.prune.log)
            observer.prune.log(line);
    };
    const auto phase = [&](RunPhase p, const RunFacts& facts) {
        if (observer.onPhase)
            observer.onPhase(p, facts);
    };
    CompressionOutcome outcome;
    outcome.startedAtSeconds = steadySeconds();
    store::RunRecord& run = outcome.record;
    RunFacts& facts = outcome.facts;

    // The texts, hashed as read: what the run used is what gets recorded.
    const std::string calibText = readRunText(spec.calibrationFile);
    const std::string calibSha256 = sha256Hex(calibText); // once: the resume key and the record
    std::string evalText;
    if (spec.evaluationFile)
        evalText = readRunText(*spec.evaluationFile);
    facts.calibrationBytes = int64_t(calibText.size());
    facts.evaluationBytes = int64_t(evalText.size());

    if (spec.workspace || spec.checkpointFolder)
        outcome.identity = store::modelIdentity(model, cancel); // hashes every file of the folder
    if (spec.workspace)
        checkWorkspaceFor(*spec.workspace, *outcome.identity);
    // The whole plan against the model's layers before any slow step.
    pipeline::validatePlan(model, spec.prune);

    phase(RunPhase::Tokenizing, facts);
    const std::vector<int32_t> calibIds = tokenizer.encodeForModel(calibText, cancel);
    data::CalibrationParams calibration = spec.calibration;
    calibration.vocabSize = model.config().vocabSize;
    const data::CalibrationWindows windows = data::sampleCalibrationWindows(calibIds, calibration, spec.calibrationFile);
    facts.calibrationTokens = int64_t(calibIds.size());
    log("calibration: " + std::to_string(calibration.nsamples) + " windows x " + std::to_string(calibration.seqlen)
        + " tokens from " + spec.calibrationFile.filename().string() + " (" + std::to_string(calibIds.size())
        + " tokens), seed " + std::to_string(calibration.seed));
    if (observer.onPhaseProgress)
        observer.onPhaseProgress(RunPhase::Tokenizing, Progress{"tokenizing", "", 1, 1});

    eval::PerplexityParams evalParams = spec.evaluation;
    if (evalParams.seqlen <= 0)
        evalParams.seqlen = calibration.seqlen;
    std::vector<int32_t> evalIds;
    const auto tokenizeEvaluation = [&] {
        if (!spec.evaluationFile || !evalIds.empty())
            return;
        evalIds = tokenizer.encodeForModel(evalText, cancel);
        throwIfCancelled(cancel);
        if (int64_t(evalIds.size()) < evalParams.seqlen)
            throw inputError(*spec.evaluationFile, "has " + std::to_string(evalIds.size())
                                                       + " tokens, fewer than one window of "
                                                       + std::to_string(evalParams.seqlen));
        facts.evaluationTokens = int64_t(evalIds.size());
    };
    const auto evaluate = [&](const model::CausalLM& m, RunPhase p) {
        phase(p, facts);
        tokenizeEvaluation();
        ProgressCallback progress;
        if (observer.onPhaseProgress)
            progress = [&observer, p](const Progress& update) { observer.onPhaseProgress(p, update); };
        return eval::evaluatePerplexity(m, evalIds, evalParams, progress, cancel);
    };
    // Without a dense copy beside, the dense model is measured now, before it is pruned in
    // place; a text too short for one window fails here, before the solver.
    if (spec.evaluationFile && !denseBeside) {
        tokenizeEvaluation();
        if (!spec.knownBefore)
            outcome.before = evaluate(model, RunPhase::PerplexityBefore);
    }
    throwIfCancelled(cancel);

    // Recovery needs the dense model's signal, taken while the model is still dense, and its
    // held-out windows (checked now, before the solver).
    std::optional<PreparedTeacher> teacher;
    data::CalibrationWindows heldOut;
    if (spec.recovery.enabled()) {
        spec.recovery.validate();
        if (spec.recovery.loss == recovery::RecoveryLoss::LogitKl && model.streamed())
            throw optionError("--recover-loss", "kl needs the whole model in memory; use --recover-loss block with --stream");
        heldOut = recovery::heldOutWindows(calibIds, windows, spec.recovery.heldOutWindows, spec.calibrationFile);
        log("recovery: " + std::string(recovery::lossName(spec.recovery.loss)) + " loss, "
            + std::to_string(spec.recovery.steps) + " steps; " + std::to_string(heldOut.nsamples)
            + " held-out windows from " + spec.calibrationFile.filename().string());
        teacher = prepareTeacher(denseBeside ? *denseBeside : model, denseBeside == nullptr, windows, spec.recovery,
                                 cancel);
    }

    // Resume: the finished blocks of an interrupted run with identical settings.
    pipeline::PruneParams params = spec.prune;
    pipeline::PruneObserver pruneObserver = observer.prune;
    std::optional<store::ResumeStore> resume;
    if (spec.workspace || spec.checkpointFolder) {
        const std::string key = store::resumeKey(resumeSettings(spec, *outcome.identity, calibSha256));
        if (spec.checkpointFolder)
            resume.emplace(store::ResumeStore::inFolder(*spec.checkpointFolder, key));
        else
            resume.emplace(*spec.workspace, key);
        const int64_t finished = resume->finishedBlocks();
        if (finished == 0 && resume->hasCheckpoints()) {
            log("discarding the checkpoints in " + resume->folder().string() + " (made with other settings)");
            resume->clear();
        }
        for (int64_t b = 0; b < finished; ++b) {
            // The records now; the weights when the pipeline has the block in memory (a
            // streamed model holds one block at a time).
            const auto layers = resume->loadBlock(b).layers;
            params.finishedLayers.insert(params.finishedLayers.end(), layers.begin(), layers.end());
        }
        params.restoreFinishedBlock = [&resume, &model](int64_t b) {
            store::restoreBlock(model, resume->loadBlock(b), resume->blockFile(b));
        };
        params.startBlock = finished;
        if (finished > 0)
            log("resuming: " + std::to_string(finished) + " of " + std::to_string(model.numBlocks())
                + " blocks restored from " + resume->folder().string());
    }
    pruneObserver.onBlockFinished = [&](int64_t block, const std::vector<solve::LayerRecord>& layers) {
        if (observer.prune.onBlockFinished)
            observer.prune.onBlockFinished(block, layers);
        if (resume) {
            try {
                resume->saveBlock(store::blockCheckpoint(model, block, layers));
            } catch (const InputError& e) {
                // Asked for with a workspace: an error. The workbench's own checkpoints are a
                // convenience: a full cache disk (or another window clearing the folder) must
                // not end a long run, which goes on without them.
                if (!spec.checkpointFolder)
                    throw;
                log(std::string("resume checkpoints stopped: ") + e.what());
                resume.reset();
            }
        }
        if (observer.afterCheckpoint)
            observer.afterCheckpoint(block, layers);
    };

    phase(RunPhase::Pruning, facts);
    try {
        outcome.prune = pipeline::pruneModel(model, windows, params, pruneObserver);
    } catch (const CancelledError&) {
        const int64_t kept = resume ? resume->finishedBlocks() : 0;
        if (kept == 0)
            throw;
        // The checkpoints stay on purpose: the same run resumes from them.
        throw CancelledError("no model was written; " + std::to_string(kept) + " of "
                             + std::to_string(model.numBlocks()) + " finished blocks are kept in "
                             + resume->folder().string() + "; the same run started again resumes from them");
    }

    if (spec.evaluationFile && denseBeside && !spec.knownBefore)
        outcome.before = evaluate(*denseBeside, RunPhase::PerplexityBefore);
    if (teacher) {
        if (spec.evaluationFile)
            outcome.pruned = evaluate(model, RunPhase::PerplexityPruned);
        phase(RunPhase::Recovering, facts);
        outcome.recoveryParams = spec.recovery;
        for (const auto& name : quantizedLayerNames(outcome.prune.layers))
            outcome.recoveryParams.frozenLayers.insert(name);
        recovery::RecoveryObserver recoveryObserver;
        recoveryObserver.cancel = cancel;
        recoveryObserver.stop = observer.stopRecovery;
        recoveryObserver.log = observer.prune.log;
        recoveryObserver.onStep = observer.onRecoveryStep;
        recoveryObserver.onHeldOut = observer.onRecoveryHeldOut;
        if (observer.onPhaseProgress)
            recoveryObserver.progress = [&observer](const Progress& p) { observer.onPhaseProgress(RunPhase::Recovering, p); };
        outcome.recovery = recovery::recoverModel(model, teacher->signal, windows, heldOut, outcome.recoveryParams,
                                                  recoveryObserver);
        teacher.reset(); // the cached log-probabilities or the dense copy are not needed any more
        // A cancel during recovery cancels the run like any other phase: nothing is written.
        throwIfCancelled(cancel);
        log("recovery: " + std::to_string(outcome.recovery->stepsRun) + " steps in "
            + std::to_string(int64_t(outcome.recovery->seconds)) + " s, stopped by " + outcome.recovery->stoppedBy);
    }
    if (spec.evaluationFile)
        outcome.after = evaluate(model, RunPhase::PerplexityAfter);

    // The record, with what the run actually read and measured.
    phase(RunPhase::Recording, facts);
    run.label = spec.label.empty() ? recipeLabel(spec.prune.recipe, spec.prune.recipeSource) : spec.label;
    run.kind = "prune";
    run.createdUtc = utcNow();
    run.recipeJson = spec.prune.recipe.toJson().dump();
    run.layerFilter = spec.prune.layerFilter;
    run.trueSequential = spec.prune.trueSequential;
    run.linearSparsity = outcome.prune.linearSparsity();
    run.calibration = store::CalibrationSettings{fs::absolute(spec.calibrationFile).string(), calibSha256,
                                                 facts.calibrationTokens, calibration.nsamples, calibration.seqlen,
                                                 calibration.seed};
    if (spec.evaluationFile) {
        run.evaluation = store::EvaluationSettings{fs::absolute(*spec.evaluationFile).string(), sha256Hex(evalText),
                                                   facts.evaluationTokens, evalParams.seqlen, evalParams.maxWindows};
        run.perplexityBefore = outcome.before ? store::perplexityRecord(*outcome.before) : spec.knownBefore;
        run.perplexityAfter = store::perplexityRecord(*outcome.after);
        run.timings.evalSeconds = (outcome.before ? outcome.before->seconds : 0.0)
                                  + (outcome.pruned ? outcome.pruned->seconds : 0.0) + outcome.after->seconds;
    }
    if (outcome.recovery)
        run.extras.push_back(recoveryExtraGroup(outcome.recoveryParams, *outcome.recovery,
                                                outcome.pruned ? std::optional<double>(outcome.pruned->perplexity)
                                                               : std::nullopt));
    run.layers = outcome.prune.layers;
    if (spec.workspace || spec.keepRecordMasks)
        run.masks = store::zeroMasks(model);
    run.timings.pruneSeconds = outcome.prune.seconds;
    run.provenance = store::currentProvenance();
    run.provenance.threads = libraryThreads();
    run.provenance.kernelThreads = kernelThreads();
    run.provenance.device = spec.device;
    outcome.provenance = provenanceJson(spec, outcome, sourceModelJson(spec, model, outcome.identity, cancel));
    run.timings.totalSeconds = secondsSince(started);
    return outcome;
}

std::string recordRun(const CompressionSpec& spec, CompressionOutcome& outcome, const std::string& exportPath,
                      int64_t sizeBytes, double exportSeconds)
{
    if (!spec.workspace)
        return {};
    store::RunRecord& run = outcome.record;
    run.exportPath = exportPath;
    run.sizeBytes = sizeBytes;
    run.timings.exportSeconds = exportSeconds;
    run.timings.totalSeconds = steadySeconds() - outcome.startedAtSeconds;
    store::updateWorkspaceSettings(*spec.workspace, outcome.identity, run.calibration, run.evaluation);
    const std::string id = store::appendRun(*spec.workspace, run);
    // Recorded: the checkpoints have served their purpose.
    clearCheckpoints(spec);
    return id;
}

void clearCheckpoints(const CompressionSpec& spec)
{
    if (spec.checkpointFolder)
        store::ResumeStore::inFolder(*spec.checkpointFolder, "").clear();
    else if (spec.workspace)
        store::ResumeStore(*spec.workspace, "").clear();
}

} // namespace sparselab::workflow
