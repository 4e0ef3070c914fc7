// The end-to-end allocation search (allocation/search.h): the level grid by hand, the budget
// exact for every result, the same seed giving the same levels, and the search's stitched
// fitness equal to the KL divergence of a model built independently — each layer captured
// and solved on its own (captureLayerProblem + solveLayer) and the KL computed from logits.

#include "allocation/search.h"
#include "model/causal_lm.h"
#include "pipeline/layer_capture.h"
#include "pipeline/prune_pipeline.h"
#include "analysis/size_model.h"
#include "util/errors.h"
#include "model_test_data.h"
#include "testsupport.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <QTest>

#include <cmath>
#include <map>

using namespace sparselab;

using testing::randomWindows;
using testing::tinyLlama;

namespace {

allocation::SearchParams smallSearch(double target, uint64_t seed)
{
    allocation::SearchParams p;
    p.targetSparsity = target;
    p.levelStep = 0.1;
    p.levelsEachSide = 3;
    p.generations = 6;
    p.offspring = 6;
    p.survivors = 2;
    p.fitnessWindows = 8;
    p.forwardBatch = 4;
    p.seed = seed;
    p.base.sparsity = target;
    return p;
}

// Σ weights·sparsity / Σ weights over the result's layers, recomputed from the model.
double averageSparsity(const model::CausalLM& model, const allocation::SearchResult& r)
{
    std::map<std::string, int64_t> weights;
    for (int64_t b = 0; b < model.numBlocks(); ++b)
        for (const auto& layer : model.linears(b))
            weights[pipeline::moduleName(layer.name)] = layer.weight.numel();
    double num = 0, den = 0;
    for (size_t l = 0; l < r.layers.size(); ++l) {
        num += r.sparsity[l] * double(weights.at(r.layers[l].name));
        den += double(weights.at(r.layers[l].name));
    }
    return num / den;
}

} // namespace

class SearchTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { at::set_num_threads(1); }

    void levelGridByHand()
    {
        // S = 0.7, step 0.05, K = 6: 0.40 … 0.95 (1.00 is above maxSparsity 0.95); S is level 6.
        allocation::SearchParams p;
        p.targetSparsity = 0.7;
        int uniform = -1;
        const auto levels = allocation::searchLevels(p, &uniform);
        QCOMPARE(levels.size(), size_t(12));
        QCOMPARE(uniform, 6);
        QVERIFY(std::abs(levels.front() - 0.40) < 1e-12 && std::abs(levels.back() - 0.95) < 1e-12);
        QCOMPARE(levels[size_t(uniform)], 0.7);
        // S = 0.1, step 0.05, K = 6: nothing below 0 — 0.00 … 0.40, S is level 2.
        p.targetSparsity = 0.1;
        const auto low = allocation::searchLevels(p, &uniform);
        QCOMPARE(low.size(), size_t(9));
        QCOMPARE(uniform, 2);
        QCOMPARE(low.front(), 0.0);
    }

    void budgetExactAndSeedDeterministic()
    {
        const auto model = model::CausalLM::load(tinyLlama());
        const auto windows = randomWindows(8, 16, model->config().vocabSize, 11);
        const auto first = allocation::searchAllocation(*model, windows, smallSearch(0.5, 7));
        const auto again = allocation::searchAllocation(*model, windows, smallSearch(0.5, 7));
        QCOMPARE(first.chosenLevel, again.chosenLevel);
        QCOMPARE(first.bestFitness, again.bestFitness);
        QCOMPARE(first.generationsRun, int64_t(6));
        QCOMPARE(first.stoppedBy, std::string("generations"));
        // 2 blocks × 7 layers; the budget holds exactly, recomputed from the model's shapes.
        QCOMPARE(first.layers.size(), size_t(14));
        QVERIFY2(std::abs(averageSparsity(*model, first) - 0.5) < 1e-12,
                 qPrintable(QString::number(averageSparsity(*model, first), 'g', 17)));
        QVERIFY(std::abs(first.averageSparsity - 0.5) < 1e-12);
        // Levels moved (the search did something), and in whole steps the weighted moves
        // cancel: Σ weights · (level − uniform) = 0 exactly, in integers.
        int64_t net = 0;
        bool moved = false;
        for (size_t l = 0; l < first.layers.size(); ++l) {
            net += first.layers[l].weights * (first.chosenLevel[l] - 3);
            moved = moved || first.chosenLevel[l] != 3;
        }
        QCOMPARE(net, int64_t(0));
        QVERIFY(moved);
        // This model has no group trade-free: q/o (4096 weights) trade with k/v (2048) 1:2 and
        // the MLP (10240) with k/v 1:5. With this seed some sparsity moved between groups.
        std::map<int64_t, int64_t> perGroup;
        for (size_t l = 0; l < first.layers.size(); ++l)
            perGroup[first.layers[l].weights] += first.layers[l].weights * (first.chosenLevel[l] - 3);
        QCOMPARE(perGroup.size(), size_t(3));
        QVERIFY(std::any_of(perGroup.begin(), perGroup.end(), [](const auto& g) { return g.second != 0; }));
        // The fitness never gets worse from one generation to the next (the parent is kept).
        QCOMPARE(first.history.size(), size_t(7));
        for (size_t g = 1; g < first.history.size(); ++g)
            QVERIFY(first.history[g].bestFitness <= first.history[g - 1].bestFitness);
        QCOMPARE(first.history.front().bestFitness, first.uniformFitness);
        // The recipe gives every layer its level.
        solve::SolverOptions base;
        base.sparsity = 0.5;
        const auto recipe = allocation::searchRecipe(first, base);
        for (size_t l = 0; l < first.layers.size(); ++l)
            QCOMPARE(recipe.planFor(first.layers[l].name).options.sparsity, first.sparsity[l]);
    }

    void stitchedFitnessEqualsRealForward()
    {
        const auto model = model::CausalLM::load(tinyLlama());
        const auto windows = randomWindows(8, 16, model->config().vocabSize, 13);
        const auto params = smallSearch(0.6, 3);
        const auto result = allocation::searchAllocation(*model, windows, params);

        // The same levels, built independently: every layer's Hessian from dense inputs
        // (captureLayerProblem), solved alone with its own factorisation, put into a copy.
        torch::NoGradGuard noGrad;
        model::CausalLM stitched(*model);
        std::map<std::string, model::LinearLayer*> byName;
        for (model::LinearLayer* layer : stitched.allLinears())
            byName[pipeline::moduleName(layer->name)] = layer;
        for (size_t l = 0; l < result.layers.size(); ++l) {
            const auto problem = pipeline::captureLayerProblem(*model, windows, result.layers[l].name);
            solve::SolverOptions options = params.base;
            options.sparsity = result.sparsity[l];
            torch::Tensor w = problem.weight.clone();
            (void)solve::solveLayer(w, problem.hessian, options);
            byName.at(result.layers[l].name)->weight = w;
        }
        // KL(p_dense ‖ p_stitched) per position over the 8 fitness windows, from logits.
        std::vector<int64_t> ids(windows.ids.begin(), windows.ids.end());
        const torch::Tensor batch = torch::from_blob(ids.data(), {8, 16}, torch::kLong).clone();
        const torch::Tensor logP = at::log_softmax(model->logits(batch).to(torch::kDouble), -1);
        const torch::Tensor logQ = at::log_softmax(stitched.logits(batch).to(torch::kDouble), -1);
        const double kl = (logP.exp() * (logP - logQ)).sum().item<double>() / (8.0 * 16.0);
        QVERIFY(kl > 0.0);
        QVERIFY2(std::abs(kl - result.bestFitness) <= 1e-4 * kl,
                 qPrintable(QString("independent %1, search %2").arg(kl, 0, 'g', 10).arg(result.bestFitness, 0, 'g', 10)));
        // And the dense model itself is untouched by the search.
        const auto reloaded = model::CausalLM::load(tinyLlama());
        for (int64_t b = 0; b < model->numBlocks(); ++b)
            for (size_t j = 0; j < model->linears(b).size(); ++j)
                QVERIFY(model->linears(b)[j].weight.equal(reloaded->linears(b)[j].weight));
    }

    void searchImprovesOnTheDemoModel()
    {
        // The bundled stories260K at 60 %: ten generations already beat uniform on the
        // calibration KL (each accepted step is a strict improvement, and uniform is the start).
        const auto model = model::CausalLM::load(testing::demoModelDir());
        const auto windows = randomWindows(8, 64, model->config().vocabSize, 5);
        auto params = smallSearch(0.6, 0);
        params.generations = 10;
        const auto result = allocation::searchAllocation(*model, windows, params);
        QVERIFY2(result.bestFitness < 0.97 * result.uniformFitness,
                 qPrintable(QString("uniform %1, found %2").arg(result.uniformFitness).arg(result.bestFitness)));
        QVERIFY(std::abs(averageSparsity(*model, result) - 0.6) < 1e-12);
    }

    void bytesBudgetNeverExceeded()
    {
        const auto model = model::CausalLM::load(tinyLlama());
        const auto windows = randomWindows(8, 16, model->config().vocabSize, 17);
        // The size model by hand: every linear layer's bytes at (s, b), every other parameter fp16.
        int64_t linear = 0;
        std::map<std::string, std::pair<int64_t, int64_t>> shapes;
        for (int64_t b = 0; b < model->numBlocks(); ++b)
            for (const auto& layer : model->linears(b)) {
                shapes[pipeline::moduleName(layer.name)] = {layer.weight.size(0), layer.weight.size(1)};
                linear += layer.weight.numel();
            }
        const int64_t fixed = 2 * (model->parameterCount() - linear);
        const auto sizeAt = [&](double s, int bits) {
            int64_t total = fixed;
            for (const auto& [name, shape] : shapes)
                total += analysis::linearLayerBytes(shape.first, shape.second, s, bits);
            return total;
        };
        // A budget between uniform (0.5, 8 bits) and (0.3, 8 bits): the best uniform that fits
        // is searched from, and the search never goes over.
        const int64_t budget = (sizeAt(0.5, 8) + sizeAt(0.3, 8)) / 2;
        auto p = smallSearch(0.5, 5);
        p.budgetBytes = budget;
        p.bits = {4, 16, 8}; // any order
        p.levelStep = 0.1;
        p.maxSparsity = 0.9;
        p.generations = 8;
        const auto r = allocation::searchAllocation(*model, windows, p);
        QCOMPARE(r.levelSparsity.size(), size_t(10 * 3));
        QCOMPARE(r.levelBits[0], 16);
        QCOMPARE(r.levelBits[2], 4); // bits from the widest down
        int64_t total = fixed;
        for (size_t l = 0; l < r.layers.size(); ++l) {
            const auto shape = shapes.at(r.layers[l].name);
            total += analysis::linearLayerBytes(shape.first, shape.second, r.sparsity[l], r.bits[l]);
        }
        QCOMPARE(total, r.modelBytes);
        QVERIFY2(total <= budget, qPrintable(QString("%1 > %2").arg(total).arg(budget)));
        QVERIFY(r.uniformBytes <= budget);
        QVERIFY(r.bestFitness <= r.uniformFitness);
        // The start is a uniform level: its bytes are the size model's at that level.
        QCOMPARE(r.uniformBytes, sizeAt(r.levelSparsity[size_t(r.uniformLevel)], r.levelBits[size_t(r.uniformLevel)]));
        // Same seed, same levels.
        const auto again = allocation::searchAllocation(*model, windows, p);
        QCOMPARE(again.chosenLevel, r.chosenLevel);
        // The recipe carries the bits below 16.
        solve::SolverOptions base;
        const auto recipe = allocation::searchRecipe(r, base);
        for (size_t l = 0; l < r.layers.size(); ++l)
            QCOMPARE(recipe.planFor(r.layers[l].name).options.quant.bits, r.bits[l]);
        // A budget below every uniform level is refused, naming the option.
        p.budgetBytes = sizeAt(0.9, 4) - 1;
        QVERIFY_THROWS_EXCEPTION(InputError, (void)allocation::searchAllocation(*model, windows, p));
    }

    void refusals()
    {
        const auto model = model::CausalLM::load(tinyLlama());
        const auto windows = randomWindows(4, 16, model->config().vocabSize, 1);
        auto p = smallSearch(0.5, 0);
        p.maxDatabaseBytes = 1024; // far below 7 levels of the model's weights
        QVERIFY_THROWS_EXCEPTION(InputError, (void)allocation::searchAllocation(*model, windows, p));
        p = smallSearch(0.5, 0);
        p.survivors = 10; // more than the offspring
        QVERIFY_THROWS_EXCEPTION(InputError, (void)allocation::searchAllocation(*model, windows, p));
        p = smallSearch(0.5, 0);
        p.base.quant.bits = 4;
        QVERIFY_THROWS_EXCEPTION(InputError, (void)allocation::searchAllocation(*model, windows, p));
        p = smallSearch(0.97, 0); // above maxSparsity
        QVERIFY_THROWS_EXCEPTION(InputError, (void)allocation::searchAllocation(*model, windows, p));
    }
};

QTEST_GUILESS_MAIN(SearchTest)
#include "test_search.moc"
