#include "training_curve_plot.h"

#include "plot_style.h"
#include "qcustomplot_include.h"

#include <QEvent>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace sparselab::widgets {

namespace {

bool present(double v) { return std::isfinite(v) && v > 0.0; }

} // namespace

TrainingCurvePlot::TrainingCurvePlot(QWidget* parent)
    : QWidget(parent)
{
    m_plot = new QCustomPlot(this);
    m_plot->setMinimumSize(fontMetrics().height() * 10, fontMetrics().height() * 6);
    m_plot->setNoAntialiasingOnDrag(true);
    m_plot->xAxis->setLabel(tr("step"));
    m_plot->yAxis->setLabel(tr("training loss"));
    m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_plot->yAxis2->setVisible(true);
    m_plot->yAxis2->setScaleType(QCPAxis::stLogarithmic);
    m_plot->yAxis2->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_plot->yAxis2->setNumberFormat(QStringLiteral("gb"));
    m_lossGraph = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis);
    m_lossGraph->setName(tr("training loss"));
    m_heldGraph = m_plot->addGraph(m_plot->xAxis, m_plot->yAxis2);
    m_heldGraph->setName(tr("held-out"));
    m_heldGraph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
    // The legend sits in the top right corner, above the curves' start (both fall from the left).
    m_plot->legend->setVisible(true);
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    applyPalette();
    clear();
}

void TrainingCurvePlot::start(qint64 steps, const QString& heldOutLabel, const QString& lossLabel,
                              const QString& stepLabel)
{
    clear();
    m_steps = std::max<qint64>(1, steps);
    const QString loss = lossLabel.isEmpty() ? tr("training loss") : lossLabel;
    m_plot->xAxis->setLabel(stepLabel.isEmpty() ? tr("step") : stepLabel);
    m_plot->yAxis->setLabel(loss);
    m_lossGraph->setName(loss);
    // No held-out metric: no right axis and no legend entry for it.
    m_plot->yAxis2->setVisible(!heldOutLabel.isEmpty());
    m_plot->yAxis2->setLabel(heldOutLabel);
    m_heldGraph->setName(heldOutLabel);
    if (heldOutLabel.isEmpty())
        m_heldGraph->removeFromLegend();
    else
        m_heldGraph->addToLegend();
    rescale();
}

void TrainingCurvePlot::clear()
{
    m_lossSteps.clear();
    m_loss.clear();
    m_heldSteps.clear();
    m_held.clear();
    m_lossGraph->data()->clear();
    m_heldGraph->data()->clear();
    rescale();
}

void TrainingCurvePlot::addLoss(qint64 step, double loss)
{
    if (!present(loss))
        return;
    m_lossSteps.append(double(step));
    m_loss.append(loss);
    m_lossGraph->addData(double(step), loss);
    rescale();
}

void TrainingCurvePlot::addHeldOut(qint64 step, double value)
{
    if (!present(value))
        return;
    m_heldSteps.append(double(step));
    m_held.append(value);
    m_heldGraph->addData(double(step), value);
    rescale();
}

void TrainingCurvePlot::rescale()
{
    m_plot->xAxis->setRange(0, double(m_steps));
    const auto fit = [](QCPAxis* axis, const QVector<double>& values) {
        if (values.isEmpty()) {
            axis->setRange(1, 10);
            return;
        }
        const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
        axis->setRange(*lo / 1.15, *hi * 1.15);
    };
    fit(m_plot->yAxis, m_loss);
    fit(m_plot->yAxis2, m_held);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void TrainingCurvePlot::applyPalette()
{
    applyPlotStyle(m_plot, *this);
    const QPalette& pal = palette();
    m_plot->yAxis2->grid()->setVisible(false);
    const QColor highlight = pal.color(QPalette::Highlight);
    m_lossGraph->setPen(QPen(highlight, 1.5));
    // The held-out curve in the complementary hue, so the two read apart in light and dark.
    const QColor second = QColor::fromHsv((highlight.hsvHue() + 180) % 360, std::max(120, highlight.hsvSaturation()),
                                          std::max(150, highlight.value()));
    m_heldGraph->setPen(QPen(second, 1.5));
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void TrainingCurvePlot::changeEvent(QEvent* event)
{
    if (event->type() == QEvent::PaletteChange || event->type() == QEvent::FontChange)
        applyPalette();
    QWidget::changeEvent(event);
}

} // namespace sparselab::widgets
