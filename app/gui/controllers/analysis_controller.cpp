#include "analysis_controller.h"

#include "analysis_jobs.h"
#include "calibration_panel.h"
#include "evaluation_panel.h"
#include "allocation_profile_plot.h"
#include "live_view.h"
#include "log_view.h"
#include "main_window.h"
#include "workbench.h"
#include "plan_model.h"
#include "plan_panel.h"
#include "recipe_bridge.h"
#include "results_panel.h"
#include "run_panel.h"
#include "sensitivity_panel.h"
#include "sweep_panel.h"
#include "workspace_controller.h"

#include "analysis/sweep.h"
#include "util/errors.h"

#include <QAction>
#include <QInputDialog>
#include <QApplication>
#include <QComboBox>
#include <QCheckBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolButton>
#include <QRegularExpression>

#include <cmath>

namespace sparselab::gui {

namespace {

// An engine message without the CLI option it starts with ("--groups: …" → "…"): the dialog's
// fields have their own names.
QString withoutOptionName(const QString& message)
{
    if (message.startsWith(QLatin1String("--"))) {
        const qsizetype colon = message.indexOf(QLatin1String(": "));
        if (colon > 0)
            return message.mid(colon + 2);
    }
    return message;
}

namespace key {
const QString scanSparsities = QStringLiteral("Sensitivity/sparsities");
const QString scanBits = QStringLiteral("Sensitivity/bits");
const QString scanMethod = QStringLiteral("Sensitivity/method");
const QString reportFolder = QStringLiteral("Report/lastFolder");
const QString reportHtml = QStringLiteral("Report/html");
const QString reportPdf = QStringLiteral("Report/pdf");
const QString reportPrompts = QStringLiteral("Report/prompts");
const QString reportTokens = QStringLiteral("Report/newTokens");
const QString scanFolder = QStringLiteral("Sensitivity/lastFolder");
const QString sweepSparsities = QStringLiteral("Sweep/sparsities");
const QString sweepBits = QStringLiteral("Sweep/bits");
const QString sweepMethods = QStringLiteral("Sweep/methods");
const QString sweepGroups = QStringLiteral("Sweep/groups");
const QString sweepAllocations = QStringLiteral("Sweep/allocations");
const QString sweepSearchGenerations = QStringLiteral("Sweep/searchGenerations");
} // namespace key

QString joinNumbers(const std::vector<double>& values)
{
    QStringList parts;
    for (double v : values)
        parts << QString::number(v);
    return parts.join(QStringLiteral(", "));
}

QStringList splitList(const QString& text)
{
    QStringList parts = text.split(QRegularExpression(QStringLiteral("[,;\\s]+")), Qt::SkipEmptyParts);
    return parts;
}


} // namespace

AnalysisController::AnalysisController(MainWindow* window, Workbench& session)
    : QObject(window), m_window(window), m_session(session)
{
    m_panel = new SensitivityPanel(window);
    m_scanAction = new QAction(tr("Sensitivity &Scan…"), this);
    m_scanAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_Y));
    m_scanAction->setStatusTip(tr("Measure every linear layer's reconstruction error at several sparsities and "
                                  "bit-widths from one Hessian per layer, on the calibration windows."));
    connect(m_scanAction, &QAction::triggered, this, &AnalysisController::scanDialog);
    m_openScanAction = new QAction(tr("Open Sensitivity Sc&an…"), this);
    m_openScanAction->setStatusTip(tr("Show a sensitivity scan (sparselab-cli sensitivity) from a scan file (.json) "
                                      "or a workspace (.h5) as a heat-map."));
    connect(m_openScanAction, &QAction::triggered, this, &AnalysisController::openScanDialog);
    m_allocateAction = new QAction(tr("&Allocate from Scan"), this);
    m_allocateAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_A));
    m_allocateAction->setStatusTip(tr("Choose per-layer sparsity and bits within the Sensitivity tab's budget that "
                                      "minimise the predicted error, and put them in the plan."));
    connect(m_allocateAction, &QAction::triggered, this, &AnalysisController::allocateToPlan);
    m_undoAllocationAction = new QAction(tr("&Undo Allocation"), this);
    m_undoAllocationAction->setShortcut(QKeySequence(Qt::CTRL | Qt::ALT | Qt::Key_Z));
    m_undoAllocationAction->setStatusTip(tr("Put back the plan as it was before the last allocation."));
    connect(m_undoAllocationAction, &QAction::triggered, this, &AnalysisController::undoAllocation);
    m_searchAction = new QAction(tr("Allocat&e…"), this);
    m_searchAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_L));
    m_searchAction->setStatusTip(tr("Spread a sparsity or size budget over the layers: the end-to-end search (levels "
                                    "chosen on the whole model's KL divergence from the dense model) or OWL "
                                    "(outlier-weighted per-block sparsities). Applied to the plan; Undo Allocation "
                                    "puts it back."));
    connect(m_searchAction, &QAction::triggered, this, &AnalysisController::allocateDialog);
    m_stopSearchAction = new QAction(tr("Stop Searc&h"), this);
    m_stopSearchAction->setStatusTip(tr("End the allocation search after this generation and apply the best levels "
                                        "found so far (Cancel discards them)."));
    connect(m_stopSearchAction, &QAction::triggered, this, &AnalysisController::stopSearch);
    m_sweepAction = new QAction(tr("S&weep…"), this);
    m_sweepAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_G));
    m_sweepAction->setStatusTip(tr("Prune and evaluate a grid of settings (methods × layer groups × bit-widths × "
                                   "sparsities), each from the dense model; the table and plots fill in point by "
                                   "point in Results → Sweeps."));
    connect(m_sweepAction, &QAction::triggered, this, &AnalysisController::sweepDialog);
    m_reportAction = new QAction(tr("Write &Report…"), this);
    m_reportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_R));
    m_reportAction->setStatusTip(tr("Write the hand-over report (HTML and/or PDF) of the run selected in Results: "
                                    "summary, provenance, per-layer table, plots, KL divergence and greedy "
                                    "continuations against the dense model."));
    connect(m_reportAction, &QAction::triggered, this, &AnalysisController::reportDialog);
    for (QAction* a : {m_scanAction, m_openScanAction, m_allocateAction, m_searchAction, m_stopSearchAction,
                       m_undoAllocationAction, m_reportAction,
                       m_sweepAction})
        a->setToolTip(a->statusTip());

    connect(m_panel, &SensitivityPanel::allocationReady, this, [this](const SensitivityPanel::AllocationOutcome& outcome) {
        applyAllocation(outcome.recipeJson, outcome.summary);
    });
    connect(m_panel, &SensitivityPanel::allocationFailed, this,
            [this](const QString& message) { m_window->reportError(tr("Cannot allocate"), message); });
    connect(m_window, &MainWindow::busyChanged, this, &AnalysisController::updateActions);
    connect(m_window->resultsPanel(), &ResultsPanel::runSelected, this, &AnalysisController::updateActions);
    connect(m_window->resultsPanel(), &ResultsPanel::runRemoved, this, &AnalysisController::updateActions);
    connect(m_window, &MainWindow::modelLoaded, this, [this] {
        m_planBeforeAllocation.reset(); // another model: the saved plan no longer fits
        updateActions();
    });
    updateActions();
}

AnalysisController::~AnalysisController() = default;

void AnalysisController::populateFileMenu(QMenu* file)
{
    file->addAction(m_openScanAction);
    file->addAction(m_reportAction);
}

void AnalysisController::populateRunMenu(QMenu* run)
{
    run->addAction(m_sweepAction);
    run->addAction(m_scanAction);
    run->addAction(m_allocateAction);
    run->addAction(m_searchAction);
    run->addAction(m_stopSearchAction);
    run->addAction(m_undoAllocationAction);
}

void AnalysisController::updateActions()
{
    const bool busy = m_window->isBusy();
    const bool running = m_window->isRunning();
    m_scanAction->setEnabled(!busy && m_session.hasModel());
    m_sweepAction->setEnabled(!busy && m_session.hasModel());
    m_openScanAction->setEnabled(!isBusy());
    m_allocateAction->setEnabled(!running && m_session.hasModel() && m_panel->hasScan());
    m_searchAction->setEnabled(!busy && m_session.hasModel());
    m_stopSearchAction->setEnabled(m_searchJob != nullptr);
    m_undoAllocationAction->setEnabled(!running && m_session.hasModel() && m_planBeforeAllocation != nullptr);
    const int selected = m_window->resultsPanel()->selectedRunId();
    const RunRecord* run = selected >= 0 ? m_window->resultsPanel()->run(selected) : nullptr;
    m_reportAction->setEnabled(!busy && run
                               && (m_session.runModel(selected) != nullptr || !run->originFile.isEmpty()));
}

bool AnalysisController::parseSparsities(const QString& text, std::vector<double>* out, QString* error)
{
    std::vector<double> values;
    for (const QString& part : splitList(text)) {
        bool ok = false;
        double v = part.toDouble(&ok);
        if (ok && part.endsWith(QLatin1Char('%')))
            ok = false;
        if (!ok && part.endsWith(QLatin1Char('%'))) {
            v = part.chopped(1).toDouble(&ok) / 100.0;
        }
        if (!ok || !(v >= 0.0 && v < 1.0)) {
            *error = tr("Sparsities: '%1' is not a fraction in [0, 1) (e.g. 0, 0.25, 0.5 or 50%)").arg(part);
            return false;
        }
        values.push_back(v);
    }
    if (values.empty()) {
        *error = tr("Sparsities: give at least one level, e.g. 0, 0.25, 0.5, 0.75");
        return false;
    }
    *out = values;
    return true;
}

bool AnalysisController::parseBits(const QString& text, std::vector<int>* out, QString* error)
{
    std::vector<int> values;
    for (const QString& part : splitList(text)) {
        bool ok = false;
        const int v = part.toInt(&ok);
        if (!ok || !((v >= 2 && v <= 8) || v == 16)) {
            *error = tr("Bits: '%1' is not 2 – 8 or 16 (16 = not quantized)").arg(part);
            return false;
        }
        values.push_back(v);
    }
    if (values.empty()) {
        *error = tr("Bits: give at least one width, e.g. 16 or 16, 4");
        return false;
    }
    *out = values;
    return true;
}

void AnalysisController::onProgress(qint64 done, qint64 total, double etaSeconds, const QString& text)
{
    m_window->showJobProgress(done, total);
    QString message = m_jobName + QStringLiteral(" — ") + text;
    if (total > 0)
        message += QStringLiteral(" (%1/%2)").arg(done).arg(total);
    if (etaSeconds >= 0)
        message += tr(", %1 left").arg(formatSeconds(etaSeconds));
    m_window->statusBar()->showMessage(message);
    m_window->runPanel()->setJobProgress(done, total, etaSeconds, text);
}

template <class Job>
bool AnalysisController::startJob(Job* job, const QString& what, JobOutcome<Job> outcome)
{
    m_job = job;
    m_jobName = what;
    connect(job, &EngineJob::progress, this, &AnalysisController::onProgress);
    // The Run view shows the job while it runs and how it ended (one progress area).
    JobOutcome<Job> common;
    common.ended = [this, ended = std::move(outcome.ended)] {
        finishJob();
        if (ended)
            ended();
    };
    common.finished = std::move(outcome.finished);
    common.failed = [this, failed = std::move(outcome.failed)](const QString& message) {
        m_window->runPanel()->finishJob(RunPanel::Outcome::Failed, tr("%1 failed: %2").arg(m_jobName, message));
        if (failed)
            failed(message);
    };
    common.cancelled = [this, cancelled = std::move(outcome.cancelled)] {
        const QString message = tr("%1 cancelled; nothing was written.").arg(m_jobName);
        m_window->runPanel()->finishJob(RunPanel::Outcome::Cancelled, message);
        m_window->announce(message);
        if (cancelled)
            cancelled();
        Q_EMIT jobCancelled();
    };
    if (!m_session.jobs().launch(job, what, {m_session.model().get()}, this, std::move(common)))
        return false;
    m_window->logView()->appendInfo(tr("%1 started.").arg(what));
    m_window->runPanel()->startJob(what);
    m_window->statusBar()->showMessage(tr("%1…").arg(what));
    updateActions();
    return true;
}

void AnalysisController::finishJob()
{
    m_job = nullptr; // the window's JobRunner deletes it
    m_window->updateActions();
    updateActions();
}

void AnalysisController::cancel()
{
    if (m_job)
        m_job->cancel();
}

bool AnalysisController::canStart()
{
    return !m_window->refuseWhileBusy();
}

bool AnalysisController::canStartOnModel()
{
    return !m_window->refuseModelJob();
}

bool AnalysisController::startScan(const ScanRequest& request)
{
    if (!canStartOnModel())
        return false;
    SensitivityJob::Params params;
    params.model = m_session.model();
    params.tokenizer = m_session.tokenizer();
    params.calibration = m_window->calibrationPanel()->settings();
    params.sparsities = request.sparsities;
    params.bits = request.bits;
    params.method = request.method == 1 ? PlanMethod::Magnitude : request.method == 2 ? PlanMethod::Wanda : PlanMethod::SparseGpt;
    params.threads = engineThreads(m_session.summary().hiddenSize);
    auto* job = new SensitivityJob(params, this);
    JobOutcome<SensitivityJob> outcome;
    outcome.finished = [this](const SensitivityJob::Result& result) {
        m_panel->setScan(result.scan, QString());
        m_window->resultsPanel()->tabs()->setCurrentWidget(m_panel);
        m_window->workspace()->markModified();
        const QString message = tr("Sensitivity scan finished in %1").arg(formatSeconds(result.seconds));
        m_window->runPanel()->finishJob(RunPanel::Outcome::Done, message);
        m_window->announce(message, 10'000);
        updateActions();
        Q_EMIT scanFinished();
    };
    outcome.failed = [this](const QString& message) {
        m_window->reportError(tr("Sensitivity scan failed"), message);
        Q_EMIT scanFailed(message);
    };
    return startJob(job, tr("Sensitivity scan (%1 levels × %2 bit-widths)").arg(request.sparsities.size()).arg(request.bits.size()),
                    std::move(outcome));
}

bool AnalysisController::startSweep(const SweepRequest& request)
{
    if (!canStartOnModel())
        return false;
    SweepJob::Params params;
    params.model = m_session.model();
    params.tokenizer = m_session.tokenizer();
    params.calibration = m_window->calibrationPanel()->settings();
    params.evaluation = m_window->evaluationSettings();
    if (params.evaluation.textPath.isEmpty()) {
        m_window->reportError(tr("No evaluation text"), tr("A sweep measures perplexity: choose an evaluation text (Ctrl+T)."));
        return false;
    }
    {
        const qint64 seqlen = params.evaluation.seqlen > 0 ? params.evaluation.seqlen : params.calibration.seqlen;
        const auto known = m_session.densePerplexity(params.evaluation.textPath, seqlen, params.evaluation.maxWindows);
        if (known)
            params.densePerplexity = known->perplexity;
    }
    params.sparsities = request.sparsities;
    params.bits = request.bits;
    for (int m : request.methods)
        params.methods.push_back(m == 1 ? PlanMethod::Magnitude : m == 2 ? PlanMethod::Wanda : PlanMethod::SparseGpt);
    params.groups = request.groups;
    params.allocations = request.allocations;
    params.searchGenerations = request.searchGenerations;
    params.threads = engineThreads(m_session.summary().hiddenSize);
    const qint64 points = SweepJob::pointCount(params);
    if (points == 0) {
        m_window->reportError(tr("Empty sweep"), tr("Choose at least one sparsity, bit-width, method and layer group."));
        return false;
    }
    auto* job = new SweepJob(params, this);
    const QString source = tr("sweep of this session");
    connect(job, &SweepJob::pointFinished, this, [this, source](const std::shared_ptr<const analysis::SweepResult>& soFar) {
        m_window->sweepPanel()->setSweep(*soFar, source);
        m_window->resultsPanel()->tabs()->setCurrentWidget(m_window->sweepPanel());
    });
    JobOutcome<SweepJob> outcome;
    outcome.finished = [this, source](const SweepJob::Result& result) {
        m_window->sweepPanel()->setSweep(*result.sweep, source);
        m_window->resultsPanel()->tabs()->setCurrentWidget(m_window->sweepPanel());
        m_window->workspace()->markModified();
        const QString message = tr("Sweep finished: %n point(s) in %1", nullptr, int(result.sweep->points.size()))
                                    .arg(formatSeconds(result.seconds));
        m_window->runPanel()->finishJob(RunPanel::Outcome::Done, message);
        m_window->announce(message, 10'000);
        Q_EMIT sweepFinished();
    };
    outcome.failed = [this](const QString& message) {
        m_window->reportError(tr("Sweep failed"), message);
        Q_EMIT sweepFailed(message);
    };
    return startJob(job, tr("Sweep (%n point(s))", nullptr, int(points)), std::move(outcome));
}

bool AnalysisController::writeReport(const ReportRequest& request)
{
    if (!canStart())
        return false;
    const int id = m_window->resultsPanel()->selectedRunId();
    const RunRecord* run = id >= 0 ? m_window->resultsPanel()->run(id) : nullptr;
    if (!run) {
        m_window->reportError(tr("No run"), tr("Select a run in Results first: the report is about one run."));
        return false;
    }
    ReportJob::Params params;
    params.model = m_session.runModel(id);
    if (!params.model) {
        if (run->originFile.isEmpty()) {
            m_window->reportError(tr("Run not in memory"),
                                  tr("The compressed model of “%1” is no longer in memory (released to save memory): "
                                     "run it again to report on it.").arg(run->name));
            return false;
        }
        // A run read from a workspace: the report comes from the workspace (its export folder,
        // the recorded hashes), as `sparselab-cli report W.h5 --run ID` makes it.
        params.originFile = run->originFile;
        params.originId = run->originId;
    }
    params.record = *run;
    params.htmlPath = request.htmlPath;
    params.pdfPath = request.pdfPath;
    params.evalTextPath = m_window->evaluationPanel()->textPath();
    params.prompts = request.prompts;
    params.newTokens = request.newTokens;
    params.maxWindows = request.maxWindows;
    if (const analysis::SweepResult* sweep = m_window->sweepPanel()->sweep())
        params.sweep = std::make_shared<analysis::SweepResult>(*sweep);
    params.sensitivity = m_panel->scan();
    params.sessionRuns = m_window->resultsPanel()->runs();
    params.workspaceFile = m_window->workspace()->currentFile();
    params.threads = engineThreads(m_session.summary().hiddenSize);
    if (const QString problem = ReportJob::outputProblem(params); !problem.isEmpty()) {
        m_window->reportError(tr("Cannot write the report"), problem);
        return false;
    }
    auto* job = new ReportJob(params, this);
    JobOutcome<ReportJob> outcome;
    outcome.finished = [this](const ReportJob::Result& result) {
        m_lastReportFiles.clear();
        for (const QString& f : {result.htmlPath, result.pdfPath})
            if (!f.isEmpty())
                m_lastReportFiles << f;
        const QString message = tr("Report written: %1 (perplexity %2 → %3, mean KL %4 nats, top-1 agreement %5, %6 "
                                   "windows, %7)")
                                    .arg(m_lastReportFiles.join(QStringLiteral(", ")))
                                    .arg(result.densePerplexity, 0, 'f', 4)
                                    .arg(result.compressedPerplexity, 0, 'f', 4)
                                    .arg(result.meanKl, 0, 'f', 5)
                                    .arg(result.top1Agreement, 0, 'f', 4)
                                    .arg(result.windows)
                                    .arg(formatSeconds(result.seconds));
        m_window->runPanel()->finishJob(RunPanel::Outcome::Done, message);
        m_window->announce(message, 15'000);
        Q_EMIT reportWritten(m_lastReportFiles);
    };
    outcome.failed = [this](const QString& message) {
        m_window->reportError(tr("Cannot write the report"), message);
        Q_EMIT reportFailed(message);
    };
    return startJob(job, tr("Report on “%1”").arg(run->name), std::move(outcome));
}

bool AnalysisController::openScan(const QString& file)
{
    QString error;
    if (!m_panel->loadFile(file, &error)) {
        m_window->reportError(tr("Cannot open the sensitivity scan"),
                              error.isEmpty() ? tr("%1 holds no sensitivity scan.").arg(QDir::toNativeSeparators(file)) : error);
        return false;
    }
    QSettings().setValue(key::scanFolder, QFileInfo(file).absolutePath());
    m_window->resultsPanel()->tabs()->setCurrentWidget(m_panel);
    m_window->logView()->appendInfo(tr("Opened sensitivity scan %1").arg(QDir::toNativeSeparators(file)));
    updateActions();
    return true;
}

bool AnalysisController::allocateToPlan()
{
    if (m_window->isRunning()) {
        m_window->reportError(tr("Busy"), tr("The plan cannot change while a run uses it."));
        return false;
    }
    if (!m_session.hasModel()) {
        m_window->reportError(tr("No model"), tr("Open the model the scan was made on first."));
        return false;
    }
    bool applied = false;
    const auto connection = connect(this, &AnalysisController::allocationApplied, this, [&applied] { applied = true; });
    m_window->resultsPanel()->tabs()->setCurrentWidget(m_panel);
    m_panel->allocateToPlan();
    disconnect(connection);
    return applied;
}

bool AnalysisController::applyAllocation(const QByteArray& recipeJson, const QString& summary)
{
    QList<LayerSetting> settings;
    const QString error =
        applyRecipeJson(recipeJson, tr("allocation"), m_window->planPanel()->planModel()->rows(), &settings);
    if (!error.isEmpty()) {
        m_window->reportError(tr("Cannot apply the allocation"), error);
        return false;
    }
    const QList<PlanRow>& rows = m_window->planPanel()->planModel()->rows();
    m_planBeforeAllocation = std::make_unique<std::vector<LayerSetting>>();
    for (const PlanRow& row : rows)
        m_planBeforeAllocation->push_back(row.setting);
    m_window->planPanel()->planModel()->setSettings(settings);
    m_window->logView()->appendInfo(summary);
    m_window->statusBar()->showMessage(tr("Allocation applied to the plan (Undo Allocation: Ctrl+Alt+Z)"), 10'000);
    updateActions();
    Q_EMIT allocationApplied(summary);
    return true;
}

bool AnalysisController::startOwl(double averageSparsity)
{
    if (!canStartOnModel())
        return false;
    OwlJob::Params params;
    params.model = m_session.model();
    params.tokenizer = m_session.tokenizer();
    params.calibration = m_window->calibrationPanel()->settings();
    params.targetSparsity = averageSparsity;
    params.threads = engineThreads(m_session.summary().hiddenSize);
    auto* job = new OwlJob(params, this);
    JobOutcome<OwlJob> outcome;
    outcome.finished = [this](const OwlJob::Result& result) {
        m_window->runPanel()->finishJob(RunPanel::Outcome::Done, result.summary);
        applyAllocation(result.recipeJson, result.summary);
    };
    outcome.failed = [this](const QString& message) {
        m_window->reportError(tr("OWL allocation failed"), message);
    };
    return startJob(job, tr("OWL allocation (%1 % average)").arg(100.0 * averageSparsity, 0, 'f', 1), std::move(outcome));
}

bool AnalysisController::startSearch(const SearchRequest& request)
{
    if (!canStartOnModel())
        return false;
    SearchJob::Params params;
    params.model = m_session.model();
    params.tokenizer = m_session.tokenizer();
    params.calibration = m_window->calibrationPanel()->settings();
    params.targetSparsity = request.averageSparsity;
    params.budgetBytes = request.budgetBytes;
    params.generations = request.generations;
    params.timeLimitSeconds = request.timeLimitSeconds;
    params.seed = request.seed;
    params.threads = engineThreads(m_session.summary().hiddenSize);
    auto* job = new SearchJob(params, this);
    const QString budget = request.budgetBytes > 0
                               ? tr("%1 KB").arg(double(request.budgetBytes) / 1000.0, 0, 'f', 1)
                               : tr("%1 % average").arg(100.0 * request.averageSparsity, 0, 'f', 1);
    const QString description = tr("%1, %2 generations").arg(budget).arg(request.generations);
    // The profile plot needs the layers once; each improvement redraws it.
    auto layers = std::make_shared<QList<SearchJob::LayerLevel>>();
    connect(job, &SearchJob::layersKnown, this,
            [this, layers](const QList<SearchJob::LayerLevel>& known, double uniform, const QVector<double>& owl) {
                *layers = known;
                m_window->liveView()->setSearchReference(uniform, owl);
            });
    connect(job, &SearchJob::generationFinished, this,
            [this, layers](qint64 generation, double kl, const QVector<double>& sparsity) {
                m_window->liveView()->addSearchGeneration(generation, kl);
                if (sparsity.size() != layers->size())
                    return;
                QVector<widgets::ProfileLayer> profile;
                for (qsizetype l = 0; l < sparsity.size(); ++l)
                    profile.push_back({layers->at(l).kind, int(layers->at(l).block), sparsity[l]});
                m_window->liveView()->setSearchProfile(profile);
            });
    JobOutcome<SearchJob> outcome;
    outcome.finished = [this](const SearchJob::Result& result) {
        m_window->runPanel()->finishJob(RunPanel::Outcome::Done, result.summary);
        applyAllocation(result.recipeJson, result.summary);
    };
    outcome.failed = [this](const QString& message) {
        m_window->reportError(tr("Allocation search failed"), message);
    };
    outcome.ended = [this] { m_searchJob = nullptr; };
    m_searchJob = job;
    if (!startJob(job, tr("Allocation search (%1)").arg(description), std::move(outcome)))
        return false; // `ended` forgot the job
    m_window->liveView()->startSearch(request.generations, description);
    updateActions();
    return true;
}

void AnalysisController::stopSearch()
{
    if (!m_searchJob)
        return;
    m_searchJob->stop();
    m_stopSearchAction->setEnabled(false);
    m_window->logView()->appendInfo(tr("Stopping the allocation search after this generation…"));
}

void AnalysisController::allocateDialog()
{
    QDialog dialog(m_window);
    dialog.setWindowTitle(tr("Allocate"));
    auto* form = new QFormLayout;
    auto* method = new QComboBox(&dialog);
    method->addItem(tr("End-to-end search"));
    method->addItem(tr("OWL"));
    method->setToolTip(tr("End-to-end search: per-layer levels traded between layers while the whole model's KL "
                          "divergence from the dense model falls (EvoPress). OWL: blocks with more outlier weights "
                          "(|W|·‖X‖ above 5 × the block's mean) pruned less, within a band of 16 points (Yin et "
                          "al., 2024). For the DP allocator over a sensitivity scan, use Allocate from Scan."));
    auto* budgetKind = new QComboBox(&dialog);
    budgetKind->addItem(tr("Average sparsity"));
    budgetKind->addItem(tr("Model size (sparsity and 16/8/4 bits)"));
    budgetKind->setToolTip(tr("Average sparsity: the same share of zeros as a uniform plan, spread differently. "
                              "Model size: the whole model's bytes by the size model, sparsity and bits chosen "
                              "together, never over the size."));
    auto* sparsity = new QDoubleSpinBox(&dialog);
    sparsity->setRange(1.0, 95.0);
    sparsity->setDecimals(1);
    sparsity->setSuffix(tr(" %"));
    sparsity->setToolTip(tr("The average sparsity over all linear weights; the search keeps it exactly."));
    auto* sizeKb = new QDoubleSpinBox(&dialog);
    sizeKb->setRange(1.0, 1e9);
    sizeKb->setDecimals(1);
    sizeKb->setSuffix(tr(" KB"));
    // The plan's linear layers at fp16, for scale (the rest of the model counts at fp16 too).
    qint64 linearWeights = 0;
    for (const PlanRow& row : m_window->planPanel()->planModel()->rows())
        linearWeights += row.weights();
    const qint64 fp16Kb = linearWeights * 2 / 1000;
    sizeKb->setToolTip(tr("The whole model's size (1 KB = 1000 bytes): the linear layers at fp16 take %1 KB, and "
                          "embeddings, norms and head count at fp16 as well.")
                           .arg(fp16Kb));
    auto* generations = new QSpinBox(&dialog);
    generations->setRange(1, 100000);
    generations->setToolTip(tr("Each generation scores 16 variants of the best levels so far: 256 forward passes "
                               "of one calibration window (a second or two on the demo model)."));
    auto* timeLimit = new QSpinBox(&dialog);
    timeLimit->setRange(0, 24 * 3600);
    timeLimit->setSuffix(tr(" s"));
    timeLimit->setSpecialValueText(tr("none"));
    timeLimit->setToolTip(tr("Stop after this long and keep the best levels so far."));
    auto* seed = new QSpinBox(&dialog);
    seed->setRange(0, 1 << 30);
    seed->setToolTip(tr("The same seed, calibration and threads give the same levels."));
    QSettings settings;
    sparsity->setValue(settings.value(QStringLiteral("Allocation/searchPercent"), 60.0).toDouble());
    budgetKind->setCurrentIndex(settings.value(QStringLiteral("Allocation/searchBudgetKind"), 0).toInt() == 1 ? 1 : 0);
    sizeKb->setValue(settings.value(QStringLiteral("Allocation/searchKb"), std::max<double>(1.0, 0.35 * double(fp16Kb)))
                         .toDouble());
    generations->setValue(settings.value(QStringLiteral("Allocation/searchGenerations"), 100).toInt());
    timeLimit->setValue(settings.value(QStringLiteral("Allocation/searchSeconds"), 0).toInt());
    seed->setValue(settings.value(QStringLiteral("Allocation/searchSeed"), 0).toInt());
    method->setCurrentIndex(settings.value(QStringLiteral("Allocation/method"), 0).toInt() == 1 ? 1 : 0);
    form->addRow(tr("Method:"), method);
    form->addRow(tr("Budget:"), budgetKind);
    form->addRow(tr("Average sparsity:"), sparsity);
    form->addRow(tr("Model size:"), sizeKb);

    form->addRow(tr("Generations:"), generations);
    form->addRow(tr("Time limit:"), timeLimit);
    form->addRow(tr("Seed:"), seed);
    const QString searchHelp =
        tr("Every layer is solved once at each level (sparsity 5 points apart around the average; or 0–90 % × "
           "16/8/4 bits for a size); the search then trades levels between layers and keeps what lowers the whole "
           "model's KL divergence from the dense model on the Calibration view's first 32 windows. F5 afterwards "
           "runs the real pipeline with the levels found.");
    const QString owlHelp =
        tr("One pass of the Calibration view's windows through the dense model measures each block's share of "
           "outlier weights; blocks with more are pruned less, within a band of 16 points around the average, "
           "which stays exact (16 – 84 %). F5 afterwards runs the real pipeline with these sparsities.");
    auto* help = new QLabel(&dialog);
    help->setWordWrap(true);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dialog);
    const auto showMethod = [=] {
        const bool owl = method->currentIndex() == 1;
        if (owl)
            budgetKind->setCurrentIndex(0); // OWL spreads an average sparsity only
        budgetKind->setEnabled(!owl);
        sparsity->setEnabled(budgetKind->currentIndex() == 0);
        sizeKb->setEnabled(budgetKind->currentIndex() == 1);
        for (QWidget* searchOnly : std::initializer_list<QWidget*>{generations, timeLimit, seed})
            searchOnly->setEnabled(!owl);
        help->setText(owl ? owlHelp : searchHelp);
        buttons->button(QDialogButtonBox::Ok)->setText(owl ? tr("Allocate") : tr("Search"));
    };
    connect(method, &QComboBox::currentIndexChanged, &dialog, showMethod);
    connect(budgetKind, &QComboBox::currentIndexChanged, &dialog, showMethod);
    showMethod();
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    auto* layout = new QVBoxLayout(&dialog);
    layout->addWidget(help);
    layout->addLayout(form);
    layout->addWidget(buttons);
    // OWL's band (2λ = 16 points) must stay inside [0, 1).
    const auto accept = [&] {
        if (method->currentIndex() == 1 && (sparsity->value() < 16.0 || sparsity->value() >= 84.0)) {
            QMessageBox::warning(&dialog, tr("Allocate"),
                                 tr("OWL needs an average sparsity from 16 % to just under 84 %: its band of "
                                    "±16 points must stay between 0 and 100 %."));
            return;
        }
        dialog.accept();
    };
    connect(buttons, &QDialogButtonBox::accepted, &dialog, accept);
    if (dialog.exec() != QDialog::Accepted)
        return;
    settings.setValue(QStringLiteral("Allocation/method"), method->currentIndex());
    if (method->currentIndex() == 1) {
        settings.setValue(QStringLiteral("Allocation/searchPercent"), sparsity->value());
        startOwl(sparsity->value() / 100.0);
        return;
    }
    settings.setValue(QStringLiteral("Allocation/searchPercent"), sparsity->value());
    settings.setValue(QStringLiteral("Allocation/searchBudgetKind"), budgetKind->currentIndex());
    settings.setValue(QStringLiteral("Allocation/searchKb"), sizeKb->value());
    settings.setValue(QStringLiteral("Allocation/searchGenerations"), generations->value());
    settings.setValue(QStringLiteral("Allocation/searchSeconds"), timeLimit->value());
    settings.setValue(QStringLiteral("Allocation/searchSeed"), seed->value());
    SearchRequest request;
    request.averageSparsity = sparsity->value() / 100.0;
    if (budgetKind->currentIndex() == 1)
        request.budgetBytes = qint64(std::llround(sizeKb->value() * 1000.0));
    request.generations = generations->value();
    request.timeLimitSeconds = timeLimit->value();
    request.seed = quint64(seed->value());
    startSearch(request);
}

bool AnalysisController::undoAllocation()
{
    if (!m_planBeforeAllocation || m_window->isRunning())
        return false;
    PlanModel* plan = m_window->planPanel()->planModel();
    if (int(m_planBeforeAllocation->size()) != plan->rows().size())
        return false;
    plan->setSettings(QList<LayerSetting>(m_planBeforeAllocation->begin(), m_planBeforeAllocation->end()));
    m_planBeforeAllocation.reset();
    m_window->logView()->appendInfo(tr("Allocation undone: the plan is as before."));
    m_window->statusBar()->showMessage(tr("Allocation undone."), 5000);
    updateActions();
    return true;
}

void AnalysisController::openScanDialog()
{
    const QString start = QSettings().value(key::scanFolder, QDir::homePath()).toString();
    const QString file = QFileDialog::getOpenFileName(m_window, tr("Open Sensitivity Scan"), start,
                                                      tr("Sensitivity scans (*.json *.h5);;All files (*)"));
    if (!file.isEmpty())
        openScan(file);
}

void AnalysisController::scanDialog()
{
    QSettings settings;
    QDialog dialog(m_window);
    dialog.setWindowTitle(tr("Sensitivity Scan"));
    auto* sparsities = new QLineEdit(settings.value(key::scanSparsities, joinNumbers(ScanRequest{}.sparsities)).toString());
    sparsities->setToolTip(tr("Sparsity levels, fractions in [0, 1), separated by commas"));
    auto* bits = new QLineEdit(settings.value(key::scanBits, QStringLiteral("16")).toString());
    bits->setToolTip(tr("Bit-widths, 2 – 8, or 16 for no quantization, separated by commas"));
    auto* method = new QComboBox;
    method->addItems({planMethodLabel(PlanMethod::SparseGpt), planMethodLabel(PlanMethod::Magnitude),
                      planMethodLabel(PlanMethod::Wanda)});
    method->setCurrentIndex(std::clamp(settings.value(key::scanMethod, 0).toInt(), 0, 2));
    const CalibrationSettings calib = m_window->calibrationPanel()->settings();
    auto* note = new QLabel(tr("Calibration: %1 windows × %2 tokens of %3, seed %4 (the Calibration view). One Hessian "
                               "and one factorisation per layer; every level is solved from the dense weight.")
                                .arg(calib.nsamples)
                                .arg(calib.seqlen)
                                .arg(QFileInfo(calib.textPath).fileName())
                                .arg(calib.seed));
    note->setWordWrap(true);
    auto* error = new QLabel;
    error->setWordWrap(true);
    error->setStyleSheet(QStringLiteral("color: palette(link)"));
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Scan"));
    auto* form = new QFormLayout(&dialog);
    form->addRow(tr("Sparsities:"), sparsities);
    form->addRow(tr("Bits:"), bits);
    form->addRow(tr("Method:"), method);
    form->addRow(note);
    form->addRow(error);
    form->addRow(buttons);
    ScanRequest request;
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, [&] {
        QString problem;
        if (!parseSparsities(sparsities->text(), &request.sparsities, &problem)
            || !parseBits(bits->text(), &request.bits, &problem)) {
            error->setText(problem);
            return;
        }
        request.method = method->currentIndex();
        dialog.accept();
    });
    if (dialog.exec() != QDialog::Accepted)
        return;
    settings.setValue(key::scanSparsities, sparsities->text());
    settings.setValue(key::scanBits, bits->text());
    settings.setValue(key::scanMethod, method->currentIndex());
    startScan(request);
}

void AnalysisController::sweepDialog()
{
    QSettings settings;
    QDialog dialog(m_window);
    dialog.setWindowTitle(tr("Sweep"));
    const SweepRequest defaults;
    std::vector<double> defaultSparsities = defaults.sparsities;
    auto* sparsities = new QLineEdit(settings.value(key::sweepSparsities, joinNumbers(defaultSparsities)).toString());
    sparsities->setToolTip(tr("Sparsity levels, fractions in [0, 1), separated by commas"));
    auto* bits = new QLineEdit(settings.value(key::sweepBits, QStringLiteral("16, 4")).toString());
    bits->setToolTip(tr("Bit-widths, 2 – 8, or 16 for no quantization, separated by commas"));
    const QStringList savedMethods = settings.value(key::sweepMethods, QStringList{QStringLiteral("0")}).toStringList();
    const QStringList savedGroups = settings.value(key::sweepGroups, QStringList{QStringLiteral("all")}).toStringList();
    auto* methodRow = new QHBoxLayout;
    QList<QCheckBox*> methods;
    for (int m = 0; m < 3; ++m) {
        auto* box = new QCheckBox(planMethodLabel(m == 0 ? PlanMethod::SparseGpt : m == 1 ? PlanMethod::Magnitude : PlanMethod::Wanda));
        box->setChecked(savedMethods.contains(QString::number(m)));
        methodRow->addWidget(box);
        methods << box;
    }
    auto* groupRow = new QHBoxLayout;
    QList<QCheckBox*> groups;
    const QStringList groupKeys = {QStringLiteral("all"), QStringLiteral("attention"), QStringLiteral("mlp")};
    const QStringList groupNames = {tr("All layers"), tr("Attention only"), tr("MLP only")};
    for (int g = 0; g < 3; ++g) {
        auto* box = new QCheckBox(groupNames[g]);
        box->setChecked(savedGroups.contains(groupKeys[g]));
        box->setToolTip(tr("The layers this point compresses; the others stay dense"));
        groupRow->addWidget(box);
        groups << box;
    }
    // The allocation axis: how each point's sparsity is spread over its layers.
    const QStringList savedAllocations =
        settings.value(key::sweepAllocations, QStringList{QStringLiteral("uniform")}).toStringList();
    auto* allocationRow = new QHBoxLayout;
    QList<QCheckBox*> allocations;
    const QStringList allocationKeys = {QStringLiteral("uniform"), QStringLiteral("owl"), QStringLiteral("search")};
    const QStringList allocationNames = {tr("Uniform"), tr("OWL"), tr("Search")};
    const QStringList allocationTips = {
        tr("Every layer at the point's sparsity"),
        tr("OWL: blocks with more outlier weights are pruned less (within ±2λ, λ = 0.08); same average"),
        tr("End-to-end search: per-layer levels chosen on the whole model's KL divergence; same average. "
           "One search per sparsity level, shared by the methods and bit-widths at that level")};
    for (int a = 0; a < 3; ++a) {
        auto* box = new QCheckBox(allocationNames[a]);
        box->setChecked(savedAllocations.contains(allocationKeys[a]));
        box->setToolTip(allocationTips[a]);
        allocationRow->addWidget(box);
        allocations << box;
    }
    auto* generations = new QSpinBox;
    generations->setRange(1, 100000);
    generations->setValue(settings.value(key::sweepSearchGenerations, qlonglong(SweepRequest{}.searchGenerations)).toInt());
    generations->setToolTip(tr("Generations of each search (Run → Allocate… runs one with more options)"));
    generations->setEnabled(allocations[2]->isChecked());
    connect(allocations[2], &QCheckBox::toggled, generations, &QWidget::setEnabled);
    const CalibrationSettings calib = m_window->calibrationPanel()->settings();
    const EvaluationSettings evaluation = m_window->evaluationSettings();
    auto* count = new QLabel;
    auto* note = new QLabel(tr("Each point prunes a fresh copy of the dense model with %1 windows × %2 tokens of %3 and "
                               "measures perplexity on %4 (%5).")
                                .arg(calib.nsamples)
                                .arg(calib.seqlen)
                                .arg(QFileInfo(calib.textPath).fileName(), QFileInfo(evaluation.textPath).fileName(),
                                     evaluation.maxWindows > 0 ? tr("first %1 windows").arg(evaluation.maxWindows)
                                                               : tr("all windows")));
    note->setWordWrap(true);
    auto* error = new QLabel;
    error->setWordWrap(true);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Run Sweep"));
    auto* form = new QFormLayout(&dialog);
    form->addRow(tr("Sparsities:"), sparsities);
    form->addRow(tr("Bits:"), bits);
    form->addRow(tr("Methods:"), methodRow);
    form->addRow(tr("Layers:"), groupRow);
    form->addRow(tr("Allocation:"), allocationRow);
    form->addRow(tr("Search generations:"), generations);
    form->addRow(count);
    form->addRow(note);
    form->addRow(error);
    form->addRow(buttons);
    SweepRequest request;
    const auto collect = [&](QString* problem) {
        if (!parseSparsities(sparsities->text(), &request.sparsities, problem) || !parseBits(bits->text(), &request.bits, problem))
            return false;
        request.methods.clear();
        for (int m = 0; m < 3; ++m)
            if (methods[m]->isChecked())
                request.methods.push_back(m);
        request.groups.clear();
        for (int g = 0; g < 3; ++g)
            if (groups[g]->isChecked())
                request.groups.push_back(groupKeys[g].toStdString());
        request.allocations.clear();
        for (int a = 0; a < 3; ++a)
            if (allocations[a]->isChecked())
                request.allocations.push_back(allocationKeys[a].toStdString());
        request.searchGenerations = generations->value();
        if (request.methods.empty() || request.groups.empty() || request.allocations.empty()) {
            *problem = tr("Choose at least one method, one layer group and one allocation.");
            return false;
        }
        // The grid's own rules (e.g. the search needs all layers, OWL and search a level above 0).
        analysis::SweepGrid grid;
        grid.sparsities = request.sparsities;
        grid.bits = request.bits;
        grid.groups = request.groups;
        grid.allocations = request.allocations;
        try {
            grid.validate();
        } catch (const InputError& e) {
            *problem = withoutOptionName(QString::fromStdString(e.what()));
            return false;
        }
        return true;
    };
    const auto updateCount = [&] {
        QString problem;
        if (collect(&problem)) {
            const size_t n = request.allocations.size() * request.sparsities.size() * request.bits.size()
                * request.methods.size() * request.groups.size();
            const bool searches = std::find(request.allocations.begin(), request.allocations.end(), "search")
                != request.allocations.end();
            count->setText(searches ? tr("%n point(s), each a full prune and evaluation, and %1 search(es).", nullptr, int(n))
                                          .arg(request.sparsities.size())
                                    : tr("%n point(s), each a full prune and evaluation.", nullptr, int(n)));
        } else {
            count->setText(problem);
        }
    };
    connect(sparsities, &QLineEdit::textChanged, &dialog, updateCount);
    connect(bits, &QLineEdit::textChanged, &dialog, updateCount);
    for (QCheckBox* box : methods + groups + allocations)
        connect(box, &QCheckBox::toggled, &dialog, updateCount);
    updateCount();
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, [&] {
        QString problem;
        if (!collect(&problem)) {
            error->setText(problem);
            return;
        }
        dialog.accept();
    });
    if (dialog.exec() != QDialog::Accepted)
        return;
    settings.setValue(key::sweepSparsities, sparsities->text());
    settings.setValue(key::sweepBits, bits->text());
    QStringList m, g;
    for (int i : request.methods)
        m << QString::number(i);
    for (const auto& group : request.groups)
        g << QString::fromStdString(group);
    settings.setValue(key::sweepMethods, m);
    settings.setValue(key::sweepGroups, g);
    QStringList a;
    for (const auto& allocation : request.allocations)
        a << QString::fromStdString(allocation);
    settings.setValue(key::sweepAllocations, a);
    settings.setValue(key::sweepSearchGenerations, generations->value());
    startSweep(request);
}

void AnalysisController::reportDialog()
{
    const int id = m_window->resultsPanel()->selectedRunId();
    const RunRecord* run = id >= 0 ? m_window->resultsPanel()->run(id) : nullptr;
    if (!run) {
        m_window->reportError(tr("No run"), tr("Select a run in Results first: the report is about one run."));
        return;
    }
    QSettings settings;
    const QString folder = settings.value(key::reportFolder, QDir::homePath()).toString();
    QString base = run->name;
    base.replace(QRegularExpression(QStringLiteral("[^A-Za-z0-9._-]+")), QStringLiteral("-"));
    base = QStringLiteral("report-") + base.trimmed();

    QDialog dialog(m_window);
    dialog.setWindowTitle(tr("Write Report — %1").arg(run->name));
    const auto pathRow = [&](const QString& suffix, const QString& filter, bool checked, QCheckBox** box, QLineEdit** edit) {
        *box = new QCheckBox;
        (*box)->setChecked(checked);
        *edit = new QLineEdit(QDir(folder).filePath(base + suffix));
        auto* browse = new QToolButton;
        browse->setText(QStringLiteral("…"));
        QLineEdit* target = *edit;
        connect(browse, &QToolButton::clicked, &dialog, [&dialog, target, filter] {
            const QString file = QFileDialog::getSaveFileName(&dialog, tr("Report file"), target->text(), filter);
            if (!file.isEmpty())
                target->setText(file);
        });
        auto* row = new QHBoxLayout;
        row->addWidget(*box);
        row->addWidget(*edit, 1);
        row->addWidget(browse);
        return row;
    };
    QCheckBox* htmlBox = nullptr;
    QCheckBox* pdfBox = nullptr;
    QLineEdit* html = nullptr;
    QLineEdit* pdf = nullptr;
    auto* form = new QFormLayout(&dialog);
    form->addRow(tr("HTML:"), pathRow(QStringLiteral(".html"), tr("HTML (*.html)"), settings.value(key::reportHtml, true).toBool(),
                                      &htmlBox, &html));
    form->addRow(tr("PDF:"), pathRow(QStringLiteral(".pdf"), tr("PDF (*.pdf)"), settings.value(key::reportPdf, true).toBool(),
                                     &pdfBox, &pdf));
    auto* prompts = new QPlainTextEdit(settings.value(key::reportPrompts, QStringLiteral("Once upon a time\nThe little dog\nLily and her mom went to the park")).toString());
    prompts->setToolTip(tr("Prompts for the greedy continuations, one per line"));
    prompts->setMaximumHeight(prompts->fontMetrics().height() * 6);
    form->addRow(tr("Prompts:"), prompts);
    auto* tokens = new QSpinBox;
    tokens->setRange(1, 4096);
    tokens->setValue(settings.value(key::reportTokens, 40).toInt());
    tokens->setToolTip(tr("Greedy tokens generated after each prompt by both models"));
    form->addRow(tr("New tokens:"), tokens);
    auto* note = new QLabel(tr("Both models are measured on %1 (KL divergence of the next-token distribution, "
                               "perplexity); the loaded sweep and sensitivity scan are plotted; the session's runs "
                               "are listed.")
                                .arg(run->evaluation.enabled ? QFileInfo(run->evaluation.textPath).fileName()
                                                             : QFileInfo(m_window->evaluationPanel()->textPath()).fileName()));
    note->setWordWrap(true);
    form->addRow(note);
    auto* error = new QLabel;
    error->setWordWrap(true);
    form->addRow(error);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    buttons->button(QDialogButtonBox::Ok)->setText(tr("Write"));
    form->addRow(buttons);
    ReportRequest request;
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, [&] {
        request.htmlPath = htmlBox->isChecked() ? html->text().trimmed() : QString();
        request.pdfPath = pdfBox->isChecked() ? pdf->text().trimmed() : QString();
        request.prompts = prompts->toPlainText().split(QLatin1Char('\n'), Qt::SkipEmptyParts);
        request.newTokens = tokens->value();
        ReportJob::Params check;
        check.htmlPath = request.htmlPath;
        check.pdfPath = request.pdfPath;
        check.record = *run;
        check.workspaceFile = m_window->workspace()->currentFile();
        if (const QString problem = ReportJob::outputProblem(check); !problem.isEmpty()) {
            error->setText(problem);
            return;
        }
        QStringList existing;
        for (const QString& f : {request.htmlPath, request.pdfPath})
            if (!f.isEmpty() && QFileInfo::exists(f))
                existing << QDir::toNativeSeparators(f);
        if (!existing.isEmpty()
            && QMessageBox::question(&dialog, tr("Replace?"), tr("Replace %1?").arg(existing.join(tr(" and "))))
                   != QMessageBox::Yes)
            return;
        dialog.accept();
    });
    if (dialog.exec() != QDialog::Accepted)
        return;
    settings.setValue(key::reportFolder, QFileInfo(!request.htmlPath.isEmpty() ? request.htmlPath : request.pdfPath).absolutePath());
    settings.setValue(key::reportHtml, htmlBox->isChecked());
    settings.setValue(key::reportPdf, pdfBox->isChecked());
    settings.setValue(key::reportPrompts, prompts->toPlainText());
    settings.setValue(key::reportTokens, tokens->value());
    writeReport(request);
}

} // namespace sparselab::gui
