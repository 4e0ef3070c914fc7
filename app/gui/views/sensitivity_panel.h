#pragma once
// The Results view's "Sensitivity" tab: a sensitivity scan (pipeline/sensitivity.h) as a
// heat-map — linear layers (rows, in pipeline order) × levels (sparsity/bits, columns),
// coloured by the relative output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) on a log scale — and the same
// numbers as a table; below them, the allocator (pipeline/allocator.h): a budget (average
// sparsity, or model size in MB), an error metric and a sparsity cap, and "Allocate to Plan",
// which solves the allocation, shows its predicted error next to uniform's, and hands the
// recipe to the window (allocationReady) to apply to the Plan view.
// A scan comes from a run of Run → Sensitivity Scan… (analysis_controller.h), a scan file
// (.json, `sparselab-cli sensitivity --out S.json`) or a workspace (.h5). GUI thread only; the
// allocation is a dynamic programme over the scan and takes milliseconds.

#include <QString>
#include <QWidget>

#include <memory>

class QComboBox;
class QCustomPlot;
class QCPColorMap;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QTableWidget;

namespace sparselab::analysis { struct SensitivityResult; }

namespace sparselab::gui {

class SensitivityPanel : public QWidget {
    Q_OBJECT

public:
    enum class Budget { AverageSparsity, ModelMegabytes };
    enum class Metric { Relative, KindNormalized, Absolute };
    struct AllocationRequest {
        Budget budget = Budget::AverageSparsity;
        double value = 0.5;        // average sparsity in [0, 1), or megabytes (10^6 bytes)
        Metric metric = Metric::Relative;
        double maxSparsity = 1.0;
    };
    struct AllocationOutcome {
        QByteArray recipeJson;     // the allocated recipe (CLI format)
        QByteArray uniformRecipeJson;
        double predictedError = 0, uniformPredictedError = 0;
        double averageSparsity = 0, uniformAverageSparsity = 0;
        qint64 modelBytes = 0, uniformModelBytes = 0;
        QString summary;           // one line for the view and the log
    };

    explicit SensitivityPanel(QWidget* parent = nullptr);
    ~SensitivityPanel() override;

    void setScan(std::shared_ptr<const analysis::SensitivityResult> scan, const QString& source);
    void clear();
    // Loads `file` (.json scan or .h5 workspace: its last scan). False with the one-line message
    // in `error` when it cannot be read (the panel is left as it was); false with an empty
    // error when a workspace simply holds no scan.
    bool loadFile(const QString& file, QString* error);

    [[nodiscard]] bool hasScan() const { return m_scan != nullptr; }
    [[nodiscard]] std::shared_ptr<const analysis::SensitivityResult> scan() const { return m_scan; }
    [[nodiscard]] QString sourceText() const { return m_source; }
    [[nodiscard]] QCustomPlot* heatmapPlot() const { return m_plot; }
    [[nodiscard]] QCPColorMap* heatmap() const { return m_map; }
    [[nodiscard]] QTableWidget* table() const { return m_table; }
    [[nodiscard]] QLabel* allocationLabel() const { return m_allocationLabel; }

    [[nodiscard]] AllocationRequest allocationRequest() const; // the controls' values
    void setAllocationRequest(const AllocationRequest& request);
    // Solves the allocation over the scan; false with the one-line reason in `error`.
    bool allocate(const AllocationRequest& request, AllocationOutcome* outcome, QString* error) const;

public Q_SLOTS:
    // Allocates with the controls' values and emits allocationReady (or allocationFailed).
    void allocateToPlan();

Q_SIGNALS:
    void allocationReady(const sparselab::gui::SensitivityPanel::AllocationOutcome& outcome);
    void allocationFailed(const QString& message);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void rebuild();
    void updateLayerTicks();
    void updateBudgetControls();

    std::shared_ptr<const analysis::SensitivityResult> m_scan;
    QString m_source;
    QLabel* m_summary = nullptr;
    QCustomPlot* m_plot = nullptr;
    QCPColorMap* m_map = nullptr;
    QTableWidget* m_table = nullptr;
    QComboBox* m_budgetKind = nullptr;
    QDoubleSpinBox* m_budgetValue = nullptr;
    QComboBox* m_metric = nullptr;
    QDoubleSpinBox* m_maxSparsity = nullptr;
    QPushButton* m_allocateButton = nullptr;
    QLabel* m_allocationLabel = nullptr;
};

} // namespace sparselab::gui
