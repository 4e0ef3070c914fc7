// OWL (allocation/owl.h): the sparsity rule on hand-built outlier ratios (values derived by
// hand), the per-block outlier ratios of the bundled 2-block Llama test model recomputed here
// from the published definition with plain tensor operations, and the recipe it makes.

#include "allocation/owl.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "util/errors.h"
#include "model_test_data.h"

#include <ATen/Parallel.h>
#include <QTest>

#include <torch/types.h>

#include <cmath>
#include <numeric>
#include <random>

using namespace sparselab;

using testing::randomWindows;
using testing::tinyLlama;

class OwlTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { at::set_num_threads(1); }

    void sparsityRuleByHand()
    {
        // D = {0.01, 0.03, 0.02, 0.05}, S = 0.6, λ = 0.08: D' = (D − 0.01)/0.04 · 0.16 =
        // {0, 0.08, 0.04, 0.16}, mean 0.07; keep = D' − 0.07 + 0.4 = {0.33, 0.41, 0.37, 0.49};
        // sparsity = {0.67, 0.59, 0.63, 0.51}, average 0.6.
        const auto s = allocation::owlSparsities({0.01, 0.03, 0.02, 0.05}, 0.6, 0.08);
        const std::vector<double> expected = {0.67, 0.59, 0.63, 0.51};
        QCOMPARE(s.size(), expected.size());
        for (size_t i = 0; i < s.size(); ++i)
            QVERIFY2(std::abs(s[i] - expected[i]) < 1e-12, qPrintable(QString("block %1: %2").arg(i).arg(s[i])));
        QVERIFY(std::abs(std::accumulate(s.begin(), s.end(), 0.0) / 4 - 0.6) < 1e-12);
        // The most outliers (block 3) are pruned least, the fewest (block 0) most.
        QVERIFY(s[3] < s[1] && s[1] < s[2] && s[2] < s[0]);
        // Equal ratios: everyone gets S.
        for (const double v : allocation::owlSparsities({0.02, 0.02, 0.02}, 0.5, 0.08))
            QCOMPARE(v, 0.5);
    }

    void ratiosAsPublished()
    {
        const auto model = model::CausalLM::load(tinyLlama());
        const auto windows = randomWindows(6, 16, model->config().vocabSize, 5);
        allocation::OwlParams params;
        params.targetSparsity = 0.5;
        params.outlierMultiple = 3.0; // the tiny random model has few 5× outliers; 3× gives some
        const auto owl = allocation::owlAllocation(*model, windows, params);
        QCOMPARE(owl.outlierRatio.size(), size_t(2));

        // The published definition with plain tensor operations: dense inputs block by block,
        // A = |W| · ‖X_j‖ per linear layer, outliers above M × the block's mean of A.
        torch::NoGradGuard noGrad;
        std::vector<int64_t> flat(windows.ids.begin(), windows.ids.end());
        torch::Tensor x = model->embed(torch::from_blob(flat.data(), {6, 16}, torch::kLong).clone());
        for (int64_t b = 0; b < 2; ++b) {
            std::map<std::string, torch::Tensor> inputs;
            const torch::Tensor next = model->runBlock(b, x, [&](const model::LinearLayer& l, const torch::Tensor& in) {
                inputs[l.name] = in.reshape({-1, in.size(-1)}).to(torch::kDouble);
            });
            std::vector<torch::Tensor> all;
            for (const auto& layer : model->linears(b)) {
                const torch::Tensor norms = inputs.at(layer.name).norm(2, 0); // ‖X_j‖ over tokens
                all.push_back((layer.weight.to(torch::kDouble).abs() * norms).flatten());
            }
            const torch::Tensor a = torch::cat(all);
            const double ratio = (a > 3.0 * a.mean()).to(torch::kDouble).mean().item<double>();
            QVERIFY2(std::abs(ratio - owl.outlierRatio[size_t(b)]) < 1e-12,
                     qPrintable(QString("block %1: %2 vs %3").arg(b).arg(owl.outlierRatio[size_t(b)]).arg(ratio)));
            QVERIFY(ratio > 0.0);
            x = next;
        }
        // Two blocks with different ratios: one at S − λ, the other at S + λ, average S.
        QVERIFY(owl.outlierRatio[0] != owl.outlierRatio[1]);
        const auto [lo, hi] = std::minmax_element(owl.blockSparsity.begin(), owl.blockSparsity.end());
        QVERIFY(std::abs(*lo - 0.42) < 1e-12 && std::abs(*hi - 0.58) < 1e-12);
        QVERIFY(std::abs(owl.averageSparsity - 0.5) < 1e-12);

        // The recipe: each layer its block's sparsity.
        const auto recipe = allocation::owlRecipe(owl, *model, solve::SolverOptions{});
        for (int64_t b = 0; b < 2; ++b)
            for (const auto& layer : model->linears(b))
                QCOMPARE(recipe.planFor(pipeline::moduleName(layer.name)).options.sparsity, owl.blockSparsity[size_t(b)]);
    }

    void badParametersAreRefused()
    {
        allocation::OwlParams p;
        p.targetSparsity = 0.95; // + λ ≥ 1
        QVERIFY_THROWS_EXCEPTION(InputError, p.validate());
        p = {};
        p.lambda = -0.1;
        QVERIFY_THROWS_EXCEPTION(InputError, p.validate());
        p = {};
        p.outlierMultiple = 0;
        QVERIFY_THROWS_EXCEPTION(InputError, p.validate());
    }
};

QTEST_GUILESS_MAIN(OwlTest)
#include "test_owl.moc"
