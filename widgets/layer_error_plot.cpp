#include "layer_error_plot.h"

#include "plot_style.h"
#include "qcustomplot_include.h"

#include <QEvent>
#include <QHelpEvent>
#include <QLabel>
#include <QStackedLayout>
#include <QToolTip>

#include <cmath>
#include <limits>

namespace sparselab::widgets {

namespace {

bool present(double v) { return std::isfinite(v) && v > 0.0; }

// Bars start far below any plotted value: a log axis has no zero to start from, and the axis
// rect clips the rest.
constexpr double kBarBase = 1e-12;

} // namespace

LayerErrorPlot::LayerErrorPlot(QWidget* parent)
    : QWidget(parent), m_placeholder(tr("No data yet."))
{
    m_plot = new QCustomPlot(this);
    m_plot->setNoAntialiasingOnDrag(true);
    m_plot->setMinimumSize(fontMetrics().height() * 10, fontMetrics().height() * 6);
    m_plot->yAxis->setScaleType(QCPAxis::stLogarithmic);
    m_plot->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_plot->yAxis->setNumberFormat(QStringLiteral("eb"));
    m_plot->yAxis->setNumberPrecision(0);
    m_plot->xAxis->setTicker(QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText));
    m_plot->xAxis->setTickLabelRotation(-60);
    m_plot->xAxis->setSubTicks(false);
    m_plot->xAxis->grid()->setVisible(false);
    // The legend goes in a row of its own above the axes when shown (placeLegend): bars fill
    // the whole width, so an inset legend would hide some of them.
    m_plot->axisRect()->insetLayout()->take(m_plot->legend);
    m_plot->legend->setVisible(false);
    m_plot->legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
    m_group = new QCPBarsGroup(m_plot);
    m_group->setSpacingType(QCPBarsGroup::stAbsolute);
    m_group->setSpacing(1);
    m_plot->installEventFilter(this);
    m_plot->setMouseTracking(true);

    auto* placeholder = new QLabel(this);
    placeholder->setObjectName(QStringLiteral("placeholder"));
    placeholder->setAlignment(Qt::AlignCenter);
    placeholder->setWordWrap(true);
    placeholder->setForegroundRole(QPalette::PlaceholderText);
    placeholder->setText(m_placeholder);

    auto* layout = new QStackedLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(placeholder);
    layout->addWidget(m_plot);
    applyPalette();
    updatePlaceholder();
}

LayerErrorPlot::~LayerErrorPlot()
{
    // QCustomPlot deletes the legend with the layout that holds it: give it one back.
    if (!m_plot->legend->layout())
        m_plot->axisRect()->insetLayout()->addElement(m_plot->legend, Qt::AlignTop | Qt::AlignRight);
}

QColor LayerErrorPlot::seriesColor(int index) const
{
    // Golden-angle steps around the palette's highlight hue: distinct, and in keeping with
    // the style (light or dark) the user runs.
    const QColor base = palette().color(QPalette::Highlight);
    const int hue = base.hsvHue() < 0 ? 210 : base.hsvHue();
    const int sat = std::max(base.hsvSaturation(), 140);
    const int val = std::clamp(base.value(), 170, 230);
    return QColor::fromHsv((hue + index * 137) % 360, sat, val);
}

void LayerErrorPlot::setPlaceholderText(const QString& text)
{
    m_placeholder = text;
    if (auto* label = findChild<QLabel*>(QStringLiteral("placeholder")))
        label->setText(text);
}

void LayerErrorPlot::setLegendVisible(bool visible)
{
    m_legendVisible = visible;
    placeLegend();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void LayerErrorPlot::placeLegend()
{
    // A hidden layout element still takes its row, so the legend leaves the layout when hidden.
    const bool show = m_legendVisible && m_series.size() > 1;
    QCPLayoutGrid* grid = m_plot->plotLayout();
    const bool placed = grid->hasElement(0, 0) && grid->element(0, 0) == m_plot->legend;
    if (show && !placed) {
        grid->insertRow(0);
        grid->addElement(0, 0, m_plot->legend);
        grid->setRowStretchFactor(0, 0.001);
    } else if (!show && placed) {
        grid->take(m_plot->legend);
        grid->simplify();
    }
    m_plot->legend->setVisible(show);
}

void LayerErrorPlot::setValueAxisLabel(const QString& label)
{
    m_plot->yAxis->setLabel(label);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void LayerErrorPlot::setCategoryAxisLabel(const QString& label)
{
    m_plot->xAxis->setLabel(label);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void LayerErrorPlot::setCategories(const QStringList& names, const QStringList& tickLabels)
{
    m_names = names;
    m_tickLabels = tickLabels.size() == names.size() ? tickLabels : names;
    updateTicks();
    m_plot->xAxis->setRange(-0.7, std::max<double>(0.7, double(names.size()) - 0.3));
    for (ErrorSeries& s : m_series)
        s.values.resize(names.size(), std::numeric_limits<double>::quiet_NaN());
    for (int i = 0; i < m_series.size(); ++i)
        updateData(i);
    updateRange();
    updatePlaceholder();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void LayerErrorPlot::setSeries(const QList<ErrorSeries>& series)
{
    m_series = series;
    for (ErrorSeries& s : m_series)
        s.values.resize(m_names.size(), std::numeric_limits<double>::quiet_NaN());
    rebuildBars();
}

void LayerErrorPlot::setValue(int series, int category, double value, const QString& newSeriesName)
{
    if (category < 0 || category >= m_names.size() || series < 0 || series > m_series.size())
        return;
    if (series == m_series.size()) {
        ErrorSeries s;
        s.name = newSeriesName;
        s.values.fill(std::numeric_limits<double>::quiet_NaN(), m_names.size());
        m_series.append(s);
        rebuildBars();
    }
    m_series[series].values[category] = value;
    updateData(series);
    updateRange();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

double LayerErrorPlot::value(int series, int category) const
{
    if (series < 0 || series >= m_series.size() || category < 0 || category >= m_series[series].values.size())
        return std::numeric_limits<double>::quiet_NaN();
    return m_series[series].values[category];
}

void LayerErrorPlot::clear()
{
    m_series.clear();
    m_names.clear();
    m_tickLabels.clear();
    rebuildBars();
    setCategories({});
}

void LayerErrorPlot::rebuildBars()
{
    for (QCPBars* bars : m_bars)
        m_plot->removePlottable(bars);
    m_bars.clear();
    m_group->clear();
    const double width = 0.8 / std::max<qsizetype>(1, m_series.size());
    for (int i = 0; i < m_series.size(); ++i) {
        auto* bars = new QCPBars(m_plot->xAxis, m_plot->yAxis);
        bars->setName(m_series[i].name);
        bars->setWidth(width);
        bars->setBaseValue(kBarBase);
        if (m_series.size() > 1)
            bars->setBarsGroup(m_group);
        m_bars.append(bars);
        updateData(i);
    }
    applyPalette();
    placeLegend();
    m_plot->legend->setMargins(QMargins(4, 2, 4, 2));
    updateLegendWrap();
    updateRange();
    updatePlaceholder();
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void LayerErrorPlot::updateTicks()
{
    // A rotated label needs about one line height of axis length.
    const int n = std::max<int>(1, int(m_tickLabels.size()));
    const double perCategory = double(std::max(40, m_plot->width() - 8 * fontMetrics().height())) / n;
    const int step = std::max(1, int(std::ceil(1.25 * fontMetrics().height() / perCategory)));
    auto ticker = QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText);
    int shown = 0;
    for (int i = 0; i < m_tickLabels.size(); ++i)
        if (!m_tickLabels[i].isEmpty() && shown++ % step == 0)
            ticker->addTick(i, m_tickLabels[i]);
    m_plot->xAxis->setTicker(ticker);
}

void LayerErrorPlot::updateLegendWrap()
{
    if (m_series.size() <= 1)
        return;
    const QFontMetrics fm(font());
    int widest = 0;
    for (const ErrorSeries& s : m_series)
        widest = std::max(widest, fm.horizontalAdvance(s.name));
    const int item = widest + m_plot->legend->iconSize().width() + m_plot->legend->iconTextPadding() + 2 * fm.height();
    m_plot->legend->setWrap(std::max(1, (m_plot->width() - fm.height()) / std::max(1, item)));
}

void LayerErrorPlot::updateData(int series)
{
    if (series < 0 || series >= m_bars.size())
        return;
    QVector<double> keys, values;
    const ErrorSeries& s = m_series[series];
    for (int i = 0; i < s.values.size(); ++i) {
        if (present(s.values[i])) {
            keys.append(i);
            values.append(s.values[i]);
        }
    }
    m_bars[series]->setData(keys, values, true);
}

void LayerErrorPlot::updateRange()
{
    double lo = std::numeric_limits<double>::infinity(), hi = 0.0;
    for (const ErrorSeries& s : m_series)
        for (double v : s.values)
            if (present(v)) {
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
    if (!(hi > 0.0)) {
        m_plot->yAxis->setRange(1e-4, 1.0);
        return;
    }
    // Whole decades around the data, at least one decade tall.
    double bottom = std::pow(10.0, std::floor(std::log10(lo)));
    double top = std::pow(10.0, std::ceil(std::log10(hi) + 0.05));
    if (top / bottom < 10.0)
        bottom = top / 10.0;
    m_plot->yAxis->setRange(bottom, top);
}

void LayerErrorPlot::updatePlaceholder()
{
    if (auto* stack = qobject_cast<QStackedLayout*>(layout()))
        stack->setCurrentIndex(m_names.isEmpty() ? 0 : 1);
}

void LayerErrorPlot::applyPalette()
{
    applyPlotStyle(m_plot, *this);
    for (int i = 0; i < m_bars.size(); ++i) {
        const QColor c = seriesColor(i);
        m_bars[i]->setPen(QPen(c.darker(130), 1));
        m_bars[i]->setBrush(c);
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void LayerErrorPlot::changeEvent(QEvent* event)
{
    if (event->type() == QEvent::PaletteChange || event->type() == QEvent::FontChange)
        applyPalette();
    QWidget::changeEvent(event);
}

bool LayerErrorPlot::eventFilter(QObject* watched, QEvent* event)
{
    if (watched == m_plot && event->type() == QEvent::Resize) {
        updateTicks();
        updateLegendWrap();
        m_plot->replot(QCustomPlot::rpQueuedReplot);
        return false;
    }
    if (watched == m_plot && event->type() == QEvent::ToolTip && !m_names.isEmpty()) {
        auto* help = static_cast<QHelpEvent*>(event);
        const int i = int(std::lround(m_plot->xAxis->pixelToCoord(help->pos().x())));
        if (i >= 0 && i < m_names.size() && m_plot->axisRect()->rect().contains(help->pos())) {
            QString text = QStringLiteral("<b>%1</b>").arg(m_names[i].toHtmlEscaped());
            for (int s = 0; s < m_series.size(); ++s) {
                const double v = m_series[s].values.value(i, std::numeric_limits<double>::quiet_NaN());
                const QString name = m_series[s].name.isEmpty() ? m_plot->yAxis->label() : m_series[s].name;
                text += QStringLiteral("<br>%1: %2").arg(name.toHtmlEscaped(),
                                                          present(v) ? QString::number(v, 'g', 4) : tr("—"));
            }
            QToolTip::showText(help->globalPos(), text, m_plot);
        } else {
            QToolTip::hideText();
        }
        return true;
    }
    return QWidget::eventFilter(watched, event);
}

} // namespace sparselab::widgets
