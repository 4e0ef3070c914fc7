#pragma once
// A training curve: loss per step (left axis, log scale) and a held-out metric at the steps
// it was measured (right axis, e.g. perplexity), filling in live. Used for recovery after
// pruning and the allocation search. Built on QCustomPlot, styled from the palette like LayerErrorPlot.
//
// Usage:
//     auto* plot = new TrainingCurvePlot;
//     plot->start(300, tr("held-out perplexity"));  // x range 0..300
//     plot->addLoss(1, 0.84);                          // as steps finish
//     plot->addHeldOut(0, 22.8);                       // as evaluations finish
//
// Values <= 0 or NaN are skipped (log axis). Replots are queued (one per event-loop pass).
// GUI thread only.

#include <QString>
#include <QVector>
#include <QWidget>

class QCustomPlot;
class QCPGraph;

namespace sparselab::widgets {

class TrainingCurvePlot : public QWidget {
    Q_OBJECT

public:
    explicit TrainingCurvePlot(QWidget* parent = nullptr);

    // Clears both curves; the step axis spans 0..steps; `heldOutLabel` names the right axis
    // (empty: no right axis). The left axis and the x axis default to "training loss" and
    // "step" (the allocation search plots its best KL per generation here).
    void start(qint64 steps, const QString& heldOutLabel, const QString& lossLabel = {},
               const QString& stepLabel = {});
    void addLoss(qint64 step, double loss);
    void addHeldOut(qint64 step, double value);
    void clear();

    [[nodiscard]] int lossPoints() const { return int(m_lossSteps.size()); }
    [[nodiscard]] int heldOutPoints() const { return int(m_heldSteps.size()); }
    [[nodiscard]] double lastLoss() const { return m_loss.isEmpty() ? 0.0 : m_loss.back(); }
    [[nodiscard]] double lastHeldOut() const { return m_held.isEmpty() ? 0.0 : m_held.back(); }
    [[nodiscard]] QCustomPlot* plot() const { return m_plot; }

protected:
    void changeEvent(QEvent* event) override;

private:
    void applyPalette();
    void rescale();

    QCustomPlot* m_plot = nullptr;
    QCPGraph* m_lossGraph = nullptr;
    QCPGraph* m_heldGraph = nullptr;
    QVector<double> m_lossSteps, m_loss, m_heldSteps, m_held;
    qint64 m_steps = 1;
};

} // namespace sparselab::widgets
