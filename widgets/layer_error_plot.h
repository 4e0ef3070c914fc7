#pragma once
// A bar chart of a per-layer (or per-layer-type) error on a logarithmic value axis, with
// one bar series per run so runs can be overlaid (e.g. SparseGPT vs magnitude vs Wanda).
// Built on QCustomPlot; styled from the widget's palette (light and dark), series colours
// derived from the palette's highlight hue.
//
// Usage:
//     auto* plot = new LayerErrorPlot;
//     plot->setValueAxisLabel(tr("relative output error"));
//     plot->setCategories(layerNames, shortLabels);   // x axis
//     plot->setSeries({{tr("SparseGPT 50 %"), errors}});
//     plot->setValue(0, 12, 0.031);                  // fill in live as layers finish
//
// Values <= 0 or NaN are "missing" (no bar): a log axis cannot show them. Replots are
// queued (coalesced to one per event-loop pass), so many setValue() calls stay cheap.
// GUI thread only.

#include <QList>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

class QCustomPlot;
class QCPBars;
class QCPBarsGroup;

namespace sparselab::widgets {

struct ErrorSeries {
    QString name;            // legend entry, e.g. "SparseGPT 50 %"
    QVector<double> values;  // one per category; <= 0 or NaN = missing
};

class LayerErrorPlot : public QWidget {
    Q_OBJECT

public:
    explicit LayerErrorPlot(QWidget* parent = nullptr);
    ~LayerErrorPlot() override;

    // names: one per bar position (shown in the hover tooltip); tickLabels: what the axis
    // shows under each position ("" = no tick label; empty list = names).
    void setCategories(const QStringList& names, const QStringList& tickLabels = {});
    void setSeries(const QList<ErrorSeries>& series);
    // Sets one bar; a series index == seriesCount() appends a series named `newSeriesName`.
    void setValue(int series, int category, double value, const QString& newSeriesName = {});
    void clear();

    void setValueAxisLabel(const QString& label);
    void setCategoryAxisLabel(const QString& label);
    // Text drawn when there is nothing to plot.
    void setPlaceholderText(const QString& text);
    // The built-in legend (shown above the bars when there are several series; default on).
    // Off when the caller shows one legend for several plots.
    void setLegendVisible(bool visible);

    [[nodiscard]] int categoryCount() const { return int(m_names.size()); }
    [[nodiscard]] int seriesCount() const { return int(m_series.size()); }
    [[nodiscard]] double value(int series, int category) const;
    [[nodiscard]] const QList<ErrorSeries>& series() const { return m_series; }
    [[nodiscard]] QCustomPlot* plot() const { return m_plot; }

    // Colour of series i, derived from the palette (same in the legend and the bars).
    [[nodiscard]] QColor seriesColor(int index) const;

protected:
    void changeEvent(QEvent* event) override;
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void rebuildBars();
    // Fits the axis to the widget: every k-th tick label when they would overlap, the legend
    // wrapped into as many columns as fit.
    void updateTicks();
    void updateLegendWrap();
    void placeLegend();
    void updateData(int series);
    void updateRange();
    void applyPalette();
    void updatePlaceholder();

    QCustomPlot* m_plot = nullptr;
    QCPBarsGroup* m_group = nullptr;
    QList<QCPBars*> m_bars;
    QStringList m_names;
    QStringList m_tickLabels;
    QList<ErrorSeries> m_series;
    QString m_placeholder;
    bool m_legendVisible = true;
};

} // namespace sparselab::widgets
