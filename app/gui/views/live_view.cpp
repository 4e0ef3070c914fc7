#include "live_view.h"

#include "allocation_profile_plot.h"
#include "layer_error_plot.h"
#include "mask_heatmap_widget.h"
#include "training_curve_plot.h"

#include <QLabel>
#include <QSplitter>
#include <QVBoxLayout>

#include <algorithm>

namespace sparselab::gui {

LiveView::LiveView(QWidget* parent)
    : QWidget(parent)
{
    m_heatmap = new widgets::MaskHeatmapWidget(this);
    m_heatmap->setPlaceholderText(tr("Start a run (F5): the weights of the layer being solved appear here, "
                                     "pruned entries filling in block by block."));
    m_plot = new widgets::LayerErrorPlot(this);
    m_plot->setValueAxisLabel(tr("rel. output error"));
    m_plot->setPlaceholderText(tr("Per-layer reconstruction error fills in here as layers finish."));
    m_plot->setToolTip(tr("‖XWᵀ − XŴᵀ‖² / ‖XWᵀ‖² of each layer on the calibration inputs (log scale); hover a bar for its layer."));
    m_caption = new QLabel(this);
    m_caption->setForegroundRole(QPalette::PlaceholderText);

    auto* plotBox = new QWidget(this);
    auto* plotLayout = new QVBoxLayout(plotBox);
    plotLayout->setContentsMargins(0, 0, 0, 0);
    plotLayout->addWidget(m_caption);
    plotLayout->addWidget(m_plot, 1);

    m_recoveryPlot = new widgets::TrainingCurvePlot(this);
    m_recoveryPlot->setToolTip(tr("Recovery after pruning: the distillation loss of every step (left, log scale) "
                                  "and the perplexity on held-out calibration windows (right)."));
    m_recoveryCaption = new QLabel(this);
    m_recoveryCaption->setForegroundRole(QPalette::PlaceholderText);
    m_recoveryPane = new QWidget(this);
    auto* recoveryLayout = new QVBoxLayout(m_recoveryPane);
    recoveryLayout->setContentsMargins(0, 0, 0, 0);
    recoveryLayout->addWidget(m_recoveryCaption);
    // The allocation search draws its per-layer profile beside its curve.
    m_profilePlot = new widgets::AllocationProfilePlot(this);
    m_profilePlot->setToolTip(tr("Allocation search: each layer kind's sparsity by block in the best levels so far, "
                                 "against the uniform level and OWL's block sparsities."));
    m_profilePlot->hide();
    auto* curves = new QSplitter(Qt::Horizontal, m_recoveryPane);
    curves->setChildrenCollapsible(false);
    curves->addWidget(m_recoveryPlot);
    curves->addWidget(m_profilePlot);
    recoveryLayout->addWidget(curves, 1);
    m_recoveryPane->hide();

    auto* splitter = m_splitter = new QSplitter(Qt::Vertical, this);
    splitter->addWidget(m_heatmap);
    splitter->addWidget(plotBox);
    splitter->addWidget(m_recoveryPane);
    splitter->setStretchFactor(2, 2);
    // The heat-map is what moves during a run: it gets three fifths of the height.
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    splitter->setSizes({600, 400});
    splitter->setChildrenCollapsible(false);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(splitter);
}

void LiveView::layerLabels(const QList<PlanRow>& plan, QStringList* names, QStringList* ticks)
{
    names->clear();
    ticks->clear();
    const bool compact = plan.size() <= 48;
    int lastBlock = -1;
    for (const PlanRow& r : plan) {
        names->append(r.name);
        if (compact)
            ticks->append(QStringLiteral("%1.%2").arg(r.block).arg(shortLayerLabel(r.kind)));
        else
            ticks->append(r.block != lastBlock && r.block % std::max(1, int(plan.size() / 7 / 24 + 1)) == 0
                              ? tr("block %1").arg(r.block)
                              : QString());
        lastBlock = r.block;
    }
}

void LiveView::startRun(const QList<PlanRow>& plan, const QString& runName)
{
    m_recoveryPlot->clear();
    m_profilePlot->clear();
    m_profilePlot->hide();
    m_recoveryPane->hide();
    m_heatmap->clear();
    m_index.clear();
    QStringList names, ticks;
    layerLabels(plan, &names, &ticks);
    for (int i = 0; i < plan.size(); ++i)
        m_index.insert(plan[i].name, i);
    m_plot->setSeries({});
    m_plot->setCategories(names, ticks);
    m_plot->setSeries({widgets::ErrorSeries{runName, {}}});
    m_layersShown = 0;
    m_caption->setText(tr("Relative output error per layer — %1").arg(runName));
}

void LiveView::showFrame(const widgets::HeatmapFrame& frame) { m_heatmap->setFrame(frame); }

void LiveView::addLayer(const solve::LayerRecord& row)
{
    const auto it = m_index.constFind(layerName(row));
    if (it == m_index.constEnd())
        return;
    ++m_layersShown;
    if (!row.dense)
        m_plot->setValue(0, it.value(), row.stats.relOutputError);
}

void LiveView::startRecovery(qint64 steps, const QString& description)
{
    m_recoveryPlot->start(steps, tr("held-out perplexity"));
    m_profilePlot->hide();
    m_recoveryCaption->setText(tr("Recovery — %1").arg(description));
    m_recoveryPane->show();
    // A pane shown in a splitter gets no height of its own: the heat-map and the training
    // curve share the room, the error bars (complete by then) keep a strip.
    const int height = std::max(m_splitter->height(), 300);
    m_splitter->setSizes({height * 2 / 5, height / 5, height * 2 / 5});
}

void LiveView::startSearch(qint64 generations, const QString& description)
{
    m_recoveryPlot->start(generations, QString(), tr("calibration KL (best)"), tr("generation"));
    m_recoveryCaption->setText(tr("Allocation search — %1").arg(description));
    m_profilePlot->clear();
    m_profilePlot->show();
    m_recoveryPane->show();
    const int height = std::max(m_splitter->height(), 300);
    m_splitter->setSizes({height / 5, height / 5, height * 3 / 5});
}

void LiveView::addSearchGeneration(qint64 generation, double kl) { m_recoveryPlot->addLoss(generation, kl); }

void LiveView::setSearchReference(double uniform, const QVector<double>& owlPerBlock)
{
    m_profilePlot->setReference(uniform, owlPerBlock);
}

void LiveView::setSearchProfile(const QVector<widgets::ProfileLayer>& layers) { m_profilePlot->setProfile(layers); }

void LiveView::addRecoveryStep(qint64 step, double loss) { m_recoveryPlot->addLoss(step, loss); }

void LiveView::addRecoveryHeldOut(qint64 step, double perplexity) { m_recoveryPlot->addHeldOut(step, perplexity); }

void LiveView::clear()
{
    m_recoveryPlot->clear();
    m_profilePlot->clear();
    m_profilePlot->hide();
    m_recoveryPane->hide();
    m_heatmap->clear();
    m_plot->clear();
    m_index.clear();
    m_layersShown = 0;
    m_caption->clear();
}

} // namespace sparselab::gui
