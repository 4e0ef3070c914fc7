#pragma once
// The whole-model compression pipeline, faithful to the SparseGPT reference (opt.py /
// llama.py `*_sequential`):
//   1. embed every calibration window → inputs of block 0, [nsamples, seqlen, hidden];
//   2. for each decoder block: run the still-dense block over all windows, accumulating a
//      Hessian for every linear sub-layer; solve each layer per its LayerPlan; then run the
//      windows through the compressed block to get the next block's inputs.
//   "True sequential" instead solves the block's layers group by group in execution order
//   (Llama: q/k/v → o → gate/up → down), re-capturing the inputs of each group through the
//   already-compressed earlier groups.
// Streamed models (CausalLM::load with streamBlocks): each block is materialized before its
// pass, the next one prefetched from disk, and the block finished (written to its spill file,
// weights freed) after its outputs are computed, so only one block's weights are resident.
// Embeddings and the LM head are never touched. Only the current block's activations and
// Hessians are alive at a time; each Hessian is freed once its layer is solved.
// Progress: stage "calibration" per block pass, stage "layer" per solved layer (detail =
// layer name); cancel is checked between windows, blocks and layers, and inside solves.

#include "data/calibration.h"
#include "pipeline/recipe.h"
#include "solve/layer_record.h"
#include "solve/solver.h"
#include "util/progress.h"

#include <functional>
#include <string>
#include <vector>

namespace at { class Tensor; }
namespace sparselab::model { class CausalLM; }

namespace sparselab::pipeline {

struct PruneParams {
    Recipe recipe;                        // per-layer plan
    std::string recipeSource = "recipe";  // named in plan errors (the recipe file, or "options")
    std::vector<std::string> layerFilter; // globs; empty = all layers (others stay dense)
    bool trueSequential = false;
    int64_t forwardBatch = 8;             // windows per block forward pass
    // Opt-in bfloat16 Hessian accumulation (solve/solver.h). Then the first block solved also
    // accumulates float32 Hessians, and PruneResult::hessianDeviation reports how far apart
    // they are.
    solve::HessianPrecision hessianPrecision = solve::HessianPrecision::Float32;
    // Resume (store/resume.h): blocks [0, startBlock) are already compressed in the model and
    // `finishedLayers` are their records (they open the result). The pipeline re-derives the
    // inputs of block startBlock by running the calibration windows through those blocks,
    // the same deterministic computation an uninterrupted run does.
    int64_t startBlock = 0;
    std::vector<solve::LayerRecord> finishedLayers;
    // Called for every block b < startBlock once its weights are in memory (after
    // materializeBlock on streamed models) and before it is run forward: it puts the finished
    // block's compressed weights in place (store::restoreBlock). Streamed models spill the
    // block again afterwards. Unset: the blocks are taken as already restored in the model.
    std::function<void(int64_t block)> restoreFinishedBlock;
};

struct HessianDeviation {
    std::string name;                     // module name (a layer of the first block solved)
    double relFrobenius = 0.0;            // ‖H − H_fp32‖_F / ‖H_fp32‖_F
    double relOutputErrorFp32 = 0.0;      // the solved layer's error measured with H_fp32
};

// Where a prune's wall time went, in seconds (the rest is bookkeeping and callbacks).
struct PrunePhaseSeconds {
    double blockIo = 0.0;   // streamed models: paging blocks in and writing them back
    double forward = 0.0;   // calibration windows through the blocks, Hessian updates excluded
    double hessian = 0.0;   // accumulating the layers' Hessians from their inputs (when the
                            // windows run on several threads, BlockWalker: the total time spent
                            // in the Hessian updates, which run one at a time while the other
                            // threads go on with forward work)
    double solve = 0.0;     // the layer solves (factorisation, column loop, statistics)
};

struct PruneResult {
    std::vector<solve::LayerRecord> layers;
    PrunePhaseSeconds phases;
    std::vector<HessianDeviation> hessianDeviation; // empty with float32 Hessians
    double seconds = 0.0;
    [[nodiscard]] double linearSparsity() const; // zeros / weights over all linear layers
};

// Called after decoder block `block` is compressed and its outputs computed, with that
// block's reports (for checkpoints: the block's weights are final), on the worker thread.
using BlockFinishedCallback = std::function<void(int64_t block, const std::vector<solve::LayerRecord>& layers)>;
// Called after each layer is solved (for live views), on the worker thread.
using LayerDoneCallback = std::function<void(const solve::LayerRecord&)>;
// Human-readable log lines (damping raised, dead inputs, ...), on the worker thread.
using LogCallback = std::function<void(const std::string&)>;
// Called after each column block of a SparseGPT solve with the layer's module name, blocks
// done / total and the layer's weight [out, in] as the solver is updating it in place
// (columns before the block boundary are final). For live views: copy what you need, on the
// worker thread, before returning.
using BlockDoneCallback = std::function<void(const std::string& layer, int64_t blocksDone, int64_t blocksTotal,
                                             const at::Tensor& weight)>;

// Checks the whole plan against the model's layers (recipe rules and values, --layers
// globs) without doing any work: InputError naming params.recipeSource or --layers.
// pruneModel calls it first; front ends may call it earlier to fail before slow steps.
void validatePlan(const model::CausalLM& model, const PruneParams& params);

// Everything a caller watches a prune with; every member is optional. Callbacks run on the
// worker thread, in pipeline order.
struct PruneObserver {
    ProgressCallback progress;            // stage "prune": layers solved of those to solve
    const CancelToken* cancel = nullptr;  // checked between windows, blocks and layers, and inside solves
    LayerDoneCallback onLayer;            // each layer, dense ones too, once solved
    BlockDoneCallback onBlock;            // each column block of a SparseGPT solve (live views)
    BlockFinishedCallback onBlockFinished; // each decoder block, its weights final (checkpoints)
    LogCallback log;                      // human-readable notes
};

// Compresses `model` in place. `windows` from data::sampleCalibrationWindows.
[[nodiscard]] PruneResult pruneModel(model::CausalLM& model, const data::CalibrationWindows& windows,
                                     const PruneParams& params, const PruneObserver& observer = {});

// Module name of a linear layer's weight tensor name ("x.weight" → "x").
[[nodiscard]] std::string moduleName(const std::string& weightName);

} // namespace sparselab::pipeline
