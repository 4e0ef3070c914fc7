#pragma once
// An allocation profile: each layer kind's sparsity by decoder block (one line per kind, e.g.
// q_proj … down_proj), with the uniform level (a flat dashed line) and, when given, OWL's
// per-block sparsities (dashed) overlaid. The allocation search redraws it whenever it finds
// better levels. Built on QCustomPlot, styled from the palette (plot_style.h).
//
// Usage:
//     auto* plot = new AllocationProfilePlot;
//     plot->setReference(0.6, owlBlockSparsity);   // uniform S, OWL per block (may be empty)
//     plot->setProfile(layers);                     // {kind, block, sparsity}, any order
//
// GUI thread only.

#include <QString>
#include <QVector>
#include <QWidget>

class QCustomPlot;

namespace sparselab::widgets {

struct ProfileLayer {
    QString kind;       // e.g. "self_attn.q_proj"; the line is named by its last part
    int block = 0;
    double sparsity = 0; // in [0, 1]
};

class AllocationProfilePlot : public QWidget {
    Q_OBJECT

public:
    explicit AllocationProfilePlot(QWidget* parent = nullptr);

    // The reference lines: the uniform sparsity (< 0: none) and OWL's sparsity per block (empty: none).
    void setReference(double uniform, const QVector<double>& owlPerBlock);
    // Replaces the per-kind lines.
    void setProfile(const QVector<ProfileLayer>& layers);
    void clear();

    [[nodiscard]] int kindCount() const { return m_kinds; }
    [[nodiscard]] QCustomPlot* plot() const { return m_plot; }

protected:
    void changeEvent(QEvent* event) override;

private:
    void redraw();

    QCustomPlot* m_plot = nullptr;
    QVector<ProfileLayer> m_layers;
    double m_uniform = -1;
    QVector<double> m_owl;
    int m_kinds = 0;
};

} // namespace sparselab::widgets
