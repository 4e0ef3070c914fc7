#include "plan_panel.h"

#include "action_button.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QCoreApplication>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPushButton>
#include <QRegularExpressionValidator>
#include <QSpinBox>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QVBoxLayout>

#include <algorithm>

namespace sparselab::gui {

namespace {

const QList<int> kBits = {16, 8, 7, 6, 5, 4, 3, 2};
const QStringList kPatterns = {QStringLiteral("unstructured"), QStringLiteral("2:4"), QStringLiteral("4:8"),
                               QStringLiteral("1:4")};

QString bitsLabel(int bits)
{
    return bits == 16 ? QCoreApplication::translate("PlanPanel", "16 (none)") : QString::number(bits);
}

void fillMethods(QComboBox* box)
{
    for (PlanMethod m : {PlanMethod::SparseGpt, PlanMethod::Magnitude, PlanMethod::Wanda, PlanMethod::Rtn,
                         PlanMethod::Dense})
        box->addItem(planMethodLabel(m), int(m));
}

void fillBits(QComboBox* box)
{
    for (int b : kBits)
        box->addItem(bitsLabel(b), b);
}

// Editable list of common quantization grids (PlanModel::GridColumn's words).
QComboBox* gridBox(QWidget* parent)
{
    auto* box = new QComboBox(parent);
    box->setEditable(true);
    // Long entries must not widen the dock (and the window's minimum size).
    box->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    box->setMinimumContentsLength(3);
    for (const char* g : {"row asym", "row sym", "g128 asym", "g128 sym", "g64 asym", "g32 asym", "g32 sym fp16", "g32 sym signed fp16",
                          "g128 asym act", "g128 sym act static", "g32 sym act static fp16"})
        box->addItem(QString::fromLatin1(g));
    box->setToolTip(PlanModel().headerData(PlanModel::GridColumn, Qt::Horizontal, Qt::ToolTipRole).toString());
    return box;
}

QComboBox* patternBox(QWidget* parent)
{
    auto* box = new QComboBox(parent);
    box->setEditable(true);
    box->addItems(kPatterns);
    box->setInsertPolicy(QComboBox::NoInsert);
    box->lineEdit()->setValidator(new QRegularExpressionValidator(
        QRegularExpression(QStringLiteral("^(unstructured|\\d{1,3}\\s*:\\s*\\d{1,3})$")), box));
    return box;
}

// Editors for the plan's editable columns. Committing a value while several rows are
// selected applies it to every selected row (a bulk edit in one gesture).
class PlanDelegate : public QStyledItemDelegate {
public:
    PlanDelegate(PlanModel* model, QTableView* view)
        : QStyledItemDelegate(view), m_model(model), m_view(view)
    {
    }

    QWidget* createEditor(QWidget* parent, const QStyleOptionViewItem& option, const QModelIndex& index) const override
    {
        switch (index.column()) {
        case PlanModel::MethodColumn: {
            auto* box = new QComboBox(parent);
            fillMethods(box);
            return box;
        }
        case PlanModel::SparsityColumn: {
            auto* spin = new QDoubleSpinBox(parent);
            spin->setRange(0.0, 99.0);
            spin->setDecimals(1);
            spin->setSingleStep(5.0);
            spin->setSuffix(QStringLiteral(" %"));
            return spin;
        }
        case PlanModel::PatternColumn: return patternBox(parent);
        case PlanModel::GridColumn: return gridBox(parent);
        case PlanModel::BitsColumn: {
            auto* box = new QComboBox(parent);
            fillBits(box);
            return box;
        }
        default: return QStyledItemDelegate::createEditor(parent, option, index);
        }
    }

    void setEditorData(QWidget* editor, const QModelIndex& index) const override
    {
        const QVariant value = index.data(Qt::EditRole);
        switch (index.column()) {
        case PlanModel::MethodColumn:
        case PlanModel::BitsColumn: {
            auto* box = static_cast<QComboBox*>(editor);
            box->setCurrentIndex(std::max(0, box->findData(value.toInt())));
            return;
        }
        case PlanModel::SparsityColumn: static_cast<QDoubleSpinBox*>(editor)->setValue(100.0 * value.toDouble()); return;
        case PlanModel::PatternColumn: {
            const QString text = value.toString();
            static_cast<QComboBox*>(editor)->setCurrentText(text.isEmpty() ? kPatterns.first() : text);
            return;
        }
        case PlanModel::GridColumn: static_cast<QComboBox*>(editor)->setCurrentText(value.toString()); return;
        default: QStyledItemDelegate::setEditorData(editor, index);
        }
    }

    void setModelData(QWidget* editor, QAbstractItemModel*, const QModelIndex& index) const override
    {
        QVariant value;
        switch (index.column()) {
        case PlanModel::MethodColumn:
        case PlanModel::BitsColumn: value = static_cast<QComboBox*>(editor)->currentData(); break;
        case PlanModel::SparsityColumn: value = static_cast<QDoubleSpinBox*>(editor)->value() / 100.0; break;
        case PlanModel::PatternColumn:
        case PlanModel::GridColumn: value = static_cast<QComboBox*>(editor)->currentText(); break;
        default: return;
        }
        QList<int> rows{index.row()};
        const QModelIndexList selected = m_view->selectionModel()->selectedRows();
        bool editedIsSelected = false;
        for (const QModelIndex& i : selected)
            editedIsSelected = editedIsSelected || i.row() == index.row();
        if (editedIsSelected && selected.size() > 1) {
            rows.clear();
            for (const QModelIndex& i : selected)
                rows.append(i.row());
        }
        m_model->setField(rows, PlanModel::Column(index.column()), value);
    }

private:
    PlanModel* m_model;
    QTableView* m_view;
};

} // namespace

PlanPanel::PlanPanel(QWidget* parent)
    : QWidget(parent)
{
    m_model = new PlanModel(this);

    // --- edit bar
    m_method = new QComboBox(this);
    fillMethods(m_method);
    m_method->setToolTip(tr("SparseGPT prunes and updates the kept weights; magnitude and Wanda only prune; dense leaves layers alone."));
    m_sparsity = new QDoubleSpinBox(this);
    m_sparsity->setRange(0.0, 99.0);
    m_sparsity->setDecimals(1);
    m_sparsity->setSingleStep(5.0);
    m_sparsity->setValue(50.0);
    m_sparsity->setSuffix(QStringLiteral(" %"));
    m_sparsity->setToolTip(tr("Share of each layer's weights set to zero (unstructured pattern)."));
    m_pattern = patternBox(this);
    m_pattern->setToolTip(tr("Unstructured, or N:M — N zeros in every M consecutive inputs of a row (2:4 runs fast on GPUs)."));
    m_bits = new QComboBox(this);
    fillBits(m_bits);
    m_bits->setToolTip(tr("Quantize the kept weights to this many bits jointly with pruning; 16 means no quantization."));
    m_grid = gridBox(this);
    m_applySelected = new QPushButton(tr("Apply to Selected"), this);
    m_applySelected->setToolTip(tr("Give the selected layers this method, sparsity and bits (all layers when none is selected)."));
    m_applyAll = new QPushButton(tr("Apply to All"), this);
    m_applyAll->setToolTip(tr("Give every layer this method, sparsity and bits (the uniform preset)."));
    connect(m_applySelected, &QPushButton::clicked, this, &PlanPanel::applyEditBarToSelection);
    connect(m_applyAll, &QPushButton::clicked, this, &PlanPanel::applyEditBarToAll);
    connect(m_pattern, &QComboBox::currentTextChanged, this, [this] {
        int n = 0, m = 0;
        m_sparsity->setEnabled(PlanModel::parsePattern(m_pattern->currentText(), &n, &m) && m == 0);
    });
    connect(m_method, &QComboBox::currentIndexChanged, this, [this] {
        const bool dense = m_method->currentData().toInt() == int(PlanMethod::Dense);
        for (QWidget* w : std::initializer_list<QWidget*>{m_sparsity, m_pattern, m_bits, m_grid})
            w->setEnabled(!dense);
    });

    auto* editGrid = new QGridLayout;
    editGrid->addWidget(new QLabel(tr("Method:"), this), 0, 0);
    editGrid->addWidget(m_method, 0, 1);
    editGrid->addWidget(new QLabel(tr("Sparsity:"), this), 0, 2);
    editGrid->addWidget(m_sparsity, 0, 3);
    editGrid->addWidget(new QLabel(tr("Pattern:"), this), 1, 0);
    editGrid->addWidget(m_pattern, 1, 1);
    editGrid->addWidget(new QLabel(tr("Bits:"), this), 1, 2);
    editGrid->addWidget(m_bits, 1, 3);
    editGrid->addWidget(new QLabel(tr("Grid:"), this), 2, 2);
    editGrid->addWidget(m_grid, 2, 3);
    editGrid->setColumnStretch(1, 1);
    editGrid->setColumnStretch(3, 1);
    auto* editButtons = new QHBoxLayout;
    editButtons->addStretch(1);
    editButtons->addWidget(m_applySelected);
    editButtons->addWidget(m_applyAll);
    auto* editBox = new QGroupBox(tr("Edit"), this);
    auto* editLayout = new QVBoxLayout(editBox);
    editLayout->addLayout(editGrid);
    editLayout->addLayout(editButtons);

    // --- presets
    m_preset = new QComboBox(this);
    m_preset->addItem(tr("Uniform (edit bar on every layer)"), UniformPreset);
    m_preset->addItem(tr("Keep first and last blocks dense"), EndsDensePreset);
    m_preset->addItem(tr("Attention vs MLP sparsity"), AttentionMlpPreset);
    m_preset->setToolTip(tr("A starting point for the plan; edit single layers afterwards."));
    m_preset->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_preset->setMinimumContentsLength(12);
    m_attention = new QDoubleSpinBox(this);
    m_attention->setRange(0.0, 99.0);
    m_attention->setDecimals(1);
    m_attention->setValue(40.0);
    m_attention->setSuffix(QStringLiteral(" %"));
    m_attention->setPrefix(tr("attention "));
    m_attention->setToolTip(tr("Sparsity of the attention projections (q, k, v, o) in the attention-vs-MLP preset."));
    m_mlp = new QDoubleSpinBox(this);
    m_mlp->setRange(0.0, 99.0);
    m_mlp->setDecimals(1);
    m_mlp->setValue(60.0);
    m_mlp->setSuffix(QStringLiteral(" %"));
    m_mlp->setPrefix(tr("MLP "));
    m_mlp->setToolTip(tr("Sparsity of the MLP layers (gate, up, down) in the attention-vs-MLP preset."));
    m_applyPreset = new QPushButton(tr("Apply Preset"), this);
    m_applyPreset->setToolTip(tr("Change the plan as the chosen preset says."));
    connect(m_preset, &QComboBox::currentIndexChanged, this, &PlanPanel::updatePresetControls);
    connect(m_applyPreset, &QPushButton::clicked, this, [this] { applyPreset(Preset(m_preset->currentData().toInt())); });
    auto* presetRow = new QHBoxLayout;
    presetRow->addWidget(m_preset, 2);
    presetRow->addWidget(m_attention, 1);
    presetRow->addWidget(m_mlp, 1);
    presetRow->addWidget(m_applyPreset);
    updatePresetControls();

    // --- table
    m_table = new QTableView(this);
    m_table->setModel(m_model);
    m_table->setItemDelegate(new PlanDelegate(m_model, m_table));
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_table->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed
                             | QAbstractItemView::SelectedClicked);
    m_table->setAlternatingRowColors(true);
    m_table->verticalHeader()->setVisible(false);
    m_table->verticalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    // Every column as wide as its contents, the spare width to the last: a stretched Layer
    // column took 180 px at 1366 × 768 and pushed Pattern, Bits, Grid and Size out of view.
    m_table->horizontalHeader()->setStretchLastSection(true);
    m_table->horizontalHeader()->setDefaultAlignment(Qt::AlignLeft | Qt::AlignVCenter);
    m_table->setToolTip(tr("Double-click a cell to edit it; with several rows selected, the edit applies to all of them."));

    // --- totals and files
    m_totals = new QLabel(this);
    m_totals->setWordWrap(true);
    m_totals->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_totals->setToolTip(tr("Model-wide figures the plan implies, over all linear layers; sizes are estimates at the chosen bits."));
    m_load = new QPushButton(tr("Load Recipe…"), this);
    m_save = new QPushButton(tr("Save Recipe…"), this);
    m_exact = new QCheckBox(tr("One rule per layer"), this);
    m_exact->setToolTip(tr("Save a complete rule for every layer instead of defaults plus the layers that differ."));
    connect(m_exact, &QCheckBox::toggled, this, &PlanPanel::exactRulesChanged);
    auto* fileRow = new QHBoxLayout;
    fileRow->addWidget(m_load);
    fileRow->addWidget(m_save);
    fileRow->addWidget(m_exact);
    fileRow->addStretch(1);

    // --- recovery after pruning
    m_recovery = new QGroupBox(tr("Recovery after pruning"), this);
    m_recovery->setCheckable(true);
    m_recovery->setChecked(false);
    m_recovery->setToolTip(tr("After pruning, train the kept weights to imitate the dense model (distillation); "
                              "pruned weights stay exactly zero and quantized layers stay on their grid. "
                              "See docs/recovery.md."));
    m_recoverySteps = new QSpinBox(m_recovery);
    m_recoverySteps->setRange(1, 1'000'000);
    m_recoverySteps->setValue(300);
    m_recoverySteps->setToolTip(tr("Adam steps of 8 calibration windows each (block-wise: per decoder block)."));
    m_recoveryLoss = new QComboBox(m_recovery);
    m_recoveryLoss->addItem(tr("KL to the dense model's predictions"), QStringLiteral("kl"));
    m_recoveryLoss->addItem(tr("Block-wise reconstruction"), QStringLiteral("block"));
    // Its long first entry must not set the dock's minimum width (it made the Plan dock wider
    // than the Live Solver at 1366 × 768).
    m_recoveryLoss->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_recoveryLoss->setMinimumContentsLength(8);
    m_recoveryLoss->setToolTip(tr("KL: the whole model matches the dense model's next-token distributions (best "
                                  "quality). Block-wise: each block matches the dense block's outputs (cheaper, "
                                  "one block in memory at a time)."));
    m_recoveryRate = new QDoubleSpinBox(m_recovery);
    m_recoveryRate->setDecimals(5);
    m_recoveryRate->setRange(1e-5, 1.0);
    m_recoveryRate->setSingleStep(5e-4);
    m_recoveryRate->setValue(2e-3);
    m_recoveryRate->setToolTip(tr("Adam's peak learning rate; it decays to zero along a cosine."));
    auto* recoveryRow = new QHBoxLayout(m_recovery);
    recoveryRow->addWidget(new QLabel(tr("Loss:"), m_recovery));
    recoveryRow->addWidget(m_recoveryLoss, 2);
    recoveryRow->addWidget(new QLabel(tr("Steps:"), m_recovery));
    recoveryRow->addWidget(m_recoverySteps, 1);
    recoveryRow->addWidget(new QLabel(tr("Rate:"), m_recovery));
    recoveryRow->addWidget(m_recoveryRate, 1);
    connect(m_recovery, &QGroupBox::toggled, this, &PlanPanel::recoveryChanged);
    connect(m_recoverySteps, &QSpinBox::valueChanged, this, &PlanPanel::recoveryChanged);
    connect(m_recoveryLoss, &QComboBox::currentIndexChanged, this, &PlanPanel::recoveryChanged);
    connect(m_recoveryRate, &QDoubleSpinBox::valueChanged, this, &PlanPanel::recoveryChanged);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(8, 8, 8, 8);
    layout->addWidget(editBox);
    layout->addLayout(presetRow);
    layout->addWidget(m_table, 1);
    layout->addWidget(m_totals);
    layout->addWidget(m_recovery);
    layout->addLayout(fileRow);

    connect(m_model, &PlanModel::planChanged, this, &PlanPanel::updateTotals);
    updateTotals();
}

void PlanPanel::setActions(QAction* load, QAction* save)
{
    widgets::bindButtonToAction(m_load, load);
    widgets::bindButtonToAction(m_save, save);
}

QList<PlanRow> PlanPanel::rowsFor(const widgets::ModelSummary& summary, const LayerSetting& setting)
{
    QList<PlanRow> rows;
    const QString suffix = QStringLiteral(".weight");
    for (const widgets::BlockInfo& block : summary.blocks) {
        for (const widgets::LinearLayerInfo& layer : block.linears) {
            PlanRow row;
            row.name = layer.name.endsWith(suffix) ? layer.name.left(layer.name.size() - suffix.size()) : layer.name;
            row.kind = layer.kind;
            row.block = block.index;
            row.rows = layer.rows;
            row.cols = layer.cols;
            row.setting = setting;
            rows.append(row);
        }
    }
    return rows;
}

void PlanPanel::setModel(const widgets::ModelSummary& summary, const LayerSetting& setting)
{
    m_model->setRows(rowsFor(summary, setting));
}

LayerSetting PlanPanel::editBarSetting(const LayerSetting& base) const
{
    LayerSetting s = base;
    s.method = PlanMethod(m_method->currentData().toInt());
    int n = 0, m = 0;
    if (PlanModel::parsePattern(m_pattern->currentText(), &n, &m)) {
        s.nmN = n;
        s.nmM = m;
    }
    s.sparsity = m > 0 ? double(n) / double(m) : m_sparsity->value() / 100.0;
    s.bits = m_bits->currentData().toInt();
    if (s.bits < 16)
        (void)PlanModel::parseGrid(m_grid->currentText(), &s); // unparsable text keeps the row's grid
    return s;
}

void PlanPanel::setEditBarSetting(const LayerSetting& s)
{
    m_method->setCurrentIndex(std::max(0, m_method->findData(int(s.method))));
    m_sparsity->setValue(100.0 * s.sparsity);
    m_pattern->setCurrentText(s.structured() ? QStringLiteral("%1:%2").arg(s.nmN).arg(s.nmM) : kPatterns.first());
    m_bits->setCurrentIndex(std::max(0, m_bits->findData(s.bits)));
    m_grid->setCurrentText(PlanModel::gridText(s));
}

QList<int> PlanPanel::selectedRows() const
{
    QList<int> rows;
    for (const QModelIndex& i : m_table->selectionModel()->selectedRows())
        rows.append(i.row());
    return rows;
}

void PlanPanel::applyEditBarToSelection()
{
    const QList<int> rows = selectedRows();
    if (rows.isEmpty()) {
        applyEditBarToAll();
        return;
    }
    // Each row keeps its advanced options (group, block size, damping); the bar sets the rest.
    QList<LayerSetting> settings;
    for (const PlanRow& row : m_model->rows())
        settings.append(row.setting);
    for (int r : rows)
        settings[r] = editBarSetting(settings[r]);
    m_model->setSettings(settings);
}

void PlanPanel::applyEditBarToAll()
{
    QList<LayerSetting> settings;
    for (const PlanRow& row : m_model->rows())
        settings.append(editBarSetting(row.setting));
    m_model->setSettings(settings);
}

void PlanPanel::applyPreset(Preset preset)
{
    switch (preset) {
    case UniformPreset: applyEditBarToAll(); break;
    case EndsDensePreset: m_model->keepEndBlocksDense(1); break;
    case AttentionMlpPreset: {
        PlanMethod method = PlanMethod(m_method->currentData().toInt());
        if (method == PlanMethod::Dense)
            method = PlanMethod::SparseGpt;
        m_model->splitAttentionMlp(m_attention->value() / 100.0, m_mlp->value() / 100.0, method);
        break;
    }
    }
}

void PlanPanel::setPresetSplit(double attention, double mlp)
{
    m_attention->setValue(100.0 * attention);
    m_mlp->setValue(100.0 * mlp);
}

bool PlanPanel::exactRules() const { return m_exact->isChecked(); }
void PlanPanel::setExactRules(bool exact) { m_exact->setChecked(exact); }

void PlanPanel::updatePresetControls()
{
    const bool split = m_preset->currentData().toInt() == AttentionMlpPreset;
    m_attention->setVisible(split);
    m_mlp->setVisible(split);
}

void PlanPanel::updateTotals()
{
    const PlanModel::Totals t = m_model->totals();
    if (t.layers == 0) {
        m_totals->setText(tr("No model loaded."));
        return;
    }
    const QLocale locale;
    const double ratio = t.denseBytes > 0 ? double(t.estimatedBytes) / double(t.denseBytes) : 1.0;
    m_totals->setText(tr("<b>Average sparsity %1 %</b> over %2 linear layers (%3 dense): %4 of %5 weights pruned. "
                         "Size %6 → <b>%7</b> (%8 % of fp16).")
                          .arg(100.0 * t.averageSparsity, 0, 'f', 1)
                          .arg(t.layers)
                          .arg(t.denseLayers)
                          .arg(locale.toString(t.prunedWeights), locale.toString(t.weights), formatBytes(t.denseBytes),
                               formatBytes(t.estimatedBytes))
                          .arg(100.0 * ratio, 0, 'f', 0));
}

QString PlanPanel::totalsText() const { return m_totals->text(); }

void PlanPanel::setEditable(bool editable)
{
    m_table->setEditTriggers(editable ? QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed
                                            | QAbstractItemView::SelectedClicked
                                      : QAbstractItemView::NoEditTriggers);
    for (QWidget* w : std::initializer_list<QWidget*>{m_method, m_sparsity, m_pattern, m_bits, m_grid, m_applySelected, m_applyAll,
                                                      m_preset, m_attention, m_mlp, m_applyPreset, m_recovery})
        w->setEnabled(editable);
    if (editable) {
        // Re-derive the dependent states.
        const bool dense = m_method->currentData().toInt() == int(PlanMethod::Dense);
        int n = 0, m = 0;
        const bool unstructured = PlanModel::parsePattern(m_pattern->currentText(), &n, &m) && m == 0;
        m_sparsity->setEnabled(!dense && unstructured);
        m_pattern->setEnabled(!dense);
        m_bits->setEnabled(!dense);
        m_grid->setEnabled(!dense);
    }
}

} // namespace sparselab::gui

namespace sparselab::gui {

RecoverySettings PlanPanel::recoverySettings() const
{
    RecoverySettings r;
    r.enabled = m_recovery->isChecked();
    r.steps = m_recoverySteps->value();
    r.loss = m_recoveryLoss->currentData().toString();
    r.learningRate = m_recoveryRate->value();
    return r;
}

void PlanPanel::setRecoverySettings(const RecoverySettings& r)
{
    m_recovery->setChecked(r.enabled);
    m_recoverySteps->setValue(int(std::clamp<qint64>(r.steps, 1, 1'000'000)));
    const int loss = m_recoveryLoss->findData(r.loss);
    m_recoveryLoss->setCurrentIndex(loss >= 0 ? loss : 0);
    m_recoveryRate->setValue(r.learningRate);
}

} // namespace sparselab::gui
