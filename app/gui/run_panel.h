#pragma once
// The "Run" dock: Start (F5) / Cancel (Esc), the compute device, the run's name, whether
// perplexity is measured before and after, the overall and per-layer progress with ETA, and
// the run's live log. MainWindow runs the RunJob; the panel holds settings and shows state.
// GUI thread only.

#include "engine_jobs.h"
#include "run_types.h"

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
    // One line under the checkbox saying which text/windows the evaluation uses.
    void setEvaluationSummary(const QString& text);
    // The memory planner's line (plan/memory_plan.h): what the run will need against what is
    // available; `fits` false shows it as a warning.
    void setMemorySummary(const QString& text, bool fits);
    [[nodiscard]] QString memorySummary() const;

    void setRunning(bool running);
    void setProgress(const RunProgress& p);
    void showFinished(const QString& text);
    void showStatus(const QString& text);

    [[nodiscard]] widgets::LogView* log() const { return m_log; }
    [[nodiscard]] int overallValue() const;   // 0..1000
    [[nodiscard]] QString stageText() const;
    [[nodiscard]] QString statusText() const;

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
    QComboBox* m_device = nullptr;
    QLineEdit* m_name = nullptr;
    QCheckBox* m_evaluate = nullptr;
    QLabel* m_evalSummary = nullptr;
    QLabel* m_memorySummary = nullptr;
    QProgressBar* m_overall = nullptr;
    QLabel* m_stage = nullptr;
    QProgressBar* m_layer = nullptr;
    QLabel* m_layerText = nullptr;
    QLabel* m_status = nullptr;
    widgets::LogView* m_log = nullptr;
};

} // namespace sparselab::gui
