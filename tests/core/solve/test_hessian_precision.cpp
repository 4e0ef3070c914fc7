// Opt-in bfloat16 Hessian accumulation (solve/solver.h, HessianPrecision::BFloat16):
// - inputs and products exactly representable in bfloat16 (small integers, sums ≤ 256) give
//   the float32 Hessian to float32 rounding, so the mode changes the inputs' rounding only;
// - on Gaussian inputs the deviation from float32 is that of bfloat16 rounding: between
//   2⁻¹⁴ and 2⁻⁶ relative (Frobenius), never zero;
// - the pipeline with bf16 Hessians reports, for every solved layer of the first block, the
//   deviation and the layer's error judged by the float32 Hessian, and the pruned demo model's
//   perplexity stays within 5 % of the float32 run's. Bundled data only.

#include "testsupport.h"

#include "data/calibration.h"
#include "eval/perplexity.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "solve/solver.h"
#include "tokenize/tokenizer.h"
#include "util/errors.h"

#include <torch/types.h>

#include <QTest>

#include <cmath>
#include <fstream>
#include <sstream>

using namespace sparselab;

namespace {

double relDeviation(const torch::Tensor& a, const torch::Tensor& b)
{
    return ((a - b).norm() / b.norm()).item<double>();
}

} // namespace

class TestHessianPrecision : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void namesParse()
    {
        QCOMPARE(solve::parseHessianPrecision("bf16", "--hessian-dtype"), solve::HessianPrecision::BFloat16);
        QCOMPARE(solve::parseHessianPrecision("float32", "--hessian-dtype"), solve::HessianPrecision::Float32);
        QCOMPARE(solve::hessianPrecisionName(solve::HessianPrecision::BFloat16), std::string("bf16"));
        try {
            (void)solve::parseHessianPrecision("fp8", "--hessian-dtype");
            QFAIL("fp8 was accepted");
        } catch (const InputError& e) {
            QVERIFY(std::string(e.what()).find("--hessian-dtype") != std::string::npos);
        }
    }

    void exactInputsGiveTheFloat32HessianExactly()
    {
        // Entries in {-2..2}, 3 batches of 2 × 8 tokens, 40 columns: each XᵀX entry is an
        // integer of magnitude ≤ 16·4 = 64, exact in bfloat16's 8-bit significand; the scaling
        // by 2/N and N/(N+b) then happens in float32 in both modes.
        torch::manual_seed(3);
        solve::HessianAccumulator fp(40, torch::kCPU);
        solve::HessianAccumulator bf(40, torch::kCPU, solve::HessianPrecision::BFloat16);
        for (int i = 0; i < 3; ++i) {
            const auto x = torch::randint(-2, 3, {2, 8, 40}).to(torch::kFloat);
            fp.add(x);
            bf.add(x);
        }
        // Equal up to the float32 rounding of the scaling (BLAS fuses α·XᵀX + β·H, the bf16 path
        // rounds the two terms apart): ≤ a few ulps, far below bf16 rounding (≥ 2⁻¹⁴ below).
        const double deviation = relDeviation(bf.hessian(), fp.hessian());
        QVERIFY2(deviation < 1e-6, std::to_string(deviation).c_str());
        QCOMPARE(bf.samples(), int64_t(6));
    }

    void gaussianInputsDeviateByBfloat16Rounding()
    {
        torch::manual_seed(4);
        solve::HessianAccumulator fp(96, torch::kCPU);
        solve::HessianAccumulator bf(96, torch::kCPU, solve::HessianPrecision::BFloat16);
        for (int i = 0; i < 4; ++i) {
            const auto x = torch::randn({4, 64, 96});
            fp.add(x);
            bf.add(x);
        }
        const double deviation = relDeviation(bf.hessian(), fp.hessian());
        QVERIFY2(deviation > std::ldexp(1.0, -14) && deviation < std::ldexp(1.0, -6), std::to_string(deviation).c_str());
        QVERIFY(torch::equal(bf.hessian(), bf.hessian().t())); // still exactly symmetric
    }

    void pipelineReportsTheDeviation()
    {
        torch::NoGradGuard noGrad;
        const auto model = model::CausalLM::load(testing::demoModelDir());
        const auto tokenizer = tokenize::loadTokenizer(testing::demoModelDir());
        const auto readText = [](const std::filesystem::path& p) {
            std::ifstream in(p, std::ios::binary);
            std::ostringstream s;
            s << in.rdbuf();
            return s.str();
        };
        data::CalibrationParams cp;
        cp.nsamples = 16;
        cp.seqlen = 128;
        const auto windows =
            data::sampleCalibrationWindows(tokenizer->encodeForModel(readText(testing::demoCalibText())), cp, testing::demoCalibText());
        const auto evalIds = tokenizer->encodeForModel(readText(testing::demoEvalText()));
        eval::PerplexityParams ep;
        ep.seqlen = 128;
        ep.maxWindows = 64;

        double perplexity[2] = {0, 0};
        for (int mode = 0; mode < 2; ++mode) {
            auto copy = model::CausalLM::load(testing::demoModelDir());
            pipeline::PruneParams params;
            params.recipe.defaults.options.sparsity = 0.5;
            params.hessianPrecision = mode == 0 ? solve::HessianPrecision::Float32 : solve::HessianPrecision::BFloat16;
            std::vector<std::string> lines;
            pipeline::PruneObserver observer;
            observer.log = [&](const std::string& line) { lines.push_back(line); };
            const auto result = pipeline::pruneModel(*copy, windows, params, observer);
            perplexity[mode] = eval::evaluatePerplexity(*copy, evalIds, ep).perplexity;
            if (mode == 0) {
                QVERIFY(result.hessianDeviation.empty());
                continue;
            }
            QCOMPARE(result.hessianDeviation.size(), size_t(7)); // block 0's q, k, v, o, gate, up, down
            for (const auto& d : result.hessianDeviation) {
                QVERIFY2(d.name.rfind("model.layers.0.", 0) == 0, d.name.c_str());
                QVERIFY2(d.relFrobenius > 1e-5 && d.relFrobenius < 3e-2, d.name.c_str());
                const auto layer = std::find_if(result.layers.begin(), result.layers.end(),
                                                [&](const solve::LayerRecord& r) { return r.name == d.name; });
                QVERIFY(layer != result.layers.end());
                // Judged by either Hessian, the error is the same to within a few per cent.
                QVERIFY(std::abs(d.relOutputErrorFp32 / layer->stats.relOutputError - 1.0) < 0.1);
            }
            QVERIFY(std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
                        return l.find("bf16 Hessian deviates from float32") != std::string::npos;
                    }) == 7);
        }
        QVERIFY2(std::abs(perplexity[1] / perplexity[0] - 1.0) < 0.05,
                 (std::to_string(perplexity[0]) + " vs " + std::to_string(perplexity[1])).c_str());
    }
};

QTEST_MAIN(TestHessianPrecision)
#include "test_hessian_precision.moc"
