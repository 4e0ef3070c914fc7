#include "analysis_jobs.h"
#include "engine_support.h"

#include "allocation/owl.h"
#include "allocation/search.h"
#include "allocation/sweep_allocator.h"
#include "data/calibration.h"
#include "eval/perplexity.h"
#include "export/hf_export.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "analysis/sensitivity.h"
#include "analysis/size_model.h"
#include "analysis/sweep.h"
#include "report/report.h"
#include "report/workspace_report.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QTemporaryDir>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sparselab::gui {

namespace fs = std::filesystem;

namespace {

// The start every analysis job shares. A loaded model and tokenizer:
void requireLoadedModel(const std::shared_ptr<const model::CausalLM>& model,
                        const std::shared_ptr<const tokenize::Tokenizer>& tokenizer)
{
    if (!model || !tokenizer)
        throw InputError("No model is loaded: open a model folder first.");
}

// Then, once the job's own settings are checked, its calibration windows: the window length
// checked against the model, the text tokenized (progress "Tokenizing", naming the file) and
// the windows drawn as a run draws them.
data::CalibrationWindows analysisWindows(const model::CausalLM& model, const tokenize::Tokenizer& tokenizer,
                                         const CalibrationSettings& calib, const ProgressCallback& progress,
                                         const CancelToken* cancel)
{
    model::requireWindowFits(model.config(), calib.seqlen, "Window length");
    ProgressReporter(progress, "Tokenizing", 1).report(0, QFileInfo(calib.textPath).fileName().toStdString());
    data::CalibrationWindows windows = drawCalibrationWindows(tokenizer, calib, cancel);
    throwIfCancelled(cancel);
    return windows;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// SensitivityJob

SensitivityJob::SensitivityJob(Params params, QObject* parent) : EngineJob(params.threads, parent), m_params(std::move(params)) {}

void SensitivityJob::execute()
{
    requireLoadedModel(m_params.model, m_params.tokenizer);
    analysis::SensitivityParams params;
    params.sparsities = m_params.sparsities;
    params.bits = m_params.bits;
    switch (m_params.method) {
    case PlanMethod::SparseGpt: params.base.method = solve::Method::SparseGpt; break;
    case PlanMethod::Magnitude: params.base.method = solve::Method::Magnitude; break;
    case PlanMethod::Wanda: params.base.method = solve::Method::Wanda; break;
    default: throw optionError("Method", "a sensitivity scan prunes: choose SparseGPT, Magnitude or Wanda");
    }
    params.base.damp = m_params.damp;
    params.base.blocksize = m_params.blocksize;
    const CalibrationSettings& calib = m_params.calibration;
    analysis::validateSensitivityParams(*m_params.model, params);

    const ProgressCallback callback = progressCallback();
    const auto windows = analysisWindows(*m_params.model, *m_params.tokenizer, calib, callback, cancelToken());

    auto scan = std::make_shared<analysis::SensitivityResult>(
        analysis::scanSensitivity(*m_params.model, windows, params, {callback, cancelToken()}));
    const fs::path folder = m_params.model->folder();
    scan->provenance["model"] = {{"folder", fs::absolute(folder).string()}, {"sha256", exporting::hashModelFolder(folder)}};
    scan->provenance["calibration"] = {{"file", toEnginePath(QFileInfo(calib.textPath).absoluteFilePath()).string()},
                                       {"sha256", sha256Hex(readEngineText(calib.textPath, "calibration"))},
                                       {"nsamples", calib.nsamples},
                                       {"seqlen", calib.seqlen},
                                       {"seed", calib.seed}};
    Result result;
    result.seconds = scan->seconds;
    result.scan = std::move(scan);
    deliver([this, result] { Q_EMIT finished(result); });
}

// ---------------------------------------------------------------------------------------------
// OwlJob

OwlJob::OwlJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

void OwlJob::execute()
{
    requireLoadedModel(m_params.model, m_params.tokenizer);
    allocation::OwlParams params;
    params.targetSparsity = m_params.targetSparsity;
    params.validate();
    const CalibrationSettings& calib = m_params.calibration;
    const ProgressCallback callback = progressCallback();
    const auto windows = analysisWindows(*m_params.model, *m_params.tokenizer, calib, callback, cancelToken());
    const auto owl = allocation::owlAllocation(*m_params.model, windows, params, callback, cancelToken());
    solve::SolverOptions base;
    base.sparsity = params.targetSparsity;
    const std::string json = allocation::owlRecipe(owl, *m_params.model, base).toJson().dump();
    Result result;
    result.recipeJson = QByteArray(json.data(), qsizetype(json.size()));
    QStringList blocks;
    for (const double s : owl.blockSparsity)
        blocks << QString::number(100.0 * s, 'f', 1);
    result.summary = tr("OWL allocation at %1 % average sparsity: blocks %2 %")
                         .arg(100.0 * params.targetSparsity, 0, 'f', 1)
                         .arg(blocks.join(QStringLiteral(" / ")));
    deliver([this, result] { Q_EMIT finished(result); });
}

// ---------------------------------------------------------------------------------------------
// SearchJob

SearchJob::SearchJob(Params params, QObject* parent)
    : EngineJob(params.threads, parent), m_params(std::move(params))
{
}

void SearchJob::execute()
{
    requireLoadedModel(m_params.model, m_params.tokenizer);
    allocation::SearchParams params;
    if (m_params.budgetBytes > 0) {
        params = allocation::SearchParams::forBudgetBytes(m_params.budgetBytes); // as the CLI's --budget-bytes
    } else {
        params.targetSparsity = m_params.targetSparsity;
        params.base.sparsity = m_params.targetSparsity;
    }
    params.generations = m_params.generations;
    params.timeLimitSeconds = m_params.timeLimitSeconds;
    params.seed = m_params.seed;
    params.validate();
    const CalibrationSettings& calib = m_params.calibration;
    const ProgressCallback callback = progressCallback();
    const auto windows = analysisWindows(*m_params.model, *m_params.tokenizer, calib, callback, cancelToken());
    params.fitnessWindows = std::min(params.fitnessWindows, windows.nsamples);
    {
        // What the profile plot draws against: the layers, the uniform level and OWL at it.
        QList<LayerLevel> layers;
        for (int64_t b = 0; b < m_params.model->numBlocks(); ++b)
            for (const auto& layer : m_params.model->linears(b))
                layers.push_back({QString::fromStdString(pipeline::moduleName(layer.name)), b,
                                  QString::fromStdString(layer.kind), 0.0, 16});
        QVector<double> owlPerBlock;
        const bool sparsityBudget = params.budgetBytes == 0;
        allocation::OwlParams owl;
        owl.targetSparsity = params.targetSparsity;
        if (sparsityBudget && owl.targetSparsity - 2 * owl.lambda >= 0 && owl.targetSparsity + 2 * owl.lambda < 1)
            for (double s : allocation::owlAllocation(*m_params.model, windows, owl, callback, cancelToken()).blockSparsity)
                owlPerBlock.push_back(s);
        const double uniform = sparsityBudget ? params.targetSparsity : -1.0;
        post([this, layers, uniform, owlPerBlock] { Q_EMIT layersKnown(layers, uniform, owlPerBlock); });
    }
    allocation::SearchObserver observer;
    observer.progress = callback;
    observer.cancel = cancelToken();
    observer.stop = &m_stop;
    observer.onGeneration = [this](const allocation::SearchGeneration& g) {
        QVector<double> sparsity;
        if (g.improved)
            sparsity = QVector<double>(g.sparsity.begin(), g.sparsity.end());
        post([this, generation = g.generation, kl = g.bestFitness, sparsity] {
            Q_EMIT generationFinished(generation, kl, sparsity);
        });
    };
    const auto found = allocation::searchAllocation(*m_params.model, windows, params, observer);
    const std::string json = allocation::searchRecipe(found, params.base).toJson().dump();
    Result result;
    result.recipeJson = QByteArray(json.data(), qsizetype(json.size()));
    for (size_t l = 0; l < found.layers.size(); ++l)
        result.profile.push_back({QString::fromStdString(found.layers[l].name), found.layers[l].block,
                                  QString::fromStdString(found.layers[l].kind), found.sparsity[l], found.bits[l]});
    result.uniformKl = found.uniformFitness;
    result.bestKl = found.bestFitness;
    result.generations = found.generationsRun;
    result.stoppedBy = QString::fromStdString(found.stoppedBy);
    const auto [lo, hi] = std::minmax_element(found.sparsity.begin(), found.sparsity.end());
    const QString budget = params.budgetBytes > 0
                               ? tr("%1 KB (found %2 KB)").arg(double(params.budgetBytes) / 1000.0, 0, 'f', 1)
                                     .arg(double(found.modelBytes) / 1000.0, 0, 'f', 1)
                               : tr("%1 % average sparsity").arg(100.0 * params.targetSparsity, 0, 'f', 1);
    result.summary = tr("Allocation search at %1: calibration KL %2 (uniform) → %3 after %4 "
                        "generations; layers from %5 % to %6 % sparsity")
                         .arg(budget)
                         .arg(found.uniformFitness, 0, 'f', 4)
                         .arg(found.bestFitness, 0, 'f', 4)
                         .arg(found.generationsRun)
                         .arg(found.sparsity.empty() ? 0.0 : 100.0 * *lo, 0, 'f', 0)
                         .arg(found.sparsity.empty() ? 0.0 : 100.0 * *hi, 0, 'f', 0);
    deliver([this, result] { Q_EMIT finished(result); });
}

// ---------------------------------------------------------------------------------------------
// SweepJob

namespace {

solve::Method engineMethod(PlanMethod method)
{
    switch (method) {
    case PlanMethod::SparseGpt: return solve::Method::SparseGpt;
    case PlanMethod::Magnitude: return solve::Method::Magnitude;
    case PlanMethod::Wanda: return solve::Method::Wanda;
    case PlanMethod::Rtn: return solve::Method::Rtn;
    case PlanMethod::Dense: break;
    }
    throw optionError("Methods", "a sweep point must prune or quantize: not 'dense'");
}

} // namespace

SweepJob::SweepJob(Params params, QObject* parent) : EngineJob(params.threads, parent), m_params(std::move(params)) {}

qint64 SweepJob::pointCount(const Params& params)
{
    return qint64(params.allocations.size() * params.sparsities.size() * params.bits.size() * params.methods.size()
                  * params.groups.size());
}

void SweepJob::execute()
{
    requireLoadedModel(m_params.model, m_params.tokenizer);
    analysis::SweepGrid grid;
    grid.sparsities = m_params.sparsities;
    grid.bits = m_params.bits;
    grid.methods.clear();
    for (PlanMethod m : m_params.methods)
        grid.methods.push_back(engineMethod(m));
    grid.groups = m_params.groups;
    grid.allocations = m_params.allocations;
    grid.validate();
    allocation::SweepAllocationParams allocationParams;
    allocationParams.search.generations = m_params.searchGenerations;
    allocationParams.search.seed = m_params.searchSeed;
    const CalibrationSettings& calib = m_params.calibration;
    const auto& model = *m_params.model;
    const solve::SolverOptions base;
    std::vector<int64_t> indices;
    for (int64_t i = 0; i < grid.size(); ++i) {
        indices.push_back(i);
        const auto params = analysis::sweepPointParams(model, analysis::sweepPointSpec(grid, i), base, false);
        pipeline::validatePlan(model, params);
    }
    allocation::validateSweepAllocations(grid, indices, allocationParams);

    const ProgressCallback callback = progressCallback();
    const auto windows = analysisWindows(model, *m_params.tokenizer, calib, callback, cancelToken());
    const std::string evalText = readEngineText(m_params.evaluation.textPath, "evaluation");
    const std::vector<int32_t> evalIds = m_params.tokenizer->encodeForModel(evalText, cancelToken());
    eval::PerplexityParams evalParams;
    evalParams.seqlen = m_params.evaluation.seqlen > 0 ? m_params.evaluation.seqlen : calib.seqlen;
    evalParams.maxWindows = m_params.evaluation.maxWindows;
    evalParams.batchSize = m_params.evaluation.batchSize > 0 ? m_params.evaluation.batchSize : 8;
    evalParams.keepTokenNll = false;
    throwIfCancelled(cancelToken());
    // The dense perplexity the window already knows for these settings is not measured again.
    const double densePerplexity = std::isfinite(m_params.densePerplexity)
        ? m_params.densePerplexity
        : eval::evaluatePerplexity(model, evalIds, evalParams, callback, cancelToken()).perplexity;

    auto result = std::make_shared<analysis::SweepResult>();
    result->grid = grid;
    result->densePerplexity = densePerplexity;
    result->denseBytes = analysis::fixedParameterBytes(model.parameterCount());
    const fs::path folder = model.folder();
    result->settings = {{"model", {{"sha256", exporting::hashModelFolder(folder)}}},
                        {"calibration",
                         {{"sha256", sha256Hex(readEngineText(calib.textPath, "calibration"))},
                          {"nsamples", calib.nsamples},
                          {"seqlen", calib.seqlen},
                          {"seed", calib.seed}}},
                        {"evaluation",
                         {{"sha256", sha256Hex(evalText)}, {"seqlen", evalParams.seqlen}, {"max_windows", evalParams.maxWindows}}},
                        {"base", {{"damp", base.damp}, {"blocksize", base.blocksize}, {"group", base.quant.groupSize}, {"sym", base.quant.symmetric}}},
                        {"true_sequential", false},
                        {"paths",
                         {{"model", fs::absolute(folder).string()},
                          {"calibration", toEnginePath(QFileInfo(calib.textPath).absoluteFilePath()).string()},
                          {"evaluation", toEnginePath(QFileInfo(m_params.evaluation.textPath).absoluteFilePath()).string()}}}};
    if (grid.allocatesPerLayer())
        result->settings["allocation"] = allocationParams.toJson(grid);
    QElapsedTimer timer;
    timer.start();
    auto soFar = std::make_shared<analysis::SweepResult>(*result);
    const auto onPoint = [this, &soFar](const analysis::SweepPoint& point) {
        soFar->points.push_back(point);
        std::sort(soFar->points.begin(), soFar->points.end(),
                  [](const auto& a, const auto& b) { return a.spec.index < b.spec.index; });
        std::shared_ptr<const analysis::SweepResult> snapshot = std::make_shared<analysis::SweepResult>(*soFar);
        post([this, snapshot] { Q_EMIT pointFinished(snapshot); });
    };
    analysis::SweepRunParams run{grid, indices, base, false, evalParams, {}};
    if (grid.allocatesPerLayer())
        run.allocator = allocation::sweepAllocator(model, windows, allocationParams);
    result->points = analysis::runSweepPoints(model, windows, evalIds, run, {callback, cancelToken(), onPoint});
    Result r;
    r.seconds = double(timer.nsecsElapsed()) / 1e9;
    r.sweep = std::move(result);
    deliver([this, r] { Q_EMIT finished(r); });
}

// ---------------------------------------------------------------------------------------------
// ReportJob

namespace {

QString extensionProblem(const QString& path, const char* extension, const char* what)
{
    if (path.isEmpty())
        return {};
    if (!path.endsWith(QLatin1String(extension), Qt::CaseInsensitive))
        return QObject::tr("The %1 report must be a %2 file: %3").arg(QLatin1String(what), QLatin1String(extension), path);
    const QFileInfo info(path);
    if (!info.absoluteDir().exists())
        return QObject::tr("%1: its folder does not exist").arg(QDir::toNativeSeparators(path));
    if (info.isDir())
        return QObject::tr("%1 is a folder").arg(QDir::toNativeSeparators(path));
    return {};
}

bool samePath(const QString& a, const QString& b)
{
    if (a.isEmpty() || b.isEmpty())
        return false;
    const QFileInfo x(a), y(b);
    const QString cx = x.exists() ? x.canonicalFilePath() : x.absoluteFilePath();
    const QString cy = y.exists() ? y.canonicalFilePath() : y.absoluteFilePath();
    return QDir::cleanPath(cx) == QDir::cleanPath(cy);
}

// The path inside `folder`, or the folder itself.
bool insideFolder(const QString& path, const QString& folder)
{
    if (path.isEmpty() || folder.isEmpty())
        return false;
    const QString p = QDir::cleanPath(QFileInfo(path).absoluteFilePath());
    const QFileInfo f(folder);
    const QString dir = QDir::cleanPath(f.exists() ? f.canonicalFilePath() : f.absoluteFilePath());
    const QString canonicalParent = QFileInfo(QFileInfo(path).absolutePath()).canonicalFilePath();
    const QString resolved = canonicalParent.isEmpty() ? p : QDir::cleanPath(canonicalParent + QLatin1Char('/') + QFileInfo(path).fileName());
    return resolved == dir || resolved.startsWith(dir + QLatin1Char('/'));
}

std::string number(double value, int digits)
{
    if (!std::isfinite(value))
        return "-";
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
    return buffer;
}

} // namespace

ReportJob::ReportJob(Params params, QObject* parent) : EngineJob(params.threads, parent), m_params(std::move(params)) {}

QString ReportJob::outputProblem(const Params& params)
{
    if (params.htmlPath.isEmpty() && params.pdfPath.isEmpty())
        return QObject::tr("Choose an HTML and/or a PDF file for the report.");
    if (const QString p = extensionProblem(params.htmlPath, ".html", "HTML"); !p.isEmpty())
        return p;
    if (const QString p = extensionProblem(params.pdfPath, ".pdf", "PDF"); !p.isEmpty())
        return p;
    if (samePath(params.htmlPath, params.pdfPath))
        return QObject::tr("The HTML and the PDF report cannot be the same file.");
    const RunRecord& run = params.record;
    const QString evalText = run.evaluation.enabled && !run.evaluation.textPath.isEmpty() ? run.evaluation.textPath
                                                                                           : params.evalTextPath;
    for (const QString& out : {params.htmlPath, params.pdfPath}) {
        for (const QString& input : {run.calibration.textPath, evalText, params.workspaceFile, params.originFile})
            if (samePath(out, input))
                return QObject::tr("%1 is one of the report's inputs; refusing to overwrite it").arg(QDir::toNativeSeparators(out));
        if (insideFolder(out, run.modelFolder))
            return QObject::tr("%1 lies inside the model folder %2; choose another place")
                .arg(QDir::toNativeSeparators(out), QDir::toNativeSeparators(run.modelFolder));
    }
    return {};
}

void ReportJob::execute()
{
    QElapsedTimer timer;
    timer.start();
    if (const QString problem = outputProblem(m_params); !problem.isEmpty())
        throw InputError(problem.toStdString());
    const RunRecord& run = m_params.record;
    const ProgressCallback callback = progressCallback();
    if (!m_params.model) {
        if (m_params.originFile.isEmpty())
            throw InputError("This run's compressed model is no longer in memory: run it again to report on it.");
        report::WorkspaceReportOptions options;
        options.runId = m_params.originId.toStdString();
        report::ReportParams params = report::workspaceReportParams(toEnginePath(m_params.originFile), options);
        applyReportOptions(params);
        writeReport(report::buildReport(params, callback, cancelToken()), timer);
        return;
    }
    const fs::path dense = m_params.model->folder();

    // The compressed model as Export would write it, in a private folder removed at the end.
    const nlohmann::json provenance = runProvenance(run);
    QTemporaryDir scratch(QDir::tempPath() + QStringLiteral("/sparselab-report-XXXXXX"));
    if (!scratch.isValid())
        throw InputError("Cannot create a temporary folder for the report: " + scratch.errorString().toStdString());
    const fs::path compressed = toEnginePath(scratch.filePath(QStringLiteral("compressed")));
    (void)exporting::exportHuggingFaceFolder(*m_params.model, compressed, provenance, callback, cancelToken());
    throwIfCancelled(cancelToken());

    report::ReportParams params;
    params.denseFolder = dense;
    params.compressedFolder = compressed;
    if (run.evaluation.enabled && !run.evaluation.textPath.isEmpty()) {
        params.evalFile = toEnginePath(run.evaluation.textPath);
        params.seqlen = run.evalSeqlen > 0 ? run.evalSeqlen : run.evaluation.seqlen;
        params.maxWindows = run.evaluation.maxWindows;
    } else {
        if (m_params.evalTextPath.isEmpty())
            throw InputError("The run measured no perplexity: choose an evaluation text (Ctrl+T) for the report.");
        params.evalFile = toEnginePath(m_params.evalTextPath);
        params.seqlen = run.calibration.seqlen;
    }
    applyReportOptions(params);
    if (m_params.sweep)
        params.sweep = *m_params.sweep;
    if (m_params.sensitivity)
        params.sensitivity = *m_params.sensitivity;
    if (!m_params.sessionRuns.isEmpty()) {
        report::WorkspaceSection section;
        section.file = m_params.workspaceFile.isEmpty() ? std::string("(this workbench session, not saved)")
                                                        : toEnginePath(m_params.workspaceFile).string();
        section.runId = run.name.toStdString();
        section.modelCheck = "the dense model is the workbench's loaded model, " + fs::absolute(dense).string();
        for (const RunRecord& r : m_params.sessionRuns) {
            qint64 bytes = 0;
            for (const PlanRow& row : r.plan)
                bytes += estimatedBytes(row);
            section.runs.push_back({std::to_string(r.id), r.name.toStdString(), "prune", number(r.linearSparsity, 4),
                                    number(r.perplexityBefore, 4), number(r.perplexityAfter, 4),
                                    formatBytes(bytes).toStdString(), "-"});
        }
        params.workspace = section;
    }

    report::ReportData data = report::buildReport(params, callback, cancelToken());
    // The scratch folder is gone after this job: name the run instead.
    QString label = run.name;
    label.replace(QLatin1Char('/'), QLatin1Char('-'));
    data.compressedFolder = "workbench run '" + label.toStdString() + "' (in memory, not exported)";

    writeReport(data, timer);
}

void ReportJob::applyReportOptions(report::ReportParams& params) const
{
    if (m_params.maxWindows > 0)
        params.maxWindows = m_params.maxWindows;
    if (!m_params.prompts.isEmpty()) {
        params.prompts.clear();
        for (const QString& prompt : m_params.prompts)
            if (!prompt.trimmed().isEmpty())
                params.prompts.push_back(prompt.toStdString());
    }
    params.newTokens = std::max<qint64>(1, m_params.newTokens);
}

void ReportJob::writeReport(const report::ReportData& data, const QElapsedTimer& timer)
{
    // Render both before writing either, so a failure leaves no half-written pair.
    ProgressReporter(progressCallback(), "Writing the report", 1).report(0, "");
    std::string html, pdf;
    if (!m_params.htmlPath.isEmpty())
        html = report::renderHtml(data);
    if (!m_params.pdfPath.isEmpty())
        pdf = report::renderPdf(data);
    throwIfCancelled(cancelToken());
    Result result;
    if (!m_params.htmlPath.isEmpty()) {
        writeFileAtomically(toEnginePath(m_params.htmlPath), html);
        result.htmlPath = QFileInfo(m_params.htmlPath).absoluteFilePath();
    }
    if (!m_params.pdfPath.isEmpty()) {
        writeFileAtomically(toEnginePath(m_params.pdfPath), pdf);
        result.pdfPath = QFileInfo(m_params.pdfPath).absoluteFilePath();
    }
    const auto& c = data.comparison;
    result.densePerplexity = c.referencePerplexity;
    result.compressedPerplexity = c.otherPerplexity;
    result.meanKl = c.meanKl;
    result.top1Agreement = c.top1Agreement;
    result.windows = c.windows;
    result.seconds = double(timer.nsecsElapsed()) / 1e9;
    deliver([this, result] { Q_EMIT finished(result); });
}

} // namespace sparselab::gui
