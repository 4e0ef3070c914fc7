#include "results_panel.h"

#include "layer_error_plot.h"
#include "live_view.h"

#include <QAction>
#include <QComboBox>
#include <QFileInfo>
#include <QHash>
#include <QLocale>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeySequence>
#include <QLabel>
#include <QPushButton>
#include <QSplitter>
#include <QStyle>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>

#include <cmath>
#include <map>

namespace sparselab::gui {

namespace {

QTableWidgetItem* cell(const QString& text, Qt::Alignment align = Qt::AlignRight | Qt::AlignVCenter)
{
    auto* item = new QTableWidgetItem(text);
    item->setFlags(Qt::ItemIsEnabled | Qt::ItemIsSelectable);
    item->setTextAlignment(align);
    return item;
}

QString ppl(double value) { return std::isfinite(value) ? QString::number(value, 'f', 4) : QStringLiteral("—"); }

QString sci(double value) { return QString::number(value, 'g', 4); }

} // namespace

ResultsPanel::ResultsPanel(QWidget* parent)
    : QWidget(parent)
{
    m_runTable = new QTableWidget(0, RunColumnCount, this);
    m_runTable->setHorizontalHeaderLabels({tr("Plot"), tr("Run"), tr("Method"), tr("Sparsity"), tr("PPL before"),
                                           tr("PPL after"), tr("Time")});
    m_runTable->horizontalHeaderItem(ShowColumn)->setToolTip(tr("Overlay this run in the plots."));
    m_runTable->horizontalHeaderItem(NameColumn)->setToolTip(tr("Double-click to rename the run."));
    m_runTable->horizontalHeaderItem(SparsityColumn)->setToolTip(tr("Zeros over all linear-layer weights after the run."));
    m_runTable->horizontalHeaderItem(BeforeColumn)->setToolTip(tr("Perplexity of the dense model on the evaluation text."));
    m_runTable->horizontalHeaderItem(AfterColumn)->setToolTip(tr("Perplexity of the compressed model on the same windows."));
    m_runTable->horizontalHeaderItem(TimeColumn)->setToolTip(tr("Wall time of the whole run."));
    m_runTable->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_runTable->setSelectionMode(QAbstractItemView::SingleSelection);
    m_runTable->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed);
    m_runTable->verticalHeader()->setVisible(false);
    m_runTable->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_runTable->horizontalHeader()->setSectionResizeMode(NameColumn, QHeaderView::Stretch);
    m_runTable->setAlternatingRowColors(true);
    m_runTable->setMinimumHeight(m_runTable->horizontalHeader()->sizeHint().height()
                                 + 3 * m_runTable->verticalHeader()->defaultSectionSize() + 4);
    connect(m_runTable, &QTableWidget::itemSelectionChanged, this, &ResultsPanel::onRunSelectionChanged);
    connect(m_runTable, &QTableWidget::cellChanged, this, &ResultsPanel::onRunItemChanged);

    m_remove = new QPushButton(style()->standardIcon(QStyle::SP_TrashIcon), tr("Remove Run"), this);
    m_remove->setToolTip(tr("Forget the selected run and free its compressed model (Delete)."));
    m_remove->setEnabled(false);
    connect(m_remove, &QPushButton::clicked, this, &ResultsPanel::removeSelected);
    auto* removeAction = new QAction(this);
    removeAction->setShortcut(QKeySequence::Delete);
    removeAction->setShortcutContext(Qt::WidgetShortcut);
    connect(removeAction, &QAction::triggered, this, &ResultsPanel::removeSelected);
    m_runTable->addAction(removeAction);

    m_metric = new QComboBox(this);
    m_metric->addItem(tr("Relative output error"), RelativeError);
    m_metric->addItem(tr("OBS loss"), Loss);
    m_metric->setToolTip(tr("What the plots show: ‖XWᵀ − XŴᵀ‖²/‖XWᵀ‖² per layer, or SparseGPT's own loss (0 for baselines)."));
    connect(m_metric, &QComboBox::currentIndexChanged, this, &ResultsPanel::updatePlots);

    m_perplexity = new QLabel(this);
    QFont big = m_perplexity->font();
    big.setPointSizeF(big.pointSizeF() * 1.5);
    big.setBold(true);
    m_perplexity->setFont(big);
    m_perplexity->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_perplexity->setToolTip(tr("Perplexity of the dense model → the compressed model (lower is better)."));
    m_details = new QLabel(this);
    m_details->setWordWrap(true);
    m_details->setForegroundRole(QPalette::PlaceholderText);
    m_details->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto* bar = new QHBoxLayout;
    bar->addWidget(m_perplexity);
    bar->addStretch(1);
    bar->addWidget(new QLabel(tr("Plot:"), this));
    bar->addWidget(m_metric);
    bar->addWidget(m_remove);

    m_layerTable = new QTableWidget(0, LayerColumnCount, this);
    m_layerTable->setHorizontalHeaderLabels({tr("Layer"), tr("Method"), tr("Sparsity"), tr("Bits"), tr("Loss"),
                                             tr("Rel. error"), tr("Damping"), tr("Seconds")});
    m_layerTable->horizontalHeaderItem(LayerLossColumn)->setToolTip(tr("SparseGPT's OBS loss Σ (w−q)²/Hinv[i,i]²/2 (0 for baselines)."));
    m_layerTable->horizontalHeaderItem(LayerErrorColumn)->setToolTip(tr("‖XWᵀ − XŴᵀ‖² / ‖XWᵀ‖² on the calibration inputs."));
    m_layerTable->horizontalHeaderItem(LayerDampColumn)->setToolTip(tr("Relative damping finally used (raised ×10 when Cholesky failed)."));
    m_layerTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_layerTable->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_layerTable->verticalHeader()->setVisible(false);
    m_layerTable->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_layerTable->horizontalHeader()->setSectionResizeMode(LayerNameColumn, QHeaderView::Stretch);
    m_layerTable->setAlternatingRowColors(true);

    m_layerPlot = new widgets::LayerErrorPlot(this);
    m_layerPlot->setPlaceholderText(tr("Finished runs are plotted here, one bar series per checked run."));
    m_kindPlot = new widgets::LayerErrorPlot(this);
    m_kindPlot->setPlaceholderText(tr("The mean error of each layer type (q, k, v, o, gate, up, down …) appears here."));
    m_kindPlot->setCategoryAxisLabel(tr("layer type (mean over blocks)"));
    m_layerPlot->setLegendVisible(false);
    m_kindPlot->setLegendVisible(false);
    m_legend = new QLabel(this);
    m_legend->setWordWrap(true);
    m_legend->setTextFormat(Qt::RichText);
    m_legend->setToolTip(tr("The checked runs, in the colours of their bars."));

    auto* plots = new QSplitter(Qt::Horizontal, this);
    plots->addWidget(m_layerPlot);
    plots->addWidget(m_kindPlot);
    plots->setStretchFactor(0, 3);
    plots->setStretchFactor(1, 2);
    plots->setChildrenCollapsible(false);

    auto* plotPage = new QWidget(this);
    auto* plotLayout = new QVBoxLayout(plotPage);
    plotLayout->setContentsMargins(4, 4, 4, 0);
    plotLayout->setSpacing(2);
    plotLayout->addWidget(m_legend);
    plotLayout->addWidget(plots, 1);

    m_tabs = new QTabWidget(this);
    m_tabs->addTab(plotPage, tr("Plots"));
    m_tabs->addTab(m_layerTable, tr("Layers"));

    auto* top = new QWidget(this);
    auto* topLayout = new QVBoxLayout(top);
    topLayout->setContentsMargins(0, 0, 0, 0);
    topLayout->addWidget(m_runTable, 1);
    topLayout->addLayout(bar);
    topLayout->addWidget(m_details);

    auto* splitter = new QSplitter(Qt::Vertical, this);
    splitter->addWidget(top);
    splitter->addWidget(m_tabs);
    splitter->setStretchFactor(0, 1);
    splitter->setStretchFactor(1, 3);
    splitter->setSizes({300, 700});
    splitter->setChildrenCollapsible(false);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 8, 8, 8);
    layout->addWidget(splitter);
    showRunDetails(nullptr);
    updatePlots();
}

int ResultsPanel::rowOf(int id) const
{
    for (int i = 0; i < m_runs.size(); ++i)
        if (m_runs[i].id == id)
            return i;
    return -1;
}

const RunRecord* ResultsPanel::run(int id) const
{
    const int row = rowOf(id);
    return row < 0 ? nullptr : &m_runs[row];
}

void ResultsPanel::addRun(const RunRecord& run)
{
    m_updating = true;
    m_runs.append(run);
    m_shown.append(true);
    const int row = m_runTable->rowCount();
    m_runTable->insertRow(row);
    auto* show = new QTableWidgetItem;
    show->setFlags(Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsUserCheckable);
    show->setCheckState(Qt::Checked);
    m_runTable->setItem(row, ShowColumn, show);
    auto* name = new QTableWidgetItem(run.name);
    name->setFlags(Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsEditable);
    name->setToolTip(tr("%1\nfinished %2").arg(run.name, QLocale().toString(run.finishedAt, QLocale::ShortFormat)));
    m_runTable->setItem(row, NameColumn, name);
    m_runTable->setItem(row, MethodColumn, cell(run.methodSummary(), Qt::AlignLeft | Qt::AlignVCenter));
    m_runTable->setItem(row, SparsityColumn, cell(QStringLiteral("%1 %").arg(100.0 * run.linearSparsity, 0, 'f', 1)));
    m_runTable->setItem(row, BeforeColumn, cell(ppl(run.perplexityBefore)));
    QTableWidgetItem* after = cell(ppl(run.perplexityAfter));
    if (run.recovery.enabled)
        after->setToolTip(std::isfinite(run.perplexityPruned)
                              ? tr("Pruned: %1; after recovery (%2): %3")
                                    .arg(ppl(run.perplexityPruned), run.recovery.summary(), ppl(run.perplexityAfter))
                              : tr("After recovery (%1)").arg(run.recovery.summary()));
    m_runTable->setItem(row, AfterColumn, after);
    m_runTable->setItem(row, TimeColumn, cell(formatSeconds(run.totalSeconds)));
    m_updating = false;
    m_runTable->selectRow(row);
    updatePlots();
}

bool ResultsPanel::removeRun(int id)
{
    const int row = rowOf(id);
    if (row < 0)
        return false;
    m_updating = true;
    m_runs.removeAt(row);
    m_shown.removeAt(row);
    m_runTable->removeRow(row);
    m_updating = false;
    updatePlots();
    onRunSelectionChanged();
    Q_EMIT runRemoved(id);
    return true;
}

void ResultsPanel::clearRuns()
{
    while (!m_runs.isEmpty())
        removeRun(m_runs.first().id);
}

void ResultsPanel::setModelKept(int id, bool kept)
{
    const int row = rowOf(id);
    if (row < 0)
        return;
    m_runs[row].modelKept = kept;
    if (selectedRunId() == id)
        showRunDetails(&m_runs[row]);
}

int ResultsPanel::selectedRunId() const
{
    const QList<QTableWidgetItem*> items = m_runTable->selectedItems();
    if (items.isEmpty())
        return -1;
    const int row = items.first()->row();
    return row >= 0 && row < m_runs.size() ? m_runs[row].id : -1;
}

void ResultsPanel::selectRun(int id)
{
    const int row = rowOf(id);
    if (row >= 0)
        m_runTable->selectRow(row);
}

void ResultsPanel::setShown(int id, bool shown)
{
    const int row = rowOf(id);
    if (row >= 0)
        m_runTable->item(row, ShowColumn)->setCheckState(shown ? Qt::Checked : Qt::Unchecked);
}

void ResultsPanel::setMetric(Metric metric) { m_metric->setCurrentIndex(m_metric->findData(metric)); }

void ResultsPanel::removeSelected()
{
    const int id = selectedRunId();
    if (id >= 0)
        removeRun(id);
}

void ResultsPanel::onRunSelectionChanged()
{
    if (m_updating)
        return;
    const int id = selectedRunId();
    const RunRecord* r = run(id);
    m_remove->setEnabled(r != nullptr);
    showRunDetails(r);
    Q_EMIT runSelected(id);
}

void ResultsPanel::onRunItemChanged(int row, int column)
{
    if (m_updating || row < 0 || row >= m_runs.size())
        return;
    if (column == ShowColumn) {
        m_shown[row] = m_runTable->item(row, ShowColumn)->checkState() == Qt::Checked;
        updatePlots();
    } else if (column == NameColumn) {
        const QString name = m_runTable->item(row, NameColumn)->text().trimmed();
        if (name.isEmpty()) {
            m_updating = true;
            m_runTable->item(row, NameColumn)->setText(m_runs[row].name); // a run always has a name
            m_updating = false;
            return;
        }
        m_runs[row].name = name;
        updatePlots();
        if (selectedRunId() == m_runs[row].id)
            showRunDetails(&m_runs[row]);
        Q_EMIT runRenamed(m_runs[row].id, name);
    }
}

QString ResultsPanel::perplexityText() const { return m_perplexity->text(); }

void ResultsPanel::showRunDetails(const RunRecord* r)
{
    m_layerTable->setRowCount(0);
    if (!r) {
        m_perplexity->setText(m_runs.isEmpty() ? tr("No runs yet") : tr("Select a run"));
        m_details->setText(m_runs.isEmpty() ? tr("Run a plan (F5) to see its results here; several runs can be compared.")
                                            : QString());
        return;
    }
    if (std::isfinite(r->perplexityBefore) && std::isfinite(r->perplexityAfter)) {
        const double change = 100.0 * (r->perplexityAfter / r->perplexityBefore - 1.0);
        m_perplexity->setText(tr("Perplexity %1 → %2 (%3%4 %)")
                                  .arg(ppl(r->perplexityBefore), ppl(r->perplexityAfter), change >= 0 ? QStringLiteral("+") : QString())
                                  .arg(change, 0, 'f', 1));
    } else {
        m_perplexity->setText(tr("Perplexity not measured"));
    }
    QString details = tr("%1 · %2 windows × %3 tokens of %4, seed %5 · linear sparsity %6 % · pruned in %7")
                          .arg(r->methodSummary())
                          .arg(r->calibration.nsamples)
                          .arg(r->calibration.seqlen)
                          .arg(QFileInfo(r->calibration.textPath).fileName())
                          .arg(r->calibration.seed)
                          .arg(100.0 * r->linearSparsity, 0, 'f', 2)
                          .arg(formatSeconds(r->pruneSeconds));
    if (std::isfinite(r->perplexityAfter))
        details += tr(" · evaluated on %1 windows × %2 tokens of %3")
                       .arg(r->evalWindows)
                       .arg(r->evalSeqlen)
                       .arg(QFileInfo(r->evaluation.textPath).fileName());
    if (!r->modelKept)
        details += tr(" · compressed model released (run again to export)");
    m_details->setText(details);

    m_layerTable->setRowCount(int(r->layers.size()));
    for (int i = 0; i < r->layers.size(); ++i) {
        const solve::LayerRecord& l = r->layers[i];
        const solve::LayerStats& stats = l.stats;
        auto* name = cell(layerName(l), Qt::AlignLeft | Qt::AlignVCenter);
        name->setToolTip(tr("%1\n[%2, %3], %4 dead inputs, damping raised %5×").arg(layerName(l)).arg(l.rows).arg(l.cols).arg(stats.deadInputs).arg(stats.dampRaises));
        m_layerTable->setItem(i, LayerNameColumn, name);
        m_layerTable->setItem(i, LayerMethodColumn, cell(planMethodLabel(layerSetting(l).method), Qt::AlignLeft | Qt::AlignVCenter));
        m_layerTable->setItem(i, LayerSparsityColumn, cell(QStringLiteral("%1 %").arg(100.0 * stats.sparsity, 0, 'f', 2)));
        m_layerTable->setItem(i, LayerBitsColumn, cell(l.dense ? QStringLiteral("—") : QString::number(l.bits())));
        m_layerTable->setItem(i, LayerLossColumn, cell(l.dense ? QStringLiteral("—") : sci(stats.loss)));
        m_layerTable->setItem(i, LayerErrorColumn, cell(l.dense ? QStringLiteral("—") : sci(stats.relOutputError)));
        m_layerTable->setItem(i, LayerDampColumn, cell(l.dense ? QStringLiteral("—") : sci(stats.dampUsed)));
        m_layerTable->setItem(i, LayerSecondsColumn, cell(QString::number(stats.seconds, 'f', 3)));
    }
}

double ResultsPanel::metricOf(const solve::LayerRecord& row) const
{
    if (row.dense)
        return std::nan("");
    return m_metric->currentData().toInt() == Loss ? row.stats.loss : row.stats.relOutputError;
}

void ResultsPanel::updatePlots()
{
    const bool loss = m_metric->currentData().toInt() == Loss;
    const QString axis = loss ? tr("OBS loss") : tr("rel. output error");
    m_layerPlot->setValueAxisLabel(axis);
    m_kindPlot->setValueAxisLabel(axis);

    // Categories: the layers (and kinds) of the shown runs, in pipeline order of first appearance.
    QList<PlanRow> layers;
    QHash<QString, int> layerIndex;
    QStringList kinds;
    for (int r = 0; r < m_runs.size(); ++r) {
        if (!m_shown[r])
            continue;
        for (const solve::LayerRecord& l : m_runs[r].layers) {
            const QString name = layerName(l);
            if (!layerIndex.contains(name)) {
                layerIndex.insert(name, int(layers.size()));
                PlanRow p;
                p.name = name;
                p.kind = layerKind(l);
                p.block = int(l.block);
                layers.append(p);
            }
            const QString kind = shortLayerLabel(layerKind(l));
            if (!kinds.contains(kind))
                kinds.append(kind);
        }
    }
    QStringList names, ticks;
    LiveView::layerLabels(layers, &names, &ticks);

    QList<widgets::ErrorSeries> perLayer, perKind;
    for (int r = 0; r < m_runs.size(); ++r) {
        if (!m_shown[r])
            continue;
        widgets::ErrorSeries s{m_runs[r].name, QVector<double>(layers.size(), std::nan(""))};
        std::map<QString, std::pair<double, int>> sums;
        for (const solve::LayerRecord& l : m_runs[r].layers) {
            const double v = metricOf(l);
            s.values[layerIndex.value(layerName(l))] = v;
            if (std::isfinite(v)) {
                auto& acc = sums[shortLayerLabel(layerKind(l))];
                acc.first += v;
                acc.second += 1;
            }
        }
        widgets::ErrorSeries k{m_runs[r].name, QVector<double>(kinds.size(), std::nan(""))};
        for (int i = 0; i < kinds.size(); ++i) {
            const auto it = sums.find(kinds[i]);
            if (it != sums.end() && it->second.second > 0)
                k.values[i] = it->second.first / it->second.second;
        }
        perLayer.append(s);
        perKind.append(k);
    }
    m_layerPlot->setSeries({});
    m_layerPlot->setCategories(names, ticks);
    m_layerPlot->setSeries(perLayer);
    m_kindPlot->setSeries({});
    m_kindPlot->setCategories(kinds);
    m_kindPlot->setSeries(perKind);

    QStringList entries;
    for (int i = 0; i < perLayer.size(); ++i)
        entries << QStringLiteral("<span style='color:%1'>&#9632;</span>&nbsp;%2")
                       .arg(m_layerPlot->seriesColor(i).name(), perLayer[i].name.toHtmlEscaped());
    m_legend->setText(entries.join(QStringLiteral("&nbsp;&nbsp;&nbsp; ")));
    m_legend->setVisible(!entries.isEmpty());
}

} // namespace sparselab::gui
