#include "run_controller.h"

#include "evaluation_panel.h"
#include "export_panel.h"
#include "live_view.h"
#include "log_view.h"
#include "main_window.h"
#include "model_tree_widget.h"
#include "plan_panel.h"
#include "results_panel.h"
#include "run_panel.h"
#include "calibration_panel.h"
#include "workbench.h"

#include "memory/memory_plan.h"
#include "util/gpu_info.h"

#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QRegularExpression>
#include <QStatusBar>

#include <algorithm>
#include <cmath>

namespace sparselab::gui {

RunController::RunController(MainWindow* window, Workbench& session)
    : QObject(window), m_window(window), m_session(session)
{
}

CostRates RunController::costRates() const { return m_measuredRates ? *m_measuredRates : CostRates::load(); }

void RunController::storeMeasuredRates() const
{
    if (m_measuredRates)
        m_measuredRates->store();
}

void RunController::stopRecovery()
{
    if (m_runJob)
        m_runJob->stopRecovery();
}

// ---------------------------------------------------------------------------------------------
// What the Run view says before a run

QString RunController::memoryProblem(QString* summary) const
{
    if (!m_session.memoryInput()) {
        if (summary)
            *summary = m_session.hasModel() ? tr("Memory: not estimated for this model.") : QString();
        return {};
    }
    memory::MemoryPlanInput in = *m_session.memoryInput();
    const CalibrationSettings calib = m_window->calibrationPanel()->settings();
    in.nsamples = calib.nsamples;
    in.seqlen = calib.seqlen;
    in.cuda = m_window->runPanel()->device() == QLatin1String("cuda");
    if (const RecoverySettings recovery = m_window->planPanel()->recoverySettings(); recovery.enabled)
        in.recoveryLoss = recovery.loss == QLatin1String("block") ? 2 : 1;
    in.hostAvailableBytes = memory::hostAvailableMemory();
    if (in.cuda) {
        const util::GpuQuery gpus = util::queryGpus();
        if (!gpus.gpus.empty())
            in.deviceAvailableBytes = gpus.gpus.front().freeBytes;
    }
    // The run prunes a copy of the loaded model: the plan's weights are that copy. The loaded
    // model itself is already resident, so it is not in the available figure either.
    const memory::MemoryPlan p = memory::planMemory(in);
    const auto text = [](int64_t bytes) { return QString::fromStdString(memory::formatBytes(bytes)); };
    QString line = tr("Memory: about %1 of host memory").arg(text(p.hostBytes));
    if (p.hostAvailableBytes >= 0)
        line += tr(" (%1 available)").arg(text(p.hostAvailableBytes));
    if (p.usesDevice()) {
        line += tr(", %1 on the GPU").arg(text(p.deviceBytes));
        if (p.deviceAvailableBytes >= 0)
            line += tr(" (%1 free)").arg(text(p.deviceAvailableBytes));
    }
    line += QLatin1Char('.');
    if (summary)
        *summary = line;
    if (p.fits())
        return {};
    QStringList parts;
    if (!p.fitsDevice())
        parts << tr("%1 on the GPU, %2 free").arg(text(p.deviceBytes), text(p.deviceAvailableBytes));
    if (!p.fitsHost())
        parts << tr("%1 of host memory, %2 available").arg(text(p.hostBytes), text(p.hostAvailableBytes));
    return tr("This run needs %1: use fewer calibration windows or shorter windows (Calibration view), or "
              "sparselab-cli prune --stream for one block in memory.")
        .arg(parts.join(tr("; ")));
}

QString RunController::suggestedName() const
{
    RunRecord probe;
    probe.plan = m_window->planPanel()->planModel()->rows();
    probe.recovery = m_window->planPanel()->recoverySettings();
    return tr("%1 #%2").arg(probe.methodSummary()).arg(m_session.nextRunId());
}

// ---------------------------------------------------------------------------------------------
// Export folder

void RunController::chooseExportFolderDialog()
{
    QString start = m_window->exportPanel()->outDir();
    if (start.isEmpty())
        start = m_session.summary().isEmpty() ? QDir::homePath() : QFileInfo(m_session.summary().folder).absolutePath();
    const QString parent = QFileDialog::getExistingDirectory(m_window, tr("Choose the Folder to Export Into"),
                                                             QFileInfo(start).absolutePath());
    if (parent.isEmpty())
        return;
    const RunRecord* run = m_window->resultsPanel()->run(m_window->resultsPanel()->selectedRunId());
    QString name = m_session.summary().name.isEmpty() ? QStringLiteral("model") : m_session.summary().name;
    if (run)
        name += QLatin1Char('-') + run->name;
    name.replace(QRegularExpression(QStringLiteral("[^A-Za-z0-9._-]+")), QStringLiteral("-"));
    const QString suffix = m_window->exportPanel()->ggufType().isEmpty() ? QString() : QStringLiteral(".gguf");
    QString candidate = QDir(parent).filePath(name + suffix);
    for (int i = 2; QFileInfo::exists(candidate); ++i)
        candidate = QDir(parent).filePath(QStringLiteral("%1-%2%3").arg(name).arg(i).arg(suffix));
    m_window->exportPanel()->setOutDir(candidate);
}

// ---------------------------------------------------------------------------------------------
// Evaluation

bool RunController::evaluate()
{
    if (m_window->refuseModelJob())
        return false;
    const QString text = m_window->evaluationPanel()->textPath();
    if (text.isEmpty() || !QFileInfo(text).isFile()) {
        m_window->reportError(tr("No evaluation text"),
                              text.isEmpty() ? tr("Choose an evaluation text file first (Ctrl+T).")
                                             : tr("%1: no such file").arg(QDir::toNativeSeparators(text)));
        return false;
    }

    PerplexityJob::Params params;
    params.model = m_session.model();
    params.tokenizer = m_session.tokenizer();
    params.textPath = text;
    params.seqlen = m_window->evaluationPanel()->effectiveSeqlen(); // Auto: the calibration length, as in runs
    params.maxWindows = m_window->evaluationPanel()->maxWindows();
    params.batchSize = m_window->evaluationPanel()->batchSize();
    params.threads = engineThreads(m_session.summary().hiddenSize);

    auto* job = new PerplexityJob(params, this);
    m_evalJob = job;
    connect(job, &PerplexityJob::progress, this, &RunController::onEvaluationProgress);
    m_window->logView()->appendInfo(tr("Evaluating %1 on %2 (window %3, %4, batch %5)")
                          .arg(m_session.summary().name, QFileInfo(text).fileName(),
                               params.seqlen > 0 ? tr("%1 tokens").arg(params.seqlen) : tr("auto"),
                               params.maxWindows > 0 ? tr("first %1 windows").arg(params.maxWindows) : tr("all windows"))
                          .arg(params.batchSize));
    JobOutcome<PerplexityJob> outcome;
    outcome.ended = [this] {
        m_evalJob = nullptr;
        m_window->updateActions();
    };
    outcome.finished = [this](const PerplexityJob::Result& result) {
        onEvaluationFinished(result);
        const QString summary = tr("Perplexity %1 on %2 (%3 windows)")
                                    .arg(result.perplexity.perplexity, 0, 'f', 4)
                                    .arg(QFileInfo(result.textPath).fileName())
                                    .arg(result.perplexity.windows);
        m_window->runPanel()->finishJob(RunPanel::Outcome::Done, summary);
    };
    outcome.failed = [this](const QString& message) {
        m_window->runPanel()->finishJob(RunPanel::Outcome::Failed, tr("Evaluation failed: %1").arg(message));
        m_window->evaluationPanel()->showStatus(tr("Failed: %1").arg(message));
        m_window->reportError(tr("Evaluation failed"), message);
        Q_EMIT evaluationFailed(message);
    };
    outcome.cancelled = [this] {
        m_window->evaluationPanel()->showStatus(tr("Cancelled."));
        m_window->runPanel()->finishJob(RunPanel::Outcome::Cancelled, tr("Evaluation cancelled."));
        m_window->logView()->appendInfo(tr("Evaluation cancelled."));
        m_window->statusBar()->showMessage(tr("Evaluation cancelled."), 5000);
        Q_EMIT evaluationCancelled();
    };
    if (!m_session.jobs().launch(job, tr("the evaluation"), {m_session.model().get()}, this, std::move(outcome)))
        return false;
    m_window->statusBar()->showMessage(tr("Evaluating…"));
    m_window->runPanel()->startJob(tr("Evaluation"));
    m_window->updateActions();
    return true;
}

void RunController::onEvaluationProgress(qint64 done, qint64 total, double etaSeconds, const QString& text)
{
    m_window->evaluationPanel()->setProgress(done, total, etaSeconds, text);
    m_window->runPanel()->setJobProgress(done, total, etaSeconds, text);
    m_window->showJobProgress(done, total);
}

void RunController::onEvaluationFinished(const PerplexityJob::Result& result)
{
    m_lastEvaluation = result;
    const eval::PerplexityResult& r = result.perplexity;
    // The dense model's perplexity for these settings: a run with the same settings reuses it.
    m_session.rememberDensePerplexity(result.textPath, r.seqlen, m_window->evaluationPanel()->maxWindows(),
                                      {r.perplexity, evaluationDetail(r)});
    const QString textName = QFileInfo(result.textPath).fileName();
    m_window->evaluationPanel()->showResult(r.perplexity, r.windows, r.seqlen, r.tokens, r.seconds, textName);
    const QString message = tr("Perplexity %1 on %2 (%3 windows × %4 tokens, %5)")
                                .arg(QString::number(r.perplexity, 'f', 4), textName)
                                .arg(r.windows)
                                .arg(r.seqlen)
                                .arg(EvaluationPanel::formatDuration(r.seconds));
    m_window->announce(message, 10'000);
    Q_EMIT evaluationFinished(r.perplexity);
}

// ---------------------------------------------------------------------------------------------
// Runs

bool RunController::startRun()
{
    if (m_window->refuseModelJob())
        return false;
    const CalibrationSettings calib = m_window->calibrationPanel()->settings();
    if (calib.textPath.isEmpty() || !QFileInfo(calib.textPath).isFile()) {
        m_window->reportError(tr("No calibration text"),
                              calib.textPath.isEmpty() ? tr("Choose a calibration text in the Calibration view first.")
                                                       : tr("%1: no such file").arg(QDir::toNativeSeparators(calib.textPath)));
        return false;
    }
    const EvaluationSettings evaluation = m_window->evaluationSettings();
    if (evaluation.enabled && (evaluation.textPath.isEmpty() || !QFileInfo(evaluation.textPath).isFile())) {
        m_window->reportError(tr("No evaluation text"),
                              tr("Choose an evaluation text in the Evaluation view, or turn off perplexity in the Run view."));
        return false;
    }
    if (const QString problem = memoryProblem(nullptr); !problem.isEmpty()) {
        m_window->reportError(tr("Not enough memory"), problem);
        return false;
    }

    RunJob::Params params;
    params.model = m_session.model();
    params.tokenizer = m_session.tokenizer();
    params.calibration = calib;
    params.evaluation = evaluation;
    params.plan = m_window->planPanel()->planModel()->rows();
    params.device = m_window->runPanel()->device();
    params.threads = engineThreads(m_session.summary().hiddenSize);
    params.rates = costRates();
    params.recovery = m_window->planPanel()->recoverySettings();
    if (m_window->runPanel()->keepCheckpoints())
        params.checkpointFolder = m_session.checkpointFolder();
    if (evaluation.enabled) {
        const qint64 seqlen = evaluation.seqlen > 0 ? evaluation.seqlen : calib.seqlen;
        if (const auto known = m_session.densePerplexity(evaluation.textPath, seqlen, evaluation.maxWindows)) {
            params.perplexityBefore = known->perplexity;
            params.detailBefore = known->detail;
        }
    }
    m_runName = m_window->runPanel()->runName().isEmpty() ? suggestedName() : m_window->runPanel()->runName();
    params.name = m_runName;

    auto* job = new RunJob(params, this);
    m_runJob = job;
    connect(job, &RunJob::runProgress, this, [this](const RunProgress& p) {
        m_window->runPanel()->setProgress(p);
        m_window->stopRecoveryAction()->setEnabled(p.recovering);
        m_window->showJobProgress(std::lround(p.overall * 1000), 1000);
        m_window->statusBar()->showMessage(p.layer.isEmpty() ? p.stage : tr("%1 %2").arg(p.stage, p.layer));
        Q_EMIT runProgressed(p);
    });
    connect(job, &RunJob::heatmapFrame, m_window->liveView(), &LiveView::showFrame);
    connect(job, &RunJob::layerFinished, m_window->liveView(), &LiveView::addLayer);
    connect(job, &RunJob::recoveryStep, m_window->liveView(), &LiveView::addRecoveryStep);
    connect(job, &RunJob::recoveryHeldOut, m_window->liveView(), &LiveView::addRecoveryHeldOut);
    connect(job, &RunJob::logLine, this, [this](const QString& line) {
        m_window->runPanel()->log()->appendInfo(line);
        m_window->logView()->appendInfo(line);
    });
    JobOutcome<RunJob> outcome;
    outcome.ended = [this] {
        m_runJob = nullptr;
        m_window->stopRecoveryAction()->setEnabled(false);
        m_window->updateActions();
    };
    outcome.finished = [this](const RunJob::Result& result) { onRunFinished(result); };
    outcome.failed = [this](const QString& message) {
        m_window->runPanel()->finishJob(RunPanel::Outcome::Failed, tr("Failed: %1").arg(message));
        m_window->reportError(tr("Run failed"), message);
        Q_EMIT runFailed(message);
    };
    outcome.cancelled = [this] {
        const QString message = tr("Run cancelled: earlier results are unchanged and nothing was written.");
        m_window->runPanel()->finishJob(RunPanel::Outcome::Cancelled, message);
        m_window->runPanel()->log()->appendInfo(message);
        m_window->announce(message);
        Q_EMIT runCancelled();
    };
    if (!m_session.jobs().launch(job, tr("the run “%1”").arg(m_runName), {m_session.model().get()}, this,
                                 std::move(outcome)))
        return false;
    m_window->liveView()->startRun(params.plan, m_runName);
    if (params.recovery.enabled) {
        qint64 blocks = 0;
        for (const PlanRow& row : params.plan)
            blocks = std::max<qint64>(blocks, row.block + 1);
        m_window->liveView()->startRecovery(params.recovery.loss == QLatin1String("block") ? params.recovery.steps * blocks
                                                                                : params.recovery.steps,
                                  params.recovery.summary());
    }
    m_window->runPanel()->log()->clear();
    const QString method = suggestedName().section(QLatin1String(" #"), 0, 0);
    const QString line = tr("Run “%1”: %2 on %3").arg(m_runName, method, params.device.toUpper());
    m_window->runPanel()->log()->appendInfo(line);
    m_window->logView()->appendInfo(line);
    m_window->statusBar()->showMessage(tr("Running…"));
    m_window->updateActions();
    if (QDockWidget* live = m_window->dock(QStringLiteral("live")))
        live->raise();
    Q_EMIT runStarted(m_runName);
    return true;
}

void RunController::onRunFinished(const RunJob::Result& result)
{
    RunRecord record = result.record;
    record.id = m_session.takeRunId();
    // The next run's progress is weighted by what this one took (written to the settings
    // when the window closes: writing them now would hold up the GUI thread for a sync).
    m_measuredRates = result.measured;
    record.name = m_runName;
    m_session.keepRunModel(record.id, result.model);
    m_session.rememberDensePerplexityOf(record, /*replace=*/true);
    releaseOldModels();
    record.modelKept = m_session.runModel(record.id) != nullptr;
    m_window->resultsPanel()->addRun(record);

    m_window->modelTree()->setLayerSparsity(achievedSparsity(record), record.name);
    m_window->runPanel()->clearRunName();
    m_window->runPanel()->setSuggestedName(suggestedName());

    QString message = tr("“%1” done in %2: linear sparsity %3 %")
                          .arg(record.name, formatSeconds(record.totalSeconds))
                          .arg(100.0 * record.linearSparsity, 0, 'f', 1);
    if (std::isfinite(record.perplexityAfter))
        message += tr(", perplexity %1 → %2").arg(record.perplexityBefore, 0, 'f', 4).arg(record.perplexityAfter, 0, 'f', 4);
    m_window->runPanel()->showFinished(message);
    m_window->runPanel()->log()->appendInfo(message);
    m_window->announce(message, 10'000);
    m_window->updateExportTarget();
    m_window->updateActions();
    Q_EMIT runFinished(record);
}

void RunController::releaseOldModels()
{
    for (const int id : m_session.releaseOldRunModels()) {
        m_window->resultsPanel()->setModelKept(id, false);
        m_window->logView()->appendInfo(tr("Released the compressed model of an older run to save memory."));
    }
}

// ---------------------------------------------------------------------------------------------
// Export

bool RunController::exportSelectedRun()
{
    if (m_window->refuseWhileBusy())
        return false;
    const int id = m_window->resultsPanel()->selectedRunId();
    const RunRecord* run = m_window->resultsPanel()->run(id);
    if (!run) {
        m_window->reportError(tr("Nothing to export"), tr("Run a plan first (F5), then select the run in Results."));
        return false;
    }
    const std::shared_ptr<const model::CausalLM> model = m_session.runModel(id);
    if (!model) {
        m_window->reportError(tr("Nothing to export"),
                              tr("The compressed model of “%1” was released: run it again to export it.").arg(run->name));
        return false;
    }
    const QString out = QDir::cleanPath(QDir::fromNativeSeparators(m_window->exportPanel()->outDir()));
    const QString problem = m_window->exportPanel()->ggufType().isEmpty()
                                ? exportTargetProblem(m_session.summary().folder, out)
                                : ggufTargetProblem(out);
    if (!problem.isEmpty()) {
        // The overwrite guard: never write into an existing folder or the model itself.
        m_window->exportPanel()->showStatus(tr("Not exported: %1").arg(problem));
        m_window->reportError(tr("Cannot export there"), problem);
        Q_EMIT exportFailed(problem);
        return false;
    }

    ExportJob::Params params;
    params.model = model;
    params.outDir = out;
    params.ggufType = m_window->exportPanel()->ggufType();
    params.record = *run;
    params.threads = engineThreads(m_session.summary().hiddenSize);
    auto* job = new ExportJob(params, this);
    m_exportJob = job;
    connect(job, &ExportJob::progress, this, [this](qint64 done, qint64 total, double eta, const QString& text) {
        m_window->exportPanel()->setProgress(done, total, text);
        m_window->runPanel()->setJobProgress(done, total, eta, text);
        m_window->showJobProgress(done, total);
    });
    JobOutcome<ExportJob> outcome;
    outcome.ended = [this] {
        m_exportJob = nullptr;
        m_window->updateActions();
    };
    outcome.finished = [this](const ExportJob::Result& r) {
        m_window->exportPanel()->showSummary(r);
        m_window->exportPanel()->setOutDir(QString()); // done: the next export needs a new folder
        const QString message = tr("Exported %1: %2 files, %3, %4 layers replaced")
                                    .arg(QDir::toNativeSeparators(r.folder))
                                    .arg(r.files)
                                    .arg(formatBytes(r.bytes))
                                    .arg(r.tensorsReplaced);
        m_window->runPanel()->finishJob(RunPanel::Outcome::Done, message);
        m_window->announce(message, 10'000);
        Q_EMIT exportFinished(r);
    };
    outcome.failed = [this](const QString& message) {
        m_window->exportPanel()->showStatus(tr("Failed: %1").arg(message));
        m_window->runPanel()->finishJob(RunPanel::Outcome::Failed, tr("Export failed: %1").arg(message));
        m_window->reportError(tr("Export failed"), message);
        Q_EMIT exportFailed(message);
    };
    outcome.cancelled = [this] {
        m_window->exportPanel()->showStatus(tr("Export cancelled: nothing was written."));
        m_window->runPanel()->finishJob(RunPanel::Outcome::Cancelled, tr("Export cancelled: nothing was written."));
        m_window->logView()->appendInfo(tr("Export cancelled."));
        Q_EMIT exportCancelled();
    };
    if (!m_session.jobs().launch(job, tr("the export of “%1”").arg(run->name), {model.get()}, this, std::move(outcome)))
        return false;
    m_window->logView()->appendInfo(tr("Exporting “%1” to %2").arg(run->name, QDir::toNativeSeparators(out)));
    m_window->runPanel()->startJob(tr("Export of “%1”").arg(run->name));
    m_window->updateActions();
    return true;
}

} // namespace sparselab::gui
