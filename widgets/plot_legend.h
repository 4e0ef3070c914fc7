#pragma once
// Legend placement shared by the workbench's QCustomPlot charts: the legend gets a row of its
// own above the axis rect (below a title row, if the plot has one), its entries laid out left
// to right and wrapped, so it never covers data points or curves (an inset legend did, in the
// Teaching Mode plots and the sweep plots).
//
// Usage: build the plot (title row included), then call placeLegendAboveAxes(plot) once.
// GUI thread only.

class QCustomPlot;

namespace sparselab::widgets {

// Moves plot->legend out of the axis rect's inset layout into a new row just above the axis
// rect. `columns`: entries per line before wrapping.
void placeLegendAboveAxes(QCustomPlot* plot, int columns = 3);

} // namespace sparselab::widgets
