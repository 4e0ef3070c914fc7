#include "analysis/sensitivity.h"
#include "util/json_file.h"

#include "model/causal_lm.h"
#include "pipeline/block_walker.h"
#include "pipeline/prune_pipeline.h"
#include "pipeline/recipe.h"
#include "solve/hessian_factor.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <map>

namespace sparselab::analysis {

using pipeline::BlockWalker;
using pipeline::passesLayerFilter;
using pipeline::moduleName;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double secondsSince(Clock::time_point start)
{
    return std::chrono::duration<double>(Clock::now() - start).count();
}

} // namespace

const SensitivityCell& SensitivityResult::cell(size_t layer, size_t sparsityIndex, size_t bitsIndex) const
{
    return layers.at(layer).cells.at(sparsityIndex * bits.size() + bitsIndex);
}

void validateSensitivityParams(const model::CausalLM& model, const SensitivityParams& params)
{
    if (params.sparsities.empty())
        throw optionError("--sparsities", "needs at least one level");
    for (double s : params.sparsities)
        if (!(s >= 0.0 && s < 1.0))
            throw optionError("--sparsities", "each level must lie in [0, 1), got " + std::to_string(s));
    if (params.bits.empty())
        throw optionError("--bits", "needs at least one bit-width");
    for (int b : params.bits)
        if (!(b == 16 || (b >= 2 && b <= 8)))
            throw optionError("--bits", "each bit-width must be 2..8 or 16, got " + std::to_string(b));
    if (params.base.structured())
        throw optionError("--nm", "the sensitivity scan is over unstructured sparsity levels");
    bool any = false;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b)) {
            const std::string name = moduleName(layer.name);
            if (!passesLayerFilter(params.layerFilter, name))
                continue;
            any = true;
            solve::SolverOptions options = params.base;
            options.sparsity = params.sparsities.front();
            options.quant.bits = params.bits.front();
            options.validate(layer.weight.size(1));
        }
    if (!any)
        throw optionError("--layers", "the patterns match no linear layer of the model");
}

namespace {

// The scan; `pager` is the same model when its blocks must be paged in and out (streamed).
SensitivityResult scan(const model::CausalLM& model, model::CausalLM* pager, const data::CalibrationWindows& windows,
                       const SensitivityParams& params, const ProgressCallback& progress, const CancelToken* cancel)
{
    torch::NoGradGuard noGrad;
    const auto started = Clock::now();
    if (windows.nsamples < 1 || int64_t(windows.ids.size()) != windows.nsamples * windows.seqlen)
        throw std::invalid_argument("scanSensitivity: malformed calibration windows");
    model::requireWindowFits(model.config(), windows.seqlen);
    validateSensitivityParams(model, params);

    SensitivityResult result;
    result.sparsities = params.sparsities;
    result.bits = params.bits;
    result.base = params.base;

    int64_t linearParameters = 0;
    int64_t scanned = 0;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b)) {
            if (!passesLayerFilter(params.layerFilter, moduleName(layer.name)))
                continue;
            linearParameters += layer.weight.numel();
            ++scanned;
        }
    result.fixedParameters = model.parameterCount() - linearParameters;

    const int64_t levels = int64_t(params.sparsities.size() * params.bits.size());
    ProgressReporter reporter(progress, "sensitivity", scanned * levels);
    int64_t done = 0;
    reporter.report(0, "embedding calibration windows");

    BlockWalker walker(model, windows, params.forwardBatch, cancel);

    for (int64_t b = 0; b < model.numBlocks(); ++b) {
        if (pager) { // streamed: this block's weights in, the next one read meanwhile
            pager->materializeBlock(b);
            pager->prefetchBlock(b + 1);
        }
        const auto& layers = model.linears(b);
        std::map<std::string, solve::HessianAccumulator> hessians;
        for (const auto& layer : layers)
            if (passesLayerFilter(params.layerFilter, moduleName(layer.name)))
                hessians.emplace(layer.name, solve::HessianAccumulator(layer.weight.size(1), model.device()));

        // One dense pass over all windows: accumulates the Hessians and yields the next
        // block's inputs (the scan always propagates through the dense model).
        reporter.report(done, "block " + std::to_string(b) + ": collecting inputs");
        walker.advance(b, [&](const model::LinearLayer& layer, const torch::Tensor& x) {
            const auto it = hessians.find(layer.name);
            if (it != hessians.end())
                it->second.addSequences(x);
        });

        for (const auto& layer : layers) {
            auto found = hessians.find(layer.name);
            if (found == hessians.end())
                continue;
            const std::string name = moduleName(layer.name);
            const torch::Tensor& h = found->second.hessian(); // [cols, cols]
            const torch::Tensor dense = layer.weight.to(torch::kFloat).contiguous(); // [rows, cols]

            SensitivityLayer entry;
            entry.name = name;
            entry.kind = layer.kind;
            entry.block = b;
            entry.rows = dense.size(0);
            entry.cols = dense.size(1);
            entry.outputEnergy = solve::outputEnergy(dense, h); // once, for every level below

            const auto factorStart = Clock::now();
            const bool needsFactor = params.base.method == solve::Method::SparseGpt;
            solve::HessianFactor factor;
            if (needsFactor) {
                factor = solve::factorHessian(h, params.base.damp, cancel);
                ++result.factorizations;
                entry.dampUsed = factor.dampUsed;
                entry.deadInputs = factor.deadInputs;
            }
            entry.factorSeconds = secondsSince(factorStart);

            for (size_t si = 0; si < params.sparsities.size(); ++si)
                for (size_t bi = 0; bi < params.bits.size(); ++bi) {
                    const double sparsity = params.sparsities[si];
                    const int bits = params.bits[bi];
                    throwIfCancelled(cancel);
                    SensitivityCell cell;
                    cell.sparsity = sparsity;
                    cell.bits = bits;
                    if (sparsity == 0.0 && bits == 16) {
                        // The dense layer itself: nothing to solve, no error.
                        cell.achievedSparsity = dense.eq(0).sum().item<double>() / double(dense.numel());
                        if (params.onVariant)
                            params.onVariant(result.layers.size(), si, bi, dense);
                    } else {
                        const auto cellStart = Clock::now();
                        solve::SolverOptions options = params.base;
                        options.sparsity = sparsity;
                        options.quant.bits = bits;
                        torch::Tensor w = dense.clone();
                        const auto solved = solve::solveLayerWithFactor(w, h, factor, options, {}, cancel, entry.outputEnergy);
                        cell.achievedSparsity = solved.stats.sparsity;
                        cell.relError = solved.stats.relOutputError;
                        cell.absError = solved.stats.relOutputError * entry.outputEnergy;
                        cell.seconds = secondsSince(cellStart);
                        if (params.onVariant)
                            params.onVariant(result.layers.size(), si, bi, w);
                    }
                    entry.cells.push_back(cell);
                    reporter.report(++done, name);
                }
            hessians.erase(found); // free each Hessian once its layer is scanned
            result.layers.push_back(std::move(entry));
        }
        if (pager)
            pager->finishBlock(b); // its weights are unchanged: released again
    }
    result.seconds = secondsSince(started);
    reporter.report(done, "done");
    return result;
}

} // namespace

SensitivityResult scanSensitivity(const model::CausalLM& model, const data::CalibrationWindows& windows,
                                  const SensitivityParams& params, const Watch& watch)
{
    if (model.streamed())
        throw std::invalid_argument("scanSensitivity: a streamed model must be passed as non-const (its blocks are paged)");
    return scan(model, nullptr, windows, params, watch.progress, watch.cancel);
}

SensitivityResult scanSensitivity(model::CausalLM& model, const data::CalibrationWindows& windows,
                                  const SensitivityParams& params, const Watch& watch)
{
    return scan(model, model.streamed() ? &model : nullptr, windows, params, watch.progress, watch.cancel);
}

json SensitivityResult::toJson() const
{
    json layersJson = json::array();
    for (const auto& layer : layers) {
        json cellsJson = json::array();
        for (const auto& c : layer.cells)
            cellsJson.push_back({{"sparsity", c.sparsity},
                                 {"bits", c.bits},
                                 {"achieved_sparsity", c.achievedSparsity},
                                 {"rel_error", c.relError},
                                 {"abs_error", c.absError},
                                 {"seconds", c.seconds}});
        layersJson.push_back({{"name", layer.name},
                              {"kind", layer.kind},
                              {"block", layer.block},
                              {"rows", layer.rows},
                              {"cols", layer.cols},
                              {"output_energy", layer.outputEnergy},
                              {"factor_seconds", layer.factorSeconds},
                              {"damp_used", layer.dampUsed},
                              {"dead_inputs", layer.deadInputs},
                              {"cells", cellsJson}});
    }
    json j = {{"format", "sparselab-sensitivity"},
              {"version", 1},
              {"method", solve::methodName(base.method)},
              {"damp", base.damp},
              {"blocksize", base.blocksize},
              {"group", base.quant.groupSize},
              {"sym", base.quant.symmetric},
              {"sparsities", sparsities},
              {"bits", bits},
              {"fixed_parameters", fixedParameters},
              {"seconds", seconds},
              {"factorizations", factorizations},
              {"layers", layersJson}};
    for (const auto& [key, value] : provenance.items())
        j[key] = value;
    return j;
}

SensitivityResult SensitivityResult::fromJson(const json& j, const std::string& source)
{
    if (!j.is_object() || j.value("format", std::string()) != "sparselab-sensitivity")
        throw InputError(source + ": not a SparseLab sensitivity file (no \"format\": \"sparselab-sensitivity\")");
    if (requiredField<int>(j, "version", source) != 1)
        throw InputError(source + ": unsupported sensitivity file version");
    SensitivityResult r;
    r.base.method = solve::parseMethod(requiredField<std::string>(j, "method", source));
    r.base.damp = requiredField<double>(j, "damp", source);
    r.base.blocksize = requiredField<int64_t>(j, "blocksize", source);
    r.base.quant.groupSize = requiredField<int64_t>(j, "group", source);
    r.base.quant.symmetric = requiredField<bool>(j, "sym", source);
    r.sparsities = requiredField<std::vector<double>>(j, "sparsities", source);
    r.bits = requiredField<std::vector<int>>(j, "bits", source);
    r.fixedParameters = requiredField<int64_t>(j, "fixed_parameters", source);
    r.seconds = requiredField<double>(j, "seconds", source);
    r.factorizations = requiredField<int64_t>(j, "factorizations", source);
    if (r.sparsities.empty() || r.bits.empty())
        throw InputError(source + ": empty 'sparsities' or 'bits'");
    if (!j.contains("layers") || !j.at("layers").is_array())
        throw InputError(source + ": missing 'layers' array");
    for (const auto& l : j.at("layers")) {
        SensitivityLayer layer;
        layer.name = requiredField<std::string>(l, "name", source);
        layer.kind = requiredField<std::string>(l, "kind", source);
        layer.block = requiredField<int64_t>(l, "block", source);
        layer.rows = requiredField<int64_t>(l, "rows", source);
        layer.cols = requiredField<int64_t>(l, "cols", source);
        layer.outputEnergy = requiredField<double>(l, "output_energy", source);
        layer.factorSeconds = requiredField<double>(l, "factor_seconds", source);
        layer.dampUsed = requiredField<double>(l, "damp_used", source);
        layer.deadInputs = requiredField<int64_t>(l, "dead_inputs", source);
        if (!l.contains("cells") || !l.at("cells").is_array()
            || l.at("cells").size() != r.sparsities.size() * r.bits.size())
            throw InputError(source + ": layer '" + layer.name + "' must have |sparsities|·|bits| cells");
        size_t index = 0;
        for (const auto& c : l.at("cells")) {
            SensitivityCell cell;
            cell.sparsity = requiredField<double>(c, "sparsity", source);
            cell.bits = requiredField<int>(c, "bits", source);
            cell.achievedSparsity = requiredField<double>(c, "achieved_sparsity", source);
            cell.relError = requiredField<double>(c, "rel_error", source);
            cell.absError = requiredField<double>(c, "abs_error", source);
            cell.seconds = requiredField<double>(c, "seconds", source);
            if (cell.sparsity != r.sparsities[index / r.bits.size()] || cell.bits != r.bits[index % r.bits.size()])
                throw InputError(source + ": layer '" + layer.name + "' has its cells out of grid order");
            layer.cells.push_back(cell);
            ++index;
        }
        if (layer.rows <= 0 || layer.cols <= 0)
            throw InputError(source + ": layer '" + layer.name + "' has a non-positive shape");
        r.layers.push_back(std::move(layer));
    }
    for (const char* key : {"model", "calibration"})
        if (j.contains(key))
            r.provenance[key] = j.at(key);
    return r;
}

SensitivityResult SensitivityResult::load(const std::filesystem::path& file)
{
    return fromJson(readJsonFile(file), file.string());
}

void SensitivityResult::save(const std::filesystem::path& file) const
{
    writeFileAtomically(file, toJson().dump(1) + "\n");
}

} // namespace sparselab::analysis
