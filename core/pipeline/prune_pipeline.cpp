#include "pipeline/prune_pipeline.h"

#include "model/causal_lm.h"
#include "pipeline/block_walker.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/fork_join.h"

#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace sparselab::pipeline {

namespace {

using Clock = std::chrono::steady_clock;

// Groups consecutive layers that read the same input (q/k/v; gate/up), judged on the first
// window, so "true sequential" works for any architecture without a table of names.
std::vector<std::vector<size_t>> groupBySharedInput(const model::CausalLM& model, int64_t block,
                                                    const torch::Tensor& inputs)
{
    const auto& layers = model.linears(block);
    std::map<std::string, torch::Tensor> seen;
    (void)model.runBlock(block, inputs.slice(0, 0, 1), [&](const model::LinearLayer& layer, const torch::Tensor& x) {
        seen[layer.name] = x.clone();
    }, model::BlockResult::LinearInputsOnly);
    std::vector<std::vector<size_t>> groups;
    for (size_t i = 0; i < layers.size(); ++i) {
        const auto current = seen.find(layers[i].name);
        bool joined = false;
        if (!groups.empty() && current != seen.end()) {
            const auto previous = seen.find(layers[groups.back().back()].name);
            if (previous != seen.end() && previous->second.sizes() == current->second.sizes()
                && torch::equal(previous->second, current->second)) {
                groups.back().push_back(i);
                joined = true;
            }
        }
        if (!joined)
            groups.push_back({i});
    }
    return groups;
}

// Σ y² in double over a linear's outputs: one collecting pass's share of ‖X·Wᵀ‖². On the CPU
// in fixed chunks on the kernel threads, summed in chunk order (the same value whatever the
// thread count), eight double lanes per chunk so that the loop vectorises.
double sumOfSquares(const torch::Tensor& y)
{
    if (!(y.device().is_cpu() && y.scalar_type() == torch::kFloat && y.is_contiguous()))
        return at::sum(at::square(y.to(torch::kDouble))).item<double>();
    const float* values = y.data_ptr<float>();
    const int64_t n = y.numel();
    constexpr int64_t kChunk = int64_t(1) << 16;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(size_t(chunks), 0.0);
    forkJoin(chunks, kernelThreads(), [&](int, int64_t chunk) {
        constexpr int64_t kLanes = 8;
        const int64_t begin = chunk * kChunk, end = std::min(n, begin + kChunk);
        double lanes[kLanes] = {};
        int64_t i = begin;
        for (; i + kLanes <= end; i += kLanes)
            for (int64_t l = 0; l < kLanes; ++l)
                lanes[l] += double(values[i + l]) * double(values[i + l]);
        double total = 0.0;
        for (; i < end; ++i)
            total += double(values[i]) * double(values[i]);
        for (double lane : lanes)
            total += lane;
        partial[size_t(chunk)] = total;
    });
    double total = 0.0;
    for (double part : partial)
        total += part;
    return total;
}

double zeroFraction(const torch::Tensor& weight)
{
    return weight.eq(0).sum().item<double>() / double(weight.numel());
}

} // namespace

std::string moduleName(const std::string& weightName)
{
    const std::string suffix = ".weight";
    if (weightName.size() > suffix.size() && weightName.compare(weightName.size() - suffix.size(), suffix.size(), suffix) == 0)
        return weightName.substr(0, weightName.size() - suffix.size());
    return weightName;
}

void validatePlan(const model::CausalLM& model, const PruneParams& params)
{
    std::vector<std::string> names;
    std::vector<int64_t> cols;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b)) {
            names.push_back(moduleName(layer.name));
            cols.push_back(layer.weight.size(1));
        }
    params.recipe.validate(names, params.recipeSource, cols);
    for (const auto& pattern : params.layerFilter) {
        bool any = false;
        for (const auto& name : names)
            any = any || globMatch(pattern, name);
        if (!any)
            throw optionError("--layers", "pattern '" + pattern + "' matches no linear layer of the model");
    }
}

double PruneResult::linearSparsity() const
{
    double zeros = 0, total = 0;
    for (const auto& layer : layers) {
        const double n = double(layer.rows) * double(layer.cols);
        zeros += layer.stats.sparsity * n;
        total += n;
    }
    return total > 0 ? zeros / total : 0.0;
}

PruneResult pruneModel(model::CausalLM& model, const data::CalibrationWindows& windows, const PruneParams& params,
                       const PruneObserver& observer)
{
    const ProgressCallback& progress = observer.progress;
    const CancelToken* cancel = observer.cancel;
    const LayerDoneCallback& layerDone = observer.onLayer;
    const LogCallback& log = observer.log;
    const BlockDoneCallback& blockDone = observer.onBlock;
    const BlockFinishedCallback& blockFinished = observer.onBlockFinished;
    torch::NoGradGuard noGrad;
    const auto started = Clock::now();
    if (windows.nsamples < 1 || int64_t(windows.ids.size()) != windows.nsamples * windows.seqlen)
        throw std::invalid_argument("pruneModel: malformed calibration windows");
    if (windows.seqlen > model.config().maxPositions)
        throw optionError("--seqlen", std::to_string(windows.seqlen) + " exceeds the model's maximum of "
                                          + std::to_string(model.config().maxPositions) + " positions");

    validatePlan(model, params);
    std::vector<std::string> names;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b))
            names.push_back(moduleName(layer.name));

    std::map<std::string, LayerPlan> plans;
    int64_t toSolve = 0;
    for (const auto& name : names) {
        LayerPlan plan = params.recipe.planFor(name);
        if (!passesLayerFilter(params.layerFilter, name))
            plan.dense = true;
        toSolve += plan.dense ? 0 : 1;
        plans.emplace(name, plan);
    }

    ProgressReporter reporter(progress, "prune", toSolve);
    reporter.report(0, "embedding calibration windows");

    BlockWalker walker(model, windows, params.forwardBatch, cancel);

    PruneResult result;
    PrunePhaseSeconds& phases = result.phases;
    // Adds the seconds `work` takes to `phase`.
    const auto timed = [](double& phase, auto&& work) {
        const auto t0 = Clock::now();
        work();
        phase += std::chrono::duration<double>(Clock::now() - t0).count();
    };
    int64_t solved = 0;
    if (params.startBlock < 0 || params.startBlock > model.numBlocks())
        throw std::invalid_argument("pruneModel: startBlock outside the model's blocks");
    // Resume: the finished blocks are already compressed; only their outputs are needed.
    for (int64_t b = 0; b < params.startBlock; ++b) {
        reporter.report(solved, "block " + std::to_string(b) + ": restored from checkpoint");
        timed(phases.blockIo, [&] {
            model.materializeBlock(b);
            if (params.restoreFinishedBlock)
                params.restoreFinishedBlock(b);
        });
        // Forward with the restored float32 weights, as the interrupted run did before its spill.
        timed(phases.forward, [&] { walker.advance(b); });
        timed(phases.blockIo, [&] { model.finishBlock(b); });
    }
    for (const auto& finished : params.finishedLayers) {
        solved += finished.dense ? 0 : 1;
        result.layers.push_back(finished);
    }
    for (int64_t b = params.startBlock; b < model.numBlocks(); ++b) {
        const size_t firstRecord = result.layers.size();
        // Streamed models: page this block in, and let the disk read the next one meanwhile.
        timed(phases.blockIo, [&] {
            model.materializeBlock(b);
            model.prefetchBlock(b + 1);
        });
        auto& layers = model.linears(b);
        // Layers that read the same input (q/k/v, gate/up) have the same Hessian: it is
        // accumulated once, by the first of them that is solved, and the others solve with it
        // (the solver only reads H). The reference accumulates one per layer; the values are
        // the same, and at 128 × 2048 calibration tokens the Hessians are most of a block's time.
        std::vector<std::vector<size_t>> shared;
        timed(phases.forward, [&] { shared = groupBySharedInput(model, b, walker.inputs()); });
        std::map<std::string, std::string> hessianOwner; // layer tensor name → the accumulator's owner
        std::map<std::string, int> hessianUsers;         // owner → layers still to solve with it
        for (const auto& set : shared) {
            std::string owner;
            for (size_t i : set) {
                if (plans.at(moduleName(layers[i].name)).dense)
                    continue;
                if (owner.empty())
                    owner = layers[i].name;
                hessianOwner[layers[i].name] = owner;
                ++hessianUsers[owner];
            }
        }
        std::vector<std::vector<size_t>> groups;
        if (params.trueSequential) {
            groups = shared;
        } else {
            groups.emplace_back();
            for (size_t i = 0; i < layers.size(); ++i)
                groups.back().push_back(i);
        }

        for (const auto& group : groups) {
            // Hessians only for this group's layers that will be solved.
            std::map<std::string, solve::HessianAccumulator> hessians;
            // bf16 Hessians: float32 ones beside them in the first block, to report the deviation.
            const bool measureDeviation =
                params.hessianPrecision != solve::HessianPrecision::Float32 && b == params.startBlock;
            std::map<std::string, solve::HessianAccumulator> fp32Hessians;
            for (size_t i : group) {
                const auto& layer = layers[i];
                if (plans.at(moduleName(layer.name)).dense || hessianOwner.at(layer.name) != layer.name)
                    continue;
                hessians.emplace(layer.name,
                                 solve::HessianAccumulator(layer.weight.size(1), model.device(), params.hessianPrecision));
                if (measureDeviation)
                    fp32Hessians.emplace(layer.name, solve::HessianAccumulator(layer.weight.size(1), model.device()));
            }
            // Σ‖X·Wᵀ‖² of this group's solved layers from the products the pass computes anyway,
            // so that the solver need not form tr(W H Wᵀ) (rows·cols² multiply-adds) for its
            // relative output error. Only without a bias (the output then is X·Wᵀ itself) and
            // with float32 Hessians (a bf16 H's own trace is what its error is measured by);
            // the block's last linear, whose product the pass skips, is left to the solver.
            // And only where reading the outputs is the cheaper way: tokens·rows values summed in
            // double (inside the hooks, which run one at a time: BlockWalker) against about
            // rows·cols²/2 multiply-adds at GEMM speed (quadraticTrace uses H's symmetry), a
            // rule of thumb: tokens < cols². The demo's layers (32768 tokens, 64 columns) take
            // the trace; a 2048-wide model at 16 × 512 tokens sums its outputs.
            std::set<std::string> energyWanted;
            const int64_t passTokens = windows.nsamples * windows.seqlen;
            if (params.hessianPrecision == solve::HessianPrecision::Float32)
                for (size_t i : group) {
                    const int64_t cols = layers[i].weight.size(1);
                    if (!plans.at(moduleName(layers[i].name)).dense && !layers[i].bias.defined()
                        && passTokens < cols * cols)
                        energyWanted.insert(layers[i].name);
                }
            std::map<std::string, double> outputSquares;
            if (!hessians.empty()) {
                reporter.report(solved, "block " + std::to_string(b) + ": collecting inputs");
                double hessianSeconds = 0.0;
                const auto hook = [&](const model::LinearLayer& layer, const torch::Tensor& x) {
                    timed(hessianSeconds, [&] {
                        const auto it = hessians.find(layer.name);
                        if (it != hessians.end())
                            it->second.addSequences(x);
                        const auto fp32 = fp32Hessians.find(layer.name);
                        if (fp32 != fp32Hessians.end())
                            fp32->second.addSequences(x);
                    });
                };
                const auto outputHook = [&](const model::LinearLayer& layer, const torch::Tensor& y) {
                    if (energyWanted.count(layer.name))
                        outputSquares[layer.name] += sumOfSquares(y);
                };
                double passSeconds = 0.0;
                timed(passSeconds, [&] { walker.observe(b, hook, outputHook); });
                phases.hessian += hessianSeconds;
                phases.forward += passSeconds - hessianSeconds;
            }

            for (size_t i : group) {
                auto& layer = layers[i];
                const std::string name = moduleName(layer.name);
                const LayerPlan& plan = plans.at(name);
                solve::LayerRecord record;
                record.name = name;
                record.kind = layer.kind;
                record.block = b;
                record.rows = layer.weight.size(0);
                record.cols = layer.weight.size(1);
                record.dense = plan.dense;
                record.options = solve::recordedOptions(plan.options, plan.dense);
                if (plan.dense) {
                    record.stats.sparsity = zeroFraction(layer.weight);
                } else {
                    throwIfCancelled(cancel);
                    reporter.report(solved, name);
                    const std::string& owner = hessianOwner.at(layer.name);
                    auto found = hessians.find(owner);
                    // Solve on a handle to the model's own storage; copy back if the solver
                    // replaced the tensor rather than writing into it.
                    torch::Tensor weight = layer.weight;
                    const torch::Tensor denseWeight = fp32Hessians.count(owner) ? weight.clone() : torch::Tensor();
                    const void* storage = weight.data_ptr();
                    ProgressCallback blockProgress;
                    if (blockDone)
                        blockProgress = [&](const Progress& p) { blockDone(name, p.done, p.total, weight); };
                    // tr(W H Wᵀ) = (2/N)·Σ‖X·Wᵀ‖² over the N sequences H is the mean over.
                    const auto squares = outputSquares.find(layer.name);
                    const double denseOutputEnergy = squares == outputSquares.end()
                        ? -1.0
                        : 2.0 * squares->second / double(found->second.samples());
                    solve::LayerResult layerResult;
                    timed(phases.solve, [&] {
                        layerResult = solve::solveLayer(weight, found->second.hessian(), plan.options, blockProgress,
                                                        cancel, denseOutputEnergy);
                    });
                    if (weight.data_ptr() != storage)
                        layer.weight.copy_(weight);
                    const bool lastUser = --hessianUsers.at(owner) == 0;
                    if (const auto fp32 = fp32Hessians.find(owner); fp32 != fp32Hessians.end()) {
                        const torch::Tensor& h32 = fp32->second.hessian();
                        HessianDeviation deviation;
                        deviation.name = name;
                        deviation.relFrobenius = ((found->second.hessian() - h32).norm() / h32.norm()).item<double>();
                        // The solved layer's error judged by the float32 Hessian: tr(ΔW H ΔWᵀ)/tr(W H Wᵀ).
                        const torch::Tensor delta = denseWeight - weight;
                        deviation.relOutputErrorFp32 =
                            solve::outputEnergy(delta, h32) / solve::outputEnergy(denseWeight, h32);
                        if (log) {
                            std::ostringstream line;
                            line << name << ": " << solve::hessianPrecisionName(params.hessianPrecision)
                                 << " Hessian deviates from float32 by " << deviation.relFrobenius
                                 << " (relative Frobenius); output error " << layerResult.stats.relOutputError
                                 << " by it, " << deviation.relOutputErrorFp32 << " by the float32 Hessian";
                            log(line.str());
                        }
                        result.hessianDeviation.push_back(deviation);
                        if (lastUser)
                            fp32Hessians.erase(fp32);
                    }
                    if (lastUser)
                        hessians.erase(found); // free the Hessian as soon as its last layer is solved
                    record.stats = layerResult.stats;
                    if (log && layerResult.stats.dampRaises > 0) {
                        std::ostringstream line;
                        line << name << ": Cholesky failed; damping raised " << layerResult.stats.dampRaises
                             << " time(s) to " << layerResult.stats.dampUsed;
                        log(line.str());
                    }
                    if (log && layerResult.stats.deadInputs > 0)
                        log(name + ": " + std::to_string(layerResult.stats.deadInputs) + " dead input(s) zeroed");
                    ++solved;
                    reporter.report(solved, name);
                }
                if (layerDone)
                    layerDone(record);
                result.layers.push_back(std::move(record));
            }
        }
        // Propagate through the compressed block: the next block sees what it will see at inference.
        // After the last block nothing reads the outputs (the reference computes them anyway).
        if (b + 1 < model.numBlocks())
            timed(phases.forward, [&] { walker.advance(b); });
        if (blockFinished)
            blockFinished(b, std::vector<solve::LayerRecord>(result.layers.begin() + std::ptrdiff_t(firstRecord),
                                                      result.layers.end()));
        timed(phases.blockIo, [&] { model.finishBlock(b); }); // streamed: write back, free its weights
    }
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    reporter.report(toSolve, "done");
    return result;
}

} // namespace sparselab::pipeline
