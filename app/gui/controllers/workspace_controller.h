#pragma once
// Workspaces in the workbench: File → Open Workspace… (Ctrl+Shift+O), Save Workspace
// (Ctrl+Alt+S), Save Workspace As…, Open Recent Workspace. A workspace (store/workspace.h) is
// the session's results: saving writes every run of the Results view (settings, plan, per-layer
// table, perplexities, the masks of runs whose compressed model is still in memory) with the
// loaded model's identity, the sensitivity scan of the Sensitivity tab and the sweep of the
// Sweeps tab; opening replaces the Results view with the workspace's runs, so their tables and
// plots come back. Runs read from a workspace are written back as stored (masks, export folder,
// per-token NLL), and the workspace-level groups of the files they came from (sweeps, scans)
// are carried over, so opening and saving a CLI-written workspace loses nothing.
// Saving and opening are engine jobs on the session's JobRunner (workspace_jobs.h): refused
// while another job runs or uses a model the save reads, cancelled with Esc, shown in the
// status bar; the window stays responsive, and the outcome arrives as workspaceSaved /
// workspaceLoaded / workspaceFailed. Errors are shown through the window's error handler.
// GUI thread only.

#include "recent_files.h"
#include "session_types.h"

#include <QObject>
#include <QStringList>

#include <memory>

class QAction;
class QMenu;

namespace sparselab::analysis {
struct SweepResult;
struct SensitivityResult;
} // namespace sparselab::analysis

namespace sparselab::gui {

class MainWindow;
class Workbench;

class WorkspaceController : public QObject {
    Q_OBJECT

public:
    static constexpr int kMaxRecentWorkspaces = 8;

    // `window` shows what the controller does (its views, error handler and status bar);
    // `session` is what it works on (the window's own).
    WorkspaceController(MainWindow* window, Workbench& session);
    ~WorkspaceController() override;

    // Adds the workspace actions and the recent menu to `file`.
    void populateFileMenu(QMenu* file);

    [[nodiscard]] QAction* openAction() const { return m_openAction; }
    [[nodiscard]] QAction* saveAction() const { return m_saveAction; }
    [[nodiscard]] QAction* saveAsAction() const { return m_saveAsAction; }
    [[nodiscard]] QMenu* recentMenu() const { return m_recentMenu; }
    [[nodiscard]] QStringList recentWorkspaces() const { return m_recent->files(); }
    [[nodiscard]] const QString& currentFile() const { return m_file; }  // "" until saved/opened
    [[nodiscard]] bool isBusy() const { return m_busy; }
    [[nodiscard]] bool isModified() const { return m_modified; }        // runs changed since save/open
    // The last sweep and sensitivity scan of the workspace opened last (null when it held none),
    // read by the same worker pass as its runs; valid when workspaceLoaded is emitted.
    [[nodiscard]] std::shared_ptr<const analysis::SweepResult> loadedSweep() const { return m_loadedSweep; }
    [[nodiscard]] std::shared_ptr<const analysis::SensitivityResult> loadedScan() const { return m_loadedScan; }
    // Something saved with the workspace changed (e.g. a new sensitivity scan).
    void markModified() { m_modified = true; }

public Q_SLOTS:
    // Start reading / writing; false when refused (busy, empty path, or an engine run is going).
    bool openWorkspace(const QString& file);
    bool saveWorkspaceAs(const QString& file);
    bool saveWorkspace(); // to currentFile(), or asks for a name
    void openWorkspaceDialog();
    void saveWorkspaceAsDialog();
    void clearRecentWorkspaces();

Q_SIGNALS:
    void workspaceSaved(const QString& file, int runs);
    void workspaceLoaded(const QString& file, int runs);
    void workspaceFailed(const QString& message);
    void busyChanged(bool busy);

private:
    void setBusy(bool busy);
    void addRecent(const QString& file);
    void updateActions();
    void fail(const QString& title, const QString& message);

    MainWindow* m_window;
    Workbench& m_session;
    QAction* m_openAction = nullptr;
    QAction* m_saveAction = nullptr;
    QAction* m_saveAsAction = nullptr;
    QMenu* m_recentMenu = nullptr;
    RecentFiles* m_recent = nullptr; // File → Open Recent Workspace
    QString m_file;
    std::shared_ptr<const analysis::SweepResult> m_loadedSweep;
    std::shared_ptr<const analysis::SensitivityResult> m_loadedScan;
    bool m_busy = false;
    bool m_modified = false;
};

} // namespace sparselab::gui
