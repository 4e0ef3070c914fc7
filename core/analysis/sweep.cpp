#include "analysis/sweep.h"
#include "util/json_file.h"

#include "model/causal_lm.h"
#include "pipeline/layer_record_json.h"
#include "analysis/size_model.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <set>

namespace sparselab::analysis {

using pipeline::PruneObserver;
using pipeline::PruneParams;
using pipeline::PruneResult;
using pipeline::moduleName;
using pipeline::pruneModel;
using nlohmann::json;

namespace {

const std::set<std::string> kGroups = {"all", "attention", "mlp"};
const std::set<std::string> kAllocations = {"uniform", "owl", "search"};

json pointToJson(const SweepPoint& p)
{
    json layers = json::array();
    for (const auto& l : p.layers)
        layers.push_back(pipeline::layerRecordJson(l));
    return {{"index", p.spec.index},
            {"allocation", p.spec.allocation},
            {"method", solve::methodName(p.spec.method)},
            {"group", p.spec.group},
            {"bits", p.spec.bits},
            {"sparsity", p.spec.sparsity},
            {"perplexity", p.perplexity},
            {"linear_sparsity", p.linearSparsity},
            {"model_bytes", p.modelBytes},
            {"allocation_seconds", p.allocationSeconds},
            {"prune_seconds", p.pruneSeconds},
            {"eval_seconds", p.evalSeconds},
            {"layers", layers}};
}

SweepPoint pointFromJson(const json& j, const std::string& source)
{
    SweepPoint p;
    p.spec.index = requiredField<int64_t>(j, "index", source);
    p.spec.allocation = j.contains("allocation") ? requiredField<std::string>(j, "allocation", source) : "uniform";
    p.spec.method = solve::parseMethod(requiredField<std::string>(j, "method", source));
    p.spec.group = requiredField<std::string>(j, "group", source);
    p.spec.bits = requiredField<int>(j, "bits", source);
    p.spec.sparsity = requiredField<double>(j, "sparsity", source);
    p.perplexity = requiredField<double>(j, "perplexity", source);
    p.linearSparsity = requiredField<double>(j, "linear_sparsity", source);
    p.modelBytes = requiredField<int64_t>(j, "model_bytes", source);
    p.allocationSeconds = j.contains("allocation_seconds") ? requiredField<double>(j, "allocation_seconds", source) : 0.0;
    p.pruneSeconds = requiredField<double>(j, "prune_seconds", source);
    p.evalSeconds = requiredField<double>(j, "eval_seconds", source);
    if (j.contains("layers")) {
        if (!j.at("layers").is_array())
            throw InputError(source + ": a point's 'layers' must be an array");
        for (const auto& l : j.at("layers"))
            p.layers.push_back(pipeline::layerRecordFromJson(l, source));
    }
    return p;
}

// Everything but the timings (the point's and its layers').
bool samePoint(const SweepPoint& a, const SweepPoint& b)
{
    json ja = pointToJson(a), jb = pointToJson(b);
    for (auto* j : {&ja, &jb}) {
        j->erase("allocation_seconds");
        j->erase("prune_seconds");
        j->erase("eval_seconds");
        for (auto& layer : (*j)["layers"])
            layer.erase("seconds");
    }
    return ja == jb;
}

} // namespace

int64_t SweepGrid::size() const
{
    return int64_t(allocations.size() * methods.size() * groups.size() * bits.size() * sparsities.size());
}

bool SweepGrid::allocatesPerLayer() const
{
    return std::any_of(allocations.begin(), allocations.end(), [](const std::string& a) { return a != "uniform"; });
}

void SweepGrid::validate() const
{
    if (sparsities.empty())
        throw optionError("--sparsities", "needs at least one level");
    for (double s : sparsities)
        if (!(s >= 0.0 && s < 1.0))
            throw optionError("--sparsities", "each level must lie in [0, 1), got " + std::to_string(s));
    if (bits.empty())
        throw optionError("--bits", "needs at least one bit-width");
    for (int b : bits)
        if (!(b == 16 || (b >= 2 && b <= 8)))
            throw optionError("--bits", "each bit-width must be 2..8 or 16, got " + std::to_string(b));
    if (methods.empty())
        throw optionError("--methods", "needs at least one method");
    if (groups.empty())
        throw optionError("--groups", "needs at least one group");
    for (const auto& g : groups)
        if (!kGroups.count(g))
            throw optionError("--groups", "unknown group '" + g + "' (all, attention, mlp)");
    if (allocations.empty())
        throw optionError("--allocations", "needs at least one allocation");
    for (const auto& a : allocations)
        if (!kAllocations.count(a))
            throw optionError("--allocations", "unknown allocation '" + a + "' (uniform, owl, search)");
    if (!allocatesPerLayer())
        return;
    // Every grid point is run, so a combination an allocation cannot take is refused up front.
    for (auto m : methods)
        if (m == solve::Method::Rtn)
            throw optionError("--allocations", "owl and search spread sparsity over layers: the method 'rtn' "
                                               "does not prune (sweep it in a grid of its own)");
    if (std::count(allocations.begin(), allocations.end(), "search") && groups != std::vector<std::string>{"all"})
        throw optionError("--allocations", "the search allocates over every linear layer: use it with --groups all");
    for (double s : sparsities)
        if (s <= 0.0)
            throw optionError("--allocations", "owl and search spread a sparsity above 0 over layers: drop level 0 "
                                               "from --sparsities (or sweep it in a grid of its own)");
}

json SweepGrid::toJson() const
{
    std::vector<std::string> names;
    for (auto m : methods)
        names.push_back(solve::methodName(m));
    return {{"allocations", allocations}, {"methods", names}, {"groups", groups}, {"bits", bits}, {"sparsities", sparsities}};
}

SweepGrid SweepGrid::fromJson(const json& j, const std::string& source)
{
    SweepGrid g;
    if (j.contains("allocations"))
        g.allocations = requiredField<std::vector<std::string>>(j, "allocations", source);
    g.methods.clear();
    for (const auto& name : requiredField<std::vector<std::string>>(j, "methods", source))
        g.methods.push_back(solve::parseMethod(name));
    g.groups = requiredField<std::vector<std::string>>(j, "groups", source);
    g.bits = requiredField<std::vector<int>>(j, "bits", source);
    g.sparsities = requiredField<std::vector<double>>(j, "sparsities", source);
    try {
        g.validate();
    } catch (const InputError& e) {
        throw InputError(source + ": grid: " + e.what());
    }
    return g;
}

SweepPointSpec sweepPointSpec(const SweepGrid& grid, int64_t index)
{
    if (index < 0 || index >= grid.size())
        throw std::out_of_range("sweepPointSpec: index outside the grid");
    SweepPointSpec spec;
    spec.index = index;
    int64_t rest = index;
    const auto s = size_t(rest % int64_t(grid.sparsities.size()));
    rest /= int64_t(grid.sparsities.size());
    const auto b = size_t(rest % int64_t(grid.bits.size()));
    rest /= int64_t(grid.bits.size());
    const auto g = size_t(rest % int64_t(grid.groups.size()));
    rest /= int64_t(grid.groups.size());
    const auto m = size_t(rest % int64_t(grid.methods.size()));
    rest /= int64_t(grid.methods.size());
    spec.sparsity = grid.sparsities[s];
    spec.bits = grid.bits[b];
    spec.group = grid.groups[g];
    spec.method = grid.methods[m];
    spec.allocation = grid.allocations[size_t(rest)];
    return spec;
}

std::vector<int64_t> shardIndices(const SweepGrid& grid, int64_t shard, int64_t shards)
{
    if (shards < 1 || shard < 0 || shard >= shards)
        throw optionError("--shard", "expects i/N with 0 <= i < N");
    std::vector<int64_t> indices;
    for (int64_t i = shard; i < grid.size(); i += shards)
        indices.push_back(i);
    return indices;
}

std::vector<std::string> groupLayers(const model::CausalLM& model, const std::string& group)
{
    if (!kGroups.count(group))
        throw optionError("--groups", "unknown group '" + group + "' (all, attention, mlp)");
    std::vector<std::string> names;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b)) {
            const bool attention = layer.kind.find("attn") != std::string::npos;
            if (group == "all" || (group == "attention") == attention)
                names.push_back(moduleName(layer.name));
        }
    return names;
}

PruneParams sweepPointParams(const model::CausalLM& model, const SweepPointSpec& spec,
                             const solve::SolverOptions& base, bool trueSequential)
{
    PruneParams params;
    params.recipe.defaults.options = base;
    params.recipe.defaults.options.method = spec.method;
    params.recipe.defaults.options.sparsity = spec.sparsity;
    params.recipe.defaults.options.nmN = 0;
    params.recipe.defaults.options.nmM = 0;
    params.recipe.defaults.options.quant.bits = spec.bits;
    params.recipeSource = "sweep point " + std::to_string(spec.index);
    params.trueSequential = trueSequential;
    if (spec.group != "all") {
        params.layerFilter = groupLayers(model, spec.group);
        if (params.layerFilter.empty())
            throw optionError("--groups", "group '" + spec.group + "' has no layers in this model");
    }
    return params;
}

int64_t modelBytesOf(const model::CausalLM& model, const PruneResult& result)
{
    // Priced by the plan — the layout a layer is stored in — not by every zero the solver left:
    // a layer quantized without pruning stores no mask even where values round to exactly 0
    // (pricing those as sparse added a mask per layer, 2.7 % over a bytes budget on the demo),
    // and the allocators (DP, search) price the same way.
    int64_t linear = 0, bytes = 0;
    for (const auto& layer : result.layers) {
        linear += layer.rows * layer.cols;
        const auto& o = layer.options;
        const double planned = o.method == solve::Method::Rtn ? 0.0
                               : o.structured()               ? double(o.nmN) / double(o.nmM)
                                                              : o.sparsity;
        bytes += layer.dense ? linearLayerBytes(layer.rows, layer.cols, 0.0, 16)
                             : linearLayerBytes(layer.rows, layer.cols, planned, o.quant.bits, o.quant.groupSize);
    }
    return bytes + fixedParameterBytes(model.parameterCount() - linear);
}

RecipeOutcome evaluateRecipe(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                             const std::vector<int32_t>& evalIds, const PruneParams& params,
                             const eval::PerplexityParams& evalParams, const ProgressCallback& progress,
                             const CancelToken* cancel)
{
    torch::NoGradGuard noGrad;
    // A private copy: it shares the never-pruned tensors (embeddings, norms, head) and owns
    // fresh linear weights. CausalLM reads linear weights from its LinearLayer entries at run
    // time (see causal_lm.cpp), so replacing them in the copy leaves `dense` untouched.
    model::CausalLM copy(dense);
    for (model::LinearLayer* layer : copy.allLinears())
        layer->weight = layer->weight.clone();
    RecipeOutcome outcome;
    PruneObserver observer;
    observer.progress = progress;
    observer.cancel = cancel;
    outcome.prune = pruneModel(copy, windows, params, observer);
    outcome.perplexity = eval::evaluatePerplexity(copy, evalIds, evalParams, progress, cancel);
    outcome.modelBytes = modelBytesOf(copy, outcome.prune);
    return outcome;
}

std::vector<SweepPoint> runSweepPoints(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                                       const std::vector<int32_t>& evalIds, const SweepRunParams& run,
                                       const SweepObserver& observer)
{
    const SweepGrid& grid = run.grid;
    const std::vector<int64_t>& indices = run.indices;
    const solve::SolverOptions& base = run.base;
    const bool trueSequential = run.trueSequential;
    const eval::PerplexityParams& evalParams = run.evaluation;
    const ProgressCallback& progress = observer.progress;
    const CancelToken* cancel = observer.cancel;
    const std::function<void(const SweepPoint&)>& onPoint = observer.onPoint;
    grid.validate();
    if (grid.allocatesPerLayer() && !run.allocator)
        throw std::logic_error("runSweepPoints: a grid with per-layer allocations needs SweepRunParams::allocator");
    std::vector<int64_t> sorted = indices;
    std::sort(sorted.begin(), sorted.end());
    ProgressReporter reporter(progress, "sweep", int64_t(sorted.size()));
    std::vector<SweepPoint> points;
    for (size_t k = 0; k < sorted.size(); ++k) {
        throwIfCancelled(cancel);
        const SweepPointSpec spec = sweepPointSpec(grid, sorted[k]);
        const std::string label = (spec.allocation == "uniform" ? std::string() : spec.allocation + " ")
            + solve::methodName(spec.method) + " " + spec.group + " s=" + std::to_string(spec.sparsity)
            + " b=" + std::to_string(spec.bits);
        reporter.report(int64_t(k), label);
        // Inner stages are forwarded with the sweep's own position, so a front end sees one bar.
        ProgressCallback inner;
        if (progress)
            inner = [&](const Progress& p) {
                Progress outer = p;
                outer.stage = "sweep " + std::to_string(k + 1) + "/" + std::to_string(sorted.size()) + ": " + p.stage;
                progress(outer);
            };
        auto params = sweepPointParams(dense, spec, base, trueSequential);
        double allocationSeconds = 0.0;
        if (spec.allocation != "uniform") {
            const auto start = std::chrono::steady_clock::now();
            params.recipe = run.allocator(spec, params.recipe, inner, cancel);
            params.recipeSource = "sweep point " + std::to_string(spec.index) + " (" + spec.allocation + ")";
            allocationSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        }
        const auto outcome = evaluateRecipe(dense, windows, evalIds, params, evalParams, inner, cancel);
        SweepPoint point;
        point.spec = spec;
        point.allocationSeconds = allocationSeconds;
        point.perplexity = outcome.perplexity.perplexity;
        point.linearSparsity = outcome.prune.linearSparsity();
        point.modelBytes = outcome.modelBytes;
        point.pruneSeconds = outcome.prune.seconds;
        point.evalSeconds = outcome.perplexity.seconds;
        point.layers = outcome.prune.layers;
        if (onPoint)
            onPoint(point);
        points.push_back(std::move(point));
        reporter.report(int64_t(k + 1), label);
    }
    return points;
}

json SweepResult::toJson() const
{
    json pts = json::array();
    for (const auto& p : points)
        pts.push_back(pointToJson(p));
    return {{"format", "sparselab-sweep"},
            {"version", 3},
            {"settings", settings},
            {"grid", grid.toJson()},
            {"points_total", grid.size()},
            {"dense", {{"perplexity", densePerplexity}, {"model_bytes", denseBytes}}},
            {"points", pts}};
}

SweepResult SweepResult::fromJson(const json& j, const std::string& source)
{
    if (!j.is_object() || j.value("format", std::string()) != "sparselab-sweep")
        throw InputError(source + ": not a SparseLab sweep file (no \"format\": \"sparselab-sweep\")");
    const int version = requiredField<int>(j, "version", source);
    if (version < 1 || version > 3)
        throw InputError(source + ": unsupported sweep file version " + std::to_string(version)
                         + " (this SparseLab reads 1 to 3)");
    SweepResult r;
    r.settings = j.contains("settings") ? j.at("settings") : json::object();
    if (!j.contains("grid"))
        throw InputError(source + ": missing field 'grid'");
    r.grid = SweepGrid::fromJson(j.at("grid"), source);
    const json dense = j.contains("dense") ? j.at("dense") : json();
    r.densePerplexity = requiredField<double>(dense, "perplexity", source);
    r.denseBytes = requiredField<int64_t>(dense, "model_bytes", source);
    if (!j.contains("points") || !j.at("points").is_array())
        throw InputError(source + ": missing 'points' array");
    std::set<int64_t> seen;
    for (const auto& p : j.at("points")) {
        SweepPoint point = pointFromJson(p, source);
        if (point.spec.index < 0 || point.spec.index >= r.grid.size())
            throw InputError(source + ": point index " + std::to_string(point.spec.index) + " lies outside the grid");
        const SweepPointSpec expected = sweepPointSpec(r.grid, point.spec.index);
        if (expected.allocation != point.spec.allocation || expected.method != point.spec.method
            || expected.group != point.spec.group
            || expected.bits != point.spec.bits || expected.sparsity != point.spec.sparsity)
            throw InputError(source + ": point " + std::to_string(point.spec.index) + " does not match the grid");
        if (!seen.insert(point.spec.index).second)
            throw InputError(source + ": point " + std::to_string(point.spec.index) + " appears twice");
        r.points.push_back(std::move(point));
    }
    std::sort(r.points.begin(), r.points.end(),
              [](const SweepPoint& a, const SweepPoint& b) { return a.spec.index < b.spec.index; });
    return r;
}

SweepResult SweepResult::load(const std::filesystem::path& file)
{
    return fromJson(readJsonFile(file), file.string());
}

void SweepResult::save(const std::filesystem::path& file) const
{
    writeFileAtomically(file, toJson().dump(1) + "\n");
}

std::vector<int64_t> SweepResult::missing() const
{
    std::set<int64_t> have;
    for (const auto& p : points)
        have.insert(p.spec.index);
    std::vector<int64_t> out;
    for (int64_t i = 0; i < grid.size(); ++i)
        if (!have.count(i))
            out.push_back(i);
    return out;
}

SweepResult mergeSweeps(const std::vector<SweepResult>& parts, const std::vector<std::string>& sources)
{
    if (parts.empty())
        throw InputError("merge: no inputs");
    SweepResult merged;
    merged.settings = parts.front().settings;
    merged.grid = parts.front().grid;
    merged.densePerplexity = parts.front().densePerplexity;
    merged.denseBytes = parts.front().denseBytes;
    std::map<int64_t, std::pair<SweepPoint, size_t>> byIndex;
    for (size_t k = 0; k < parts.size(); ++k) {
        const auto& part = parts[k];
        const std::string& source = k < sources.size() ? sources[k] : std::string("input ") + std::to_string(k + 1);
        // Paths may differ between cluster nodes; what they point to (hashes, options) may not.
        json a = part.settings, b = merged.settings;
        a.erase("paths");
        b.erase("paths");
        if (a != b)
            throw InputError(source + ": its settings (model, texts or solver options) differ from "
                             + (sources.empty() ? std::string("the first input") : sources.front()));
        if (part.grid.toJson() != merged.grid.toJson())
            throw InputError(source + ": its grid differs from " + (sources.empty() ? std::string("the first input") : sources.front()));
        if (part.densePerplexity != merged.densePerplexity || part.denseBytes != merged.denseBytes)
            throw InputError(source + ": its dense perplexity differs from the first input's");
        for (const auto& point : part.points) {
            const auto found = byIndex.find(point.spec.index);
            if (found == byIndex.end()) {
                byIndex.emplace(point.spec.index, std::make_pair(point, k));
            } else if (!samePoint(found->second.first, point)) {
                throw InputError(source + ": point " + std::to_string(point.spec.index) + " disagrees with "
                                 + (found->second.second < sources.size() ? sources[found->second.second] : "another input"));
            }
        }
    }
    for (auto& [index, entry] : byIndex)
        merged.points.push_back(entry.first);
    return merged;
}

std::vector<size_t> paretoFrontier(const std::vector<SweepPoint>& points)
{
    std::vector<size_t> order(points.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    // By size, then perplexity: a point is on the frontier when its perplexity is below every
    // smaller-or-equal point's.
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (points[a].modelBytes != points[b].modelBytes)
            return points[a].modelBytes < points[b].modelBytes;
        return points[a].perplexity < points[b].perplexity;
    });
    std::vector<size_t> frontier;
    double bestPerplexity = std::numeric_limits<double>::infinity();
    for (size_t i : order)
        if (points[i].perplexity < bestPerplexity) {
            frontier.push_back(i);
            bestPerplexity = points[i].perplexity;
        }
    return frontier;
}

} // namespace sparselab::analysis
