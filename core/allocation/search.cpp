#include "allocation/search.h"

#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "analysis/sensitivity.h"
#include "analysis/size_model.h"
#include "recovery/recovery.h"
#include "util/errors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <random>

namespace sparselab::allocation {

using Clock = std::chrono::steady_clock;

// Layers of different groups trade levels when one group's layers have at most this many
// times the other's weights (a step of one against that many steps of the other).
constexpr int64_t kMaxTradeRatio = 8;

void SearchParams::validate() const
{
    if (!(maxSparsity > 0.0 && maxSparsity < 1.0))
        throw optionError("--max-sparsity", "must lie in (0, 1)");
    if (budgetBytes < 0)
        throw optionError("--budget-bytes", "must be a number of bytes > 0");
    if (budgetBytes == 0) {
        if (!(targetSparsity > 0.0 && targetSparsity < 1.0))
            throw optionError("--budget-sparsity", "must lie in (0, 1)");
        if (targetSparsity > maxSparsity)
            throw optionError("--budget-sparsity", "must not exceed --max-sparsity");
        if (bits != std::vector<int>{16})
            throw optionError("--bits", "bit-widths are searched with a bytes budget (--budget-bytes) only");
    } else {
        if (bits.empty())
            throw optionError("--bits", "needs at least one bit-width");
        for (int b : bits)
            if (!(b == 16 || (b >= 2 && b <= 8)))
                throw optionError("--bits", "each bit-width must be 2..8 or 16, got " + std::to_string(b));
    }
    if (!(levelStep > 0.0 && levelStep <= 0.5))
        throw optionError("--level-step", "must lie in (0, 0.5]");
    if (levelsEachSide < 1 || levelsEachSide > 50)
        throw optionError("--levels", "must be 1 … 50 levels each side of the budget");
    if (generations < 0 || generations > 1000000)
        throw optionError("--generations", "must be 0 … 1000000");
    if (offspring < 1 || offspring > 4096)
        throw optionError("--offspring", "must be 1 … 4096");
    if (survivors < 1 || survivors > offspring)
        throw optionError("--survivors", "must be 1 … the number of offspring");
    if (maxMutations < 1 || maxMutations > 1000)
        throw optionError("--max-mutations", "must be 1 … 1000");
    if (fitnessWindows < 1)
        throw optionError("--fitness-windows", "must be at least 1");
    if (!(timeLimitSeconds >= 0.0) || !std::isfinite(timeLimitSeconds))
        throw optionError("--time-limit", "must be a number of seconds ≥ 0");
    if (base.method != solve::Method::SparseGpt || base.structured() || base.quant.bits != 16)
        throw optionError("--method", "the search allocates unstructured SparseGPT levels (no --nm)");
    if (forwardBatch < 1)
        throw std::invalid_argument("SearchParams: forwardBatch must be at least 1");
}

SearchParams SearchParams::forBudgetBytes(int64_t bytes)
{
    SearchParams p;
    p.budgetBytes = bytes;
    p.bits = {16, 8, 4};
    p.levelStep = 0.1;
    p.maxSparsity = 0.9;
    p.base.sparsity = 0.0;
    return p;
}

std::vector<double> searchLevels(const SearchParams& params, int* uniformLevel)
{
    std::vector<double> levels;
    if (params.budgetBytes > 0) {
        for (int k = 0; k * params.levelStep <= params.maxSparsity + 1e-12; ++k)
            levels.push_back(std::min(k * params.levelStep, params.maxSparsity));
        return levels;
    }
    for (int k = -params.levelsEachSide; k <= params.levelsEachSide; ++k) {
        const double s = params.targetSparsity + k * params.levelStep;
        // A little tolerance so that S + K·step = maxSparsity (in decimal) is kept.
        if (s < -1e-12 || s > params.maxSparsity + 1e-12)
            continue;
        if (k == 0 && uniformLevel)
            *uniformLevel = int(levels.size());
        levels.push_back(std::clamp(s, 0.0, params.maxSparsity));
    }
    return levels;
}

int64_t searchDatabaseBytes(const model::CausalLM& model, const SearchParams& params)
{
    int64_t weights = 0;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b))
            weights += layer.weight.numel();
    const int64_t bitWidths = params.budgetBytes > 0 ? int64_t(params.bits.size()) : 1;
    return weights * int64_t(sizeof(float)) * int64_t(searchLevels(params).size()) * bitWidths;
}

namespace {

// Uniform integer in [0, n) from the generator's raw output (rejection sampling), so the
// sequence is the same on every standard library.
int64_t uniformIndex(std::mt19937_64& rng, int64_t n)
{
    const uint64_t range = uint64_t(n);
    const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % range;
    uint64_t x;
    do
        x = rng();
    while (x >= limit);
    return int64_t(x % range);
}

// The stitched model and its fitness on the first windows.
class Stitcher {
public:
    Stitcher(const model::CausalLM& dense, std::vector<std::vector<torch::Tensor>> database,
             const data::CalibrationWindows& windows, int64_t fitnessWindows, int64_t batch,
             const CancelToken* cancel)
        : m_student(dense), m_database(std::move(database)), m_batch(batch), m_cancel(cancel)
    {
        for (model::LinearLayer* layer : m_student.allLinears())
            m_layers.push_back(layer);
        m_loaded.assign(m_layers.size(), -1);
        const int64_t n = std::min(fitnessWindows, windows.nsamples);
        std::vector<int64_t> ids(windows.ids.begin(), windows.ids.begin() + n * windows.seqlen);
        m_ids = torch::from_blob(ids.data(), {n, windows.seqlen}, torch::kLong).clone().to(dense.device());
        // The dense distribution once: p and Σ p·log p per window (KL = Σ p log p − Σ p log q).
        for (int64_t i = 0; i < n; i += m_batch) {
            throwIfCancelled(m_cancel);
            const int64_t count = std::min(m_batch, n - i);
            const torch::Tensor logP = at::log_softmax(dense.logits(m_ids.narrow(0, i, count)), -1);
            const torch::Tensor p = logP.exp();
            m_teacherProbs.push_back(p);
            m_teacherNegEntropy.push_back((p * logP).sum().item<double>());
        }
    }

    [[nodiscard]] int64_t windows() const { return m_ids.size(0); }
    [[nodiscard]] int64_t evaluations() const { return m_evaluations; }

    // KL(p_dense ‖ p_stitched) per position, averaged over the first `count` windows (rounded
    // up to whole batches of the precomputed teacher).
    double fitness(const std::vector<int>& levels, int64_t count)
    {
        for (size_t l = 0; l < m_layers.size(); ++l)
            if (m_loaded[l] != levels[l]) {
                m_layers[l]->weight = m_database[l][size_t(levels[l])];
                m_loaded[l] = levels[l];
            }
        double total = 0.0;
        int64_t positions = 0;
        for (size_t chunk = 0; int64_t(chunk) * m_batch < count && chunk < m_teacherProbs.size(); ++chunk) {
            throwIfCancelled(m_cancel);
            const int64_t start = int64_t(chunk) * m_batch;
            const torch::Tensor ids = m_ids.narrow(0, start, m_teacherProbs[chunk].size(0));
            const torch::Tensor logQ = at::log_softmax(m_student.logits(ids), -1);
            total += m_teacherNegEntropy[chunk] - (m_teacherProbs[chunk] * logQ).sum().item<double>();
            positions += ids.numel();
            m_evaluations += ids.size(0);
        }
        return total / double(std::max<int64_t>(1, positions));
    }

private:
    model::CausalLM m_student;                      // shares every tensor but the linears'
    std::vector<model::LinearLayer*> m_layers;
    std::vector<std::vector<torch::Tensor>> m_database; // [layer][level]
    std::vector<int> m_loaded;
    torch::Tensor m_ids;
    std::vector<torch::Tensor> m_teacherProbs;
    std::vector<double> m_teacherNegEntropy;
    int64_t m_batch;
    const CancelToken* m_cancel;
    int64_t m_evaluations = 0;
};

} // namespace

SearchResult searchAllocation(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                              const SearchParams& params, const SearchObserver& observer)
{
    params.validate();
    if (dense.streamed())
        throw InputError("the allocation search runs whole-model forward passes: load the model without --stream");
    if (windows.nsamples < 1 || int64_t(windows.ids.size()) != windows.nsamples * windows.seqlen)
        throw std::invalid_argument("searchAllocation: malformed calibration windows");
    const int64_t databaseBytes = searchDatabaseBytes(dense, params);
    if (databaseBytes > params.maxDatabaseBytes)
        throw InputError("the search's database of layer variants would take "
                         + std::to_string(databaseBytes >> 20) + " MiB (limit "
                         + std::to_string(params.maxDatabaseBytes >> 20)
                         + " MiB): use fewer levels (--levels) or a smaller model");
    torch::NoGradGuard noGrad;
    const auto log = [&](const std::string& line) {
        if (observer.log)
            observer.log(line);
    };

    SearchResult result;
    const bool bytesBudget = params.budgetBytes > 0;
    int uniformSparsity = 0;
    const std::vector<double> sparsityGrid = searchLevels(params, &uniformSparsity);
    // Bit-widths from the widest down, so that the next index is always more compression.
    std::vector<int> bitGrid = bytesBudget ? params.bits : std::vector<int>{16};
    std::sort(bitGrid.begin(), bitGrid.end(), std::greater<>());
    bitGrid.erase(std::unique(bitGrid.begin(), bitGrid.end()), bitGrid.end());
    const int sparsityCount = int(sparsityGrid.size()), bitCount = int(bitGrid.size());
    // Level v = sparsity index · bitCount + bits index (the scan's cell order).
    for (double sparsity : sparsityGrid)
        for (int bits : bitGrid) {
            result.levelSparsity.push_back(sparsity);
            result.levelBits.push_back(bits);
        }
    result.databaseBytes = databaseBytes;

    // 1. The database: the scan solves every layer at every level from one factorisation.
    const auto databaseStart = Clock::now();
    analysis::SensitivityParams scan;
    scan.sparsities = sparsityGrid;
    scan.bits = bitGrid;
    scan.base = params.base;
    scan.forwardBatch = params.forwardBatch;
    std::vector<std::vector<torch::Tensor>> database;
    scan.onVariant = [&](size_t layer, size_t sparsityIndex, size_t bitsIndex, const torch::Tensor& weight) {
        if (database.size() <= layer)
            database.resize(layer + 1, std::vector<torch::Tensor>(result.levelSparsity.size()));
        database[layer][sparsityIndex * size_t(bitCount) + bitsIndex] = weight;
    };
    ProgressCallback variantsProgress;
    if (observer.progress)
        variantsProgress = [&](const Progress& p) {
            Progress renamed = p;
            renamed.stage = "variants";
            observer.progress(renamed);
        };
    log("solving every layer at " + std::to_string(result.levelSparsity.size()) + " levels ("
        + std::to_string(databaseBytes >> 20) + " MiB of variants)");
    result.scan = analysis::scanSensitivity(dense, windows, scan, {variantsProgress, observer.cancel});
    const analysis::SensitivityResult& scanned = result.scan;
    result.databaseSeconds = std::chrono::duration<double>(Clock::now() - databaseStart).count();

    // Layers and their groups (equal numbers of weights trade levels).
    std::map<int64_t, int64_t> groupOf;
    for (const auto& layer : scanned.layers) {
        SearchLayer entry{layer.name, layer.kind, layer.block, layer.rows * layer.cols, 0};
        const auto [it, inserted] = groupOf.emplace(entry.weights, int64_t(groupOf.size()));
        entry.group = it->second;
        result.layers.push_back(entry);
    }
    const size_t layerCount = result.layers.size();
    if (database.size() != layerCount)
        throw std::logic_error("searchAllocation: the scan did not hand over every layer");
    std::vector<int64_t> tradable; // layers with a partner of the same size
    std::map<int64_t, std::vector<int64_t>> members;
    for (size_t l = 0; l < layerCount; ++l)
        members[result.layers[l].group].push_back(int64_t(l));
    for (size_t l = 0; l < layerCount; ++l)
        if (members[result.layers[l].group].size() > 1)
            tradable.push_back(int64_t(l));
    // Groups whose sizes are whole multiples trade too: a step of a layer of the bigger group
    // (n_big weights) against `ratio` = n_big / n_small steps of layers of the smaller one.
    struct Link { int64_t big, small, ratio; };
    std::vector<Link> links;
    std::map<int64_t, int64_t> weightsOfGroup;
    for (const auto& layer : result.layers)
        weightsOfGroup[layer.group] = layer.weights;
    for (const auto& [big, bigWeights] : weightsOfGroup)
        for (const auto& [small, smallWeights] : weightsOfGroup)
            if (bigWeights > smallWeights && bigWeights % smallWeights == 0
                && bigWeights / smallWeights <= kMaxTradeRatio)
                links.push_back({big, small, bigWeights / smallWeights});

    // Sizes (bytes budget): every layer at every level, by the size model.
    const int levelCount = int(result.levelSparsity.size());
    const int64_t fixedBytes = analysis::fixedParameterBytes(scanned.fixedParameters);
    std::vector<std::vector<int64_t>> levelBytes(layerCount, std::vector<int64_t>(size_t(levelCount)));
    for (size_t l = 0; l < layerCount; ++l)
        for (int v = 0; v < levelCount; ++v)
            levelBytes[l][size_t(v)] =
                analysis::linearLayerBytes(scanned.layers[l].rows, scanned.layers[l].cols, result.levelSparsity[size_t(v)],
                                           result.levelBits[size_t(v)], params.base.quant.groupSize);
    const auto bytesOf = [&](const std::vector<int>& levels) {
        int64_t total = fixedBytes;
        for (size_t l = 0; l < layerCount; ++l)
            total += levelBytes[l][size_t(levels[l])];
        return total;
    };

    // 2.–3. The search.
    const auto searchStart = Clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - searchStart).count(); };
    Stitcher stitcher(dense, std::move(database), windows, params.fitnessWindows, params.forwardBatch,
                      observer.cancel);
    const int64_t allWindows = stitcher.windows();
    const int64_t firstStage = std::max<int64_t>(1, allWindows / 4);

    std::mt19937_64 rng(params.seed);
    // The start: uniform S, or the best uniform level that fits the bytes budget.
    std::vector<int> parent(layerCount, uniformSparsity * bitCount);
    double parentFitness = 0.0;
    if (!bytesBudget) {
        parentFitness = stitcher.fitness(parent, allWindows);
    } else {
        int64_t smallest = std::numeric_limits<int64_t>::max();
        bool found = false;
        for (int v = 0; v < levelCount; ++v) {
            const std::vector<int> uniform(layerCount, v);
            const int64_t bytes = bytesOf(uniform);
            smallest = std::min(smallest, bytes);
            if (bytes > params.budgetBytes)
                continue;
            const double f = stitcher.fitness(uniform, allWindows);
            if (!found || f < parentFitness) {
                parent = uniform;
                parentFitness = f;
                found = true;
            }
        }
        if (!found)
            throw optionError("--budget-bytes", "no uniform level fits " + std::to_string(params.budgetBytes)
                                                    + " bytes (the smallest takes " + std::to_string(smallest)
                                                    + "): raise the budget or add sparser levels or fewer bits");
    }
    result.uniformLevel = parent.empty() ? 0 : parent.front();
    result.uniformBytes = bytesOf(parent);
    result.uniformFitness = parentFitness;
    const auto record = [&](int64_t generation, bool improved) {
        SearchGeneration g{generation, parentFitness, stitcher.evaluations(), elapsed(), improved, {}};
        for (int level : parent)
            g.sparsity.push_back(result.levelSparsity[size_t(level)]);
        result.history.push_back(g);
        if (observer.onGeneration)
            observer.onGeneration(g);
    };
    record(0, true);

    // Bytes budget: the levels one step more (or less) compressed than v.
    const auto neighbours = [&](int v, bool moreCompressed) {
        const int si = v / bitCount, bi = v % bitCount, step = moreCompressed ? 1 : -1;
        std::vector<int> out;
        if (si + step >= 0 && si + step < sparsityCount)
            out.push_back((si + step) * bitCount + bi);
        if (bi + step >= 0 && bi + step < bitCount)
            out.push_back(si * bitCount + bi + step);
        return out;
    };
    const auto pick = [&](const std::vector<int>& options) { return options[size_t(uniformIndex(rng, int64_t(options.size())))]; };
    const auto mutateBytes = [&](std::vector<int>& levels) {
        for (int attempt = 0; attempt < 64; ++attempt) {
            std::vector<int> child = levels;
            const size_t a = size_t(uniformIndex(rng, int64_t(layerCount)));
            if (uniformIndex(rng, 2) == 0 && layerCount > 1) { // a less compressed, b more
                size_t b = size_t(uniformIndex(rng, int64_t(layerCount) - 1));
                if (b == a)
                    b = layerCount - 1;
                const auto less = neighbours(child[a], false), more = neighbours(child[b], true);
                if (less.empty() || more.empty())
                    continue;
                child[a] = pick(less);
                child[b] = pick(more);
            } else { // one layer, either way
                const auto options = neighbours(child[a], uniformIndex(rng, 2) == 0);
                if (options.empty())
                    continue;
                child[a] = pick(options);
            }
            if (bytesOf(child) <= params.budgetBytes) {
                levels = std::move(child);
                return;
            }
        }
    };
    // Whether any switch exists (with a bytes budget every layer can move).
    const bool movable = bytesBudget || !tradable.empty() || !links.empty();

    // Sparsity budget, one level switch: a layer up a step, another of its group down a step.
    const auto mutate = [&](std::vector<int>& levels) {
        if (bytesBudget) {
            mutateBytes(levels);
            return;
        }
        for (int attempt = 0; attempt < 64; ++attempt) {
            // Half the switches within a group (when any has two layers), half across a link.
            if (!links.empty() && (tradable.empty() || uniformIndex(rng, 2) == 1)) {
                const Link& link = links[size_t(uniformIndex(rng, int64_t(links.size())))];
                const int direction = uniformIndex(rng, 2) == 0 ? 1 : -1;
                const auto& bigs = members[link.big];
                const auto& smalls = members[link.small];
                std::vector<int> child = levels;
                child[size_t(bigs[size_t(uniformIndex(rng, int64_t(bigs.size())))])] += direction;
                for (int64_t k = 0; k < link.ratio; ++k)
                    child[size_t(smalls[size_t(uniformIndex(rng, int64_t(smalls.size())))])] -= direction;
                if (std::all_of(child.begin(), child.end(), [&](int v) { return v >= 0 && v < levelCount; })) {
                    levels = std::move(child);
                    return;
                }
                continue;
            }
            const int64_t up = tradable[size_t(uniformIndex(rng, int64_t(tradable.size())))];
            const auto& group = members[result.layers[size_t(up)].group];
            int64_t down = group[size_t(uniformIndex(rng, int64_t(group.size()) - 1))];
            if (down == up)
                down = group.back(); // the draw skips `up`: index size-1 stands for it
            if (levels[size_t(up)] + 1 < levelCount && levels[size_t(down)] > 0) {
                ++levels[size_t(up)];
                --levels[size_t(down)];
                return;
            }
        }
    };

    ProgressReporter reporter(observer.progress, "search", params.generations);
    result.stoppedBy = "generations";
    for (int64_t generation = 1; generation <= params.generations && movable; ++generation) {
        throwIfCancelled(observer.cancel);
        if (observer.stop && observer.stop->cancelled()) {
            result.stoppedBy = "stop";
            break;
        }
        if (params.timeLimitSeconds > 0.0 && elapsed() >= params.timeLimitSeconds) {
            result.stoppedBy = "time";
            break;
        }
        std::vector<std::vector<int>> children(size_t(params.offspring), parent);
        for (auto& child : children) {
            const int64_t switches = 1 + uniformIndex(rng, params.maxMutations);
            for (int64_t m = 0; m < switches; ++m)
                mutate(child);
        }
        // Stage 1: every child on the first windows; stage 2: the best on all of them.
        std::vector<std::pair<double, size_t>> first;
        for (size_t c = 0; c < children.size(); ++c)
            first.emplace_back(stitcher.fitness(children[c], firstStage), c);
        std::sort(first.begin(), first.end());
        double bestFitness = parentFitness;
        int64_t best = -1;
        for (int64_t s = 0; s < params.survivors && s < int64_t(first.size()); ++s) {
            const size_t c = first[size_t(s)].second;
            const double f = stitcher.fitness(children[c], allWindows);
            if (f < bestFitness) {
                bestFitness = f;
                best = int64_t(c);
            }
        }
        if (best >= 0) {
            parent = children[size_t(best)];
            parentFitness = bestFitness;
        }
        result.generationsRun = generation;
        record(generation, best >= 0);
        reporter.report(generation, "KL " + std::to_string(parentFitness));
    }
    result.searchSeconds = elapsed();
    result.chosenLevel = parent;
    result.bestFitness = parentFitness;
    result.modelBytes = bytesOf(parent);
    double weighted = 0.0, weights = 0.0;
    for (size_t l = 0; l < layerCount; ++l) {
        result.bits.push_back(result.levelBits[size_t(parent[l])]);
        result.sparsity.push_back(result.levelSparsity[size_t(parent[l])]);
        weighted += result.sparsity.back() * double(result.layers[l].weights);
        weights += double(result.layers[l].weights);
    }
    result.averageSparsity = weights > 0 ? weighted / weights : 0.0;
    log("search: KL " + std::to_string(result.uniformFitness) + " (uniform) → " + std::to_string(result.bestFitness)
        + " after " + std::to_string(result.generationsRun) + " generations");
    return result;
}

pipeline::Recipe searchRecipe(const SearchResult& result, const solve::SolverOptions& base)
{
    pipeline::Recipe recipe;
    recipe.defaults.options = base;
    for (size_t l = 0; l < result.layers.size(); ++l) {
        pipeline::RecipeRule rule;
        rule.pattern = result.layers[l].name;
        rule.sparsity = result.sparsity[l];
        if (l < result.bits.size() && result.bits[l] < 16)
            rule.bits = result.bits[l];
        recipe.rules.push_back(rule);
    }
    return recipe;
}

} // namespace sparselab::allocation
