#include "model_controller.h"

#include "evaluation_panel.h"
#include "job_runner.h"
#include "log_view.h"
#include "main_window.h"
#include "recent_files.h"
#include "resource_paths.h"
#include "workbench.h"

#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QLocale>
#include <QSettings>
#include <QStatusBar>
#include <QThread>

namespace sparselab::gui {

namespace {

const QString kLastModelKey = QStringLiteral("Session/lastModel");
const QString kRecentModelsKey = QStringLiteral("Session/recentModels");

QString normalizedFolder(const QString& path)
{
    QFileInfo info(path);
    if (info.isFile())
        info = QFileInfo(info.absolutePath()); // config.json (or any file) → its folder
    return QDir::cleanPath(info.absoluteFilePath());
}

} // namespace

ModelController::ModelController(MainWindow* window, Workbench& session)
    : QObject(window), m_window(window), m_session(session),
      m_recent(new RecentFiles(kRecentModelsKey, kMaxRecentModels, this))
{
    m_recent->load();
    connect(m_recent, &RecentFiles::chosen, this, [this](const QString& folder) { open(folder); });
}

QString ModelController::startupModel()
{
    const QString last = QSettings().value(kLastModelKey).toString();
    return !last.isEmpty() && QFileInfo(last).isDir() ? last : demoModelDir();
}

void ModelController::openDialog()
{
    QString start = m_session.summary().isEmpty() ? QString() : QFileInfo(m_session.summary().folder).absolutePath();
    if (start.isEmpty() && !m_recent->files().isEmpty())
        start = QFileInfo(m_recent->files().first()).absolutePath();
    if (start.isEmpty())
        start = QFileInfo(demoModelDir()).absolutePath();
    const QString folder = QFileDialog::getExistingDirectory(m_window, tr("Open Model Folder"), start);
    if (!folder.isEmpty())
        open(folder);
}

void ModelController::openDemo()
{
    const QString demo = demoModelDir();
    if (demo.isEmpty()) {
        m_window->reportError(tr("Demo model not found"),
                              tr("The bundled demo model is not installed (looked for share/sparselab/models/stories260K-hf)."));
        return;
    }
    open(demo);
}

bool ModelController::open(const QString& path)
{
    if (path.trimmed().isEmpty())
        return false;
    if (m_window->refuseWhileBusy(tr("before opening a model")))
        return false;
    const QString folder = normalizedFolder(path);
    m_loadingFolder = folder;
    m_window->logView()->appendInfo(tr("Opening %1").arg(QDir::toNativeSeparators(folder)));
    m_window->statusBar()->showMessage(tr("Loading %1…").arg(QFileInfo(folder).fileName()));

    auto* job = new LoadModelJob({folder, engineThreads()}, this);
    m_loadJob = job;
    connect(job, &LoadModelJob::progress, this, [this](qint64 done, qint64 total, double, const QString& text) {
        m_window->showJobProgress(done, total);
        m_window->statusBar()->showMessage(tr("Loading %1 — %2…").arg(QFileInfo(m_loadingFolder).fileName(), text));
    });
    JobOutcome<LoadModelJob> outcome;
    outcome.ended = [this] {
        m_loadJob = nullptr;
        m_window->updateActions();
    };
    outcome.finished = [this](const LoadModelJob::Result& result) {
        const bool sameModel = m_session.setModel(result.model, result.tokenizer, result.summary);
        const QString loaded = m_session.summary().folder;
        m_recent->add(loaded);
        QSettings().setValue(kLastModelKey, loaded);
        const QString message = tr("Loaded %1: %2, %3 blocks, %4 parameters (%5) in %6")
                                    .arg(m_session.summary().name, m_session.summary().architecture)
                                    .arg(m_session.summary().blocks.size())
                                    .arg(QLocale().toString(m_session.summary().totalParameters),
                                         m_session.summary().storedDtype, EvaluationPanel::formatDuration(result.seconds));
        m_window->announce(message);
        // The engine's threads depend on the model's size (util/engine_threads.h): the log says
        // what this model's jobs will use.
        const EngineThreads threads = engineThreads(m_session.summary().hiddenSize);
        m_window->logView()->appendInfo(
            threads.libraries < threads.kernels
                ? tr("Engine jobs use %n CPU thread(s) for this model, and its matrix products one: below "
                     "hidden size 1024 a second thread costs them more than it gains (bench/bench_threads.sh).",
                     nullptr, threads.kernels)
                : tr("Engine jobs use %n CPU thread(s) for this model.", nullptr, threads.kernels));
        Q_EMIT opened(result, sameModel);
    };
    outcome.failed = [this, folder](const QString& message) {
        // A recent entry whose folder has gone is dropped; others stay (the error may be transient).
        if (!QFileInfo(folder).isDir())
            m_recent->remove(folder);
        m_window->reportError(tr("Cannot open model"), message);
        Q_EMIT openFailed(message);
    };
    outcome.cancelled = [this] {
        m_window->logView()->appendInfo(tr("Opening cancelled."));
        m_window->statusBar()->showMessage(tr("Cancelled."), 5000);
    };
    return m_session.jobs().launch(job, tr("opening a model"), {}, this, std::move(outcome));
}

} // namespace sparselab::gui
