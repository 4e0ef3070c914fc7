#pragma once
// Opening models: File → Open Model (Ctrl+O), Open Recent, Open Demo Model, a folder dropped on
// the window, and the model the workbench opens at start. A model folder (or the folder of a
// file in it, e.g. its config.json) is loaded on the session's JobRunner (session/workbench.h)
// with its progress in the status bar; the recent list and the last model are kept in the
// settings. On success the session holds the model and `opened` tells the window, which shows
// it in its views; a failure is shown once (a recent entry whose folder has gone is dropped).
// GUI thread only.

#include "engine_jobs.h"

#include <QObject>
#include <QPointer>
#include <QString>

namespace sparselab::gui {

class MainWindow;
class RecentFiles;
class Workbench;

class ModelController : public QObject {
    Q_OBJECT

public:
    static constexpr int kMaxRecentModels = 8;

    // `window` shows what the controller does; `session` is what it works on.
    ModelController(MainWindow* window, Workbench& session);

    // Starts loading `path` (a model folder, or a file in one). False when refused (another
    // job runs: shown) or the path is empty; the outcome arrives as opened / openFailed.
    bool open(const QString& path);
    void openDialog();
    void openDemo();
    // What to open at start when nothing is asked: the last model if its folder is still
    // there, else the bundled demo ("" when neither).
    [[nodiscard]] static QString startupModel();

    [[nodiscard]] bool isLoading() const { return m_loadJob != nullptr; }
    // File → Open Recent (its menu is set by the window).
    [[nodiscard]] RecentFiles* recent() const { return m_recent; }

Q_SIGNALS:
    // The session now holds the model; `sameModel` when it is the folder already open (its
    // runs stay).
    void opened(const sparselab::gui::LoadModelJob::Result& result, bool sameModel);
    void openFailed(const QString& message);

private:
    MainWindow* m_window;
    Workbench& m_session;
    RecentFiles* m_recent;
    QPointer<LoadModelJob> m_loadJob;
    QString m_loadingFolder;
};

} // namespace sparselab::gui
