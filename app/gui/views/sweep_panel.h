#pragma once
// The Results view's "Sweeps" tab, itself three tabs: a sweep's table (one row per grid point:
// method, group, bits, sparsity, perplexity, size, Pareto) and its two plots — perplexity vs
// sparsity with one line per (method, group, bits), and size vs perplexity with every point
// and the Pareto frontier (analysis::paretoFrontier) drawn as a line. Fed from a sweep results
// file (.json) or a workspace (.h5, its last or named sweep; pipeline/analysis_store.h).
// Loading reads one small JSON document, so it runs on the GUI thread. GUI thread only.

#include <QString>
#include <QWidget>

#include <memory>

class QCustomPlot;
class QLabel;
class QTableWidget;

namespace sparselab::analysis { struct SweepResult; }

namespace sparselab::gui {

class SweepPanel : public QWidget {
    Q_OBJECT

public:
    enum Column { AllocationColumn, MethodColumn, GroupColumn, BitsColumn, SparsityColumn, PerplexityColumn, SizeColumn, ParetoColumn,
                  ColumnCount };

    explicit SweepPanel(QWidget* parent = nullptr);
    ~SweepPanel() override;

    void setSweep(const analysis::SweepResult& sweep, const QString& source);
    void clear();
    // Loads `file` (.json results or .h5 workspace). On failure returns false with the one-line
    // message in `error`, leaving the panel as it was.
    bool loadFile(const QString& file, QString* error);

    [[nodiscard]] bool hasSweep() const { return m_sweep != nullptr; }
    [[nodiscard]] const analysis::SweepResult* sweep() const { return m_sweep.get(); }
    [[nodiscard]] QTableWidget* table() const { return m_table; }
    [[nodiscard]] QCustomPlot* perplexityPlot() const { return m_perplexityPlot; }
    [[nodiscard]] QCustomPlot* paretoPlot() const { return m_paretoPlot; }
    [[nodiscard]] QString sourceText() const;

private:
    void rebuild();

    std::unique_ptr<analysis::SweepResult> m_sweep;
    QString m_source;
    QLabel* m_summary = nullptr;
    QTableWidget* m_table = nullptr;
    QCustomPlot* m_perplexityPlot = nullptr;
    QCustomPlot* m_paretoPlot = nullptr;
};

} // namespace sparselab::gui
