#pragma once
// The "Results" dock: the runs of this session (named, removable, each with a "show in plots"
// check), the selected run's perplexity before → after and per-layer table (sparsity, bits,
// loss, relative error, damping, seconds), and plots of the error per layer and per layer
// type with the checked runs overlaid (e.g. SparseGPT vs magnitude vs Wanda).
// GUI thread only.

#include "session_types.h"

#include <QWidget>

class QComboBox;
class QLabel;
class QPushButton;
class QTableWidget;
class QTabWidget;

namespace sparselab::widgets { class LayerErrorPlot; }

namespace sparselab::gui {

class ResultsPanel : public QWidget {
    Q_OBJECT

public:
    enum RunColumn { ShowColumn, NameColumn, MethodColumn, SparsityColumn, BeforeColumn, AfterColumn, TimeColumn, RunColumnCount };
    enum LayerColumn { LayerNameColumn, LayerMethodColumn, LayerSparsityColumn, LayerBitsColumn, LayerLossColumn,
                       LayerErrorColumn, LayerDampColumn, LayerSecondsColumn, LayerColumnCount };
    enum Metric { RelativeError, Loss };

    explicit ResultsPanel(QWidget* parent = nullptr);

    void addRun(const RunRecord& run);   // appends and selects it
    bool removeRun(int id);
    void clearRuns();
    void setModelKept(int id, bool kept);
    [[nodiscard]] const QList<RunRecord>& runs() const { return m_runs; }
    [[nodiscard]] const RunRecord* run(int id) const;
    [[nodiscard]] int selectedRunId() const;  // -1 when none
    void selectRun(int id);
    void setShown(int id, bool shown);
    void setMetric(Metric metric);

    [[nodiscard]] QTableWidget* runTable() const { return m_runTable; }
    [[nodiscard]] QTableWidget* layerTable() const { return m_layerTable; }
    [[nodiscard]] widgets::LayerErrorPlot* layerPlot() const { return m_layerPlot; }
    [[nodiscard]] widgets::LayerErrorPlot* kindPlot() const { return m_kindPlot; }
    [[nodiscard]] QTabWidget* tabs() const { return m_tabs; }
    [[nodiscard]] QString perplexityText() const;

Q_SIGNALS:
    void runSelected(int id);            // -1 when the selection becomes empty
    void runRemoved(int id);
    void runRenamed(int id, const QString& name);

private:
    void onRunSelectionChanged();
    void onRunItemChanged(int row, int column);
    void removeSelected();
    void showRunDetails(const RunRecord* run);
    void updatePlots();
    [[nodiscard]] int rowOf(int id) const;
    [[nodiscard]] double metricOf(const solve::LayerRecord& row) const;

    QList<RunRecord> m_runs;
    QList<bool> m_shown;
    QTableWidget* m_runTable = nullptr;
    QPushButton* m_remove = nullptr;
    QLabel* m_perplexity = nullptr;
    QLabel* m_details = nullptr;
    QTabWidget* m_tabs = nullptr;
    QTableWidget* m_layerTable = nullptr;
    widgets::LayerErrorPlot* m_layerPlot = nullptr;
    widgets::LayerErrorPlot* m_kindPlot = nullptr;
    QComboBox* m_metric = nullptr;
    QLabel* m_legend = nullptr; // one legend for both plots
    bool m_updating = false;
};

} // namespace sparselab::gui
