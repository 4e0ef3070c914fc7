// Plan rows ↔ pipeline::Recipe. One of the two GUI translation units that include engine
// headers pulling LibTorch (recipe.h → solve/solver.h); kept apart from engine_jobs.cpp so
// editing either recompiles only one of them.
#include "recipe_bridge.h"

#include "pipeline/recipe.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <QFile>

#include <algorithm>
#include <map>

namespace sparselab::gui {

namespace {

std::filesystem::path toPath(const QString& path) { return std::filesystem::path(QFile::encodeName(path).toStdString()); }

QString firstLine(const char* text)
{
    const QString s = QString::fromUtf8(text).trimmed();
    const qsizetype nl = s.indexOf(QLatin1Char('\n'));
    return nl < 0 ? s : s.left(nl).trimmed();
}

solve::Method toMethod(PlanMethod m)
{
    switch (m) {
    case PlanMethod::Magnitude: return solve::Method::Magnitude;
    case PlanMethod::Wanda: return solve::Method::Wanda;
    case PlanMethod::Rtn: return solve::Method::Rtn;
    default: return solve::Method::SparseGpt;
    }
}

pipeline::LayerPlan toLayerPlan(const LayerSetting& s)
{
    pipeline::LayerPlan plan;
    plan.dense = s.dense();
    plan.options.method = toMethod(s.method);
    plan.options.sparsity = s.sparsity;
    plan.options.nmN = s.nmN;
    plan.options.nmM = s.nmM;
    plan.options.quant.bits = s.bits;
    plan.options.quant.groupSize = s.group;
    plan.options.quant.symmetric = s.sym;
    plan.options.quant.actOrder = s.actOrder;
    plan.options.quant.staticGroups = s.staticGroups;
    plan.options.quant.fp16Scale = s.fp16Scale;
    plan.options.quant.signedScale = s.signedScale;
    if (s.method == PlanMethod::Rtn)
        plan.options.sparsity = 0.0; // rtn prunes nothing
    plan.options.blocksize = s.blocksize;
    plan.options.damp = s.damp;
    return plan;
}

LayerSetting fromLayerPlan(const pipeline::LayerPlan& plan) { return settingFromOptions(plan.options, plan.dense); }

// A rule that turns `base` into `target` for one layer, with only the fields that differ.
pipeline::RecipeRule ruleFor(const QString& layer, const LayerSetting& base, const LayerSetting& target, bool complete)
{
    pipeline::RecipeRule rule;
    rule.pattern = layer.toStdString();
    if (target.dense()) {
        rule.dense = true;
        return rule;
    }
    if (complete || base.dense() || base.method != target.method) {
        rule.dense = false;
        rule.method = toMethod(target.method);
    }
    // A rule's sparsity resets N:M unless the rule sets N:M too: always write both together.
    if (complete || base.sparsity != target.sparsity || base.nmN != target.nmN || base.nmM != target.nmM) {
        rule.sparsity = target.sparsity;
        rule.nm = std::pair{target.nmN, target.nmM};
    }
    if (complete || base.bits != target.bits)
        rule.bits = target.bits;
    if (complete || base.group != target.group)
        rule.group = target.group;
    if (complete || base.sym != target.sym)
        rule.sym = target.sym;
    if (complete || base.actOrder != target.actOrder)
        rule.actOrder = target.actOrder;
    if (complete || base.staticGroups != target.staticGroups)
        rule.staticGroups = target.staticGroups;
    if (complete || base.fp16Scale != target.fp16Scale)
        rule.fp16Scale = target.fp16Scale;
    if (complete || base.signedScale != target.signedScale)
        rule.signedScale = target.signedScale;
    if (complete || base.blocksize != target.blocksize)
        rule.blocksize = target.blocksize;
    if (complete || base.damp != target.damp)
        rule.damp = target.damp;
    return rule;
}

// The setting most rows share (first one on ties): the compact recipe's defaults.
LayerSetting mostCommon(const QList<PlanRow>& rows)
{
    const QList<SettingCount> counts = countSettings(rows, /*skipDense=*/false);
    if (counts.isEmpty())
        return engineDefaultSetting();
    return std::max_element(counts.begin(), counts.end(),
                            [](const SettingCount& a, const SettingCount& b) { return a.rows < b.rows; })
        ->setting;
}

QString applyRecipe(const pipeline::Recipe& recipe, const std::string& source, const QList<PlanRow>& rows,
                    QList<LayerSetting>* settings)
{
    std::vector<std::string> names;
    std::vector<int64_t> cols;
    for (const PlanRow& r : rows) {
        names.push_back(r.name.toStdString());
        cols.push_back(r.cols);
    }
    recipe.validate(names, source, cols);
    QList<LayerSetting> out;
    for (const std::string& name : names)
        out.append(fromLayerPlan(recipe.planFor(name)));
    *settings = out;
    return {};
}

} // namespace

LayerSetting engineDefaultSetting() { return fromLayerPlan(pipeline::LayerPlan{}); }

pipeline::Recipe recipeFromPlan(const QList<PlanRow>& rows, RecipeStyle style)
{
    pipeline::Recipe recipe;
    const bool exact = style == RecipeStyle::Exact;
    const LayerSetting base = exact ? engineDefaultSetting() : mostCommon(rows);
    recipe.defaults = toLayerPlan(base);
    for (const PlanRow& r : rows) {
        if (!exact && base.sameEffect(r.setting))
            continue;
        recipe.rules.push_back(ruleFor(r.name, base, r.setting, exact));
    }
    return recipe;
}

QByteArray recipeJson(const QList<PlanRow>& rows, RecipeStyle style)
{
    const std::string text = recipeFromPlan(rows, style).toJson().dump(2) + "\n";
    return QByteArray(text.data(), qsizetype(text.size()));
}

QString saveRecipeFile(const QList<PlanRow>& rows, const QString& file, RecipeStyle style)
{
    try {
        recipeFromPlan(rows, style).save(toPath(file));
        return {};
    } catch (const std::exception& e) {
        return firstLine(e.what());
    }
}

QString loadRecipeFile(const QString& file, const QList<PlanRow>& rows, QList<LayerSetting>* settings)
{
    try {
        const std::filesystem::path path = toPath(file);
        return applyRecipe(pipeline::Recipe::load(path), path.string(), rows, settings);
    } catch (const std::exception& e) {
        return firstLine(e.what());
    }
}

QString applyRecipeJson(const QByteArray& json, const QString& source, const QList<PlanRow>& rows,
                        QList<LayerSetting>* settings)
{
    try {
        const nlohmann::json j =
            parseJsonText(std::string_view(json.constData(), size_t(json.size())), source.toStdString());
        return applyRecipe(pipeline::Recipe::fromJson(j, source.toStdString()), source.toStdString(), rows, settings);
    } catch (const std::exception& e) {
        return firstLine(e.what());
    }
}

} // namespace sparselab::gui
