#pragma once
// Trade-offs and hand-over in the workbench:
//   Run → Sensitivity Scan… (Ctrl+Shift+Y)   scans the loaded model with the Calibration view's
//                                            windows (analysis_jobs.h: SensitivityJob); the
//                                            heat-map appears in Results → Sensitivity;
//   File → Open Sensitivity Scan…            a scan file (.json) or a workspace's last scan;
//   Run → Sweep… (Ctrl+Shift+G)              a grid of methods × layer groups × bits × sparsities
//                                            (SweepJob), filling Results → Sweeps point by point;
//   Run → Allocate from Scan (Ctrl+Shift+A)  the allocator over the scan, applied to the Plan
//                                            view; Undo Allocation (Ctrl+Alt+Z) puts the
//                                            previous plan back;
//   Run → Allocate… (Ctrl+Shift+L)           one dialog for OWL's block sparsities or the
//                                            end-to-end search (best KL per generation live in
//                                            the Live Solver view; Stop Search keeps the best),
//                                            applied to the Plan view the same way;
//   File → Write Report… (Ctrl+Shift+R)      the hand-over report (HTML and/or PDF) of the run
//                                            selected in Results (ReportJob), with the loaded
//                                            sweep and scan as plots and the session's runs.
// Jobs run on the window's engine pool (one engine job at a time): the window is busy
// meanwhile, Esc cancels, progress and ETA show in the status bar. Errors go through the
// window's error handler. A scan or sweep made or opened here is stored in the workspace on save
// (workspace_controller.h). GUI thread only.

#include <QObject>
#include <QPointer>
#include <QString>
#include <QStringList>

#include <memory>
#include <vector>

class QAction;
class QMenu;

namespace sparselab::analysis { struct SensitivityResult; }

namespace sparselab::gui {

class EngineJob;
template <class Job>
struct JobOutcome;
class MainWindow;
class Workbench;
class SearchJob;
class SensitivityPanel;
struct LayerSetting;

class AnalysisController : public QObject {
    Q_OBJECT

public:
    struct ScanRequest {
        std::vector<double> sparsities{0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
        std::vector<int> bits{16};
        int method = 0;              // PlanMethod: SparseGpt (0), Magnitude (1), Wanda (2)
    };
    struct SweepRequest {
        std::vector<double> sparsities{0.3, 0.5, 0.7};
        std::vector<int> bits{16, 4};
        std::vector<int> methods{0};             // PlanMethod values: SparseGpt (0), Magnitude (1), Wanda (2)
        std::vector<std::string> groups{"all"};  // "all", "attention", "mlp"
        std::vector<std::string> allocations{"uniform"}; // "uniform", "owl", "search"
        qint64 searchGenerations = 50;           // per search; one search per sparsity level
    };
    struct SearchRequest {
        double averageSparsity = 0.5;
        qint64 budgetBytes = 0;      // > 0: a model-size budget instead (sparsity × 16/8/4 bits)
        qint64 generations = 200;
        double timeLimitSeconds = 0; // 0 = none
        quint64 seed = 0;
    };
    struct ReportRequest {
        QString htmlPath, pdfPath;   // at least one
        QStringList prompts;         // empty = the report's defaults
        qint64 newTokens = 40;
        qint64 maxWindows = 0;       // 0 = the run's evaluation setting
    };

    // `window` shows what the controller does (its views, error handler and status bar);
    // `session` is what it works on (the window's own).
    AnalysisController(MainWindow* window, Workbench& session);
    ~AnalysisController() override;

    void populateFileMenu(QMenu* file); // Write Report…, Open Sensitivity Scan…
    void populateRunMenu(QMenu* run);   // Sensitivity Scan…, Allocate from Scan, Undo Allocation

    [[nodiscard]] SensitivityPanel* panel() const { return m_panel; }
    [[nodiscard]] QAction* scanAction() const { return m_scanAction; }
    [[nodiscard]] QAction* openScanAction() const { return m_openScanAction; }
    [[nodiscard]] QAction* allocateAction() const { return m_allocateAction; }
    [[nodiscard]] QAction* undoAllocationAction() const { return m_undoAllocationAction; }
    [[nodiscard]] QAction* reportAction() const { return m_reportAction; }
    [[nodiscard]] QAction* sweepAction() const { return m_sweepAction; }
    [[nodiscard]] QAction* searchAction() const { return m_searchAction; }
    [[nodiscard]] QAction* stopSearchAction() const { return m_stopSearchAction; }
    [[nodiscard]] bool isBusy() const { return m_job != nullptr; }
    // Where the last report went (empty before).
    [[nodiscard]] const QStringList& lastReportFiles() const { return m_lastReportFiles; }

    // Parses "0, 0.25, 0.5" / "16,4"; false with the one-line reason.
    static bool parseSparsities(const QString& text, std::vector<double>* out, QString* error);
    static bool parseBits(const QString& text, std::vector<int>* out, QString* error);

public Q_SLOTS:
    // False (error reported) when refused: busy, no model, bad settings.
    bool startScan(const ScanRequest& request);
    bool startSweep(const SweepRequest& request);
    bool writeReport(const ReportRequest& request);
    bool openScan(const QString& file);
    // Allocates with the Sensitivity tab's controls and applies the result to the plan.
    bool allocateToPlan();
    // OWL's per-block sparsities at `averageSparsity` (an OwlJob), applied to the plan when it
    // finishes (Undo Allocation puts the plan back).
    bool startOwl(double averageSparsity);
    // The end-to-end allocation search (a SearchJob) with its best KL per generation in the
    // Live Solver view; its levels go to the plan when it ends (Undo Allocation puts the plan
    // back). Stop Search ends it early keeping the best levels so far.
    bool startSearch(const SearchRequest& request);
    void allocateDialog(); // the end-to-end search or OWL
    void stopSearch();
    bool undoAllocation();
    void cancel();
    void updateActions();

    void scanDialog();
    void sweepDialog();
    void reportDialog();
    void openScanDialog();

Q_SIGNALS:
    void scanFinished();
    void sweepFinished();
    void sweepFailed(const QString& message);
    void scanFailed(const QString& message);
    void reportWritten(const QStringList& files);
    void reportFailed(const QString& message);
    void jobCancelled();
    void allocationApplied(const QString& summary);

private:
    // False, with the reason shown, while another engine job runs / also when no model is loaded.
    bool canStart();
    bool canStartOnModel();
    // Starts `job` on the session's JobRunner with the analyses' common outcome around
    // `outcome`: the job is forgotten first (finishJob), the Run view shows how it ended, a
    // cancellation is logged; false (and the refusal reported) when refused.
    template <class Job>
    bool startJob(Job* job, const QString& what, JobOutcome<Job> outcome);
    void finishJob();
    void onProgress(qint64 done, qint64 total, double etaSeconds, const QString& text);
    // Applies an allocation's recipe to the plan, keeping the plan before for Undo Allocation.
    bool applyAllocation(const QByteArray& recipeJson, const QString& summary);

    MainWindow* m_window;
    Workbench& m_session;
    SensitivityPanel* m_panel = nullptr;
    QPointer<EngineJob> m_job;
    QString m_jobName;
    QAction* m_scanAction = nullptr;
    QAction* m_openScanAction = nullptr;
    QAction* m_allocateAction = nullptr;
    QAction* m_searchAction = nullptr;
    QAction* m_stopSearchAction = nullptr;
    QPointer<SearchJob> m_searchJob;
    QAction* m_undoAllocationAction = nullptr;
    QAction* m_reportAction = nullptr;
    QAction* m_sweepAction = nullptr;
    std::unique_ptr<std::vector<LayerSetting>> m_planBeforeAllocation;
    QStringList m_lastReportFiles;
};

} // namespace sparselab::gui
