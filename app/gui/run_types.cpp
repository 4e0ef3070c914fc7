#include "run_types.h"

#include <QCoreApplication>
#include <QLocale>

namespace sparselab::gui {

QString planMethodLabel(PlanMethod method)
{
    switch (method) {
    case PlanMethod::SparseGpt: return QStringLiteral("SparseGPT");
    case PlanMethod::Magnitude: return QCoreApplication::translate("PlanMethod", "Magnitude");
    case PlanMethod::Wanda: return QStringLiteral("Wanda");
    case PlanMethod::Dense: return QCoreApplication::translate("PlanMethod", "Dense");
    }
    return {};
}

QString planMethodKey(PlanMethod method)
{
    switch (method) {
    case PlanMethod::SparseGpt: return QStringLiteral("sparsegpt");
    case PlanMethod::Magnitude: return QStringLiteral("magnitude");
    case PlanMethod::Wanda: return QStringLiteral("wanda");
    case PlanMethod::Dense: return QStringLiteral("dense");
    }
    return {};
}

bool parsePlanMethod(const QString& keyOrLabel, PlanMethod* method)
{
    for (PlanMethod m : {PlanMethod::SparseGpt, PlanMethod::Magnitude, PlanMethod::Wanda, PlanMethod::Dense}) {
        if (keyOrLabel.compare(planMethodKey(m), Qt::CaseInsensitive) == 0
            || keyOrLabel.compare(planMethodLabel(m), Qt::CaseInsensitive) == 0) {
            *method = m;
            return true;
        }
    }
    return false;
}

QString LayerSetting::sparsityText() const
{
    if (dense())
        return QCoreApplication::translate("PlanMethod", "dense");
    if (structured())
        return QStringLiteral("%1:%2").arg(nmN).arg(nmM);
    return QStringLiteral("%1 %").arg(100.0 * sparsity, 0, 'f', 1);
}

bool PlanRow::isAttention() const
{
    const QString k = kind.isEmpty() ? name : kind;
    return k.contains(QLatin1String("attn")) || k.contains(QLatin1String("attention"))
        || k.endsWith(QLatin1String("q_proj")) || k.endsWith(QLatin1String("k_proj"))
        || k.endsWith(QLatin1String("v_proj")) || k.endsWith(QLatin1String("o_proj"))
        || k.endsWith(QLatin1String("out_proj"));
}

qint64 estimatedBytes(const PlanRow& row)
{
    const LayerSetting& s = row.setting;
    const double weights = double(row.weights());
    if (s.dense())
        return denseBytes(row);
    const double kept = weights * (1.0 - s.targetSparsity());
    double bytes = kept * double(s.bits) / 8.0;
    if (s.targetSparsity() > 0.0)
        bytes += weights / 8.0; // 1-bit mask
    if (s.bits < 16) {
        const qint64 groups = s.group > 0 ? (row.cols + s.group - 1) / s.group : 1;
        bytes += double(row.rows * groups) * 4.0; // fp16 scale + zero
    }
    return qint64(std::ceil(bytes));
}

qint64 denseBytes(const PlanRow& row) { return row.weights() * 2; }

QString RunRecord::methodSummary() const
{
    // The most common non-dense setting, e.g. "SparseGPT 50 %", plus "mixed" when layers differ.
    QList<QPair<LayerSetting, int>> counts;
    for (const PlanRow& r : plan) {
        if (r.setting.dense())
            continue;
        bool found = false;
        for (auto& c : counts)
            if (c.first.sameEffect(r.setting)) {
                ++c.second;
                found = true;
                break;
            }
        if (!found)
            counts.append({r.setting, 1});
    }
    if (counts.isEmpty())
        return QCoreApplication::translate("RunRecord", "dense");
    auto best = counts.first();
    for (const auto& c : counts)
        if (c.second > best.second)
            best = c;
    QString text = planMethodLabel(best.first.method) + QLatin1Char(' ') + best.first.sparsityText();
    if (best.first.bits < 16)
        text += QStringLiteral(" %1-bit").arg(best.first.bits);
    if (counts.size() > 1 || best.second < plan.size())
        text += QCoreApplication::translate("RunRecord", " (mixed)");
    return text;
}

QString formatBytes(qint64 bytes)
{
    return QLocale().formattedDataSize(bytes, 1, QLocale::DataSizeSIFormat);
}

QString formatSeconds(double seconds)
{
    if (!(seconds >= 0) || !std::isfinite(seconds))
        return QCoreApplication::translate("RunRecord", "unknown");
    if (seconds < 10.0)
        return QStringLiteral("%1 s").arg(seconds, 0, 'f', 1);
    const qint64 s = qint64(std::llround(seconds));
    if (s < 60)
        return QStringLiteral("%1 s").arg(s);
    if (s < 3600)
        return QStringLiteral("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2:%3").arg(s / 3600).arg((s / 60) % 60, 2, 10, QLatin1Char('0')).arg(s % 60, 2, 10, QLatin1Char('0'));
}

QString shortLayerLabel(const QString& kind)
{
    const QString last = kind.section(QLatin1Char('.'), -1);
    if (last.startsWith(QLatin1String("c_")) || last.startsWith(QLatin1String("fc")))
        return kind.section(QLatin1Char('.'), -2); // GPT-2 "attn.c_proj" vs "mlp.c_proj"
    QString s = last;
    if (s.endsWith(QLatin1String("_proj")))
        s.chop(5);
    return s.isEmpty() ? kind : s;
}

} // namespace sparselab::gui
