#include "plot_legend.h"

#include "qcustomplot_include.h"

namespace sparselab::widgets {

void placeLegendAboveAxes(QCustomPlot* plot, int columns)
{
    QCPLegend* legend = plot->legend;
    QCPLayoutGrid* layout = plot->plotLayout();
    if (legend->layout() == layout)
        return; // already placed
    if (legend->layout())
        legend->layout()->take(legend);
    // The axis rect's row: the legend goes right above it.
    int axisRow = 0;
    for (int row = 0; row < layout->rowCount(); ++row)
        if (layout->hasElement(row, 0) && layout->element(row, 0) == plot->axisRect())
            axisRow = row;
    layout->insertRow(axisRow);
    layout->addElement(axisRow, 0, legend);
    layout->setRowStretchFactor(axisRow, 0.001); // as high as its entries, no more
    legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
    legend->setWrap(std::max(1, columns));
    legend->setMargins(QMargins(4, 2, 4, 2));
}

} // namespace sparselab::widgets
