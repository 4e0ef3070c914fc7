#include "sweep_panel.h"

#include "store/analysis_store.h"
#include "analysis/sweep.h"
#include "util/errors.h"

#include "plot_legend.h"
#include "qcustomplot_include.h"

#include <QHeaderView>
#include <QLabel>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>

#include <map>
#include <set>

namespace sparselab::gui {

namespace {

QColor seriesColor(const QPalette& palette, int index)
{
    // Golden-angle steps around the palette's highlight hue (as widgets::LayerErrorPlot).
    const QColor base = palette.color(QPalette::Highlight);
    const int hue = (std::max(0, base.hslHue()) + index * 137) % 360;
    return QColor::fromHsl(hue, 170, palette.color(QPalette::Window).lightness() < 128 ? 150 : 110);
}

void stylePlot(QCustomPlot* plot, const QString& x, const QString& y)
{
    const QPalette& pal = plot->palette();
    plot->setBackground(pal.color(QPalette::Base));
    for (QCPAxis* axis : {plot->xAxis, plot->yAxis}) {
        axis->setBasePen(QPen(pal.color(QPalette::WindowText)));
        axis->setTickPen(QPen(pal.color(QPalette::WindowText)));
        axis->setSubTickPen(QPen(pal.color(QPalette::WindowText)));
        axis->setTickLabelColor(pal.color(QPalette::WindowText));
        axis->setLabelColor(pal.color(QPalette::WindowText));
        axis->grid()->setPen(QPen(pal.color(QPalette::Mid), 1, Qt::DotLine));
    }
    plot->xAxis->setLabel(x);
    plot->yAxis->setLabel(y);
    plot->legend->setVisible(true);
    plot->legend->setBrush(pal.color(QPalette::Base));
    plot->legend->setTextColor(pal.color(QPalette::WindowText));
    plot->legend->setBorderPen(QPen(pal.color(QPalette::Mid)));
    widgets::placeLegendAboveAxes(plot, 3); // above the axes: an inset legend covered points
    plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
}

QString sizeText(int64_t bytes) { return QString::number(double(bytes) / 1e6, 'f', 3) + QStringLiteral(" MB"); }

} // namespace

SweepPanel::SweepPanel(QWidget* parent) : QWidget(parent)
{
    m_summary = new QLabel(tr("No sweep loaded. File → Open Sweep Results… reads a sweep (.json) or a workspace (.h5)."));
    // One line that never widens or heightens the dock (the full text is also its tooltip).
    m_summary->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Fixed);
    m_summary->setToolTip(m_summary->text());
    m_table = new QTableWidget(0, ColumnCount);
    m_table->setHorizontalHeaderLabels(
        {tr("Allocation"), tr("Method"), tr("Group"), tr("Bits"), tr("Sparsity"), tr("Perplexity"), tr("Size"), tr("Pareto")});
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->verticalHeader()->setVisible(false);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->setSortingEnabled(true);
    m_table->setToolTip(tr("One row per grid point; click a header to sort. Pareto: no other point is both "
                           "smaller and lower in perplexity."));
    m_perplexityPlot = new QCustomPlot;
    m_perplexityPlot->setObjectName(QStringLiteral("sweepPerplexityPlot"));
    stylePlot(m_perplexityPlot, tr("sparsity (fraction of weights pruned)"), tr("perplexity"));
    m_perplexityPlot->setToolTip(tr("Perplexity vs sparsity, one line per method, layer group and bit-width"));
    m_paretoPlot = new QCustomPlot;
    m_paretoPlot->setObjectName(QStringLiteral("sweepParetoPlot"));
    stylePlot(m_paretoPlot, tr("model size (MB, size model)"), tr("perplexity"));
    m_paretoPlot->setToolTip(tr("Size vs perplexity of every point; the line joins the Pareto frontier"));

    // Tabs rather than a stack, so the dock stays small enough to share the column.
    auto* tabs = new QTabWidget;
    tabs->addTab(m_table, tr("Table"));
    tabs->addTab(m_perplexityPlot, tr("Perplexity vs Sparsity"));
    tabs->addTab(m_paretoPlot, tr("Size vs Perplexity"));
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_summary);
    layout->addWidget(tabs, 1);
}

SweepPanel::~SweepPanel() = default;

void SweepPanel::setSweep(const analysis::SweepResult& sweep, const QString& source)
{
    m_sweep = std::make_unique<analysis::SweepResult>(sweep);
    m_source = source;
    rebuild();
}

void SweepPanel::clear()
{
    m_sweep.reset();
    m_source.clear();
    rebuild();
}

bool SweepPanel::loadFile(const QString& file, QString* error)
{
    try {
        setSweep(store::loadSweepFrom(file.toStdString()), file);
        return true;
    } catch (const InputError& e) {
        if (error)
            *error = QString::fromStdString(e.what());
    } catch (const std::exception& e) {
        if (error)
            *error = file + QStringLiteral(": ") + QString::fromStdString(e.what());
    }
    return false;
}

QString SweepPanel::sourceText() const { return m_summary->text(); }

void SweepPanel::rebuild()
{
    m_table->setSortingEnabled(false);
    m_table->setRowCount(0);
    m_perplexityPlot->clearGraphs();
    m_paretoPlot->clearGraphs();
    if (!m_sweep) {
        m_summary->setText(tr("No sweep loaded."));
        m_summary->setToolTip(m_summary->text());
        // Axes of no data: the previous sweep's ranges must not stay behind.
        for (QCustomPlot* plot : {m_perplexityPlot, m_paretoPlot}) {
            plot->xAxis->setRange(0, 1);
            plot->yAxis->setRange(0, 1);
        }
        m_perplexityPlot->replot();
        m_paretoPlot->replot();
        return;
    }
    const auto& sweep = *m_sweep;
    const auto frontier = analysis::paretoFrontier(sweep.points);
    const std::set<size_t> onFrontier(frontier.begin(), frontier.end());
    m_summary->setText(tr("%1: %2 of %3 points; dense perplexity %4, %5")
                           .arg(m_source)
                           .arg(sweep.points.size())
                           .arg(sweep.grid.size())
                           .arg(sweep.densePerplexity, 0, 'f', 4)
                           .arg(sizeText(sweep.denseBytes)));

    m_table->setRowCount(int(sweep.points.size()));
    for (size_t i = 0; i < sweep.points.size(); ++i) {
        const auto& p = sweep.points[i];
        auto number = [](double v, int digits) {
            auto* item = new QTableWidgetItem;
            item->setData(Qt::DisplayRole, QString::number(v, 'f', digits).toDouble());
            return item;
        };
        const int row = int(i);
        m_table->setItem(row, AllocationColumn, new QTableWidgetItem(QString::fromStdString(p.spec.allocation)));
        m_table->setItem(row, MethodColumn, new QTableWidgetItem(QString::fromStdString(solve::methodName(p.spec.method))));
        m_table->setItem(row, GroupColumn, new QTableWidgetItem(QString::fromStdString(p.spec.group)));
        m_table->setItem(row, BitsColumn, number(p.spec.bits, 0));
        m_table->setItem(row, SparsityColumn, number(p.spec.sparsity, 3));
        m_table->setItem(row, PerplexityColumn, number(p.perplexity, 4));
        m_table->setItem(row, SizeColumn, new QTableWidgetItem(sizeText(p.modelBytes)));
        m_table->setItem(row, ParetoColumn, new QTableWidgetItem(onFrontier.count(i) ? tr("yes") : QString()));
    }
    m_table->setSortingEnabled(true);
    m_summary->setToolTip(m_summary->text());

    // Perplexity vs sparsity: one line per (allocation, method, group, bits), by increasing
    // sparsity; the allocation is named only when the sweep has more than uniform.
    const bool namesAllocation = sweep.grid.allocatesPerLayer();
    std::map<std::tuple<std::string, int, std::string, int>, std::vector<const analysis::SweepPoint*>> lines;
    for (const auto& p : sweep.points)
        lines[{p.spec.allocation, int(p.spec.method), p.spec.group, p.spec.bits}].push_back(&p);
    int index = 0;
    for (const auto& [key, pts] : lines) {
        QCPGraph* g = m_perplexityPlot->addGraph();
        QVector<double> x, y;
        for (const auto* p : pts) {
            x.push_back(p->spec.sparsity);
            y.push_back(p->perplexity);
        }
        g->setData(x, y); // QCPGraph sorts by key
        const auto& [allocation, method, group, bits] = key;
        g->setName((namesAllocation ? QString::fromStdString(allocation) + QLatin1Char(' ') : QString())
                   + QStringLiteral("%1 %2 %3-bit")
                         .arg(QString::fromStdString(solve::methodName(solve::Method(method))),
                              QString::fromStdString(group))
                         .arg(bits));
        const QColor c = seriesColor(palette(), index++);
        g->setPen(QPen(c, 2));
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, c, c, 6));
    }
    QCPGraph* dense = m_perplexityPlot->addGraph();
    dense->setName(tr("dense"));
    dense->setData({0.0}, {sweep.densePerplexity});
    dense->setLineStyle(QCPGraph::lsNone);
    dense->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDiamond, palette().color(QPalette::WindowText),
                                           palette().color(QPalette::WindowText), 9));
    m_perplexityPlot->rescaleAxes();
    m_perplexityPlot->yAxis->scaleRange(1.1);
    m_perplexityPlot->xAxis->scaleRange(1.1);
    m_perplexityPlot->replot();

    // Size vs perplexity: every point, and the frontier joined in size order.
    QCPGraph* all = m_paretoPlot->addGraph();
    all->setName(tr("sweep points"));
    QVector<double> ax, ay;
    for (const auto& p : sweep.points) {
        ax.push_back(double(p.modelBytes) / 1e6);
        ay.push_back(p.perplexity);
    }
    all->setData(ax, ay);
    all->setLineStyle(QCPGraph::lsNone);
    const QColor pointColor = seriesColor(palette(), 0);
    all->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, pointColor, 6));
    QCPGraph* front = m_paretoPlot->addGraph();
    front->setName(tr("Pareto frontier"));
    QVector<double> fx, fy;
    for (size_t i : frontier) {
        fx.push_back(double(sweep.points[i].modelBytes) / 1e6);
        fy.push_back(sweep.points[i].perplexity);
    }
    front->setData(fx, fy);
    const QColor frontColor = seriesColor(palette(), 1);
    front->setPen(QPen(frontColor, 2));
    front->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, frontColor, frontColor, 8));
    QCPGraph* denseSize = m_paretoPlot->addGraph();
    denseSize->setName(tr("dense (fp16)"));
    denseSize->setData({double(sweep.denseBytes) / 1e6}, {sweep.densePerplexity});
    denseSize->setLineStyle(QCPGraph::lsNone);
    denseSize->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDiamond, palette().color(QPalette::WindowText),
                                               palette().color(QPalette::WindowText), 9));
    m_paretoPlot->rescaleAxes();
    m_paretoPlot->yAxis->scaleRange(1.1);
    m_paretoPlot->xAxis->scaleRange(1.1);
    m_paretoPlot->replot();
}

} // namespace sparselab::gui
