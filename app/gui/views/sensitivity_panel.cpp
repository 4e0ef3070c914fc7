#include "sensitivity_panel.h"
#include "session_types.h"

#include "analysis/allocator.h"
#include "store/analysis_store.h"
#include "analysis/sensitivity.h"
#include "util/errors.h"

#include "qcustomplot_include.h"

#include <QComboBox>
#include <QEvent>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace sparselab::gui {

namespace {

// Errors below this are drawn as this (log colour scale; dense levels have error 0).
constexpr double kErrorFloor = 1e-6;

QString levelLabel(double sparsity, int bits)
{
    QString text = QString::number(std::round(sparsity * 1000.0) / 10.0) + QStringLiteral("%");
    if (bits < 16)
        text += QStringLiteral("/") + QString::number(bits) + QStringLiteral("b");
    return text;
}

QString layerLabel(const analysis::SensitivityLayer& layer)
{
    return QStringLiteral("%1 %2").arg(layer.block).arg(shortLayerLabel(QString::fromStdString(layer.kind)));
}

QString megabytes(int64_t bytes) { return QString::number(double(bytes) / 1e6, 'f', 3) + QStringLiteral(" MB"); }

} // namespace

SensitivityPanel::SensitivityPanel(QWidget* parent) : QWidget(parent)
{
    m_summary = new QLabel;
    m_summary->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Fixed);

    m_plot = new QCustomPlot;
    m_plot->setObjectName(QStringLiteral("sensitivityHeatmap"));
    m_plot->setToolTip(tr("Relative output error of every linear layer (rows) at every level of the scan "
                          "(columns: sparsity, and bit-width when quantized), log colour scale. Dark: the layer "
                          "barely notices; bright: it suffers."));
    const QPalette& pal = m_plot->palette();
    m_plot->setBackground(pal.color(QPalette::Base));
    for (QCPAxis* axis : {m_plot->xAxis, m_plot->yAxis}) {
        axis->setBasePen(QPen(pal.color(QPalette::WindowText)));
        axis->setTickPen(QPen(pal.color(QPalette::WindowText)));
        axis->setSubTicks(false);
        axis->setTickLabelColor(pal.color(QPalette::WindowText));
        axis->setLabelColor(pal.color(QPalette::WindowText));
        axis->grid()->setVisible(false);
    }
    m_plot->xAxis->setLabel(tr("level (sparsity / bits)"));
    m_plot->yAxis->setLabel(tr("layer (block, kind)"));
    m_plot->yAxis->setRangeReversed(true); // block 0 at the top, as in the Plan view
    m_plot->setMinimumHeight(fontMetrics().height() * 16);
    m_plot->installEventFilter(this);
    m_map = new QCPColorMap(m_plot->xAxis, m_plot->yAxis);
    auto* scale = new QCPColorScale(m_plot);
    m_plot->plotLayout()->addElement(0, 1, scale);
    scale->setType(QCPAxis::atRight);
    scale->setDataScaleType(QCPAxis::stLogarithmic);
    scale->axis()->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    scale->axis()->setLabel(tr("relative output error"));
    scale->axis()->setTickLabelColor(pal.color(QPalette::WindowText));
    scale->axis()->setLabelColor(pal.color(QPalette::WindowText));
    m_map->setColorScale(scale);
    m_map->setGradient(QCPColorGradient::gpThermal);
    m_map->setInterpolate(false);
    auto* margins = new QCPMarginGroup(m_plot);
    m_plot->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, margins);
    scale->setMarginGroup(QCP::msBottom | QCP::msTop, margins);

    m_table = new QTableWidget;
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->setToolTip(tr("Relative output error per layer and level, as in the heat-map"));

    auto* tabs = new QTabWidget;
    tabs->addTab(m_plot, tr("Heat-map"));
    tabs->addTab(m_table, tr("Table"));

    // The allocator.
    m_budgetKind = new QComboBox;
    m_budgetKind->addItem(tr("Average sparsity"));
    m_budgetKind->addItem(tr("Model size (MB)"));
    m_budgetKind->setToolTip(tr("Average sparsity: the weighted mean sparsity of the scanned layers must reach the "
                                "value (bits held at the scan's largest). Model size: the whole model, priced by the "
                                "size model, must fit in the value."));
    m_budgetValue = new QDoubleSpinBox;
    m_budgetValue->setDecimals(3);
    m_metric = new QComboBox;
    m_metric->addItem(tr("Relative error"));
    m_metric->addItem(tr("Relative, normalised per layer kind"));
    m_metric->addItem(tr("Absolute error"));
    m_metric->setToolTip(tr("What the allocation minimises, summed over layers: each layer's relative output error, "
                            "that error divided by the mean of its layer kind (trades only between blocks), or the "
                            "absolute tr(ΔW H ΔWᵀ)."));
    m_maxSparsity = new QDoubleSpinBox;
    m_maxSparsity->setRange(0.05, 1.0);
    m_maxSparsity->setSingleStep(0.05);
    m_maxSparsity->setDecimals(2);
    m_maxSparsity->setValue(1.0);
    m_maxSparsity->setToolTip(tr("Levels above this sparsity are not used"));
    m_allocateButton = new QPushButton(tr("Allocate to Plan"));
    m_allocateButton->setToolTip(tr("Choose each layer's sparsity and bits to minimise the summed predicted error "
                                    "within the budget (exact dynamic programme over the scan), and put the result "
                                    "in the Plan view. Run it (F5) to compare with a uniform run in Results."));
    connect(m_allocateButton, &QPushButton::clicked, this, &SensitivityPanel::allocateToPlan);
    connect(m_budgetKind, &QComboBox::currentIndexChanged, this, &SensitivityPanel::updateBudgetControls);
    m_allocationLabel = new QLabel;
    m_allocationLabel->setWordWrap(true);
    m_allocationLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto* form = new QFormLayout;
    auto* budgetRow = new QHBoxLayout;
    budgetRow->addWidget(m_budgetKind);
    budgetRow->addWidget(m_budgetValue, 1);
    form->addRow(tr("Budget:"), budgetRow);
    form->addRow(tr("Minimise:"), m_metric);
    auto* lastRow = new QHBoxLayout;
    lastRow->addWidget(m_maxSparsity);
    lastRow->addStretch(1);
    lastRow->addWidget(m_allocateButton);
    form->addRow(tr("Sparsity at most:"), lastRow);

    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_summary);
    layout->addWidget(tabs, 1);
    layout->addLayout(form);
    layout->addWidget(m_allocationLabel);
    updateBudgetControls();
    rebuild();
}

SensitivityPanel::~SensitivityPanel() = default;

void SensitivityPanel::setScan(std::shared_ptr<const analysis::SensitivityResult> scan, const QString& source)
{
    m_scan = std::move(scan);
    m_source = source;
    m_allocationLabel->clear();
    rebuild();
}

void SensitivityPanel::clear() { setScan(nullptr, {}); }

bool SensitivityPanel::loadFile(const QString& file, QString* error)
{
    try {
        if (file.endsWith(QLatin1String(".h5"), Qt::CaseInsensitive)) {
            auto scan = store::lastStoredSensitivity(store::loadWorkspace(file.toStdString(), {false, false}),
                                                        file.toStdString());
            if (!scan) {
                if (error)
                    error->clear();
                return false;
            }
            setScan(std::make_shared<analysis::SensitivityResult>(std::move(*scan)), file);
            return true;
        }
        setScan(std::make_shared<analysis::SensitivityResult>(analysis::SensitivityResult::load(file.toStdString())), file);
        return true;
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return false;
    }
}

void SensitivityPanel::updateBudgetControls()
{
    const bool sparsity = m_budgetKind->currentIndex() == 0;
    const QSignalBlocker block(m_budgetValue);
    if (sparsity) {
        m_budgetValue->setRange(0.0, 0.99);
        m_budgetValue->setSingleStep(0.05);
        m_budgetValue->setSuffix({});
        m_budgetValue->setValue(0.5);
        m_budgetValue->setToolTip(tr("Weighted average sparsity of the scanned layers, 0 – 0.99"));
    } else {
        m_budgetValue->setRange(0.001, 1e7);
        m_budgetValue->setSingleStep(0.01);
        m_budgetValue->setSuffix(tr(" MB"));
        double dense = 0.0;
        if (m_scan) {
            int64_t weights = 0;
            for (const auto& layer : m_scan->layers)
                weights += layer.rows * layer.cols;
            dense = double(2 * (weights + m_scan->fixedParameters)) / 1e6;
        }
        m_budgetValue->setValue(dense > 0 ? std::round(dense * 0.6 * 1000.0) / 1000.0 : 1.0);
        m_budgetValue->setToolTip(tr("Size of the whole model (10⁶ bytes), by the size model: kept weights at their "
                                     "bits, a 1-bit mask per pruned layer weight, scales; other parameters at fp16"));
    }
}

SensitivityPanel::AllocationRequest SensitivityPanel::allocationRequest() const
{
    AllocationRequest r;
    r.budget = m_budgetKind->currentIndex() == 0 ? Budget::AverageSparsity : Budget::ModelMegabytes;
    r.value = m_budgetValue->value();
    r.metric = Metric(m_metric->currentIndex());
    r.maxSparsity = m_maxSparsity->value();
    return r;
}

void SensitivityPanel::setAllocationRequest(const AllocationRequest& request)
{
    m_budgetKind->setCurrentIndex(request.budget == Budget::AverageSparsity ? 0 : 1);
    updateBudgetControls();
    m_budgetValue->setValue(request.value);
    m_metric->setCurrentIndex(int(request.metric));
    m_maxSparsity->setValue(request.maxSparsity);
}

bool SensitivityPanel::allocate(const AllocationRequest& request, AllocationOutcome* outcome, QString* error) const
{
    if (!m_scan) {
        if (error)
            *error = tr("No sensitivity scan: run one (Run → Sensitivity Scan…) or open one first.");
        return false;
    }
    try {
        analysis::AllocatorParams params;
        if (request.budget == Budget::AverageSparsity) {
            params.kind = analysis::BudgetKind::AverageSparsity;
            params.averageSparsity = request.value;
        } else {
            params.kind = analysis::BudgetKind::ModelBytes;
            params.modelBytes = int64_t(std::llround(request.value * 1e6));
        }
        params.metric = request.metric == Metric::Relative         ? analysis::ErrorMetric::Relative
                        : request.metric == Metric::KindNormalized ? analysis::ErrorMetric::KindNormalized
                                                                   : analysis::ErrorMetric::Absolute;
        params.maxSparsity = request.maxSparsity;
        const analysis::AllocationResult result = analysis::allocate(*m_scan, params);
        AllocationOutcome out;
        const auto dump = [](const pipeline::Recipe& recipe) {
            return QByteArray::fromStdString(recipe.toJson().dump(2) + "\n");
        };
        out.recipeJson = dump(analysis::allocationRecipe(result.allocated, m_scan->base, true));
        out.uniformRecipeJson = dump(analysis::allocationRecipe(result.uniform, m_scan->base, true));
        out.predictedError = result.allocated.predictedError;
        out.uniformPredictedError = result.uniform.predictedError;
        out.averageSparsity = result.allocated.averageSparsity;
        out.uniformAverageSparsity = result.uniform.averageSparsity;
        out.modelBytes = result.allocated.modelBytes;
        out.uniformModelBytes = result.uniform.modelBytes;
        out.summary = tr("Allocated for %1: predicted error %2 (uniform %3%4), average sparsity %5 (uniform %6), "
                         "model %7 (uniform %8)")
                          .arg(QString::fromStdString(result.budgetText))
                          .arg(out.predictedError, 0, 'g', 4)
                          .arg(out.uniformPredictedError, 0, 'g', 4)
                          .arg(result.uniformInterpolated ? tr(", interpolated") : QString())
                          .arg(out.averageSparsity, 0, 'f', 4)
                          .arg(out.uniformAverageSparsity, 0, 'f', 4)
                          .arg(megabytes(out.modelBytes), megabytes(out.uniformModelBytes));
        *outcome = std::move(out);
        return true;
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return false;
    }
}

void SensitivityPanel::allocateToPlan()
{
    AllocationOutcome outcome;
    QString error;
    if (!allocate(allocationRequest(), &outcome, &error)) {
        m_allocationLabel->setText(error);
        Q_EMIT allocationFailed(error);
        return;
    }
    m_allocationLabel->setText(outcome.summary);
    Q_EMIT allocationReady(outcome);
}

bool SensitivityPanel::eventFilter(QObject* watched, QEvent* event)
{
    if (watched == m_plot && event->type() == QEvent::Resize && m_scan)
        updateLayerTicks();
    return QWidget::eventFilter(watched, event);
}

void SensitivityPanel::updateLayerTicks()
{
    // Layer labels ("block kind": "3 down") no closer than 1.3 lines, whatever the model's depth.
    const int layers = m_scan ? int(m_scan->layers.size()) : 0;
    auto yTicks = QSharedPointer<QCPAxisTickerText>::create();
    const double line = 1.3 * double(fontMetrics().height());
    const double room = std::max(1.0, double(m_plot->height()) - 6.0 * line); // less the x labels
    const int step = std::max(1, int(std::ceil(double(layers) * line / room)));
    for (int y = 0; y < layers; y += step)
        yTicks->addTick(y, layerLabel(m_scan->layers[size_t(y)]));
    m_plot->yAxis->setTicker(yTicks);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void SensitivityPanel::rebuild()
{
    m_allocateButton->setEnabled(m_scan != nullptr);
    m_table->clear();
    if (!m_scan) {
        m_summary->setText(tr("No sensitivity scan. Run → Sensitivity Scan… measures one on the loaded model; "
                              "File → Open Sensitivity Scan… reads a scan (.json) or a workspace (.h5)."));
        m_summary->setToolTip(m_summary->text());
        m_map->data()->clear();
        m_table->setRowCount(0);
        m_table->setColumnCount(0);
        m_plot->replot();
        return;
    }
    const auto& scan = *m_scan;
    const int layers = int(scan.layers.size());
    const int levels = int(scan.sparsities.size() * scan.bits.size());
    m_summary->setText(tr("%1: %2 layers × %3 levels, %4 (%5 Hessian factorisations, %6 s)")
                           .arg(m_source.isEmpty() ? tr("this session") : m_source)
                           .arg(layers)
                           .arg(levels)
                           .arg(QString::fromStdString(solve::methodName(scan.base.method)))
                           .arg(scan.factorizations)
                           .arg(scan.seconds, 0, 'f', 1));
    m_summary->setToolTip(m_summary->text());

    QStringList levelNames;
    for (double s : scan.sparsities)
        for (int b : scan.bits)
            levelNames << levelLabel(s, b);
    auto xTicks = QSharedPointer<QCPAxisTickerText>::create();
    for (int x = 0; x < levels; ++x)
        xTicks->addTick(x, levelNames[x]);
    m_plot->xAxis->setTicker(xTicks);
    m_plot->xAxis->setTickLabelRotation(levels > 8 ? 90 : 0);
    updateLayerTicks();

    m_map->data()->setSize(std::max(1, levels), std::max(1, layers));
    m_map->data()->setRange(QCPRange(0, std::max(0, levels - 1)), QCPRange(0, std::max(0, layers - 1)));
    double lo = 1e300, hi = kErrorFloor;
    m_table->setRowCount(layers);
    m_table->setColumnCount(levels);
    m_table->setHorizontalHeaderLabels(levelNames);
    QStringList rowNames;
    for (int y = 0; y < layers; ++y) {
        rowNames << QString::fromStdString(scan.layers[size_t(y)].name);
        for (size_t i = 0; i < scan.sparsities.size(); ++i)
            for (size_t j = 0; j < scan.bits.size(); ++j) {
                const int x = int(i * scan.bits.size() + j);
                const double e = scan.cell(size_t(y), i, j).relError;
                const double shown = std::max(e, kErrorFloor);
                m_map->data()->setCell(x, y, shown);
                lo = std::min(lo, shown);
                hi = std::max(hi, shown);
                auto* item = new QTableWidgetItem(QString::number(e, 'g', 4));
                item->setData(Qt::UserRole, e);
                item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
                m_table->setItem(y, x, item);
            }
    }
    m_table->setVerticalHeaderLabels(rowNames);
    if (lo >= hi)
        lo = hi / 10.0;
    m_map->setDataRange(QCPRange(lo, hi));
    m_plot->xAxis->setRange(-0.5, levels - 0.5);
    m_plot->yAxis->setRange(-0.5, layers - 0.5);
    m_plot->replot();
    updateBudgetControls();
}

} // namespace sparselab::gui
