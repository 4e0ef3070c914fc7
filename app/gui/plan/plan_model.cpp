#include "plan_model.h"

#include <QFont>
#include <QLocale>
#include <QRegularExpression>

#include <algorithm>

namespace sparselab::gui {

namespace {
constexpr double kMaxSparsity = 0.99;

bool validBits(int bits) { return (bits >= 2 && bits <= 8) || bits == 16; }
} // namespace

PlanModel::PlanModel(QObject* parent)
    : QAbstractTableModel(parent)
{
}

bool PlanModel::parsePattern(const QString& text, int* n, int* m)
{
    const QString t = text.trimmed();
    if (t.isEmpty() || t.compare(QLatin1String("unstructured"), Qt::CaseInsensitive) == 0) {
        *n = *m = 0;
        return true;
    }
    static const QRegularExpression re(QStringLiteral("^(\\d+)\\s*:\\s*(\\d+)$"));
    const auto match = re.match(t);
    if (!match.hasMatch())
        return false;
    const int nn = match.captured(1).toInt();
    const int mm = match.captured(2).toInt();
    if (nn < 1 || mm < 2 || nn >= mm || mm > 256)
        return false;
    *n = nn;
    *m = mm;
    return true;
}

void PlanModel::setRows(const QList<PlanRow>& rows)
{
    beginResetModel();
    m_rows = rows;
    endResetModel();
    Q_EMIT planChanged();
}

void PlanModel::setSettings(const QList<LayerSetting>& settings)
{
    if (settings.size() != m_rows.size())
        return;
    for (int i = 0; i < m_rows.size(); ++i)
        m_rows[i].setting = settings[i];
    if (!m_rows.isEmpty())
        Q_EMIT dataChanged(index(0, 0), index(int(m_rows.size()) - 1, ColumnCount - 1));
    Q_EMIT planChanged();
}

void PlanModel::emitRowsChanged(const QList<int>& rows)
{
    // One signal per contiguous run of rows: views repaint once per range.
    QList<int> sorted = rows;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    for (int i = 0; i < sorted.size();) {
        int j = i;
        while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1)
            ++j;
        Q_EMIT dataChanged(index(sorted[i], 0), index(sorted[j], ColumnCount - 1));
        i = j + 1;
    }
}

QString PlanModel::gridText(const LayerSetting& s)
{
    QStringList words;
    words << (s.group > 0 ? QStringLiteral("g%1").arg(s.group) : QStringLiteral("row"));
    words << (s.sym ? QStringLiteral("sym") : QStringLiteral("asym"));
    if (s.actOrder)
        words << QStringLiteral("act");
    if (s.staticGroups)
        words << QStringLiteral("static");
    if (s.signedScale)
        words << QStringLiteral("signed");
    if (s.fp16Scale)
        words << QStringLiteral("fp16");
    return words.join(QLatin1Char(' '));
}

bool PlanModel::parseGrid(const QString& text, LayerSetting* s)
{
    LayerSetting t = *s;
    t.group = 0;
    t.sym = t.actOrder = t.staticGroups = t.fp16Scale = t.signedScale = false;
    const QStringList words = text.simplified().toLower().split(QLatin1Char(' '), Qt::SkipEmptyParts);
    if (words.isEmpty())
        return false;
    for (const QString& w : words) {
        if (w == QLatin1String("row"))
            t.group = 0;
        else if (w == QLatin1String("sym"))
            t.sym = true;
        else if (w == QLatin1String("asym"))
            t.sym = false;
        else if (w == QLatin1String("act"))
            t.actOrder = true;
        else if (w == QLatin1String("static"))
            t.staticGroups = true;
        else if (w == QLatin1String("fp16"))
            t.fp16Scale = true;
        else if (w == QLatin1String("signed"))
            t.signedScale = true;
        else if (w.startsWith(QLatin1Char('g'))) {
            bool ok = false;
            const qint64 g = w.mid(1).toLongLong(&ok);
            if (!ok || g <= 0)
                return false;
            t.group = g;
        } else {
            return false;
        }
    }
    *s = t;
    return true;
}

bool PlanModel::applyField(PlanRow& row, Column column, const QVariant& value) const
{
    LayerSetting& s = row.setting;
    switch (column) {
    case MethodColumn: {
        PlanMethod method;
        bool ok = false;
        const int v = value.toInt(&ok);
        if (ok && v >= int(PlanMethod::SparseGpt) && v <= int(PlanMethod::Dense))
            method = PlanMethod(v);
        else if (!parsePlanMethod(value.toString(), &method))
            return false;
        s.method = method;
        return true;
    }
    case SparsityColumn: {
        bool ok = false;
        double v = value.toDouble(&ok);
        if (!ok || !(v >= 0.0 && v <= kMaxSparsity))
            return false;
        if (s.dense())
            return true; // not applicable: skipped
        s.sparsity = v;
        s.nmN = s.nmM = 0; // a sparsity means unstructured, as in a recipe rule
        return true;
    }
    case PatternColumn: {
        int n = 0, m = 0;
        if (!parsePattern(value.toString(), &n, &m))
            return false;
        if (s.dense())
            return true;
        s.nmN = n;
        s.nmM = m;
        return true;
    }
    case GridColumn:
        if (s.dense())
            return true;
        return parseGrid(value.toString(), &s);
    case BitsColumn: {
        bool ok = false;
        const int bits = value.toInt(&ok);
        if (!ok || !validBits(bits))
            return false;
        if (s.dense())
            return true;
        s.bits = bits;
        return true;
    }
    default:
        return false;
    }
}

bool PlanModel::setField(const QList<int>& rows, Column column, const QVariant& value)
{
    // Validate once on a scratch row, so an invalid value changes nothing.
    PlanRow probe;
    if (!applyField(probe, column, value))
        return false;
    QList<int> changed;
    for (int r : rows) {
        if (r < 0 || r >= m_rows.size())
            continue;
        PlanRow updated = m_rows[r];
        applyField(updated, column, value);
        if (updated.setting != m_rows[r].setting) {
            m_rows[r] = updated;
            changed.append(r);
        }
    }
    if (!changed.isEmpty()) {
        emitRowsChanged(changed);
        Q_EMIT planChanged();
    }
    return true;
}

void PlanModel::setSetting(const QList<int>& rows, const LayerSetting& setting)
{
    QList<int> targets = rows;
    if (targets.isEmpty())
        for (int i = 0; i < m_rows.size(); ++i)
            targets.append(i);
    QList<int> changed;
    for (int r : targets) {
        if (r < 0 || r >= m_rows.size() || m_rows[r].setting == setting)
            continue;
        m_rows[r].setting = setting;
        changed.append(r);
    }
    if (!changed.isEmpty()) {
        emitRowsChanged(changed);
        Q_EMIT planChanged();
    }
}

void PlanModel::applyUniform(const LayerSetting& setting) { setSetting({}, setting); }

void PlanModel::keepEndBlocksDense(int blocks)
{
    if (m_rows.isEmpty() || blocks <= 0)
        return;
    int first = m_rows.first().block, last = first;
    for (const PlanRow& r : m_rows) {
        first = std::min(first, r.block);
        last = std::max(last, r.block);
    }
    QList<int> targets;
    for (int i = 0; i < m_rows.size(); ++i)
        if (m_rows[i].block < first + blocks || m_rows[i].block > last - blocks)
            targets.append(i);
    setField(targets, MethodColumn, int(PlanMethod::Dense));
}

void PlanModel::splitAttentionMlp(double attention, double mlp, PlanMethod method)
{
    QList<int> changed;
    for (int i = 0; i < m_rows.size(); ++i) {
        LayerSetting s = m_rows[i].setting;
        if (s.dense())
            s.method = method;
        s.sparsity = std::clamp(m_rows[i].isAttention() ? attention : mlp, 0.0, kMaxSparsity);
        s.nmN = s.nmM = 0;
        if (s != m_rows[i].setting) {
            m_rows[i].setting = s;
            changed.append(i);
        }
    }
    if (!changed.isEmpty()) {
        emitRowsChanged(changed);
        Q_EMIT planChanged();
    }
}

PlanModel::Totals PlanModel::totals() const
{
    Totals t;
    double pruned = 0;
    for (const PlanRow& r : m_rows) {
        ++t.layers;
        t.denseLayers += r.setting.dense() ? 1 : 0;
        t.weights += r.weights();
        pruned += double(r.weights()) * r.setting.targetSparsity();
        t.denseBytes += denseBytes(r);
        t.estimatedBytes += estimatedBytes(r);
    }
    t.prunedWeights = qint64(std::llround(pruned));
    t.averageSparsity = t.weights > 0 ? pruned / double(t.weights) : 0.0;
    return t;
}

int PlanModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_rows.size()); }

int PlanModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant PlanModel::data(const QModelIndex& index, int role) const
{
    if (!index.isValid() || !checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const PlanRow& row = m_rows.at(index.row());
    const LayerSetting& s = row.setting;
    switch (role) {
    case NameRole: return row.name;
    case WeightsRole: return row.weights();
    case TargetSparsityRole: return s.targetSparsity();
    case DenseRole: return s.dense();
    case Qt::FontRole:
        if (s.dense()) {
            QFont f;
            f.setItalic(true);
            return f;
        }
        return {};
    case Qt::TextAlignmentRole:
        switch (index.column()) {
        case BlockColumn:
        case ShapeColumn:
        case SparsityColumn:
        case BitsColumn:
        case SizeColumn: return QVariant(Qt::AlignRight | Qt::AlignVCenter);
        default: return QVariant(Qt::AlignLeft | Qt::AlignVCenter);
        }
    case Qt::ToolTipRole:
        switch (index.column()) {
        case LayerColumn:
            return tr("%1\nweight [%2, %3] = [out, in]").arg(row.name).arg(row.rows).arg(row.cols);
        case SizeColumn:
            return tr("Estimated storage at this setting; %1 at fp16 dense.").arg(formatBytes(denseBytes(row)));
        case SparsityColumn:
            return s.structured() ? tr("Set by the N:M pattern (%1 of every %2 weights pruned).").arg(s.nmN).arg(s.nmM)
                                  : QVariant();
        default:
            return {};
        }
    case Qt::DisplayRole:
        switch (index.column()) {
        case BlockColumn: return row.block;
        case LayerColumn: return row.kind.isEmpty() ? row.name : row.kind;
        case ShapeColumn: return QStringLiteral("%1 × %2").arg(row.rows).arg(row.cols);
        case MethodColumn: return planMethodLabel(s.method);
        case SparsityColumn:
            return s.dense() ? QStringLiteral("—") : QStringLiteral("%1 %").arg(100.0 * s.targetSparsity(), 0, 'f', 1);
        case PatternColumn:
            return s.dense() ? QStringLiteral("—") : s.structured() ? QStringLiteral("%1:%2").arg(s.nmN).arg(s.nmM)
                                                                    : tr("unstructured");
        case BitsColumn: return s.dense() ? QStringLiteral("—") : QString::number(s.bits);
        case GridColumn: return s.dense() || s.bits >= 16 ? QStringLiteral("—") : gridText(s);
        case SizeColumn: return formatBytes(estimatedBytes(row));
        default: return {};
        }
    case Qt::EditRole:
        switch (index.column()) {
        case BlockColumn: return row.block;
        case LayerColumn: return row.name;
        case ShapeColumn: return QStringLiteral("%1 × %2").arg(row.rows).arg(row.cols);
        case MethodColumn: return int(s.method);
        case SparsityColumn: return s.structured() ? s.targetSparsity() : s.sparsity;
        case PatternColumn: return s.structured() ? QStringLiteral("%1:%2").arg(s.nmN).arg(s.nmM) : QString();
        case BitsColumn: return s.bits;
        case GridColumn: return gridText(s);
        case SizeColumn: return estimatedBytes(row);
        default: return {};
        }
    default:
        return {};
    }
}

QVariant PlanModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal)
        return QAbstractTableModel::headerData(section, orientation, role);
    if (role == Qt::DisplayRole) {
        switch (section) {
        case BlockColumn: return tr("Block");
        case LayerColumn: return tr("Layer");
        case ShapeColumn: return tr("Shape");
        case MethodColumn: return tr("Method");
        case SparsityColumn: return tr("Sparsity");
        case PatternColumn: return tr("Pattern");
        case BitsColumn: return tr("Bits");
        case GridColumn: return tr("Grid");
        case SizeColumn: return tr("Size");
        default: return {};
        }
    }
    if (role == Qt::ToolTipRole) {
        switch (section) {
        case BlockColumn: return tr("Decoder block the layer belongs to.");
        case LayerColumn: return tr("Linear layer within its block; hover a row for its full name.");
        case ShapeColumn: return tr("Weight matrix: output features × input features.");
        case MethodColumn:
            return tr("SparseGPT updates the kept weights to compensate; magnitude and Wanda only mask; dense leaves the layer as is.");
        case SparsityColumn: return tr("Share of the layer's weights set to zero.");
        case PatternColumn: return tr("Unstructured, or N:M: N zeros in every M consecutive inputs of a row (2:4 runs fast on GPUs).");
        case BitsColumn: return tr("Bit width the kept weights are quantized to; 16 means no quantization.");
        case GridColumn:
            return tr("Quantization grid: “row” or “g32”/“g64”/“g128” (one scale per group of input columns), "
                      "“sym” or “asym”, and optionally “act” (GPTQ act-order), “static” (groups fixed up front), "
                      "“fp16” (fp16 scales: 4-bit “g32 sym fp16” exports losslessly as GGUF Q4_0), “signed” (a symmetric "
                      "group scaled by its largest-magnitude value, as llama.cpp's Q4_0).");
        case SizeColumn: return tr("Estimated storage: kept weights at the chosen bits, a 1-bit mask, and quantization scales.");
        default: return {};
        }
    }
    return {};
}

Qt::ItemFlags PlanModel::flags(const QModelIndex& index) const
{
    if (!index.isValid() || !checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return Qt::NoItemFlags;
    Qt::ItemFlags f = Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemNeverHasChildren;
    const LayerSetting& s = m_rows.at(index.row()).setting;
    switch (index.column()) {
    case MethodColumn: f |= Qt::ItemIsEditable; break;
    case SparsityColumn:
        if (!s.dense() && !s.structured())
            f |= Qt::ItemIsEditable;
        break;
    case PatternColumn:
    case BitsColumn:
        if (!s.dense())
            f |= Qt::ItemIsEditable;
        break;
    case GridColumn:
        if (!s.dense() && s.bits < 16)
            f |= Qt::ItemIsEditable;
        break;
    default: break;
    }
    return f;
}

bool PlanModel::setData(const QModelIndex& index, const QVariant& value, int role)
{
    if (role != Qt::EditRole || !index.isValid() || !checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return false;
    if (!(flags(index) & Qt::ItemIsEditable))
        return false;
    return setField({index.row()}, Column(index.column()), value);
}

} // namespace sparselab::gui
