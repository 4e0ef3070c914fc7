#include "pipeline/layer_record_json.h"

#include "pipeline/recipe.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <tuple>

namespace sparselab::pipeline {

using nlohmann::json;

json layerRecordJson(const solve::LayerRecord& l)
{
    const auto& o = l.options;
    return {{"name", l.name},
            {"block", l.block},
            {"rows", l.rows},
            {"cols", l.cols},
            {"method", l.methodKey()},
            {"target_sparsity", l.targetSparsity()},
            {"nm", o.structured() && !l.dense ? json(std::to_string(o.nmN) + ":" + std::to_string(o.nmM)) : json(nullptr)},
            {"bits", l.bits()},
            {"quant", quantGridJson(o, l.dense)},
            {"sparsity", l.stats.sparsity},
            {"loss", l.stats.loss},
            {"rel_output_error", l.stats.relOutputError},
            {"damp_used", l.stats.dampUsed},
            {"damp_raises", l.stats.dampRaises},
            {"dead_inputs", l.stats.deadInputs},
            {"seconds", l.stats.seconds}};
}

namespace {

// row[key] as a T when present, else `fallback`.
template <typename T>
T optionalField(const json& row, const char* key, const std::string& source, T fallback)
{
    return row.contains(key) ? requiredField<T>(row, key, source) : fallback;
}

} // namespace

solve::LayerRecord layerRecordFromJson(const json& row, const std::string& source)
{
    if (!row.is_object())
        throw InputError(source + ": a layer row must be an object");
    solve::LayerRecord l;
    l.name = requiredField<std::string>(row, "name", source);
    l.stats.sparsity = requiredField<double>(row, "sparsity", source);
    l.stats.loss = requiredField<double>(row, "loss", source);
    l.stats.relOutputError = requiredField<double>(row, "rel_output_error", source);
    l.stats.dampUsed = optionalField<double>(row, "damp_used", source, 0.0);
    l.stats.dampRaises = optionalField<int>(row, "damp_raises", source, 0);
    l.stats.deadInputs = optionalField<int64_t>(row, "dead_inputs", source, 0);
    l.stats.seconds = optionalField<double>(row, "seconds", source, 0.0);
    l.block = optionalField<int64_t>(row, "block", source, 0);
    l.rows = optionalField<int64_t>(row, "rows", source, 0);
    l.cols = optionalField<int64_t>(row, "cols", source, 0);
    if (!row.contains("method"))
        return l; // a version-2 sweep row: statistics only
    const std::string method = requiredField<std::string>(row, "method", source);
    solve::SolverOptions options;
    l.dense = method == "dense";
    if (!l.dense) {
        options.method = solve::parseMethod(method);
        options.sparsity = requiredField<double>(row, "target_sparsity", source);
        if (row.contains("nm") && !row.at("nm").is_null()) {
            try {
                std::tie(options.nmN, options.nmM) = parseNm(requiredField<std::string>(row, "nm", source), "nm");
            } catch (const InputError& e) {
                throw InputError(source + ": " + e.what());
            }
        }
        if (row.contains("quant") && !row.at("quant").is_null()) {
            const json& q = row.at("quant");
            options.quant.bits = requiredField<int>(q, "bits", source);
            options.quant.groupSize = requiredField<int64_t>(q, "group", source);
            options.quant.symmetric = requiredField<bool>(q, "sym", source);
            options.quant.actOrder = requiredField<bool>(q, "act_order", source);
            options.quant.staticGroups = requiredField<bool>(q, "static_groups", source);
            options.quant.fp16Scale = requiredField<bool>(q, "fp16_scale", source);
            options.quant.signedScale = requiredField<bool>(q, "signed_scale", source);
        }
    }
    l.options = solve::recordedOptions(options, l.dense);
    return l;
}

} // namespace sparselab::pipeline
