#pragma once
// SparseLab's main window: the workbench. Open a model folder (dialog, drag-and-drop, recent
// list), plan its compression layer by layer, calibrate, run live, compare runs, export.
//
// Views are docks that can be rearranged (layout saved with QSettings):
//   Model        architecture tree, with each layer's sparsity after the latest run;
//   Calibration  text, windows, length, seed; a preview of the sampled windows;
//   Plan         per-layer method / sparsity or N:M / bits, presets, totals, recipes;
//   Evaluation   perplexity of the loaded (dense) model on a text;
//   Run          start (F5), cancel (Esc), device, progress with ETA, live log;
//   Live Solver  heat-map of the layer being solved, per-layer error bars filling in;
//   Results      runs kept for comparison: perplexity, per-layer table, overlaid plots;
//   Export       Hugging Face folder export of a run (Ctrl+Shift+E), overwrite guard;
//   Log          what the application did.
//
// The window builds the views and the actions and wires them; what the actions do is the
// controllers' (controllers/): opening models (model_controller.h), recipes and the saved plan
// (plan_controller.h), texts and the calibration preview (calibration_controller.h), evaluate /
// run / export (run_controller.h), workspaces (workspace_controller.h) and analyses
// (analysis_controller.h). Its public slots below are the same operations, for tests and drops.
// The engine runs on a worker thread (engine_jobs.h); the window stays responsive and one
// engine job runs at a time (the calibration preview, tokenization only, runs beside them).
// A run prunes a private copy of the model: the loaded model stays dense, a cancelled run
// leaves everything as it was and nothing is ever written except by Export.
//
// Errors never leave as exceptions: each is logged, shown in the status bar, and handed to
// the error handler (by default a non-blocking, window-modal QMessageBox).
// GUI thread only.

#include "engine_jobs.h"
#include "job_runner.h"
#include "workbench.h"

#include <QMainWindow>
#include <QPointer>
#include <QSize>
#include <QStringList>

#include <functional>
#include <map>
#include <memory>
#include <optional>

class QAction;
class QCloseEvent;
class QShowEvent;
class QDockWidget;
class QDragEnterEvent;
class QDropEvent;
class QLabel;
class QMenu;
class QProgressBar;

namespace sparselab::widgets {
class LogView;
class ModelTreeWidget;
} // namespace sparselab::widgets


namespace sparselab::gui {

class AnalysisController;
class CalibrationController;
class ModelController;
class PlanController;
class RunController;
class CalibrationPanel;
class EvaluationPanel;
class ExportPanel;
class LiveView;
class PlanPanel;
class ResultsPanel;
class RunPanel;
class WorkspaceController;
class TeachingWindow;
class SweepPanel;

class MainWindow : public QMainWindow {
    Q_OBJECT

public:
    struct Options {
        bool restoreSettings = true;   // geometry, docks, texts, plan and run settings
        bool openInitialModel = true;  // at startup: the last model, else the bundled demo
        QString initialModel;          // overrides the above when not empty (command line)
        QString initialText;           // overrides the saved evaluation text when not empty
        QString initialCalibrationText; // overrides the saved calibration text when not empty
    };
    // title and message of an error meant for the user.
    using ErrorHandler = std::function<void(const QString& title, const QString& message)>;

    // The window's size on first start, made smaller to fit the screen it opens on.
    static constexpr QSize kPreferredSize{1480, 920};

    MainWindow();
    explicit MainWindow(const Options& options, QWidget* parent = nullptr);
    ~MainWindow() override;

    // Replaces the message box (tests, embedding). An empty handler restores the default.
    void setErrorHandler(ErrorHandler handler);
    [[nodiscard]] const QString& lastError() const { return m_lastError; }

    // An engine job is running (load, evaluation, run, export, scan or report).
    [[nodiscard]] bool isBusy() const;
    [[nodiscard]] bool isRunning() const;
    // What the window works on (session/workbench.h): model, runs, caches, the job runner.
    [[nodiscard]] Workbench& session() { return m_session; }
    // The one runner of this window's engine jobs (the Teaching Mode window shares it).
    [[nodiscard]] JobRunner& jobs() { return m_session.jobs(); }
    [[nodiscard]] bool hasModel() const { return m_session.hasModel(); }
    [[nodiscard]] const widgets::ModelSummary& modelSummary() const { return m_session.summary(); }
    [[nodiscard]] QStringList recentModels() const;
    [[nodiscard]] QStringList recentRecipes() const;
    // The last successful evaluation (perplexity 0 when none).
    [[nodiscard]] const PerplexityJob::Result& lastEvaluation() const;
    // What the phases of the next run are expected to cost (job_progress.h): the rates the
    // last run of this session measured, else those remembered in the settings.
    [[nodiscard]] CostRates costRates() const;
    // The compressed model of a run, while it is kept (null otherwise).
    [[nodiscard]] std::shared_ptr<const model::CausalLM> runModel(int runId) const { return m_session.runModel(runId); }
    [[nodiscard]] std::shared_ptr<const model::CausalLM> denseModel() const { return m_session.model(); }
    [[nodiscard]] std::shared_ptr<const tokenize::Tokenizer> tokenizer() const { return m_session.tokenizer(); }

    [[nodiscard]] widgets::ModelTreeWidget* modelTree() const { return m_tree; }
    [[nodiscard]] EvaluationPanel* evaluationPanel() const { return m_evalPanel; }
    [[nodiscard]] CalibrationPanel* calibrationPanel() const { return m_calibPanel; }
    [[nodiscard]] PlanPanel* planPanel() const { return m_planPanel; }
    [[nodiscard]] RunPanel* runPanel() const { return m_runPanel; }
    [[nodiscard]] LiveView* liveView() const { return m_liveView; }
    [[nodiscard]] ResultsPanel* resultsPanel() const { return m_resultsPanel; }
    [[nodiscard]] ExportPanel* exportPanel() const { return m_exportPanel; }
    [[nodiscard]] SweepPanel* sweepPanel() const { return m_sweepPanel; }
    [[nodiscard]] widgets::LogView* logView() const { return m_log; }
    // Docks by view: "model", "calibration", "plan", "evaluation", "run", "live", "results", "export", "log".
    [[nodiscard]] QDockWidget* dock(const QString& view) const;
    [[nodiscard]] QStringList viewNames() const;

    [[nodiscard]] QAction* openAction() const { return m_openAction; }
    [[nodiscard]] QAction* evaluateAction() const { return m_evaluateAction; }
    [[nodiscard]] QAction* cancelAction() const { return m_cancelAction; }
    [[nodiscard]] QAction* runAction() const { return m_runAction; }
    [[nodiscard]] QAction* exportAction() const { return m_exportAction; }
    [[nodiscard]] QAction* loadRecipeAction() const { return m_loadRecipeAction; }
    [[nodiscard]] QAction* saveRecipeAction() const { return m_saveRecipeAction; }
    [[nodiscard]] QMenu* recentMenu() const { return m_recentMenu; }
    [[nodiscard]] QMenu* recentRecipeMenu() const { return m_recentRecipeMenu; }
    // File → Open/Save Workspace (workspace_controller.h).
    [[nodiscard]] WorkspaceController* workspace() const { return m_workspace; }
    // Sensitivity scans, allocation and reports (analysis_controller.h).
    [[nodiscard]] AnalysisController* analysis() const { return m_analysis; }
    // Replaces the Results view's runs (a workspace was opened): new ids, no kept models.
    void replaceRuns(const QList<RunRecord>& runs);
    [[nodiscard]] QAction* teachingAction() const { return m_teachingAction; }
    // What the controllers (controllers/) use of the shell: errors go to the error handler (a
    // message box by default), outcomes to the log and the status bar, job
    // progress to the status bar, and the actions follow the busy state and the selection.
    void reportError(const QString& title, const QString& message);
    // An outcome the user should see: written to the Log view and shown in the status bar for
    // `statusMs` milliseconds.
    void announce(const QString& message, int statusMs = 5000);
    // The status bar's progress bar at `done` of `total` (nothing when total is unknown).
    void showJobProgress(qint64 done, qint64 total);
    void updateActions();
    // True, with the one "Busy" message naming the running job (ending "… (Esc) <before>."),
    // while a job runs.
    bool refuseWhileBusy(const QString& before = {});
    // True, with the reason shown, when a job on the model cannot start: another job runs
    // (refuseWhileBusy) or no model is open.
    bool refuseModelJob();
    // The Evaluation view's settings (the text, window length and count a run measures with).
    [[nodiscard]] EvaluationSettings evaluationSettings() const;
    // The memory planner for a run with the current settings: "" when it fits (or cannot be
    // estimated), else the one-line reason; `summary` gets the Run view's line.
    [[nodiscard]] QString runMemoryProblem(QString* summary) const;
    // The name the next run gets when the Run view's is empty, e.g. "SparseGPT 50 % #3".
    [[nodiscard]] QString suggestedRunName() const;
    // The Export view follows the run selected in Results.
    void updateExportTarget();
    [[nodiscard]] QAction* stopRecoveryAction() const { return m_stopRecoveryAction; }

    // The Teaching Mode window once opened (null before).
    [[nodiscard]] TeachingWindow* teachingWindow() const;

public Q_SLOTS:
    // Shows the sweep of a results file (.json) or workspace (.h5) in the Results view's Sweeps
    // tab (sweep_panel.h); false
    // (and the error handler called with one line) when it cannot be read.
    bool openSweepResults(const QString& file);
    void openSweepResultsDialog();
    // Starts loading a model folder (or the folder of a config.json). False when refused
    // (another job is running, or the path is empty); the outcome arrives as modelLoaded /
    // modelLoadFailed.
    bool openModel(const QString& folder);
    void openModelDialog();
    void openDemoModel();
    void chooseTextDialog();
    void chooseCalibrationTextDialog();
    void setEvaluationText(const QString& path);
    void setCalibrationText(const QString& path);
    // Starts a perplexity evaluation with the panel's settings. False when refused.
    bool evaluate();
    // Starts a run of the plan with the calibration, evaluation and run settings (F5).
    // False when refused; the outcome arrives as runFinished / runFailed / runCancelled.
    bool startRun();
    // Exports the run selected in Results to the Export view's folder (Ctrl+Shift+E).
    bool exportSelectedRun();
    void chooseExportFolderDialog();
    // Recipes (Ctrl+L / Ctrl+S). False (and an error shown) when the file is unusable.
    bool loadRecipe(const QString& file);
    bool saveRecipe(const QString& file);
    void loadRecipeDialog();
    void saveRecipeDialog();
    // Cancels the running job, if any (Esc).
    void cancelJob();
    void clearRecentModels();
    void clearRecentRecipes();
    // View → Reset Layout: the default arrangement (built for watching a run) at a size that
    // fits the screen.
    void resetLayout();
    void showAbout();
    // Opens the Teaching Mode window (View → Teaching Mode, Ctrl+Shift+M) on the loaded model.
    void openTeachingMode();
    // Refreshes the calibration preview now (normally debounced after each change).
    void refreshCalibrationPreview();

Q_SIGNALS:
    void modelLoaded(const sparselab::widgets::ModelSummary& summary);
    void modelLoadFailed(const QString& message);
    void evaluationFinished(double perplexity);
    void evaluationFailed(const QString& message);
    void evaluationCancelled();
    void busyChanged(bool busy);
    void calibrationPreviewed(const sparselab::gui::CalibrationPreviewJob::Result& result);
    void runStarted(const QString& name);
    void runProgressed(const sparselab::gui::RunProgress& progress);
    void runFinished(const sparselab::gui::RunRecord& record);
    void runFailed(const QString& message);
    void runCancelled();
    void exportFinished(const sparselab::gui::ExportJob::Result& result);
    void exportFailed(const QString& message);
    void exportCancelled();

protected:
    void closeEvent(QCloseEvent* event) override;
    void showEvent(QShowEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void createActions();
    void createMenus();
    void createDocks();
    QDockWidget* addView(const QString& key, const QString& title, QWidget* widget, Qt::DockWidgetArea area);
    void applyDefaultLayout();
    void fitDocksToWindow();
    void fitToScreen();
    void readSettings(const Options& options);
    void writeSettings() const;
    void saveEvaluationSettings() const;
    void saveCalibrationSettings() const;
    void saveRunSettings() const;
    void updateTitle();
    void updateRunSummary();
    void setBusy(bool busy);
    void stopJobs();

    void onModelLoaded(const LoadModelJob::Result& result, bool sameModel);
    void onRunSelected(int id);

    // The session (the dense model, run models, caches, the job runner); the views show it.
    Workbench m_session;

    widgets::ModelTreeWidget* m_tree = nullptr;
    EvaluationPanel* m_evalPanel = nullptr;
    CalibrationPanel* m_calibPanel = nullptr;
    PlanPanel* m_planPanel = nullptr;
    RunPanel* m_runPanel = nullptr;
    LiveView* m_liveView = nullptr;
    ResultsPanel* m_resultsPanel = nullptr;
    ExportPanel* m_exportPanel = nullptr;
    SweepPanel* m_sweepPanel = nullptr;
    QAction* m_openSweepAction = nullptr;
    WorkspaceController* m_workspace = nullptr;
    AnalysisController* m_analysis = nullptr;
    RunController* m_runs = nullptr;
    ModelController* m_models = nullptr;    // opening models, File → Open Recent
    PlanController* m_plans = nullptr;      // recipes, Recent Recipes, the saved plan
    CalibrationController* m_texts = nullptr; // texts and the calibration preview
    widgets::LogView* m_log = nullptr;
    std::map<QString, QDockWidget*> m_docks;
    QLabel* m_statusModel = nullptr;
    QProgressBar* m_statusProgress = nullptr;

    QAction* m_openAction = nullptr;
    QAction* m_openDemoAction = nullptr;
    QAction* m_chooseTextAction = nullptr;
    QAction* m_chooseCalibAction = nullptr;
    QAction* m_evaluateAction = nullptr;
    QAction* m_runAction = nullptr;
    QAction* m_cancelAction = nullptr;
    QAction* m_stopRecoveryAction = nullptr;
    QAction* m_exportAction = nullptr;
    QAction* m_chooseExportAction = nullptr;
    QAction* m_loadRecipeAction = nullptr;
    QAction* m_saveRecipeAction = nullptr;
    QAction* m_quitAction = nullptr;
    QAction* m_resetLayoutAction = nullptr;
    QAction* m_teachingAction = nullptr;
    QPointer<TeachingWindow> m_teachingWindow;
    QAction* m_aboutAction = nullptr;
    QAction* m_aboutQtAction = nullptr;
    QMenu* m_recentMenu = nullptr;
    QMenu* m_recentRecipeMenu = nullptr;
    QMenu* m_viewMenu = nullptr;

    ErrorHandler m_errorHandler;
    QString m_lastError;
    bool m_busy = false;
    bool m_restoring = false;
    bool m_fitDocksOnShow = false; // the default layout's dock sizes are applied at first show
    bool m_layoutRestored = false; // a saved layout (of this kStateVersion) was restored
    bool m_shownOnce = false;
    bool m_restoreSettings = true; // Options::restoreSettings (the Teaching Mode window's too)
};

} // namespace sparselab::gui
