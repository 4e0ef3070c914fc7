#pragma once
// The plan's files and memory: File → Load Recipe (Ctrl+L), Save Recipe (Ctrl+S), Recent
// Recipes and recipe files dropped on the window (the JSON sparselab-cli prune --recipe reads,
// plan/recipe_bridge.h), and the plan that persists between sessions: every change is saved,
// and when a model is opened its plan starts at the engine's defaults, then takes the last plan
// if that fits the model's layers. Errors are shown once through the window. GUI thread only.

#include <QObject>
#include <QString>

namespace sparselab::widgets { struct ModelSummary; }

namespace sparselab::gui {

class MainWindow;
class RecentFiles;
class Workbench;

class PlanController : public QObject {
    Q_OBJECT

public:
    static constexpr int kMaxRecentRecipes = 8;

    // `restoreSaved`: a newly opened model takes the last session's plan (MainWindow::Options).
    PlanController(MainWindow* window, Workbench& session, bool restoreSaved);

    // False (and the error shown) when the file is unusable, no model is open, or (loading) a
    // run uses the plan.
    bool loadRecipe(const QString& file);
    bool saveRecipe(const QString& file);
    void loadRecipeDialog();
    void saveRecipeDialog();

    // The Plan view on a newly opened model: the defaults, then the last plan if it fits.
    void showModel(const widgets::ModelSummary& summary);

    [[nodiscard]] RecentFiles* recent() const { return m_recent; }

private:
    void savePlan() const;
    void addRecent(const QString& file);

    MainWindow* m_window;
    Workbench& m_session;
    RecentFiles* m_recent;
    QString m_lastRecipeFile;
    bool m_restoreSaved = true;
    bool m_restoring = false; // showModel is filling the plan: not a change to save
};

} // namespace sparselab::gui
