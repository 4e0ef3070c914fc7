#pragma once
// Evaluate (the dense model's perplexity), Run (F5: the plan through the one compression run,
// workflow/compression_run.h) and Export (Ctrl+Shift+E: the selected run's compressed model):
// the three jobs that read the settings views and write the results views. Each starts on the
// session's JobRunner (session/workbench.h), shows its progress in the Run view and the status
// bar, and ends in exactly one of its outcome signals. MainWindow builds the views and the
// actions and forwards these signals as its own; the session keeps what a run leaves (the
// compressed model, the dense perplexity). GUI thread only.

#include "engine_jobs.h"
#include "job_progress.h"

#include <QObject>
#include <QPointer>
#include <QString>

#include <optional>

namespace sparselab::gui {

class MainWindow;
class Workbench;

class RunController : public QObject {
    Q_OBJECT

public:
    // `window` shows what the controller does; `session` is what it works on.
    RunController(MainWindow* window, Workbench& session);

    // Each starts its job; false (and the error shown) when refused.
    bool evaluate();
    bool startRun();
    bool exportSelectedRun();

    [[nodiscard]] bool isEvaluating() const { return m_evalJob != nullptr; }
    [[nodiscard]] bool isRunning() const { return m_runJob != nullptr; }
    [[nodiscard]] bool isExporting() const { return m_exportJob != nullptr; }
    // Ends the running run's recovery at its next step; the run is kept (RunJob::stopRecovery).
    void stopRecovery();
    // Export → Choose Export Folder: a new folder (or .gguf file) named after the model and the
    // selected run, inside the folder the user picks.
    void chooseExportFolderDialog();

    // The memory planner for a run with the views' settings: "" when it fits (or cannot be
    // estimated), else the one-line reason; `summary` gets the Run view's line.
    [[nodiscard]] QString memoryProblem(QString* summary) const;
    // The name the next run gets when the Run view's is empty, e.g. "SparseGPT 50 % #3".
    [[nodiscard]] QString suggestedName() const;

    // The last successful evaluation (perplexity 0 when none).
    [[nodiscard]] const PerplexityJob::Result& lastEvaluation() const { return m_lastEvaluation; }
    // What the phases of the next run are expected to cost: the rates this session's last run
    // measured, else those remembered in the settings.
    [[nodiscard]] CostRates costRates() const;
    // Remembers the measured rates in the settings (the window calls it when it closes:
    // writing them after each run would hold up the GUI thread for a sync).
    void storeMeasuredRates() const;

Q_SIGNALS:
    void evaluationFinished(double perplexity);
    void evaluationFailed(const QString& message);
    void evaluationCancelled();
    void runStarted(const QString& name);
    void runProgressed(const sparselab::gui::RunProgress& progress);
    void runFinished(const sparselab::gui::RunRecord& record);
    void runFailed(const QString& message);
    void runCancelled();
    void exportFinished(const sparselab::gui::ExportJob::Result& result);
    void exportFailed(const QString& message);
    void exportCancelled();

private:
    void onEvaluationProgress(qint64 done, qint64 total, double etaSeconds, const QString& text);
    void onEvaluationFinished(const PerplexityJob::Result& result);
    void onRunFinished(const RunJob::Result& result);
    void releaseOldModels();

    MainWindow* m_window;
    Workbench& m_session;
    QPointer<PerplexityJob> m_evalJob;
    QPointer<RunJob> m_runJob;
    QPointer<ExportJob> m_exportJob;
    QString m_runName;                        // the name of the run going on
    PerplexityJob::Result m_lastEvaluation;
    std::optional<CostRates> m_measuredRates; // measured by this session's last run
};

} // namespace sparselab::gui
