#include "workspace_controller.h"
#include "workspace_jobs.h"

#include "calibration_panel.h"
#include "main_window.h"
#include "workbench.h"
#include "results_panel.h"
#include "sensitivity_panel.h"
#include "analysis_controller.h"
#include "sweep_panel.h"

#include "log_view.h"
#include "analysis/sweep.h"

#include <QAction>
#include <QApplication>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMessageBox>
#include <QSettings>
#include <QStatusBar>
#include <QStyle>

#include <memory>

namespace sparselab::gui {

namespace {

const char* const kRecentKey = "workspace/recent";
const char* const kLastDirKey = "workspace/lastDir";

} // namespace

WorkspaceController::WorkspaceController(MainWindow* window, Workbench& session)
    : QObject(window), m_window(window), m_session(session)
{
    QStyle* s = window->style();
    m_openAction = new QAction(s->standardIcon(QStyle::SP_DialogOpenButton), tr("Open &Workspace…"), this);
    m_openAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    m_saveAction = new QAction(s->standardIcon(QStyle::SP_DialogSaveButton), tr("Save Wor&kspace"), this);
    m_saveAction->setShortcut(QKeySequence(Qt::CTRL | Qt::ALT | Qt::Key_S));
    m_saveAsAction = new QAction(tr("Save Workspace &As…"), this);
    m_saveAsAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::ALT | Qt::Key_S));
    const auto tip = [](QAction* a, const QString& t) {
        const QString full = a->shortcut().isEmpty() ? t
                                                     : QStringLiteral("%1 (%2)").arg(t, a->shortcut().toString(QKeySequence::NativeText));
        a->setToolTip(full);
        a->setStatusTip(full);
    };
    tip(m_openAction, tr("Open a workspace file (.h5): its runs replace the Results view."));
    tip(m_saveAction, tr("Save every run of the Results view, with the model's identity, to the workspace file."));
    tip(m_saveAsAction, tr("Save the runs to a new workspace file (.h5, readable with h5py and h5dump)."));
    connect(m_openAction, &QAction::triggered, this, &WorkspaceController::openWorkspaceDialog);
    connect(m_saveAction, &QAction::triggered, this, [this] { saveWorkspace(); });
    connect(m_saveAsAction, &QAction::triggered, this, &WorkspaceController::saveWorkspaceAsDialog);
    for (QAction* a : {m_openAction, m_saveAction, m_saveAsAction})
        window->addAction(a);

    m_recent = new RecentFiles(QString::fromLatin1(kRecentKey), kMaxRecentWorkspaces, this);
    m_recent->load();
    connect(m_recent, &RecentFiles::chosen, this, [this](const QString& path) { openWorkspace(path); });
    connect(window, &MainWindow::runFinished, this, [this] { m_modified = true; });
    connect(window->resultsPanel(), &ResultsPanel::runRemoved, this, [this] { m_modified = true; });
    connect(window->resultsPanel(), &ResultsPanel::runRenamed, this, [this] { m_modified = true; });
    connect(window, &MainWindow::busyChanged, this, &WorkspaceController::updateActions);
    updateActions();
}

WorkspaceController::~WorkspaceController() = default;

void WorkspaceController::populateFileMenu(QMenu* file)
{
    file->addAction(m_openAction);
    m_recentMenu = file->addMenu(tr("Open Recent Wor&kspace"));
    m_recent->setMenu(m_recentMenu);
    file->addAction(m_saveAction);
    file->addAction(m_saveAsAction);
}

void WorkspaceController::setBusy(bool busy)
{
    m_busy = busy;
    updateActions();
    Q_EMIT busyChanged(busy);
}

void WorkspaceController::updateActions()
{
    // Opening replaces the runs: not while an engine run may add one.
    const bool free = !m_busy && !m_window->isRunning();
    m_openAction->setEnabled(free);
    m_saveAction->setEnabled(free);
    m_saveAsAction->setEnabled(free);
    m_recent->setAvailable(free);
}

void WorkspaceController::addRecent(const QString& file)
{
    const QString path = QDir::cleanPath(QFileInfo(file).absoluteFilePath());
    m_recent->add(path);
    QSettings().setValue(kLastDirKey, QFileInfo(path).absolutePath());
}

void WorkspaceController::clearRecentWorkspaces()
{
    m_recent->clear();
    updateActions();
}

void WorkspaceController::fail(const QString& title, const QString& message)
{
    m_window->reportError(title, message);
    Q_EMIT workspaceFailed(message);
}

void WorkspaceController::openWorkspaceDialog()
{
    const QString dir = QSettings().value(kLastDirKey, QDir::homePath()).toString();
    const QString file = QFileDialog::getOpenFileName(m_window, tr("Open Workspace"), dir,
                                                      tr("SparseLab workspaces (*.h5);;All files (*)"));
    if (!file.isEmpty())
        openWorkspace(file);
}

void WorkspaceController::saveWorkspaceAsDialog()
{
    const QString dir = QSettings().value(kLastDirKey, QDir::homePath()).toString();
    QString file = QFileDialog::getSaveFileName(m_window, tr("Save Workspace As"),
                                                m_file.isEmpty() ? dir + QStringLiteral("/workspace.h5") : m_file,
                                                tr("SparseLab workspaces (*.h5)"));
    if (file.isEmpty())
        return;
    if (QFileInfo(file).suffix().isEmpty())
        file += QStringLiteral(".h5");
    saveWorkspaceAs(file);
}

bool WorkspaceController::saveWorkspace()
{
    if (m_file.isEmpty()) {
        saveWorkspaceAsDialog();
        return m_busy;
    }
    return saveWorkspaceAs(m_file);
}

bool WorkspaceController::saveWorkspaceAs(const QString& file)
{
    if (m_busy || file.isEmpty())
        return false;
    // Snapshot on the GUI thread; the job converts, hashes and writes.
    WorkspaceSaveJob::Params params;
    params.file = QDir::cleanPath(QFileInfo(file).absoluteFilePath());
    for (const RunRecord& run : m_window->resultsPanel()->runs())
        params.runs.emplace_back(run, m_session.runModel(run.id));
    params.dense = m_session.model();
    params.calibration = m_window->calibrationPanel()->settings();
    params.scan = m_window->analysis()->panel()->scan();
    if (const analysis::SweepResult* sweep = m_window->sweepPanel()->sweep())
        params.sweep = std::make_shared<analysis::SweepResult>(*sweep);
    const QString path = params.file;
    const int count = int(params.runs.size());
    auto* job = new WorkspaceSaveJob(std::move(params), this);
    JobOutcome<WorkspaceSaveJob> outcome;
    outcome.ended = [this] {
        if (m_busy)
            setBusy(false);
    };
    outcome.finished = [this, count](const WorkspaceSaveJob::Result& r) {
        m_file = r.file;
        m_modified = false;
        addRecent(r.file);
        const QString message = tr("Saved %n run(s) to %1", nullptr, count).arg(r.file);
        m_window->announce(message, 10'000);
        Q_EMIT workspaceSaved(r.file, count);
    };
    outcome.failed = [this](const QString& message) { fail(tr("Cannot save the workspace"), message); };
    outcome.cancelled = [this, path] {
        const QString message = tr("Saving %1 cancelled; the file was not written.").arg(path);
        m_window->logView()->appendInfo(message);
        Q_EMIT workspaceFailed(message);
    };
    outcome.refused = [this](const QString& refusal) { fail(tr("Cannot save the workspace now"), refusal); };
    const auto models = job->models();
    if (!m_session.jobs().launch(job, tr("saving the workspace"), models, this, std::move(outcome)))
        return false;
    m_window->logView()->appendInfo(tr("Saving workspace %1…").arg(path));
    m_window->statusBar()->showMessage(tr("Saving workspace %1…").arg(QFileInfo(path).fileName()));
    setBusy(true);
    return true;
}

bool WorkspaceController::openWorkspace(const QString& file)
{
    if (m_busy || file.isEmpty() || m_window->isRunning())
        return false;
    if (m_modified && !m_window->resultsPanel()->runs().isEmpty() && m_window->isVisible()) {
        const auto answer = QMessageBox::question(
            m_window, tr("Open Workspace"),
            tr("The runs in Results have not been saved. Opening %1 replaces them. Continue?")
                .arg(QFileInfo(file).fileName()));
        if (answer != QMessageBox::Yes)
            return false;
    }
    const QString path = QDir::cleanPath(QFileInfo(file).absoluteFilePath());
    auto* job = new WorkspaceOpenJob(path, this);
    JobOutcome<WorkspaceOpenJob> outcome;
    outcome.ended = [this] {
        if (m_busy)
            setBusy(false);
    };
    outcome.finished = [this](const WorkspaceOpenJob::Result& r) {
        m_window->replaceRuns(r.runs);
        m_loadedSweep = r.sweep;
        m_loadedScan = r.scan;
        if (!r.analysisError.isEmpty())
            m_window->logView()->appendError(r.analysisError);
        m_file = r.file;
        m_modified = false;
        addRecent(r.file);
        QString message = tr("Opened %1: %n run(s)", nullptr, int(r.runs.size())).arg(r.file);
        if (!r.modelPath.isEmpty())
            message += tr(" of model %1").arg(r.modelPath);
        m_window->announce(message, 10'000);
        Q_EMIT workspaceLoaded(r.file, int(r.runs.size()));
    };
    outcome.failed = [this](const QString& message) { fail(tr("Cannot open the workspace"), message); };
    outcome.cancelled = [this, path] {
        const QString message = tr("Opening %1 cancelled.").arg(path);
        m_window->logView()->appendInfo(message);
        Q_EMIT workspaceFailed(message);
    };
    outcome.refused = [this](const QString& refusal) { fail(tr("Cannot open the workspace now"), refusal); };
    // Reading a workspace uses no model, but it replaces the runs: one job at a time.
    if (!m_session.jobs().launch(job, tr("opening the workspace"), {}, this, std::move(outcome)))
        return false;
    m_window->logView()->appendInfo(tr("Opening workspace %1…").arg(path));
    setBusy(true);
    return true;
}

} // namespace sparselab::gui
