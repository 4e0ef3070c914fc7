#pragma once
// Sweeps: a grid of compression settings, each point a full prune of a fresh copy of the dense
// model (pipeline::pruneModel) followed by perplexity on the evaluation text.
//
// Grid order (the point index): for allocation in allocations, for method in methods, for group
// in groups, for bits in bits, for sparsity in sparsities —
//   index = (((a·|methods| + m)·|groups| + g)·|bits| + b)·|sparsities| + s
// (with the one allocation "uniform" this is the version-1 index, so old files keep their points).
// An allocation says how a point's sparsity is spread over its layers:
//   "uniform"   every layer of the group at the point's sparsity,
//   "owl"       OWL's per-block sparsities around it (allocation/owl.h),
//   "search"    the end-to-end search's per-layer levels at that average (allocation/search.h);
// the average linear sparsity of the group is the point's sparsity either way. The per-layer
// levels come from SweepRunParams::allocator (allocation/sweep_allocator.h); the point's method
// and bits then solve them through the real pipeline.
// A group names the layers the point compresses; the others stay dense:
//   "all"       every linear layer,
//   "attention" layers whose sub-layer kind contains "attn" (q/k/v/o, c_attn, …),
//   "mlp"       every other linear layer (gate/up/down, c_fc, fc1/fc2, …).
// Points are deterministic (same windows, same solver, one thread count aside from float
// summation order in BLAS), so a sweep can be split: shard i of N (0 <= i < N) runs the
// points with index % N == i, and mergeSweeps() of all shards equals the whole sweep.
//
// Results serialise to JSON (SweepResult::save/load, atomic):
//   {"format": "sparselab-sweep", "version": 3,
//    "settings": {"model": {"sha256": {file: hash}}, "calibration": {"sha256", "nsamples",
//                 "seqlen", "seed"}, "evaluation": {"sha256", "seqlen", "max_windows"},
//                 "base": {"damp", "blocksize", "group", "sym"}, "true_sequential": false,
//                 "paths": {"model", "calibration", "evaluation"},   (paths: not compared by merge)
//                 "allocation": {"owl": {..}, "search": {..}}},      (only with a non-uniform allocation)
//    "grid": {"allocations": [..], "methods": [..], "groups": [..], "bits": [..], "sparsities": [..]},
//    "points_total": N, "dense": {"perplexity", "model_bytes"},
//    "points": [{"index", "allocation", "method", "group", "bits", "sparsity", "perplexity",
//                "linear_sparsity", "model_bytes", "allocation_seconds", "prune_seconds", "eval_seconds",
//                "layers": [row, …]}, …]}
// where each layer row is sparselab.json's (pipeline/layer_record_json.h). Points are kept
// sorted by index. Seconds differ between runs; everything else is reproducible. Version 2
// files (layer rows of "name", "sparsity", "rel_output_error" and "loss" only) are read too,
// and version 1 files (no "allocations", no "allocation") are read as uniform.

#include "data/calibration.h"
#include "eval/perplexity.h"
#include "pipeline/prune_pipeline.h"
#include "util/progress.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::analysis {

struct SweepGrid {
    std::vector<std::string> allocations{"uniform"}; // "uniform" | "owl" | "search"
    std::vector<double> sparsities{0.5};
    std::vector<int> bits{16};
    std::vector<solve::Method> methods{solve::Method::SparseGpt};
    std::vector<std::string> groups{"all"};  // "all" | "attention" | "mlp"
    [[nodiscard]] int64_t size() const;
    [[nodiscard]] nlohmann::json toJson() const;
    static SweepGrid fromJson(const nlohmann::json& json, const std::string& source);
    // InputError naming the option ("--sparsities", "--bits", "--methods", "--groups",
    // "--allocations"), also for a point whose allocation its other axes cannot take (OWL or
    // search with a method that does not prune, search with a group other than "all").
    void validate() const;
    [[nodiscard]] bool allocatesPerLayer() const; // any allocation other than "uniform"
};

struct SweepPointSpec {
    int64_t index = 0;
    std::string allocation = "uniform";
    solve::Method method = solve::Method::SparseGpt;
    std::string group = "all";
    int bits = 16;
    double sparsity = 0.5;
};

struct SweepPoint {
    SweepPointSpec spec;
    double perplexity = 0.0;
    double linearSparsity = 0.0;  // zeros / weights over all linear layers
    int64_t modelBytes = 0;       // pipeline/size_model.h
    double allocationSeconds = 0.0; // OWL's pass or the search (0 when uniform or reused)
    double pruneSeconds = 0.0;
    double evalSeconds = 0.0;
    // The prune's per-layer records (solve/layer_record.h). Read from a version-2 file they
    // hold the name and statistics only (pipeline/layer_record_json.h).
    std::vector<solve::LayerRecord> layers;
};

struct SweepResult {
    nlohmann::json settings = nlohmann::json::object(); // provenance; must match to merge
    SweepGrid grid;
    double densePerplexity = 0.0;
    int64_t denseBytes = 0;
    std::vector<SweepPoint> points; // sorted by spec.index

    [[nodiscard]] nlohmann::json toJson() const;
    static SweepResult fromJson(const nlohmann::json& json, const std::string& source);
    static SweepResult load(const std::filesystem::path& file);
    void save(const std::filesystem::path& file) const; // atomic
    // Indices of the grid with no point yet.
    [[nodiscard]] std::vector<int64_t> missing() const;
};

// The point at `index` of the grid (0 <= index < grid.size()).
[[nodiscard]] SweepPointSpec sweepPointSpec(const SweepGrid& grid, int64_t index);
// The indices of shard `shard` of `shards`: index % shards == shard.
[[nodiscard]] std::vector<int64_t> shardIndices(const SweepGrid& grid, int64_t shard, int64_t shards);

// The prune plan of a point: `base` options (damp, blocksize, group, sym) with the point's
// method, sparsity and bits; the layers outside the point's group are filtered out (dense).
[[nodiscard]] pipeline::PruneParams sweepPointParams(const model::CausalLM& model, const SweepPointSpec& spec,
                                           const solve::SolverOptions& base, bool trueSequential);

// Layers of `group` ("all" | "attention" | "mlp"), as module names. InputError for unknown groups.
[[nodiscard]] std::vector<std::string> groupLayers(const model::CausalLM& model, const std::string& group);

// Model bytes (size model) of `model`, each linear layer priced by its plan (target sparsity or
// N:M, bits, group) rather than by the zeros it ended with; the allocators price the same way.
[[nodiscard]] int64_t modelBytesOf(const model::CausalLM& model, const pipeline::PruneResult& result);

// One point: prunes a fresh copy of `dense` (whose linear weights are cloned; `dense` is not
// modified) and measures perplexity on `evalIds`. Progress stages are the pipeline's and
// "perplexity".
struct RecipeOutcome {
    pipeline::PruneResult prune;
    eval::PerplexityResult perplexity;
    int64_t modelBytes = 0;
};
[[nodiscard]] RecipeOutcome evaluateRecipe(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                                           const std::vector<int32_t>& evalIds, const pipeline::PruneParams& params,
                                           const eval::PerplexityParams& evalParams,
                                           const ProgressCallback& progress = {}, const CancelToken* cancel = nullptr);

// The per-layer plan of a point whose allocation is not "uniform": given the point and its
// uniform recipe (defaults = the point's options), the recipe with one rule per layer.
// Progress and cancel are the sweep's. Made by allocation::sweepAllocator.
using SweepAllocator = std::function<pipeline::Recipe(const SweepPointSpec& point, const pipeline::Recipe& uniform,
                                            const ProgressCallback& progress, const CancelToken* cancel)>;

// Which points of a grid to run, and how.
struct SweepRunParams {
    SweepGrid grid;
    std::vector<int64_t> indices;        // points to run (indices into grid), any order
    solve::SolverOptions base;           // damp, blocksize, group, sym for every point
    bool trueSequential = false;
    eval::PerplexityParams evaluation;
    SweepAllocator allocator;            // required when the grid has a non-uniform allocation
};

// What a caller watches a sweep with; every member is optional.
struct SweepObserver {
    ProgressCallback progress;           // stage "sweep", and the inner stages prefixed "sweep k/n: "
    const CancelToken* cancel = nullptr;
    std::function<void(const SweepPoint&)> onPoint; // after each point (partial saves, live plots)
};

// Runs the points of `params` and returns them in index order; callbacks on this thread.
[[nodiscard]] std::vector<SweepPoint> runSweepPoints(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                                                     const std::vector<int32_t>& evalIds, const SweepRunParams& params,
                                                     const SweepObserver& observer = {});

// Merges shard results: settings, grid and dense figures must be equal (InputError naming the
// differing `sources` entry); a point present in several inputs must agree in everything but
// its timings. The result holds the union of the points, sorted by index.
[[nodiscard]] SweepResult mergeSweeps(const std::vector<SweepResult>& parts, const std::vector<std::string>& sources);

// Points on the size–perplexity Pareto frontier (no other point is both smaller-or-equal and
// lower-or-equal with one strictly better), as indices into `points`, by increasing size.
[[nodiscard]] std::vector<size_t> paretoFrontier(const std::vector<SweepPoint>& points);

} // namespace sparselab::analysis
