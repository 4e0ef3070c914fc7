#include "allocation_profile_plot.h"

#include "plot_style.h"
#include "qcustomplot_include.h"

#include <QEvent>
#include <QVBoxLayout>

#include <algorithm>
#include <map>

namespace sparselab::widgets {

AllocationProfilePlot::AllocationProfilePlot(QWidget* parent)
    : QWidget(parent)
{
    m_plot = new QCustomPlot(this);
    m_plot->setMinimumSize(fontMetrics().height() * 10, fontMetrics().height() * 6);
    m_plot->xAxis->setLabel(tr("block"));
    m_plot->yAxis->setLabel(tr("sparsity (%)"));
    m_plot->legend->setVisible(true);
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_plot);
    applyPlotStyle(m_plot, *this);
    redraw();
}

void AllocationProfilePlot::setReference(double uniform, const QVector<double>& owlPerBlock)
{
    m_uniform = uniform;
    m_owl = owlPerBlock;
    redraw();
}

void AllocationProfilePlot::setProfile(const QVector<ProfileLayer>& layers)
{
    m_layers = layers;
    redraw();
}

void AllocationProfilePlot::clear()
{
    m_layers.clear();
    m_owl.clear();
    m_uniform = -1;
    redraw();
}

void AllocationProfilePlot::redraw()
{
    m_plot->clearGraphs();
    // One line per kind, in order of first appearance, coloured around the hue circle from
    // the palette's highlight.
    std::map<QString, int> order;
    QVector<QString> kinds;
    int lastBlock = 0;
    for (const ProfileLayer& l : m_layers) {
        const QString name = l.kind.section(QLatin1Char('.'), -1);
        if (!order.count(name)) {
            order[name] = int(kinds.size());
            kinds.push_back(name);
        }
        lastBlock = std::max(lastBlock, l.block);
    }
    lastBlock = std::max(lastBlock, int(m_owl.size()) - 1);
    m_kinds = int(kinds.size());
    const QColor base = palette().color(QPalette::Highlight);
    double lo = 100, hi = 0;
    for (int k = 0; k < kinds.size(); ++k) {
        QVector<QPair<double, double>> points;
        for (const ProfileLayer& l : m_layers)
            if (l.kind.section(QLatin1Char('.'), -1) == kinds[k])
                points.push_back({double(l.block), 100.0 * l.sparsity});
        std::sort(points.begin(), points.end());
        QCPGraph* graph = m_plot->addGraph();
        graph->setName(kinds[k]);
        const QColor color = QColor::fromHsv((base.hsvHue() + 360 * k / std::max(1, int(kinds.size()))) % 360,
                                             std::max(120, base.hsvSaturation()), std::max(150, base.value()));
        graph->setPen(QPen(color, 1.5));
        graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 4));
        for (const auto& [x, y] : points) {
            graph->addData(x, y);
            lo = std::min(lo, y);
            hi = std::max(hi, y);
        }
    }
    const QColor text = palette().color(QPalette::WindowText);
    if (m_uniform >= 0) {
        QCPGraph* uniform = m_plot->addGraph();
        uniform->setName(tr("uniform"));
        uniform->setPen(QPen(text, 1.2, Qt::DashLine));
        uniform->addData(0, 100.0 * m_uniform);
        uniform->addData(std::max(1, lastBlock), 100.0 * m_uniform);
        lo = std::min(lo, 100.0 * m_uniform);
        hi = std::max(hi, 100.0 * m_uniform);
    }
    if (!m_owl.isEmpty()) {
        QCPGraph* owl = m_plot->addGraph();
        owl->setName(tr("OWL"));
        owl->setPen(QPen(palette().color(QPalette::Mid), 1.5, Qt::DotLine));
        for (int b = 0; b < m_owl.size(); ++b) {
            owl->addData(b, 100.0 * m_owl[b]);
            lo = std::min(lo, 100.0 * m_owl[b]);
            hi = std::max(hi, 100.0 * m_owl[b]);
        }
    }
    m_plot->xAxis->setRange(-0.2, std::max(1, lastBlock) + 0.2);
    if (hi < lo) {
        lo = 0;
        hi = 100;
    }
    m_plot->yAxis->setRange(std::max(0.0, lo - 5.0), std::min(100.0, hi + 5.0));
    m_plot->legend->setVisible(m_plot->graphCount() > 0);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void AllocationProfilePlot::changeEvent(QEvent* event)
{
    if (event->type() == QEvent::PaletteChange || event->type() == QEvent::FontChange) {
        applyPlotStyle(m_plot, *this);
        redraw();
    }
    QWidget::changeEvent(event);
}

} // namespace sparselab::widgets
