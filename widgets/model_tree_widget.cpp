#include "model_tree_widget.h"

#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QSortFilterProxyModel>
#include <QStackedWidget>
#include <QStandardItemModel>
#include <QStringList>
#include <QTreeView>
#include <QVBoxLayout>

namespace sparselab::widgets {

namespace {

QString grouped(qint64 n) { return QLocale().toString(n); }

// "260K", "6.74B": the compact form next to the exact count.
QString compact(qint64 n)
{
    const double v = double(n);
    if (v >= 1e9)
        return QString::number(v / 1e9, 'f', 2) + QLatin1Char('B');
    if (v >= 1e6)
        return QString::number(v / 1e6, 'f', 2) + QLatin1Char('M');
    if (v >= 1e3)
        return QString::number(v / 1e3, 'f', 1) + QLatin1Char('K');
    return QString::number(n);
}

QString shapeText(const QList<qint64>& shape)
{
    QStringList parts;
    for (qint64 d : shape)
        parts << QString::number(d);
    return parts.join(QStringLiteral(" × "));
}

QStandardItem* makeItem(const QString& text, Qt::Alignment align = Qt::AlignLeft | Qt::AlignVCenter)
{
    auto* item = new QStandardItem(text);
    item->setEditable(false);
    item->setTextAlignment(align);
    return item;
}

constexpr Qt::Alignment kRight = Qt::AlignRight | Qt::AlignVCenter;

} // namespace

ModelTreeWidget::ModelTreeWidget(QWidget* parent)
    : QWidget(parent)
{
    m_model = new QStandardItemModel(this);
    m_model->setHorizontalHeaderLabels({tr("Layer"), tr("Shape (out × in)"), tr("Parameters"), tr("Dtype"), tr("Sparsity")});
    m_model->horizontalHeaderItem(ShapeColumn)->setToolTip(
        tr("Weight matrix shape: output features × input features."));
    m_model->horizontalHeaderItem(ParametersColumn)->setToolTip(
        tr("Number of stored values, weights and biases together."));
    m_model->horizontalHeaderItem(DtypeColumn)->setToolTip(
        tr("Data type of the weights on disk; SparseLab computes in float32."));
    m_model->horizontalHeaderItem(SparsityColumn)->setToolTip(
        tr("Share of exact zeros in the layer's weights after the latest run (empty before a run)."));

    m_proxy = new QSortFilterProxyModel(this);
    m_proxy->setSourceModel(m_model);
    m_proxy->setRecursiveFilteringEnabled(true);
    m_proxy->setAutoAcceptChildRows(true);
    m_proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
    m_proxy->setFilterKeyColumn(NameColumn);

    // --- header: name, architecture and dimensions
    m_title = new QLabel(this);
    QFont titleFont = m_title->font();
    titleFont.setPointSizeF(titleFont.pointSizeF() * 1.35);
    titleFont.setBold(true);
    m_title->setFont(titleFont);
    m_title->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_subtitle = new QLabel(this);
    m_subtitle->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_subtitle->setForegroundRole(QPalette::PlaceholderText);
    m_subtitle->setWordWrap(true);

    m_details = new QLabel(this);
    m_details->setTextFormat(Qt::RichText);
    m_details->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_details->setWordWrap(true);

    m_filter = new QLineEdit(this);
    m_filter->setPlaceholderText(tr("Filter layers (e.g. q_proj, mlp, Block 3)"));
    m_filter->setClearButtonEnabled(true);
    m_filter->setToolTip(tr("Show only the layers whose name contains this text."));
    connect(m_filter, &QLineEdit::textChanged, this, [this](const QString& text) {
        m_proxy->setFilterFixedString(text);
        if (!text.isEmpty())
            m_tree->expandAll();
    });

    m_tree = new QTreeView(this);
    m_tree->setModel(m_proxy);
    m_tree->setAlternatingRowColors(true);
    m_tree->setUniformRowHeights(true);
    m_tree->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_tree->setEditTriggers(QAbstractItemView::NoEditTriggers);
    // The name column is sized to the names once per model (setSummary) and can be dragged; a
    // stretched name column was squeezed by the others and clipped the layer names in a narrow
    // dock. A scroll bar appears when the dock is narrower than the names. (ResizeToContents
    // on it would measure every row again at each sparsity update, on the GUI thread.)
    m_tree->header()->setStretchLastSection(true);
    m_tree->header()->setSectionResizeMode(NameColumn, QHeaderView::Interactive);
    for (int c = ShapeColumn; c < ColumnCount; ++c)
        m_tree->header()->setSectionResizeMode(c, QHeaderView::ResizeToContents);
    m_tree->header()->setDefaultAlignment(Qt::AlignLeft | Qt::AlignVCenter);
    connect(m_tree, &QTreeView::activated, this, [this](const QModelIndex& proxyIndex) {
        const QModelIndex index = m_proxy->mapToSource(proxyIndex.siblingAtColumn(NameColumn));
        const QString name = index.data(TensorNameRole).toString();
        if (!name.isEmpty())
            Q_EMIT tensorActivated(name);
    });

    auto* page = new QWidget(this);
    auto* pageLayout = new QVBoxLayout(page);
    pageLayout->setContentsMargins(8, 8, 8, 8);
    pageLayout->setSpacing(6);
    pageLayout->addWidget(m_title);
    pageLayout->addWidget(m_subtitle);
    pageLayout->addWidget(m_details);
    pageLayout->addSpacing(4);
    pageLayout->addWidget(m_filter);
    pageLayout->addWidget(m_tree, 1);

    m_placeholder = new QLabel(this);
    m_placeholder->setAlignment(Qt::AlignCenter);
    m_placeholder->setWordWrap(true);
    m_placeholder->setForegroundRole(QPalette::PlaceholderText);
    m_placeholder->setMargin(24);
    m_placeholder->setText(tr("No model loaded."));

    m_stack = new QStackedWidget(this);
    m_stack->addWidget(m_placeholder);
    m_stack->addWidget(page);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_stack);
}

ModelTreeWidget::~ModelTreeWidget() = default;

QAbstractItemModel* ModelTreeWidget::model() const { return m_model; }

void ModelTreeWidget::setPlaceholderText(const QString& text) { m_placeholder->setText(text); }

void ModelTreeWidget::setSummary(const ModelSummary& summary)
{
    m_summary = summary;
    m_sparsity.clear(); // sparsity belongs to the previous model's runs
    m_sparsityCaption.clear();
    rebuild();
    // Wide enough for the names of the expanded tree (blocks and their layers), once per model.
    m_tree->expandToDepth(0);
    m_tree->resizeColumnToContents(NameColumn);
}

void ModelTreeWidget::clear()
{
    m_summary = ModelSummary{};
    rebuild();
}

void ModelTreeWidget::rebuild()
{
    m_model->removeRows(0, m_model->rowCount());
    m_filter->clear();
    if (m_summary.isEmpty()) {
        m_stack->setCurrentWidget(m_placeholder);
        return;
    }

    for (const BlockInfo& block : m_summary.blocks) {
        auto* blockItem = makeItem(tr("Block %1").arg(block.index));
        blockItem->setData(BlockNode, NodeTypeRole);
        blockItem->setData(block.index, BlockRole);
        blockItem->setData(block.parameters(), ParametersRole);
        blockItem->setToolTip(tr("Decoder block %1: its linear layers in execution order.").arg(block.index));
        QFont bold = blockItem->font();
        bold.setBold(true);
        blockItem->setFont(bold);
        auto* count = makeItem(block.linears.size() == 1 ? tr("1 linear layer")
                                                        : tr("%1 linear layers").arg(block.linears.size()));
        count->setForeground(m_tree->palette().brush(QPalette::PlaceholderText));
        for (const LinearLayerInfo& layer : block.linears) {
            auto* name = makeItem(layer.kind.isEmpty() ? layer.name : layer.kind);
            name->setData(LinearNode, NodeTypeRole);
            name->setData(layer.name, TensorNameRole);
            name->setData(layer.kind, KindRole);
            name->setData(layer.rows, RowsRole);
            name->setData(layer.cols, ColsRole);
            name->setData(layer.parameters, ParametersRole);
            name->setData(block.index, BlockRole);
            QString tip = tr("%1\nweight [%2, %3] = [out, in]").arg(layer.name).arg(layer.rows).arg(layer.cols);
            if (layer.hasBias)
                tip += tr(", with bias [%1]").arg(layer.rows);
            name->setToolTip(tip);
            auto* shape = makeItem(shapeText({layer.rows, layer.cols}), kRight);
            auto* params = makeItem(grouped(layer.parameters), kRight);
            auto* dtype = makeItem(layer.dtype);
            blockItem->appendRow({name, shape, params, dtype, makeItem({}, kRight)});
        }
        m_model->appendRow({blockItem, count, makeItem(grouped(block.parameters()), kRight), makeItem({}), makeItem({}, kRight)});
    }

    if (!m_summary.otherTensors.isEmpty()) {
        qint64 total = 0;
        auto* group = makeItem(tr("Embeddings, norms and head"));
        group->setData(OtherGroupNode, NodeTypeRole);
        group->setToolTip(tr("Parameters outside the linear layers of the blocks; SparseGPT never prunes them."));
        QFont italic = group->font();
        italic.setItalic(true);
        group->setFont(italic);
        for (const TensorInfo& t : m_summary.otherTensors) {
            auto* name = makeItem(t.name);
            name->setData(TensorNode, NodeTypeRole);
            name->setData(t.name, TensorNameRole);
            name->setData(t.parameters, ParametersRole);
            name->setToolTip(t.name);
            group->appendRow({name, makeItem(shapeText(t.shape), kRight), makeItem(grouped(t.parameters), kRight),
                              makeItem(m_summary.storedDtype), makeItem({}, kRight)});
            total += t.parameters;
        }
        group->setData(total, ParametersRole);
        auto* count = makeItem(m_summary.otherTensors.size() == 1 ? tr("1 tensor")
                                                                 : tr("%1 tensors").arg(m_summary.otherTensors.size()));
        count->setForeground(m_tree->palette().brush(QPalette::PlaceholderText));
        m_model->appendRow({group, count, makeItem(grouped(total), kRight), makeItem({}), makeItem({}, kRight)});
    }
    updateSparsityColumn();

    // Small models fully expanded; large ones show the first block as an example.
    if (m_summary.blocks.size() <= 8) {
        for (int r = 0; r < m_summary.blocks.size(); ++r)
            m_tree->expand(m_proxy->index(r, 0));
    } else {
        m_tree->expand(m_proxy->index(0, 0));
    }
    updateHeader();
    m_stack->setCurrentIndex(1);
}

void ModelTreeWidget::setLayerSparsity(const QHash<QString, double>& sparsity, const QString& caption)
{
    m_sparsity.clear();
    const QString suffix = QStringLiteral(".weight");
    for (auto it = sparsity.begin(); it != sparsity.end(); ++it) {
        QString name = it.key();
        if (name.endsWith(suffix))
            name.chop(suffix.size());
        m_sparsity.insert(name, it.value());
    }
    m_sparsityCaption = caption;
    updateSparsityColumn();
}

void ModelTreeWidget::clearLayerSparsity()
{
    m_sparsity.clear();
    m_sparsityCaption.clear();
    updateSparsityColumn();
}

void ModelTreeWidget::updateSparsityColumn()
{
    const QString suffix = QStringLiteral(".weight");
    const QString tip = m_sparsityCaption.isEmpty() ? QString() : tr("After %1").arg(m_sparsityCaption);
    for (int b = 0; b < m_model->rowCount(); ++b) {
        QStandardItem* blockItem = m_model->item(b, NameColumn);
        if (blockItem->data(NodeTypeRole).toInt() != BlockNode)
            continue;
        double zeros = 0, weights = 0;
        bool any = false;
        for (int r = 0; r < blockItem->rowCount(); ++r) {
            QStandardItem* layer = blockItem->child(r, NameColumn);
            QString name = layer->data(TensorNameRole).toString();
            if (name.endsWith(suffix))
                name.chop(suffix.size());
            QStandardItem* cell = blockItem->child(r, SparsityColumn);
            const auto it = m_sparsity.constFind(name);
            if (it == m_sparsity.constEnd()) {
                layer->setData(QVariant(), SparsityRole);
                cell->setText({});
                cell->setToolTip({});
                continue;
            }
            any = true;
            const double n = double(layer->data(RowsRole).toLongLong() * layer->data(ColsRole).toLongLong());
            zeros += it.value() * n;
            weights += n;
            layer->setData(it.value(), SparsityRole);
            cell->setText(QStringLiteral("%1 %").arg(100.0 * it.value(), 0, 'f', 1));
            cell->setToolTip(tip);
        }
        QStandardItem* blockCell = m_model->item(b, SparsityColumn);
        if (any && weights > 0) {
            blockItem->setData(zeros / weights, SparsityRole);
            blockCell->setText(QStringLiteral("%1 %").arg(100.0 * zeros / weights, 0, 'f', 1));
            blockCell->setToolTip(tip);
        } else {
            blockItem->setData(QVariant(), SparsityRole);
            blockCell->setText({});
            blockCell->setToolTip({});
        }
    }
}

void ModelTreeWidget::updateHeader()
{
    const ModelSummary& s = m_summary;
    m_title->setText(s.name);
    m_title->setToolTip(s.folder);
    m_subtitle->setText(QStringLiteral("%1 · %2").arg(s.architecture, s.folder));

    auto row = [](const QString& k1, const QString& v1, const QString& k2, const QString& v2) {
        return QStringLiteral("<tr><td style='padding-right:8px'><b>%1</b></td><td style='padding-right:24px'>%2</td>"
                              "<td style='padding-right:8px'><b>%3</b></td><td>%4</td></tr>")
            .arg(k1.toHtmlEscaped(), v1.toHtmlEscaped(), k2.toHtmlEscaped(), v2.toHtmlEscaped());
    };
    const QString heads = s.numKvHeads != s.numHeads
        ? tr("%1 query, %2 key/value (GQA) × %3").arg(s.numHeads).arg(s.numKvHeads).arg(s.headDim)
        : tr("%1 × %2").arg(s.numHeads).arg(s.headDim);
    const double linearShare = s.totalParameters > 0 ? 100.0 * double(s.linearParameters) / double(s.totalParameters) : 0.0;

    QString html = QStringLiteral("<table cellspacing='0' cellpadding='1'>");
    html += row(tr("Blocks"), QString::number(s.blocks.size()), tr("Hidden size"), QString::number(s.hiddenSize));
    html += row(tr("Attention heads"), heads, tr("MLP width"),
                QStringLiteral("%1 (%2)").arg(s.intermediateSize).arg(s.activation));
    html += row(tr("Vocabulary"), QString::number(s.vocabSize), tr("Context"), tr("%1 tokens").arg(s.maxPositions));
    html += row(tr("Parameters"), QStringLiteral("%1 (%2)").arg(grouped(s.totalParameters), compact(s.totalParameters)),
                tr("In linear layers"),
                QStringLiteral("%1 (%2 %)").arg(grouped(s.linearParameters)).arg(linearShare, 0, 'f', 1));
    html += row(tr("Stored dtype"), s.storedDtype, tr("Tied embeddings"), s.tiedEmbeddings ? tr("yes") : tr("no"));
    html += QStringLiteral("<tr><td style='padding-right:8px'><b>%1</b></td><td colspan='3'>%2</td></tr>")
                .arg(tr("Tokenizer").toHtmlEscaped(),
                     (s.tokenizer + (s.tokenizerAddsBos ? tr(", adds BOS") : QString())).toHtmlEscaped());
    html += QStringLiteral("</table>");
    m_details->setText(html);
}

} // namespace sparselab::widgets
