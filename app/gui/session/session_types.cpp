#include "session_types.h"


#include <algorithm>

#include <QCoreApplication>
#include <QLocale>

namespace sparselab::gui {

QString planMethodLabel(PlanMethod method)
{
    switch (method) {
    case PlanMethod::SparseGpt: return QStringLiteral("SparseGPT");
    case PlanMethod::Magnitude: return QCoreApplication::translate("PlanMethod", "Magnitude");
    case PlanMethod::Wanda: return QStringLiteral("Wanda");
    case PlanMethod::Rtn: return QCoreApplication::translate("PlanMethod", "Round to nearest");
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
    case PlanMethod::Rtn: return QStringLiteral("rtn");
    case PlanMethod::Dense: return QStringLiteral("dense");
    }
    return {};
}

bool parsePlanMethod(const QString& keyOrLabel, PlanMethod* method)
{
    for (PlanMethod m : {PlanMethod::SparseGpt, PlanMethod::Magnitude, PlanMethod::Wanda, PlanMethod::Rtn,
                         PlanMethod::Dense}) {
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

QList<SettingCount> countSettings(const QList<PlanRow>& plan, bool skipDense)
{
    QList<SettingCount> counts;
    for (const PlanRow& r : plan) {
        if (skipDense && r.setting.dense())
            continue;
        const auto same = std::find_if(counts.begin(), counts.end(),
                                       [&](const SettingCount& c) { return c.setting.sameEffect(r.setting); });
        if (same != counts.end())
            ++same->rows;
        else
            counts.append({r.setting, 1});
    }
    return counts;
}

QString RunRecord::methodSummary() const
{
    // The most common non-dense setting, e.g. "SparseGPT 50 %", plus "mixed" when layers differ.
    const QList<SettingCount> counts = countSettings(plan, /*skipDense=*/true);
    if (counts.isEmpty())
        return QCoreApplication::translate("RunRecord", "dense");
    const SettingCount& best = *std::max_element(counts.begin(), counts.end(),
                                                 [](const SettingCount& a, const SettingCount& b) { return a.rows < b.rows; });
    QString text = planMethodLabel(best.setting.method) + QLatin1Char(' ') + best.setting.sparsityText();
    if (best.setting.bits < 16)
        text += QStringLiteral(" %1-bit").arg(best.setting.bits);
    if (counts.size() > 1 || best.rows < plan.size())
        text += QCoreApplication::translate("RunRecord", " (mixed)");
    if (recovery.enabled)
        text += recovery.loss == QLatin1String("block") ? QCoreApplication::translate("RunRecord", " + block recovery")
                                                       : QCoreApplication::translate("RunRecord", " + KL recovery");
    return text;
}

QString RecoverySettings::summary() const
{
    if (!enabled)
        return {};
    return loss == QLatin1String("block")
               ? QCoreApplication::translate("RunRecord", "block-wise reconstruction, %1 steps per block").arg(steps)
               : QCoreApplication::translate("RunRecord", "KL distillation, %1 steps").arg(steps);
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

LayerSetting settingFromOptions(const solve::SolverOptions& o, bool dense)
{
    LayerSetting s;
    switch (o.method) {
    case solve::Method::SparseGpt: s.method = PlanMethod::SparseGpt; break;
    case solve::Method::Magnitude: s.method = PlanMethod::Magnitude; break;
    case solve::Method::Wanda: s.method = PlanMethod::Wanda; break;
    case solve::Method::Rtn: s.method = PlanMethod::Rtn; break;
    }
    if (dense)
        s.method = PlanMethod::Dense;
    s.sparsity = o.sparsity;
    s.nmN = o.nmN;
    s.nmM = o.nmM;
    s.bits = o.quant.bits;
    s.group = o.quant.groupSize;
    s.sym = o.quant.symmetric;
    s.actOrder = o.quant.actOrder;
    s.staticGroups = o.quant.staticGroups;
    s.fp16Scale = o.quant.fp16Scale;
    s.signedScale = o.quant.signedScale;
    s.blocksize = o.blocksize;
    s.damp = o.damp;
    return s;
}

LayerSetting layerSetting(const solve::LayerRecord& r)
{
    // A dense layer was asked nothing; an N:M layer's recorded sparsity (N/M) is not a setting
    // of its own, so the row keeps the default the Plan view starts from.
    if (r.dense)
        return LayerSetting{PlanMethod::Dense};
    LayerSetting s = settingFromOptions(r.options, false);
    if (r.options.structured())
        s.sparsity = LayerSetting{}.sparsity;
    return s;
}

QHash<QString, double> achievedSparsity(const RunRecord& run)
{
    QHash<QString, double> sparsity;
    for (const solve::LayerRecord& l : run.layers)
        sparsity.insert(layerName(l), l.stats.sparsity);
    return sparsity;
}

PlanRow planRow(const solve::LayerRecord& r)
{
    return PlanRow{layerName(r), layerKind(r), int(r.block), r.rows, r.cols, layerSetting(r)};
}

} // namespace sparselab::gui
