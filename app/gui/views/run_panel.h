#pragma once
// The "Run" dock: Start (F5) / Cancel (Esc), the compute device, the run's name, whether
// perplexity is measured before and after, the overall and per-layer progress with ETA, and
// the run's live log. MainWindow runs the RunJob; the panel holds settings and shows state.
//
// The progress area is the workbench's one place for the job that is running, whatever it
// is (a run, a sensitivity scan, a sweep, an export, a report): Cancel (Esc) is active
// exactly while the area shows a job. After a job ends it says how (Done / Cancelled /
// Failed) and the bars agree with it: full when done, empty when nothing was kept.
// GUI thread only.

#include "engine_jobs.h"
#include "session_types.h"

#include <QWidget>

class QAction;
class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QTimer;

namespace sparselab::widgets { class LogView; }

namespace sparselab::gui {

class RunPanel : public QWidget {
    Q_OBJECT

public:
    explicit RunPanel(QWidget* parent = nullptr);

    void setActions(QAction* start, QAction* cancel);
    // "Stop Recovery": a button shown while a run recovers (ends training, keeps the run).
    void setStopRecoveryAction(QAction* stop);

    // Devices offered; unavailable ones are listed greyed out with their reason as tooltip.
    void setDevices(const QList<DeviceChoice>& devices);
    [[nodiscard]] QString device() const;        // key of the chosen device, e.g. "cpu"
    void setDevice(const QString& key);
    [[nodiscard]] QComboBox* deviceBox() const { return m_device; }

    // The name for the next run; empty = the suggestion shown as placeholder.
    [[nodiscard]] QString runName() const;
    void setSuggestedName(const QString& name);
    void clearRunName();

    [[nodiscard]] bool evaluate() const;
    void setEvaluate(bool on);
    // Resume checkpoints for the next run (RunJob::Params::checkpointFolder); on by default.
    [[nodiscard]] bool keepCheckpoints() const;
    void setKeepCheckpoints(bool on);
    // One line under the checkbox saying which text/windows the evaluation uses.
    void setEvaluationSummary(const QString& text);
    // The memory planner's line (memory/memory_plan.h): what the run will need against what is
    // available; `fits` false shows it as a warning.
    void setMemorySummary(const QString& text, bool fits);
    [[nodiscard]] QString memorySummary() const;

    enum class Outcome { Done, Cancelled, Failed };

    // A run starts or stops: the settings are locked while it runs; starting resets the bars.
    void setRunning(bool running);
    void setProgress(const RunProgress& p);
    // Another long job (scan, sweep, export, report) is shown in the same bars.
    void startJob(const QString& title);
    void setJobProgress(qint64 done, qint64 total, double etaSeconds, const QString& text);
    // The job (run or other) has ended; `text` is the one-line outcome under the bars.
    void finishJob(Outcome outcome, const QString& text);
    void showFinished(const QString& text) { finishJob(Outcome::Done, text); }

    [[nodiscard]] widgets::LogView* log() const { return m_log; }
    [[nodiscard]] int overallValue() const;   // 0..1000
    [[nodiscard]] QString stageText() const;
    [[nodiscard]] QString statusText() const;
    [[nodiscard]] int layerValue() const;     // 0..1000
    [[nodiscard]] QString layerText() const;

    // The live GPU line ("GPU 0 NVIDIA H200: 87 % busy, 40.1 of 143.8 GB used"), refreshed
    // once a second from NVML while the CUDA device is chosen; hidden otherwise.
    [[nodiscard]] QString gpuText() const;

Q_SIGNALS:
    void settingsChanged();

private:
    void refreshGpu();
    QLabel* m_gpu = nullptr;
    QTimer* m_gpuTimer = nullptr;
    QPushButton* m_start = nullptr;
    QPushButton* m_cancel = nullptr;
    QPushButton* m_stopRecovery = nullptr;
    QComboBox* m_device = nullptr;
    QLineEdit* m_name = nullptr;
    QCheckBox* m_evaluate = nullptr;
    QCheckBox* m_checkpoints = nullptr;
    QLabel* m_evalSummary = nullptr;
    QLabel* m_memorySummary = nullptr;
    QLabel* m_overallLabel = nullptr;
    QProgressBar* m_overall = nullptr;
    QLabel* m_stage = nullptr;
    QLabel* m_layerLabel = nullptr;
    QProgressBar* m_layer = nullptr;
    QLabel* m_layerText = nullptr;
    QLabel* m_status = nullptr;
    widgets::LogView* m_log = nullptr;
    bool m_running = false;
};

} // namespace sparselab::gui
