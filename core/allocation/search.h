#pragma once
// End-to-end allocation search (after EvoPress, Sieberling et al., 2024): per-layer sparsity
// levels chosen by an evolutionary search whose fitness is the whole model's output, not a sum
// of per-layer errors.
//
// 1. Database. Every linear layer is solved once at every level of its grid by the sensitivity
//    scan (pipeline/sensitivity.h: one dense pass, one Hessian factorisation per layer shared
//    by all its levels); the solved weights are kept. Level k of a layer has sparsity
//    S + k·step for k = −K … K, within [0, maxSparsity] — one grid for every layer.
// 2. Fitness of a candidate (one level per layer): the stitched model — the dense model with
//    each layer's weight replaced by its database variant, nothing re-solved — run over
//    calibration windows; fitness = KL(p_dense ‖ p_stitched) per position, averaged
//    (recovery::distillationLoss, the dense log-probabilities computed once). Lower is better.
// 3. Search, (1 + λ) with multi-step selection: each generation makes λ offspring of the
//    parent, each by 1 … maxMutations level switches; all offspring are scored on the first
//    fitnessWindows/4 windows, the best `survivors` on all fitnessWindows, and the best of
//    those replaces the parent if it is better there. The parent starts uniform (k = 0 for all).
//
// The budget is exact. A level switch raises one layer by a step and lowers another layer of
// the same number of weights by a step, so Σ_layers weights·sparsity — the average linear
// sparsity — stays S at every step. Layers group by size (in Llama models q/o, k/v and
// gate/up/down, across all blocks). Groups whose sizes are whole multiples (n_big = r·n_small,
// r ≤ 8; e.g. q against k/v with 4 KV heads of 8, or an MLP of 3× hidden against q) also trade:
// one layer of the bigger group a step one way against r steps of the smaller group's layers
// the other way, still exact. Half the switches are within a group, half across such a link.
// Sizes with no such ratio never trade (with a discrete database an exact trade between,
// e.g., a 64×64 and a 64×172 layer does not exist).
//
// A bytes budget (budgetBytes > 0) searches sparsity and bits together: a level is a pair
// (sparsity 0, step, 2·step … ≤ maxSparsity; bits from `bits`, e.g. 16, 8, 4), a layer's size
// is the size model's (pipeline/size_model.h, the one the DP allocator and the exports'
// reports use; every other parameter at fp16), and the whole model must stay ≤ budgetBytes:
// a candidate over it is never made. The start is the best uniform level that fits (every
// layer at the same pair, the least KL); a mutation moves one layer a step towards less
// compression (sparsity down or bits up) and another a step towards more, or one layer a step
// either way, whenever the result fits.
//
// Deterministic: the same seed, windows and thread count give the same levels (the random
// choices are drawn from mt19937_64 without library distributions).
// Stops after `generations`, after `timeLimitSeconds`, on `stop` (keeps the best so far), or
// throws CancelledError on cancel. Progress: stage "variants" per (layer, level) solved, then
// "search" per generation.
//
// The levels it finds are written as a recipe (searchRecipe) and the model is always made by
// the real sequential pipeline from that recipe (prune --recipe), never by stitching.

#include "data/calibration.h"
#include "pipeline/recipe.h"
#include "analysis/sensitivity.h"
#include "solve/solver.h"
#include "util/progress.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::allocation {

struct SearchParams {
    double targetSparsity = 0.5;    // S: the average linear sparsity, exact (sparsity budget)
    int64_t budgetBytes = 0;        // > 0: a bytes budget for the whole model instead of S
    std::vector<int> bits{16};      // bit-widths of a bytes budget's levels (16, or 2…8)
    double levelStep = 0.05;        // sparsity between neighbouring levels
    int levelsEachSide = 6;         // K: levels S − K·step … S + K·step (clipped to [0, maxSparsity])
    double maxSparsity = 0.95;      // no layer above this
    int64_t generations = 200;
    int64_t offspring = 16;         // λ
    int64_t survivors = 4;          // offspring scored on all fitness windows
    int64_t maxMutations = 3;       // level switches per offspring: 1 … this
    int64_t fitnessWindows = 32;    // the first calibration windows; a quarter in the first stage
    double timeLimitSeconds = 0.0;  // 0 = none
    uint64_t seed = 0;
    solve::SolverOptions base;      // SparseGPT options of every variant (sparsity ignored)
    int64_t forwardBatch = 8;
    int64_t maxDatabaseBytes = int64_t(4) << 30; // refused above this, before any work
    // InputError naming the CLI option for a value out of range.
    void validate() const;
    // A bytes budget with the levels both front ends default to: sparsity 0 … 0.9 by 0.1 ×
    // 16, 8 and 4 bits.
    [[nodiscard]] static SearchParams forBudgetBytes(int64_t bytes);
};

struct SearchLayer {
    std::string name;               // module name
    std::string kind;
    int64_t block = 0;
    int64_t weights = 0;            // rows × cols
    int64_t group = 0;              // layers of one group have the same number of weights
};

struct SearchGeneration {
    int64_t generation = 0;         // 0 = the uniform start
    double bestFitness = 0.0;       // the parent's fitness on all fitness windows
    int64_t evaluations = 0;        // window forward passes so far
    double seconds = 0.0;           // since the search began (database excluded)
    bool improved = false;          // the parent changed in this generation (0: the start)
    std::vector<double> sparsity;   // the parent's per layer (SearchResult::layers' order)
};

struct SearchResult {
    std::vector<SearchLayer> layers;        // every linear layer, block by block
    std::vector<double> levelSparsity;      // the grid (sparsity budget: ascending)
    std::vector<int> levelBits;             // the level's bits (16 with a sparsity budget)
    std::vector<int> chosenLevel;           // per layer, index into levelSparsity / levelBits
    std::vector<double> sparsity;           // per layer, levelSparsity[chosenLevel]
    std::vector<int> bits;                  // per layer, levelBits[chosenLevel]
    double averageSparsity = 0.0;           // weighted by weights (= S with a sparsity budget)
    int64_t modelBytes = 0;                 // the size model's bytes of the levels found
    int uniformLevel = 0;                   // the start: every layer at this level
    int64_t uniformBytes = 0;               // the size model's bytes of the start
    double uniformFitness = 0.0;            // KL of the uniform candidate
    double bestFitness = 0.0;               // KL of the levels found
    std::vector<SearchGeneration> history;
    int64_t generationsRun = 0;
    std::string stoppedBy;                  // "generations", "time", "stop"
    int64_t databaseBytes = 0;
    double databaseSeconds = 0.0, searchSeconds = 0.0;
    // The scan that made the database: every layer's reconstruction error at every level, the
    // DP allocator's input (pipeline/allocator.h), for comparisons.
    analysis::SensitivityResult scan;
};

struct SearchObserver {
    ProgressCallback progress;
    const CancelToken* cancel = nullptr;
    const CancelToken* stop = nullptr;      // end the search now, keep the best so far
    std::function<void(const SearchGeneration&)> onGeneration; // after every generation (0 too)
    std::function<void(const std::string&)> log;
};

// The sparsity grid for these parameters, ascending; index of S in it via `uniformLevel`
// (a bytes budget: 0, step, … ≤ maxSparsity, and uniformLevel is not set).
[[nodiscard]] std::vector<double> searchLevels(const SearchParams& params, int* uniformLevel = nullptr);

// Bytes the database of variants takes for this model (float32 weights, every level).
[[nodiscard]] int64_t searchDatabaseBytes(const model::CausalLM& model, const SearchParams& params);

// Runs the database and the search. `windows`: the calibration windows (at least
// fitnessWindows of them are used for fitness; all of them build the database). `dense` is
// not modified. A streamed model is refused (every fitness is a whole-model forward pass).
[[nodiscard]] SearchResult searchAllocation(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                                            const SearchParams& params, const SearchObserver& observer = {});

// A recipe with `base` (sparsity S) as defaults and one rule per linear layer (its sparsity,
// and its bits when below 16).
[[nodiscard]] pipeline::Recipe searchRecipe(const SearchResult& result, const solve::SolverOptions& base);

} // namespace sparselab::allocation
