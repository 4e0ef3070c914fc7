#include "pipeline/recipe.h"
#include "util/json_file.h"

#include "util/atomic_file.h"
#include "util/errors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

namespace sparselab::pipeline {

using nlohmann::json;

bool globMatch(const std::string& pattern, const std::string& text)
{
    // Iterative matcher with single backtrack point for '*': linear in practice.
    size_t p = 0, t = 0, starP = std::string::npos, starT = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            starP = p++;
            starT = t;
        } else if (starP != std::string::npos) {
            p = starP + 1;
            t = ++starT;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*')
        ++p;
    return p == pattern.size();
}

bool passesLayerFilter(const std::vector<std::string>& patterns, const std::string& name)
{
    if (patterns.empty())
        return true;
    return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) { return globMatch(p, name); });
}


namespace {

const std::set<std::string> kFields = {"pattern", "method", "sparsity", "nm", "bits", "group", "sym", "act_order",
                                       "static_groups", "fp16_scale", "signed_scale", "blocksize", "damp"};

template <typename T>
T fieldAs(const json& object, const char* key, const std::string& source)
{
    try {
        return object.at(key).get<T>();
    } catch (const json::exception&) {
        throw InputError(source + ": field '" + key + "' has the wrong type");
    }
}

// An integer field within [lo, hi]: JSON floats (4.7) and integers outside the range
// (4294967298, which a plain get<int> would wrap to 2) are refused, not converted.
int64_t integerField(const json& object, const char* key, const std::string& source, int64_t lo, int64_t hi)
{
    const json& v = object.at(key);
    if (!v.is_number_integer())
        throw InputError(source + ": field '" + key + "' must be a whole number, got " + v.dump());
    if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(hi) : (v.get<int64_t>() < lo || v.get<int64_t>() > hi))
        throw InputError(source + ": field '" + key + "' must be in " + std::to_string(lo) + ".." + std::to_string(hi)
                         + ", got " + v.dump());
    return v.is_number_unsigned() ? int64_t(v.get<uint64_t>()) : v.get<int64_t>();
}

RecipeRule parseRule(const json& object, const std::string& source, bool isDefaults)
{
    if (!object.is_object())
        throw InputError(source + ": each rule must be a JSON object");
    RecipeRule rule;
    for (const auto& [key, value] : object.items()) {
        if (!kFields.count(key) || (isDefaults && key == "pattern"))
            throw InputError(source + ": unknown field '" + key + "'");
    }
    if (!isDefaults) {
        if (!object.contains("pattern"))
            throw InputError(source + ": a layer rule needs a 'pattern'");
        rule.pattern = fieldAs<std::string>(object, "pattern", source);
        if (rule.pattern.empty())
            throw InputError(source + ": empty 'pattern'");
    }
    if (object.contains("method")) {
        const auto name = fieldAs<std::string>(object, "method", source);
        if (name == "dense" || name == "none") {
            rule.dense = true;
        } else {
            try {
                rule.method = solve::parseMethod(name);
            } catch (const InputError&) {
                throw InputError(source + ": unknown method '" + name + "' (sparsegpt, magnitude, wanda, dense)");
            }
            rule.dense = false;
        }
    }
    if (object.contains("sparsity")) {
        const double s = fieldAs<double>(object, "sparsity", source);
        if (!(s >= 0.0 && s < 1.0))
            throw InputError(source + ": sparsity must be in [0, 1), got " + std::to_string(s));
        rule.sparsity = s;
    }
    if (object.contains("nm")) {
        if (object.at("nm").is_null())
            rule.nm = std::pair{0, 0};
        else
            try {
                rule.nm = parseNm(fieldAs<std::string>(object, "nm", source), "nm");
            } catch (const InputError& e) {
                throw InputError(source + ": " + e.what());
            }
    }
    if (object.contains("bits")) {
        const int b = int(integerField(object, "bits", source, 2, 16));
        if (!((b >= 2 && b <= 8) || b == 16))
            throw InputError(source + ": bits must be 2..8 or 16 (no quantization), got " + std::to_string(b));
        rule.bits = b;
    }
    if (object.contains("group")) {
        rule.group = integerField(object, "group", source, 0, int64_t(1) << 31);
    }
    if (object.contains("sym"))
        rule.sym = fieldAs<bool>(object, "sym", source);
    if (object.contains("act_order"))
        rule.actOrder = fieldAs<bool>(object, "act_order", source);
    if (object.contains("static_groups"))
        rule.staticGroups = fieldAs<bool>(object, "static_groups", source);
    if (object.contains("fp16_scale"))
        rule.fp16Scale = fieldAs<bool>(object, "fp16_scale", source);
    if (object.contains("signed_scale"))
        rule.signedScale = fieldAs<bool>(object, "signed_scale", source);
    if (object.contains("blocksize")) {
        rule.blocksize = integerField(object, "blocksize", source, 1, int64_t(1) << 31);
    }
    if (object.contains("damp")) {
        const double d = fieldAs<double>(object, "damp", source);
        if (!(d > 0.0 && d < 1e6))
            throw InputError(source + ": damp must be positive");
        rule.damp = d;
    }
    return rule;
}

void applyRule(LayerPlan& plan, const RecipeRule& rule)
{
    // Later rules override earlier ones (README): a rule that asks for compression — a method,
    // a sparsity, an N:M pattern or a bit-width — compresses a layer an earlier rule made dense
    // (with the method in effect before it); the other fields only adjust the settings.
    if (rule.dense)
        plan.dense = *rule.dense;
    else if (rule.sparsity || rule.nm || rule.bits)
        plan.dense = false;
    if (rule.method) {
        plan.options.method = *rule.method;
        if (*rule.method == solve::Method::Rtn && !rule.sparsity && !rule.nm) {
            plan.options.sparsity = 0.0; // rtn prunes nothing
            plan.options.nmN = plan.options.nmM = 0;
        }
    }
    if (rule.sparsity) {
        plan.options.sparsity = *rule.sparsity;
        // An explicit sparsity means unstructured unless this same rule also sets nm.
        if (!rule.nm) {
            plan.options.nmN = 0;
            plan.options.nmM = 0;
        }
    }
    if (rule.nm) {
        plan.options.nmN = rule.nm->first;
        plan.options.nmM = rule.nm->second;
    }
    if (rule.bits)
        plan.options.quant.bits = *rule.bits;
    if (rule.group)
        plan.options.quant.groupSize = *rule.group;
    if (rule.sym)
        plan.options.quant.symmetric = *rule.sym;
    if (rule.actOrder)
        plan.options.quant.actOrder = *rule.actOrder;
    if (rule.staticGroups)
        plan.options.quant.staticGroups = *rule.staticGroups;
    if (rule.fp16Scale)
        plan.options.quant.fp16Scale = *rule.fp16Scale;
    if (rule.signedScale)
        plan.options.quant.signedScale = *rule.signedScale;
    if (rule.blocksize)
        plan.options.blocksize = *rule.blocksize;
    if (rule.damp)
        plan.options.damp = *rule.damp;
}

json ruleToJson(const LayerPlan& plan)
{
    json j;
    j["method"] = plan.dense ? std::string("dense") : solve::methodName(plan.options.method);
    j["sparsity"] = plan.options.sparsity;
    j["nm"] = plan.options.structured()
                  ? json(std::to_string(plan.options.nmN) + ":" + std::to_string(plan.options.nmM))
                  : json(nullptr);
    j["bits"] = plan.options.quant.bits;
    j["group"] = plan.options.quant.groupSize;
    j["sym"] = plan.options.quant.symmetric;
    j["act_order"] = plan.options.quant.actOrder;
    j["static_groups"] = plan.options.quant.staticGroups;
    j["fp16_scale"] = plan.options.quant.fp16Scale;
    j["signed_scale"] = plan.options.quant.signedScale;
    j["blocksize"] = plan.options.blocksize;
    j["damp"] = plan.options.damp;
    return j;
}

} // namespace

LayerPlan Recipe::planFor(const std::string& layerName) const
{
    LayerPlan plan = defaults;
    for (const auto& rule : rules)
        if (globMatch(rule.pattern, layerName))
            applyRule(plan, rule);
    return plan;
}

void Recipe::validate(const std::vector<std::string>& layerNames, const std::string& source,
                      const std::vector<int64_t>& layerCols) const
{
    for (const auto& rule : rules) {
        bool any = false;
        for (const auto& name : layerNames)
            any = any || globMatch(rule.pattern, name);
        if (!any)
            throw InputError(source + ": pattern '" + rule.pattern + "' matches no linear layer of the model");
    }
    for (size_t i = 0; i < layerNames.size(); ++i) {
        const LayerPlan plan = planFor(layerNames[i]);
        if (plan.dense)
            continue;
        try {
            plan.options.validate(i < layerCols.size() ? layerCols[i] : 0);
        } catch (const InputError& e) {
            throw InputError(source + ": layer " + layerNames[i] + ": " + e.what());
        }
    }
}

json Recipe::toJson() const
{
    json j;
    j["defaults"] = ruleToJson(defaults);
    j["layers"] = json::array();
    for (const auto& rule : rules) {
        json r;
        r["pattern"] = rule.pattern;
        if (rule.dense && *rule.dense)
            r["method"] = "dense";
        else if (rule.method)
            r["method"] = solve::methodName(*rule.method);
        if (rule.sparsity)
            r["sparsity"] = *rule.sparsity;
        if (rule.nm)
            r["nm"] = rule.nm->second > 0 ? json(std::to_string(rule.nm->first) + ":" + std::to_string(rule.nm->second))
                                          : json(nullptr);
        if (rule.bits)
            r["bits"] = *rule.bits;
        if (rule.group)
            r["group"] = *rule.group;
        if (rule.sym)
            r["sym"] = *rule.sym;
        if (rule.actOrder)
            r["act_order"] = *rule.actOrder;
        if (rule.staticGroups)
            r["static_groups"] = *rule.staticGroups;
        if (rule.fp16Scale)
            r["fp16_scale"] = *rule.fp16Scale;
        if (rule.signedScale)
            r["signed_scale"] = *rule.signedScale;
        if (rule.blocksize)
            r["blocksize"] = *rule.blocksize;
        if (rule.damp)
            r["damp"] = *rule.damp;
        j["layers"].push_back(r);
    }
    return j;
}

Recipe Recipe::fromJson(const json& j, const std::string& source)
{
    if (!j.is_object())
        throw InputError(source + ": a recipe must be a JSON object with 'defaults' and 'layers'");
    for (const auto& [key, value] : j.items())
        if (key != "defaults" && key != "layers")
            throw InputError(source + ": unknown field '" + key + "'");
    Recipe recipe;
    if (j.contains("defaults"))
        applyRule(recipe.defaults, parseRule(j.at("defaults"), source, true));
    if (j.contains("layers")) {
        if (!j.at("layers").is_array())
            throw InputError(source + ": 'layers' must be an array of rules");
        for (const auto& rule : j.at("layers"))
            recipe.rules.push_back(parseRule(rule, source, false));
    }
    return recipe;
}

Recipe Recipe::load(const std::filesystem::path& file)
{
    return fromJson(readJsonFile(file), file.string());
}

void Recipe::save(const std::filesystem::path& file) const
{
    writeFileAtomically(file, toJson().dump(2) + "\n");
}

json quantGridJson(const solve::SolverOptions& options, bool dense)
{
    const solve::QuantOptions& q = options.quant;
    if (dense || !q.enabled())
        return nullptr;
    return {{"bits", q.bits},
            {"group", q.groupSize},
            {"sym", q.symmetric},
            {"act_order", q.actOrder},
            {"static_groups", q.staticGroups},
            {"fp16_scale", q.fp16Scale},
            {"signed_scale", q.signedScale},
            {"rounding", options.method == solve::Method::SparseGpt ? "gptq" : "nearest"},
            {"zero", q.symmetric ? "2^(bits-1)" : "per group"}};
}

} // namespace sparselab::pipeline
