#pragma once
// The workbench's one QCustomPlot look, from a widget's palette and font (light and dark):
// window background, base-coloured axis rect, axes and labels in the text colour, dotted grid
// in the mid colour, legend on the base colour. Series colours stay with each plot.

class QCustomPlot;
class QWidget;

namespace sparselab::widgets {

// Styles `plot` (all four axes and its legend) after `source`'s palette and font; queues a replot.
void applyPlotStyle(QCustomPlot* plot, const QWidget& source);

} // namespace sparselab::widgets
