#include "main_window.h"

#include "analysis_controller.h"
#include "calibration_controller.h"
#include "model_controller.h"
#include "plan_controller.h"
#include "run_controller.h"
#include "workspace_controller.h"

#include "calibration_panel.h"
#include "evaluation_panel.h"
#include "export_panel.h"
#include "live_view.h"
#include "log_view.h"
#include "model_tree_widget.h"
#include "plan_model.h"
#include "plan_panel.h"
#include "recent_files.h"
#include "resource_paths.h"
#include "results_panel.h"
#include "run_panel.h"
#include "sensitivity_panel.h"
#include "sweep_panel.h"
#include "teaching_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QScreen>
#include <QSettings>
#include <QStatusBar>
#include <QStyle>
#include <QTimer>
#include <QToolBar>
#include <QUrl>

#include <functional>

namespace sparselab::gui {

namespace {

// Bump when docks or toolbars are added/renamed: an old saved state is then ignored.
// 3: the layout built for watching a run (issue 19); older saved layouts are not restored.
constexpr int kStateVersion = 3;

namespace key {
const QString geometry = QStringLiteral("MainWindow/geometry");
const QString state = QStringLiteral("MainWindow/state");
const QString lastText = QStringLiteral("Session/lastText");
const QString seqlen = QStringLiteral("Evaluation/seqlen");
const QString maxWindows = QStringLiteral("Evaluation/maxWindows");
const QString batchSize = QStringLiteral("Evaluation/batchSize");
const QString calibText = QStringLiteral("Calibration/text");
const QString calibSamples = QStringLiteral("Calibration/nsamples");
const QString calibSeqlen = QStringLiteral("Calibration/seqlen");
const QString calibSeed = QStringLiteral("Calibration/seed");
const QString runDevice = QStringLiteral("Run/device");
const QString runEvaluate = QStringLiteral("Run/evaluate");
const QString runCheckpoints = QStringLiteral("Run/checkpoints");
const QString recoveryEnabled = QStringLiteral("Recovery/enabled");
const QString recoverySteps = QStringLiteral("Recovery/steps");
const QString recoveryLoss = QStringLiteral("Recovery/loss");
const QString recoveryRate = QStringLiteral("Recovery/learningRate");
const QString exportDir = QStringLiteral("Export/lastFolder");
} // namespace key

QString compactCount(qint64 n)
{
    if (n >= 1'000'000'000)
        return QString::number(double(n) / 1e9, 'f', 2) + QLatin1Char('B');
    if (n >= 1'000'000)
        return QString::number(double(n) / 1e6, 'f', 2) + QLatin1Char('M');
    if (n >= 1'000)
        return QString::number(double(n) / 1e3, 'f', 1) + QLatin1Char('K');
    return QString::number(n);
}


bool looksLikeText(const QFileInfo& info)
{
    static const QStringList suffixes = {QStringLiteral("txt"), QStringLiteral("text"), QStringLiteral("md"),
                                         QStringLiteral("raw"), QStringLiteral("tokens")};
    return info.isFile() && suffixes.contains(info.suffix().toLower());
}

bool looksLikeRecipe(const QFileInfo& info) { return info.isFile() && info.suffix().compare(QLatin1String("json"), Qt::CaseInsensitive) == 0 && info.fileName() != QLatin1String("config.json"); }

} // namespace

MainWindow::MainWindow()
    : MainWindow(Options{})
{
}

MainWindow::MainWindow(const Options& options, QWidget* parent)
    : QMainWindow(parent)
{
    setObjectName(QStringLiteral("MainWindow"));
    setAcceptDrops(true);
    m_restoreSettings = options.restoreSettings;
    setDockNestingEnabled(true);
    // Every engine job (load, evaluate, run, export, scans, sweeps, reports, workspace
    // reads and the Teaching Mode window's captures) goes through the session's JobRunner: one at a time, and
    // one job per model.
    connect(&m_session.jobs(), &JobRunner::busyChanged, this, &MainWindow::setBusy);
    m_session.jobs().setRefusalHandler([this](const QString& refusal) { reportError(tr("Busy"), refusal); });

    // Every view is a dock; the central widget is an empty placeholder so the docks share
    // the whole window and can be arranged freely.
    auto* central = new QWidget(this);
    central->setMaximumSize(0, 0);
    setCentralWidget(central);
    central->hide();

    // Evaluate, Run and Export; their outcomes are this window's signals too.
    m_runs = new RunController(this, m_session);
    connect(m_runs, &RunController::evaluationFinished, this, &MainWindow::evaluationFinished);
    connect(m_runs, &RunController::evaluationFailed, this, &MainWindow::evaluationFailed);
    connect(m_runs, &RunController::evaluationCancelled, this, &MainWindow::evaluationCancelled);
    connect(m_runs, &RunController::runStarted, this, &MainWindow::runStarted);
    connect(m_runs, &RunController::runProgressed, this, &MainWindow::runProgressed);
    connect(m_runs, &RunController::runFinished, this, &MainWindow::runFinished);
    connect(m_runs, &RunController::runFailed, this, &MainWindow::runFailed);
    connect(m_runs, &RunController::runCancelled, this, &MainWindow::runCancelled);
    connect(m_runs, &RunController::exportFinished, this, &MainWindow::exportFinished);
    connect(m_runs, &RunController::exportFailed, this, &MainWindow::exportFailed);
    connect(m_runs, &RunController::exportCancelled, this, &MainWindow::exportCancelled);
    m_models = new ModelController(this, m_session);
    connect(m_models, &ModelController::opened, this, &MainWindow::onModelLoaded);
    connect(m_models, &ModelController::openFailed, this, &MainWindow::modelLoadFailed);
    m_texts = new CalibrationController(this, m_session);
    connect(m_texts, &CalibrationController::evaluationTextChosen, this, [this] {
        saveEvaluationSettings();
        updateRunSummary();
    });
    connect(m_texts, &CalibrationController::previewed, this, &MainWindow::calibrationPreviewed);
    createActions();
    createDocks();
    m_plans = new PlanController(this, m_session, options.restoreSettings);
    m_workspace = new WorkspaceController(this, m_session);
    m_analysis = new AnalysisController(this, m_session);
    m_resultsPanel->tabs()->addTab(m_analysis->panel(), tr("Sensitivity"));
    m_resultsPanel->tabs()->setTabToolTip(m_resultsPanel->tabs()->count() - 1,
                                          tr("A sensitivity scan as a heat-map (layers × levels) and the allocator "
                                             "(Run → Sensitivity Scan…, File → Open Sensitivity Scan…)"));
    // An opened workspace's last sweep and scan (if it holds them) go to the Sweeps and
    // Sensitivity tabs; otherwise the tabs are cleared so they never show another file's.
    connect(m_workspace, &WorkspaceController::workspaceLoaded, this, [this](const QString& file, int) {
        if (const auto sweep = m_workspace->loadedSweep())
            m_sweepPanel->setSweep(*sweep, file);
        else
            m_sweepPanel->clear();
        if (const auto scan = m_workspace->loadedScan())
            m_analysis->panel()->setScan(scan, file);
        else
            m_analysis->panel()->clear();
        m_analysis->updateActions();
    });
    createMenus();

    m_statusModel = new QLabel(tr("No model"), this);
    m_statusProgress = new QProgressBar(this);
    m_statusProgress->setMaximumWidth(fontMetrics().height() * 10);
    m_statusProgress->setMaximumHeight(fontMetrics().height());
    m_statusProgress->setTextVisible(false);
    m_statusProgress->setVisible(false);
    statusBar()->addPermanentWidget(m_statusProgress);
    statusBar()->addPermanentWidget(m_statusModel);

    m_runPanel->setDevices(availableDevices());

    resize(kPreferredSize);
    fitToScreen();
    applyDefaultLayout();
    readSettings(options);
    // Dock sizes only take once the window has its real size: again when it is first shown,
    // unless a saved layout was restored.
    m_fitDocksOnShow = !m_layoutRestored;
    // Only now: restoring the panels must not write half-restored values back.
    connect(m_evalPanel, &EvaluationPanel::settingsChanged, this, [this] {
        saveEvaluationSettings();
        updateRunSummary();
    });
    connect(m_calibPanel, &CalibrationPanel::settingsChanged, this, [this] {
        saveCalibrationSettings();
        updateRunSummary();
    });
    connect(m_calibPanel, &CalibrationPanel::previewRequested, m_texts, &CalibrationController::refreshPreview);
    connect(m_runPanel, &RunPanel::settingsChanged, this, [this] {
        saveRunSettings();
        updateRunSummary();
    });
    connect(m_planPanel->planModel(), &PlanModel::planChanged, this,
            [this] { m_runPanel->setSuggestedName(suggestedRunName()); });
    connect(m_planPanel, &PlanPanel::recoveryChanged, this, [this] {
        saveRunSettings();
        updateRunSummary(); // the suggested name and the memory the run will need
    });
    updateActions();
    updateTitle();
    updateRunSummary();
    m_log->appendInfo(tr("SparseLab %1 · %2").arg(QCoreApplication::applicationVersion(), engineDescription()));

    QString initial = options.initialModel;
    if (initial.isEmpty() && options.openInitialModel)
        initial = ModelController::startupModel();
    if (!initial.isEmpty()) {
        // After the event loop starts, so the window shows first.
        QTimer::singleShot(0, this, [this, initial] { openModel(initial); });
    }
}

MainWindow::~MainWindow()
{
    stopJobs();
    // The controllers first: their slots read this window's members.
    delete m_analysis;
    m_analysis = nullptr;
    // The views outlive this object's members (QWidget deletes its children last) and may
    // still signal while they are torn down: nothing of theirs reaches this window any more.
    for (QObject* view : std::initializer_list<QObject*>{m_evalPanel, m_calibPanel, m_runPanel, m_planPanel,
                                                         m_planPanel ? m_planPanel->planModel() : nullptr,
                                                         m_resultsPanel, m_exportPanel})
        if (view)
            disconnect(view, nullptr, this, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Construction

void MainWindow::createActions()
{
    auto make = [this](const QIcon& icon, const QString& text, const QKeySequence& shortcut, const QString& tip) {
        auto* action = new QAction(icon, text, this);
        if (!shortcut.isEmpty())
            action->setShortcut(shortcut);
        const QString full = shortcut.isEmpty() ? tip : QStringLiteral("%1 (%2)").arg(tip, shortcut.toString(QKeySequence::NativeText));
        action->setToolTip(full);
        action->setStatusTip(full);
        return action;
    };
    QStyle* s = style();
    m_openAction = make(s->standardIcon(QStyle::SP_DirOpenIcon), tr("&Open Model…"), QKeySequence(Qt::CTRL | Qt::Key_O),
                        tr("Open a Hugging Face model folder (config.json, safetensors, tokenizer)."));
    connect(m_openAction, &QAction::triggered, m_models, &ModelController::openDialog);

    m_openDemoAction = make({}, tr("Open &Demo Model"), {}, tr("Open the bundled 260K-parameter TinyStories model."));
    connect(m_openDemoAction, &QAction::triggered, m_models, &ModelController::openDemo);

    m_chooseTextAction = make(s->standardIcon(QStyle::SP_FileIcon), tr("Choose Evaluation &Text…"), QKeySequence(Qt::CTRL | Qt::Key_T),
                              tr("Choose the text file whose perplexity is measured."));
    connect(m_chooseTextAction, &QAction::triggered, m_texts, &CalibrationController::chooseEvaluationTextDialog);

    m_chooseCalibAction = make(s->standardIcon(QStyle::SP_FileIcon), tr("Choose &Calibration Text…"),
                               QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_T), tr("Choose the text the layers are calibrated on."));
    connect(m_chooseCalibAction, &QAction::triggered, m_texts, &CalibrationController::chooseCalibrationTextDialog);

    m_evaluateAction = make(s->standardIcon(QStyle::SP_MediaSeekForward), tr("&Evaluate Perplexity"), QKeySequence(Qt::CTRL | Qt::Key_E),
                            tr("Measure the loaded model's perplexity on the evaluation text."));
    connect(m_evaluateAction, &QAction::triggered, this, [this] { evaluate(); });

    m_runAction = make(s->standardIcon(QStyle::SP_MediaPlay), tr("&Run Plan"), QKeySequence(Qt::Key_F5),
                       tr("Compress a copy of the model with the plan, live; the loaded model stays dense."));
    connect(m_runAction, &QAction::triggered, this, [this] { startRun(); });

    m_cancelAction = make(s->standardIcon(QStyle::SP_MediaStop), tr("&Cancel"), QKeySequence(Qt::Key_Escape),
                          tr("Stop the running job; earlier results stay as they were and nothing is written."));
    connect(m_cancelAction, &QAction::triggered, this, &MainWindow::cancelJob);

    m_stopRecoveryAction = make(s->standardIcon(QStyle::SP_MediaSkipForward), tr("&Stop Recovery"),
                                QKeySequence(Qt::CTRL | Qt::Key_Period),
                                tr("End the recovery training now and keep the run with the weights it has "
                                   "(the best on the held-out windows); Cancel instead discards the run."));
    m_stopRecoveryAction->setEnabled(false);
    connect(m_stopRecoveryAction, &QAction::triggered, this, [this] {
        if (m_runs->isRunning()) {
            m_runs->stopRecovery();
            m_stopRecoveryAction->setEnabled(false);
            m_runPanel->log()->appendInfo(tr("Stopping recovery after the current step…"));
        }
    });

    m_exportAction = make(s->standardIcon(QStyle::SP_DialogSaveButton), tr("E&xport Run…"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E),
                          tr("Write the selected run's compressed model as a Hugging Face folder."));
    connect(m_exportAction, &QAction::triggered, this, [this] {
        if (m_exportPanel->outDir().isEmpty())
            chooseExportFolderDialog();
        if (!m_exportPanel->outDir().isEmpty())
            exportSelectedRun();
    });
    m_chooseExportAction = make(s->standardIcon(QStyle::SP_DirOpenIcon), tr("Choose Export Folder…"), {},
                                tr("Choose a new folder to export the compressed model to."));
    connect(m_chooseExportAction, &QAction::triggered, this, &MainWindow::chooseExportFolderDialog);

    m_loadRecipeAction = make(s->standardIcon(QStyle::SP_DialogOpenButton), tr("&Load Recipe…"), QKeySequence(Qt::CTRL | Qt::Key_L),
                              tr("Load a recipe JSON file (the format sparselab-cli prune --recipe reads) into the plan."));
    connect(m_loadRecipeAction, &QAction::triggered, this, [this] { m_plans->loadRecipeDialog(); });
    m_saveRecipeAction = make(s->standardIcon(QStyle::SP_DialogSaveButton), tr("&Save Recipe…"), QKeySequence(Qt::CTRL | Qt::Key_S),
                              tr("Save the plan as a recipe JSON file for sparselab-cli prune --recipe."));
    connect(m_saveRecipeAction, &QAction::triggered, this, [this] { m_plans->saveRecipeDialog(); });

    m_openSweepAction = make({}, tr("Open S&weep Results…"), QKeySequence(Qt::CTRL | Qt::ALT | Qt::Key_W),
                             tr("Show a sweep (sparselab-cli sweep) from a results file (.json) or a workspace (.h5) "
                                "in the Sweeps view: its table, perplexity vs sparsity, and size vs perplexity with "
                                "the Pareto frontier."));
    connect(m_openSweepAction, &QAction::triggered, this, &MainWindow::openSweepResultsDialog);

    m_quitAction = make({}, tr("&Quit"), QKeySequence(Qt::CTRL | Qt::Key_Q), tr("Quit SparseLab."));
    m_quitAction->setMenuRole(QAction::QuitRole);
    connect(m_quitAction, &QAction::triggered, this, &MainWindow::close);

    m_resetLayoutAction = make({}, tr("&Reset Layout"), {}, tr("Put the docks and toolbar back where they started."));
    connect(m_resetLayoutAction, &QAction::triggered, this, &MainWindow::resetLayout);

    m_teachingAction = make({}, tr("&Teaching Mode…"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_M),
                            tr("Step through SparseGPT on one layer (or a small synthetic matrix), with the formulas."));
    connect(m_teachingAction, &QAction::triggered, this, &MainWindow::openTeachingMode);

    m_aboutAction = new QAction(tr("&About SparseLab"), this);
    m_aboutAction->setMenuRole(QAction::AboutRole);
    connect(m_aboutAction, &QAction::triggered, this, &MainWindow::showAbout);
    m_aboutQtAction = new QAction(tr("About &Qt"), this);
    m_aboutQtAction->setMenuRole(QAction::AboutQtRole);
    connect(m_aboutQtAction, &QAction::triggered, qApp, &QApplication::aboutQt);

    // Shortcuts work wherever focus is inside the window, docks included.
    for (QAction* a : {m_openAction, m_chooseTextAction, m_chooseCalibAction, m_evaluateAction, m_runAction, m_cancelAction,
                       m_exportAction, m_loadRecipeAction, m_saveRecipeAction, m_quitAction, m_teachingAction,
                       m_stopRecoveryAction})
        addAction(a);
}

QDockWidget* MainWindow::addView(const QString& key, const QString& title, QWidget* widget, Qt::DockWidgetArea area)
{
    auto* dock = new QDockWidget(title, this);
    QString name = key;
    name[0] = name[0].toUpper();
    dock->setObjectName(name + QStringLiteral("Dock"));
    dock->setWidget(widget);
    addDockWidget(area, dock);
    m_docks[key] = dock;
    return dock;
}

void MainWindow::createDocks()
{
    m_tree = new widgets::ModelTreeWidget(this);
    m_tree->setPlaceholderText(tr("<p style='font-size:large'>No model loaded</p>"
                                  "<p>Open a Hugging Face model folder with <b>File → Open Model…</b> (Ctrl+O),<br>"
                                  "pick one from <b>File → Open Recent</b>, or drop a folder here.</p>"));
    m_calibPanel = new CalibrationPanel(this);
    m_calibPanel->setChooseAction(m_chooseCalibAction);
    m_planPanel = new PlanPanel(this);
    m_planPanel->setActions(m_loadRecipeAction, m_saveRecipeAction);
    m_evalPanel = new EvaluationPanel(this);
    m_evalPanel->setActions(m_evaluateAction, m_cancelAction, m_chooseTextAction);
    m_runPanel = new RunPanel(this);
    m_runPanel->setActions(m_runAction, m_cancelAction);
    m_runPanel->setStopRecoveryAction(m_stopRecoveryAction);
    m_liveView = new LiveView(this);
    m_resultsPanel = new ResultsPanel(this);
    m_exportPanel = new ExportPanel(this);
    m_exportPanel->setActions(m_exportAction, m_chooseExportAction);
    m_log = new widgets::LogView(this);
    m_sweepPanel = new SweepPanel(this);

    QDockWidget* plan = addView(QStringLiteral("plan"), tr("Plan"), m_planPanel, Qt::LeftDockWidgetArea);
    addView(QStringLiteral("model"), tr("Model"), m_tree, Qt::LeftDockWidgetArea);
    addView(QStringLiteral("calibration"), tr("Calibration"), m_calibPanel, Qt::LeftDockWidgetArea);
    addView(QStringLiteral("evaluation"), tr("Evaluation"), m_evalPanel, Qt::LeftDockWidgetArea);
    addView(QStringLiteral("live"), tr("Live Solver"), m_liveView, Qt::RightDockWidgetArea);
    addView(QStringLiteral("run"), tr("Run"), m_runPanel, Qt::RightDockWidgetArea);
    addView(QStringLiteral("results"), tr("Results"), m_resultsPanel, Qt::RightDockWidgetArea);
    addView(QStringLiteral("export"), tr("Export"), m_exportPanel, Qt::RightDockWidgetArea);
    addView(QStringLiteral("log"), tr("Log"), m_log, Qt::RightDockWidgetArea);
    (void)plan;
    // Sweeps are results too: a tab of the Results view next to the run's table and plots.
    m_resultsPanel->tabs()->addTab(m_sweepPanel, tr("Sweeps"));
    m_resultsPanel->tabs()->setTabToolTip(m_resultsPanel->tabs()->count() - 1,
                                          tr("A sweep's table, perplexity vs sparsity per bit-width, and size vs "
                                             "perplexity with the Pareto frontier (File → Open Sweep Results…)"));
    for (auto& [name, dock] : m_docks)
        dock->setMinimumWidth(fontMetrics().height() * 12);

    auto* toolbar = addToolBar(tr("Main"));
    toolbar->setObjectName(QStringLiteral("MainToolBar"));
    toolbar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    toolbar->setMovable(false);
    toolbar->addAction(m_openAction);
    toolbar->addAction(m_loadRecipeAction);
    toolbar->addAction(m_saveRecipeAction);
    toolbar->addSeparator();
    toolbar->addAction(m_runAction);
    toolbar->addAction(m_cancelAction);
    toolbar->addSeparator();
    toolbar->addAction(m_evaluateAction);
    toolbar->addAction(m_exportAction);

    connect(m_resultsPanel, &ResultsPanel::runSelected, this, &MainWindow::onRunSelected);
    connect(m_resultsPanel, &ResultsPanel::runRemoved, this, [this](int id) {
        m_session.forgetRunModel(id);
        m_log->appendInfo(tr("Run removed."));
        if (m_resultsPanel->runs().isEmpty())
            m_tree->clearLayerSparsity();
        onRunSelected(m_resultsPanel->selectedRunId());
        updateActions();
    });
    connect(m_resultsPanel, &ResultsPanel::runRenamed, this, [this](int id) { onRunSelected(id); });
    connect(m_exportPanel, &ExportPanel::readinessChanged, this, &MainWindow::updateActions);
    connect(m_exportPanel, &ExportPanel::outDirChanged, this, [](const QString& folder) {
        if (!folder.isEmpty())
            QSettings().setValue(key::exportDir, folder);
    });
}

void MainWindow::createMenus()
{
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(m_openAction);
    m_recentMenu = file->addMenu(tr("Open &Recent"));
    m_models->recent()->setMenu(m_recentMenu);
    file->addAction(m_openDemoAction);
    file->addSeparator();
    file->addAction(m_loadRecipeAction);
    m_recentRecipeMenu = file->addMenu(tr("Recent Re&cipes"));
    m_plans->recent()->setMenu(m_recentRecipeMenu);
    file->addAction(m_saveRecipeAction);
    file->addSeparator();
    m_workspace->populateFileMenu(file);
    file->addAction(m_openSweepAction);
    m_analysis->populateFileMenu(file);
    file->addSeparator();
    file->addAction(m_chooseCalibAction);
    file->addAction(m_chooseTextAction);
    file->addSeparator();
    file->addAction(m_exportAction);
    file->addSeparator();
    file->addAction(m_quitAction);

    QMenu* run = menuBar()->addMenu(tr("&Run"));
    run->addAction(m_runAction);
    run->addAction(m_cancelAction);
    run->addAction(m_stopRecoveryAction);
    run->addSeparator();
    run->addAction(m_evaluateAction);
    run->addSeparator();
    m_analysis->populateRunMenu(run);

    m_viewMenu = menuBar()->addMenu(tr("&View"));
    for (const QString& name : viewNames()) {
        QDockWidget* d = dock(name);
        QAction* toggle = d->toggleViewAction();
        toggle->setToolTip(tr("Show or hide the %1 view.").arg(d->windowTitle()));
        m_viewMenu->addAction(toggle);
    }
    m_viewMenu->addSeparator();
    m_viewMenu->addAction(m_teachingAction);
    m_viewMenu->addSeparator();
    m_viewMenu->addAction(m_resetLayoutAction);

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(m_aboutAction);
    help->addAction(m_aboutQtAction);
}

QDockWidget* MainWindow::dock(const QString& view) const
{
    const auto it = m_docks.find(view);
    return it == m_docks.end() ? nullptr : it->second;
}

QStringList MainWindow::viewNames() const
{
    return {QStringLiteral("model"), QStringLiteral("calibration"), QStringLiteral("plan"), QStringLiteral("evaluation"),
            QStringLiteral("run"), QStringLiteral("live"), QStringLiteral("results"), QStringLiteral("export"),
            QStringLiteral("log")};
}

// ---------------------------------------------------------------------------------------------
// Settings

void MainWindow::readSettings(const Options& options)
{
    m_restoring = true;
    QSettings settings;

    QString text = options.initialText;
    QString calibText = options.initialCalibrationText;
    CalibrationSettings calib = m_calibPanel->settings();
    if (options.restoreSettings) {
        restoreGeometry(settings.value(key::geometry).toByteArray());
        fitToScreen(); // a layout saved on a larger screen is brought inside this one
        m_layoutRestored = restoreState(settings.value(key::state).toByteArray(), kStateVersion);
        m_evalPanel->setSeqlen(settings.value(key::seqlen, 0).toLongLong());
        m_evalPanel->setMaxWindows(settings.value(key::maxWindows, EvaluationPanel::kDefaultWindows).toLongLong());
        m_evalPanel->setBatchSize(settings.value(key::batchSize, 8).toLongLong());
        if (text.isEmpty()) {
            const QString last = settings.value(key::lastText).toString();
            if (!last.isEmpty() && QFileInfo(last).isFile())
                text = last;
        }
        if (calibText.isEmpty()) {
            const QString last = settings.value(key::calibText).toString();
            if (!last.isEmpty() && QFileInfo(last).isFile())
                calibText = last;
        }
        calib.nsamples = settings.value(key::calibSamples, calib.nsamples).toLongLong();
        calib.seqlen = settings.value(key::calibSeqlen, calib.seqlen).toLongLong();
        calib.seed = settings.value(key::calibSeed, calib.seed).toULongLong();
        m_runPanel->setDevice(settings.value(key::runDevice, QStringLiteral("cpu")).toString());
        m_runPanel->setEvaluate(settings.value(key::runEvaluate, true).toBool());
        m_runPanel->setKeepCheckpoints(settings.value(key::runCheckpoints, true).toBool());
        RecoverySettings recovery;
        recovery.enabled = settings.value(key::recoveryEnabled, recovery.enabled).toBool();
        recovery.steps = settings.value(key::recoverySteps, recovery.steps).toLongLong();
        recovery.loss = settings.value(key::recoveryLoss, recovery.loss).toString();
        recovery.learningRate = settings.value(key::recoveryRate, recovery.learningRate).toDouble();
        m_planPanel->setRecoverySettings(recovery);
        const QString exportFolder = settings.value(key::exportDir).toString();
        if (!exportFolder.isEmpty())
            m_exportPanel->setOutDir(exportFolder);
    }
    if (text.isEmpty())
        text = demoEvalText();
    if (calibText.isEmpty())
        calibText = demoCalibText();
    calib.textPath = calibText;
    m_evalPanel->setTextPath(text);
    m_calibPanel->setSettings(calib);
    m_restoring = false;
}

CostRates MainWindow::costRates() const { return m_runs->costRates(); }

void MainWindow::writeSettings() const
{
    m_runs->storeMeasuredRates();
    QSettings settings;
    settings.setValue(key::geometry, saveGeometry());
    settings.setValue(key::state, saveState(kStateVersion));
    saveEvaluationSettings();
    saveCalibrationSettings();
    saveRunSettings();
}

void MainWindow::saveEvaluationSettings() const
{
    QSettings settings;
    settings.setValue(key::seqlen, m_evalPanel->seqlen());
    settings.setValue(key::maxWindows, m_evalPanel->maxWindows());
    settings.setValue(key::batchSize, m_evalPanel->batchSize());
    settings.setValue(key::lastText, m_evalPanel->textPath());
}

void MainWindow::saveCalibrationSettings() const
{
    if (m_restoring)
        return;
    const CalibrationSettings c = m_calibPanel->settings();
    QSettings settings;
    settings.setValue(key::calibText, c.textPath);
    settings.setValue(key::calibSamples, c.nsamples);
    settings.setValue(key::calibSeqlen, c.seqlen);
    settings.setValue(key::calibSeed, c.seed);
}

void MainWindow::saveRunSettings() const
{
    if (m_restoring)
        return;
    QSettings settings;
    settings.setValue(key::runDevice, m_runPanel->device());
    settings.setValue(key::runEvaluate, m_runPanel->evaluate());
    settings.setValue(key::runCheckpoints, m_runPanel->keepCheckpoints());
    const RecoverySettings recovery = m_planPanel->recoverySettings();
    settings.setValue(key::recoveryEnabled, recovery.enabled);
    settings.setValue(key::recoverySteps, recovery.steps);
    settings.setValue(key::recoveryLoss, recovery.loss);
    settings.setValue(key::recoveryRate, recovery.learningRate);
}

QStringList MainWindow::recentModels() const { return m_models->recent()->files(); }
QStringList MainWindow::recentRecipes() const { return m_plans->recent()->files(); }
void MainWindow::clearRecentModels() { m_models->recent()->clear(); }
void MainWindow::clearRecentRecipes() { m_plans->recent()->clear(); }

void MainWindow::applyDefaultLayout()
{
    // Built for watching a run: the settings tabbed on the left, the Live Solver in the middle
    // as the largest view (Results shares its place as a tab, so nothing jumps when the first
    // result arrives), the Run controls on the right at full height (they need about 520 px),
    // with Export and Log as tabs beside them.
    QDockWidget* plan = dock(QStringLiteral("plan"));
    QDockWidget* live = dock(QStringLiteral("live"));
    QDockWidget* run = dock(QStringLiteral("run"));
    QDockWidget* results = dock(QStringLiteral("results"));
    QDockWidget* exportDock = dock(QStringLiteral("export"));
    QDockWidget* logDock = dock(QStringLiteral("log"));
    for (auto& [name, d] : m_docks) {
        removeDockWidget(d);
        d->setFloating(false);
    }
    addDockWidget(Qt::LeftDockWidgetArea, plan);
    for (const char* view : {"model", "calibration", "evaluation"})
        tabifyDockWidget(plan, dock(QLatin1String(view)));
    addDockWidget(Qt::RightDockWidgetArea, live);
    splitDockWidget(live, run, Qt::Horizontal);
    tabifyDockWidget(live, results);
    tabifyDockWidget(run, exportDock);
    tabifyDockWidget(run, logDock);
    for (auto& [name, d] : m_docks)
        d->show();
    plan->raise();
    live->raise();
    run->raise();
    fitDocksToWindow();
}

void MainWindow::fitDocksToWindow()
{
    // Shares of the width: settings 28 %, live view 47 %, run controls 25 % (at 1366 px:
    // about 380, 640 and 340 px).
    const int w = std::max(width(), 800);
    resizeDocks({dock(QStringLiteral("plan")), dock(QStringLiteral("live")), dock(QStringLiteral("run"))},
                {w * 28 / 100, w * 47 / 100, w * 25 / 100}, Qt::Horizontal);
}

void MainWindow::fitToScreen()
{
    // The window opens inside the screen it is on (a 1366 × 768 laptop included), at most
    // kPreferredSize, centred when it had to shrink or lay outside.
    QScreen* s = screen() ? screen() : QGuiApplication::primaryScreen();
    if (!s)
        return;
    const QRect available = s->availableGeometry();
    // Room for the frame and title bar the window manager adds (not part of geometry();
    // unknown before the window is first shown, so a typical 4 px border and 32 px title bar
    // are assumed then, and the fit is checked again when it is shown).
    const QSize frame = isVisible() ? frameGeometry().size() - geometry().size() : QSize(8, 36);
    const QSize room = available.size() - frame;
    QSize size = isVisible() || testAttribute(Qt::WA_Resized) ? this->size() : kPreferredSize;
    size = size.boundedTo(room);
    resize(size);
    QRect frameRect = frameGeometry();
    if (!available.contains(frameRect)) {
        frameRect.moveCenter(available.center());
        move(frameRect.topLeft());
    }
}

void MainWindow::resetLayout()
{
    fitToScreen();
    applyDefaultLayout();
}

// ---------------------------------------------------------------------------------------------
// State

void MainWindow::showJobProgress(qint64 done, qint64 total)
{
    if (total <= 0)
        return;
    m_statusProgress->setRange(0, 1000);
    m_statusProgress->setValue(int(done * 1000 / total));
}

bool MainWindow::isBusy() const
{
    return m_session.jobs().isBusy();
}

bool MainWindow::refuseWhileBusy(const QString& before)
{
    if (!isBusy())
        return false;
    // Name the job when it is the runner's (a calibration preview is not).
    const QString work = m_session.jobs().currentWork();
    const QString running = work.isEmpty() ? tr("Another job is running") : tr("Another job is running (%1)").arg(work);
    reportError(tr("Busy"), before.isEmpty() ? tr("%1: wait for it or cancel it (Esc).").arg(running)
                                             : tr("%1: wait for it or cancel it (Esc) %2.").arg(running, before));
    return true;
}

bool MainWindow::refuseModelJob()
{
    if (refuseWhileBusy())
        return true;
    if (m_session.hasModel())
        return false;
    reportError(tr("No model"), tr("Open a model folder first (File → Open Model…, Ctrl+O)."));
    return true;
}

void MainWindow::setBusy(bool busy)
{
    if (m_busy == busy)
        return;
    m_busy = busy;
    m_statusProgress->setVisible(busy);
    m_statusProgress->setRange(0, 0);
    updateActions();
    Q_EMIT busyChanged(busy);
}

void MainWindow::updateActions()
{
    const bool running = m_runs->isRunning();
    m_openAction->setEnabled(!m_busy);
    m_openDemoAction->setEnabled(!m_busy && !demoModelDir().isEmpty());
    m_models->recent()->setAvailable(!m_busy);
    m_plans->recent()->setAvailable(!running && hasModel());
    m_chooseTextAction->setEnabled(!m_busy);
    m_chooseCalibAction->setEnabled(!running);
    m_evaluateAction->setEnabled(!m_busy && hasModel());
    m_runAction->setEnabled(!m_busy && hasModel());
    m_cancelAction->setEnabled(m_busy);
    m_loadRecipeAction->setEnabled(!running && hasModel());
    m_saveRecipeAction->setEnabled(hasModel());
    m_exportAction->setEnabled(!m_busy && m_resultsPanel->selectedRunId() >= 0
                               && runModel(m_resultsPanel->selectedRunId()) != nullptr
                               && (m_exportPanel->outDir().isEmpty() || m_exportPanel->canExport()));
    m_chooseExportAction->setEnabled(!m_runs->isExporting());
    m_evalPanel->setRunning(m_runs->isEvaluating());
    m_runPanel->setRunning(running);
    m_planPanel->setEditable(!running);
    m_calibPanel->setEditable(!running);
    m_exportPanel->setRunning(m_runs->isExporting());
}

void MainWindow::updateTitle()
{
    setWindowTitle(m_session.summary().isEmpty() ? tr("SparseLab")
                                                 : tr("%1 — SparseLab").arg(m_session.summary().name));
    if (m_session.summary().isEmpty()) {
        m_statusModel->setText(tr("No model"));
        m_statusModel->setToolTip({});
    } else {
        m_statusModel->setText(tr("%1 · %2 parameters · %3 · CPU")
                                   .arg(m_session.summary().name, compactCount(m_session.summary().totalParameters), m_session.summary().storedDtype));
        m_statusModel->setToolTip(m_session.summary().folder);
    }
}

EvaluationSettings MainWindow::evaluationSettings() const
{
    EvaluationSettings e;
    e.enabled = m_runPanel->evaluate();
    e.textPath = m_evalPanel->textPath();
    e.seqlen = m_evalPanel->seqlen();
    e.maxWindows = m_evalPanel->maxWindows();
    e.batchSize = m_evalPanel->batchSize();
    return e;
}

void MainWindow::updateRunSummary()
{
    m_evalPanel->setAutoSeqlen(m_calibPanel->settings().seqlen);
    const EvaluationSettings e = evaluationSettings();
    const qint64 seqlen = m_evalPanel->effectiveSeqlen();
    m_runPanel->setEvaluationSummary(
        e.enabled ? tr("On %1: %2 of %3 tokens (Evaluation view).")
                        .arg(e.textPath.isEmpty() ? tr("no text") : QFileInfo(e.textPath).fileName(),
                             e.maxWindows > 0 ? tr("the first %1 windows").arg(e.maxWindows) : tr("all windows"))
                        .arg(seqlen)
                  : tr("Perplexity is not measured; the run only prunes."));
    m_runPanel->setSuggestedName(suggestedRunName());
    QString memory;
    const QString problem = runMemoryProblem(&memory);
    m_runPanel->setMemorySummary(memory, problem.isEmpty());
}

QString MainWindow::runMemoryProblem(QString* summary) const { return m_runs->memoryProblem(summary); }
QString MainWindow::suggestedRunName() const { return m_runs->suggestedName(); }

void MainWindow::setErrorHandler(ErrorHandler handler) { m_errorHandler = std::move(handler); }

void MainWindow::announce(const QString& message, int statusMs)
{
    m_log->appendInfo(message);
    statusBar()->showMessage(message, statusMs);
}

void MainWindow::reportError(const QString& title, const QString& message)
{
    m_lastError = message;
    m_log->appendError(message);
    statusBar()->showMessage(message, 10'000);
    if (m_errorHandler) {
        m_errorHandler(title, message);
        return;
    }
    // Non-blocking: the event loop (and any job) keeps running while it is shown.
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

// ---------------------------------------------------------------------------------------------
// Loading

bool MainWindow::openModel(const QString& path) { return m_models->open(path); }
void MainWindow::openModelDialog() { m_models->openDialog(); }
void MainWindow::openDemoModel() { m_models->openDemo(); }

void MainWindow::onModelLoaded(const LoadModelJob::Result&, bool sameModel)
{
    if (m_teachingWindow)
        m_teachingWindow->setModel(m_session.model(), m_session.tokenizer());
    m_tree->setSummary(m_session.summary());
    m_evalPanel->setModelContext(m_session.summary().maxPositions);
    m_calibPanel->setModelContext(m_session.summary().maxPositions);
    m_evalPanel->clearResult();
    if (!sameModel) {
        // Runs belong to the model they compressed.
        m_resultsPanel->clearRuns();
        m_liveView->clear();
    }
    m_plans->showModel(m_session.summary());
    updateTitle();
    updateActions();
    updateRunSummary();
    updateExportTarget();
    // The engine's threads depend on the model's size (util/engine_threads.h).
    m_runPanel->setDevices(availableDevices(m_session.summary().hiddenSize));
    m_texts->refreshPreview();
    Q_EMIT modelLoaded(m_session.summary());
}

// ---------------------------------------------------------------------------------------------
// Texts and calibration preview

void MainWindow::chooseTextDialog() { m_texts->chooseEvaluationTextDialog(); }
void MainWindow::chooseCalibrationTextDialog() { m_texts->chooseCalibrationTextDialog(); }
void MainWindow::setEvaluationText(const QString& path) { m_texts->setEvaluationText(path); }
void MainWindow::setCalibrationText(const QString& path) { m_texts->setCalibrationText(path); }
void MainWindow::refreshCalibrationPreview() { m_texts->refreshPreview(); }

// ---------------------------------------------------------------------------------------------
// Evaluation

// ---------------------------------------------------------------------------------------------
// Runs

void MainWindow::replaceRuns(const QList<RunRecord>& runs)
{
    m_session.forgetRunModels();
    m_resultsPanel->clearRuns();
    m_tree->clearLayerSparsity();
    // The previous export's outcome belongs to runs that are gone.
    m_exportPanel->clearStatus();
    for (RunRecord run : runs) {
        run.id = m_session.takeRunId();
        run.modelKept = false;
        m_resultsPanel->addRun(run);
        // The workspace holds each run's dense perplexity: for the loaded model, runs with the
        // same evaluation settings reuse it instead of measuring it again.
        const bool sameModel = QDir::cleanPath(run.modelFolder) == QDir::cleanPath(m_session.summary().folder);
        if (sameModel && run.detailBefore)
            m_session.rememberDensePerplexityOf(run, /*replace=*/false);
    }
    if (!runs.isEmpty())
        m_tree->setLayerSparsity(achievedSparsity(runs.last()), runs.last().name);
    updateExportTarget();
    updateActions();
}

void MainWindow::onRunSelected(int id)
{
    const RunRecord* run = m_resultsPanel->run(id);
    m_exportPanel->setRun(run, m_session.summary().folder);
    if (run)
        m_tree->setLayerSparsity(achievedSparsity(*run), run->name);
    updateExportTarget();
    updateActions();
}

// ---------------------------------------------------------------------------------------------
// Export

void MainWindow::updateExportTarget()
{
    m_exportPanel->setRun(m_resultsPanel->run(m_resultsPanel->selectedRunId()), m_session.summary().folder);
}

void MainWindow::chooseExportFolderDialog() { m_runs->chooseExportFolderDialog(); }

// ---------------------------------------------------------------------------------------------
// Evaluate, Run, Export: the run controller's (run_controller.h)

bool MainWindow::evaluate()
{
    const bool started = m_runs->evaluate();
    if (started)
        saveEvaluationSettings();
    return started;
}
bool MainWindow::isRunning() const { return m_runs->isRunning(); }
const PerplexityJob::Result& MainWindow::lastEvaluation() const { return m_runs->lastEvaluation(); }
bool MainWindow::startRun() { return m_runs->startRun(); }
bool MainWindow::exportSelectedRun() { return m_runs->exportSelectedRun(); }

// ---------------------------------------------------------------------------------------------
// Sweeps

bool MainWindow::openSweepResults(const QString& file)
{
    QString error;
    if (!m_sweepPanel->loadFile(file, &error)) {
        reportError(tr("Open Sweep Results"), error);
        return false;
    }
    if (QDockWidget* d = dock(QStringLiteral("results"))) {
        d->show();
        d->raise();
    }
    m_resultsPanel->tabs()->setCurrentWidget(m_sweepPanel);
    QSettings().setValue(QStringLiteral("sweeps/lastFile"), file);
    return true;
}

void MainWindow::openSweepResultsDialog()
{
    const QString last = QSettings().value(QStringLiteral("sweeps/lastFile")).toString();
    const QString start = last.isEmpty() ? QDir::homePath() : QFileInfo(last).absolutePath();
    const QString file = QFileDialog::getOpenFileName(this, tr("Open Sweep Results"), start,
                                                      tr("Sweeps (*.json *.h5);;All files (*)"));
    if (!file.isEmpty())
        openSweepResults(file);
}

// ---------------------------------------------------------------------------------------------
// Recipes

bool MainWindow::loadRecipe(const QString& file) { return m_plans->loadRecipe(file); }
bool MainWindow::saveRecipe(const QString& file) { return m_plans->saveRecipe(file); }
void MainWindow::loadRecipeDialog() { m_plans->loadRecipeDialog(); }
void MainWindow::saveRecipeDialog() { m_plans->saveRecipeDialog(); }

// ---------------------------------------------------------------------------------------------
// Jobs

void MainWindow::cancelJob()
{
    if (!isBusy())
        return;
    m_session.jobs().cancel();
    statusBar()->showMessage(tr("Cancelling…"));
}

void MainWindow::stopJobs()
{
    // A workspace being saved is let to finish (the user asked for it; it is written
    // atomically either way); engine work is cancelled.
    if (!m_workspace->isBusy())
        m_session.jobs().cancel();
    m_texts->stop();
    m_session.jobs().waitForDone();
}

// ---------------------------------------------------------------------------------------------
// Events

void MainWindow::showEvent(QShowEvent* event)
{
    QMainWindow::showEvent(event);
    if (!m_shownOnce) {
        m_shownOnce = true;
        fitToScreen(); // now with the real frame
    }
    if (m_fitDocksOnShow) {
        m_fitDocksOnShow = false;
        fitDocksToWindow();
    }
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    if (isBusy()) {
        QApplication::setOverrideCursor(Qt::WaitCursor);
        stopJobs(); // the engine checks its cancel flag at least once per block
        QApplication::restoreOverrideCursor();
    }
    writeSettings();
    event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event)
{
    const QMimeData* mime = event->mimeData();
    if (!mime->hasUrls() || mime->urls().isEmpty() || !mime->urls().first().isLocalFile())
        return;
    const QFileInfo info(mime->urls().first().toLocalFile());
    if (info.isDir() || info.fileName() == QLatin1String("config.json") || looksLikeText(info) || looksLikeRecipe(info))
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event)
{
    const QList<QUrl> urls = event->mimeData()->urls();
    if (urls.isEmpty() || !urls.first().isLocalFile())
        return;
    const QFileInfo info(urls.first().toLocalFile());
    event->acceptProposedAction();
    if (looksLikeText(info)) {
        // Onto the Calibration view: calibration text; anywhere else: evaluation text.
        QDockWidget* calib = dock(QStringLiteral("calibration"));
        const QPoint pos = event->position().toPoint();
        if (calib && calib->isVisible() && calib->geometry().contains(pos))
            setCalibrationText(info.absoluteFilePath());
        else
            setEvaluationText(info.absoluteFilePath());
    } else if (looksLikeRecipe(info)) {
        loadRecipe(info.absoluteFilePath());
    } else {
        openModel(info.absoluteFilePath());
    }
}

void MainWindow::showAbout()
{
    const QString text =
        tr("<h3>SparseLab %1</h3>"
           "<p>A workbench for one-shot compression of language models with SparseGPT: "
           "load a model, plan and run its compression layer by layer, compare runs, export.</p>"
           "<p>Engine: %2<br>Qt %3</p>"
           "<p>The bundled demo model is stories260K (Andrej Karpathy's llama2.c, MIT licence); "
           "see resources/LICENSES.md.</p>")
            .arg(QCoreApplication::applicationVersion(), engineDescription(), QString::fromLatin1(qVersion()));
    auto* box = new QMessageBox(QMessageBox::NoIcon, tr("About SparseLab"), text, QMessageBox::Ok, this);
    box->setTextFormat(Qt::RichText);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

TeachingWindow* MainWindow::teachingWindow() const { return m_teachingWindow.data(); }

void MainWindow::openTeachingMode()
{
    if (!m_teachingWindow) {
        // A top-level window of its own (slides want the whole screen), closed with the workbench.
        m_teachingWindow = new TeachingWindow(m_restoreSettings, this);
        m_teachingWindow->setWindowFlag(Qt::Window);
        m_teachingWindow->setJobRunner(&m_session.jobs());
        m_teachingWindow->setModel(m_session.model(), m_session.tokenizer());
    }
    m_teachingWindow->setCalibration(m_calibPanel->settings());
    m_teachingWindow->show();
    m_teachingWindow->raise();
    m_teachingWindow->activateWindow();
}

} // namespace sparselab::gui
