// The teaching stepper (solve/sparsegpt_stepper.h), the synthetic problems and comparison
// curves (solve/teaching_problems.h) and the layer capture (pipeline/layer_capture.h).
//
// Exactness: stepping a whole layer must give solveLayer's masks and weights bit for bit and
// its loss exactly, on the golden problems of tests/data/solver, synthetic problems and real
// layers of the bundled demo model (Hessians captured from 32 calibration windows).
// The 8 × 16 case is worked out by hand in handCheckedFirstStep.

#include "solve/solver.h"
#include "solve/solver_detail.h"
#include "solve/sparsegpt_stepper.h"
#include "solve/teaching_problems.h"
#include "solver_test_data.h"
#include "testsupport.h"

#include "data/calibration.h"
#include "model/causal_lm.h"
#include "pipeline/layer_capture.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <QTest>

#include <torch/types.h>

#include <cmath>
#include <map>

using namespace sparselab;
using namespace sparselab::solve;
namespace sd = sparselab::solve::detail;

Q_DECLARE_METATYPE(sparselab::solve::SolverOptions)

namespace {

struct DemoFixture {
    std::unique_ptr<model::CausalLM> model;
    data::CalibrationWindows windows;
    std::map<std::string, pipeline::LayerProblem> layers;
};

const DemoFixture& demo()
{
    static const DemoFixture f = [] {
        DemoFixture x;
        x.model = model::CausalLM::load(testing::demoModelDir());
        const auto tokenizer = tokenize::loadTokenizer(testing::demoModelDir());
        data::CalibrationParams params;
        params.nsamples = 32;
        params.seqlen = 256;
        x.windows = data::sampleCalibrationWindows(
            tokenizer->encodeForModel(readTextFile(testing::demoCalibText())), params, testing::demoCalibText());
        for (const char* name : {"model.layers.0.self_attn.q_proj", "model.layers.2.mlp.down_proj",
                                 "model.layers.4.mlp.gate_proj"})
            x.layers.emplace(name, pipeline::captureLayerProblem(*x.model, x.windows, name));
        return x;
    }();
    return f;
}

testing::SolverProblem problemByName(const QString& name)
{
    if (name.startsWith("golden-"))
        return testing::loadProblem(name.mid(7).toStdString());
    if (name.startsWith("demo:")) {
        const auto& p = demo().layers.at(name.mid(5).toStdString());
        return {p.weight, p.hessian};
    }
    SyntheticProblemParams params;
    params.rows = 40;
    params.cols = 72;
    params.seed = 7;
    params.preset = name == "synthetic-correlated" ? HessianPreset::Correlated : HessianPreset::RandomInputs;
    const auto s = makeSyntheticProblem(params);
    return {s.weight, s.hessian};
}

// The hand-checkable 8 × 16 weight: block 0 (columns 0..7) holds ±k/100 for k a permutation of
// 1..64, k = ((8r + c)·29 mod 64) + 1, sign (−1)^(r+c); block 1 likewise with 13 for 29.
torch::Tensor handWeight()
{
    auto w = torch::empty({8, 16}, torch::kFloat);
    for (int r = 0; r < 8; ++r)
        for (int c = 0; c < 16; ++c) {
            const int multiplier = c < 8 ? 29 : 13;
            const int k = ((8 * r + (c % 8)) * multiplier) % 64 + 1;
            w[r][c] = float(((r + c) % 2 == 0 ? 1 : -1) * k) / 100.0f;
        }
    return w;
}

double maxAbs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

} // namespace

class TestSparseGptStepper : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void stepperEqualsSolver_data()
    {
        QTest::addColumn<QString>("problem");
        QTest::addColumn<SolverOptions>("options");
        std::vector<std::pair<const char*, SolverOptions>> sets;
        SolverOptions o;
        sets.emplace_back("50%", o);
        o.blocksize = 32;
        o.sparsity = 0.6;
        sets.emplace_back("60% blocks of 32", o);
        o = SolverOptions();
        o.nmN = 2;
        o.nmM = 4;
        sets.emplace_back("2:4", o);
        o.quant.bits = 4;
        o.quant.groupSize = 16;
        o.quant.symmetric = true;
        sets.emplace_back("2:4 + 4 bit sym groups of 16", o);
        o = SolverOptions();
        o.quant.bits = 4;
        sets.emplace_back("50% + 4 bit", o);
        o = SolverOptions();
        o.sparsity = 0.0;
        o.quant.bits = 3;
        o.blocksize = 16;
        o.quant.groupSize = 24;
        sets.emplace_back("GPTQ 3 bit groups of 24, blocks of 16", o);
        for (const char* problem : {"golden-a", "golden-b", "golden-c", "synthetic-correlated", "synthetic-random",
                                    "demo:model.layers.0.self_attn.q_proj", "demo:model.layers.2.mlp.down_proj",
                                    "demo:model.layers.4.mlp.gate_proj"})
            for (const auto& [label, options] : sets)
                QTest::addRow("%s / %s", problem, label) << QString(problem) << options;
    }

    void stepperEqualsSolver()
    {
        QFETCH(QString, problem);
        QFETCH(SolverOptions, options);
        const auto p = problemByName(problem);
        auto solved = p.weight.clone();
        const auto reference = solveLayer(solved, p.hessian, options);

        SparseGptStepper stepper(p.weight, p.hessian, options);
        int64_t steps = 0;
        while (stepper.stepColumn())
            ++steps;
        QCOMPARE(steps, p.weight.size(1));
        QVERIFY(stepper.finished());
        QVERIFY2(torch::equal(stepper.weight(), solved), "weights differ from solveLayer's");
        QVERIFY(torch::equal(stepper.mask(), reference.mask));
        QCOMPARE(stepper.loss(), reference.stats.loss);
        QCOMPARE(int64_t(stepper.lossCurve().size()), steps);
        QCOMPARE(stepper.lossCurve().back(), reference.stats.loss);
        const auto stats = stepper.stats();
        QCOMPARE(stats.sparsity, reference.stats.sparsity);
        QCOMPARE(stats.dampUsed, reference.stats.dampUsed);
        QCOMPARE(stats.deadInputs, reference.stats.deadInputs);
        QVERIFY(std::abs(stats.relOutputError - reference.stats.relOutputError)
                <= 1e-4 * std::max(1e-3, reference.stats.relOutputError));

        // Block steps and one run to the end give the same bits.
        SparseGptStepper byBlock(p.weight, p.hessian, options);
        while (byBlock.stepBlock()) {
        }
        QVERIFY(torch::equal(byBlock.weight(), solved));
        SparseGptStepper whole(p.weight, p.hessian, options);
        whole.runToEnd();
        QVERIFY(torch::equal(whole.weight(), solved));
        QCOMPARE(whole.loss(), reference.stats.loss);
    }

    void handCheckedFirstStep()
    {
        // W 8 × 16 from handWeight(), H_ij = 0.5^|i−j| (preset "correlated", ρ = 0.5), damp 0,
        // blocks of 8, unstructured 50 %.
        // Hinv = U with UᵀU = H⁻¹ is bidiagonal (teaching_problems.h): U_ii = 1/√(1 − ρ²) =
        // 1/√0.75 = 1.1547005 for i < 15, U_15,15 = 1, U_i,i+1 = −ρ/√0.75 = −0.5773503.
        // Block 0: saliency w²/U_ii² = 0.75·w². Its 64 |w| are 0.01 … 0.64; the threshold is the
        // score at sorted index int(64 · 0.5) = 32, the 33rd smallest: 0.75 · 0.33² = 0.081675,
        // and `<=` prunes 33 entries (|w| <= 0.33).
        // Column 0 (k = (40r mod 64) + 1, sign (−1)^r):
        //   w = 0.01, −0.41, 0.17, −0.57, 0.33, −0.09, 0.49, −0.25 → pruned rows 0, 2, 4, 5, 7;
        //   err = (w − 0)/U_00 = w·√0.75: 0.0086603, 0, 0.1472243, 0, 0.2857884, −0.0779423, 0, −0.2165064;
        //   column 1 −= err·U_01 = +ρ·w: −0.30 → −0.295, −0.46 → −0.375, −0.62 → −0.455,
        //   0.38 → 0.335, 0.54 → 0.415 (rows 1, 3, 6 keep 0.06, 0.22, −0.14); columns 2..7 unchanged;
        //   loss = Σ 0.75·w²/2 over the pruned = 0.75 · 0.2085 / 2 = 0.0781875.
        SolverOptions o;
        o.blocksize = 8;
        o.damp = 0.0;
        const auto w = handWeight();
        const auto h = correlatedHessian(16, 0.5);
        SparseGptStepper s(w, h, o);
        QVERIFY(s.atBlockStart());
        QVERIFY(s.stepColumn());
        const auto& b = s.block();
        QCOMPARE(b.begin, int64_t(0));
        QCOMPARE(b.end, int64_t(8));
        QCOMPARE(b.rank, int64_t(32));
        QVERIFY(std::abs(b.threshold - 0.081675) < 1e-6);
        QCOMPARE(b.prunedInBlock, int64_t(33));
        for (float d : b.hinvDiagonal)
            QVERIFY(std::abs(d - 1.1547005) < 1e-5);
        const auto& c = s.lastColumn();
        QCOMPARE(c.column, int64_t(0));
        QVERIFY(std::abs(c.d - 1.1547005) < 1e-5);
        QVERIFY(std::abs(c.hinvRow[1] - -0.5773503) < 1e-5);
        for (size_t j = 2; j < c.hinvRow.size(); ++j)
            QVERIFY(std::abs(c.hinvRow[j]) < 1e-6);
        const std::vector<float> expectW{0.01f, -0.41f, 0.17f, -0.57f, 0.33f, -0.09f, 0.49f, -0.25f};
        const std::vector<uint8_t> expectPruned{1, 0, 1, 0, 1, 1, 0, 1};
        const std::vector<double> expectErr{0.0086603, 0, 0.1472243, 0, 0.2857884, -0.0779423, 0, -0.2165064};
        const std::vector<double> expectCol1{-0.295, 0.06, -0.375, 0.22, -0.455, 0.335, -0.14, 0.415};
        for (int r = 0; r < 8; ++r) {
            QCOMPARE(c.w[size_t(r)], expectW[size_t(r)]);
            QCOMPARE(c.pruned[size_t(r)], expectPruned[size_t(r)]);
            QCOMPARE(c.q[size_t(r)], expectPruned[size_t(r)] ? 0.0f : expectW[size_t(r)]);
            QVERIFY2(std::abs(c.err[size_t(r)] - expectErr[size_t(r)]) < 1e-6, qPrintable(QString::number(r)));
            QVERIFY(std::abs(c.blockAfter[size_t(r * 8 + 1)] - expectCol1[size_t(r)]) < 1e-6);
            for (int j = 2; j < 8; ++j)
                QVERIFY(std::abs(c.blockAfter[size_t(r * 8 + j)] - w[r][j].item<float>()) < 1e-6);
        }
        QVERIFY(std::abs(c.columnLoss - 0.0781875) < 1e-6);
        QVERIFY(std::abs(s.loss() - 0.0781875) < 1e-6);

        // The rest of block 0; the lazy update then adds ρ·(w₇ − q₇) to column 8 (only
        // U_7,8 = −0.5773503 couples the blocks), and column 9.. are untouched.
        QVERIFY(s.stepBlock());
        const auto& last = s.lastColumn();
        QCOMPARE(last.column, int64_t(7));
        QVERIFY(last.endedBlock);
        const auto now = s.weight();
        for (int r = 0; r < 8; ++r) {
            const double expected = w[r][8].item<double>() + 0.5 * double(last.w[size_t(r)] - last.q[size_t(r)]);
            QVERIFY(std::abs(now[r][8].item<double>() - expected) < 1e-6);
            for (int j = 9; j < 16; ++j)
                QCOMPARE(now[r][j].item<float>(), w[r][j].item<float>());
        }
        QCOMPARE(s.mask().narrow(1, 0, 8).sum().item<int64_t>(), int64_t(33));
    }

    void runningLossIsTheEffectiveWeightsLoss()
    {
        // OBS identity: after every column, ½·tr(ΔW H_d ΔWᵀ) of the effective weights (pending
        // lazy updates applied) equals the running loss Σ (w − q)²/[Hinv]ᵢᵢ²/2.
        const auto& p = demo().layers.at("model.layers.2.mlp.down_proj"); // [64, 172]: two blocks of 128
        SolverOptions o;
        o.sparsity = 0.5;
        SparseGptStepper s(p.weight, p.hessian, o);
        const auto hd = s.dampedHessian();
        const auto start = p.weight; // no dead inputs in this layer
        QCOMPARE(s.stats().deadInputs, int64_t(0));
        while (s.stepColumn()) {
            const double direct = sd::quadraticTrace(start - s.effectiveWeight(), hd) / 2.0;
            QVERIFY2(std::abs(direct - s.loss()) <= 2e-4 * std::max(s.loss(), 1e-3),
                     qPrintable(QString("column %1: %2 vs %3").arg(s.columnsDone()).arg(direct).arg(s.loss())));
        }
    }

    void blockSaliencyAndThreshold()
    {
        const auto p = problemByName("synthetic-random");
        SolverOptions o;
        o.sparsity = 0.7;
        o.blocksize = 32;
        SparseGptStepper s(p.weight, p.hessian, o);
        while (!s.finished()) {
            QVERIFY(s.stepColumn());
            const auto& b = s.block();
            const int64_t count = b.end - b.begin;
            QCOMPARE(int64_t(b.saliency.size()), s.rows() * count);
            auto sorted = b.saliency;
            std::sort(sorted.begin(), sorted.end());
            QCOMPARE(b.rank, int64_t(double(sorted.size()) * 0.7));
            QCOMPARE(b.threshold, sorted[size_t(b.rank)]);
            QVERIFY(torch::equal(s.weightRows(3, 5), s.weight().narrow(0, 3, 5)));
            QVERIFY(torch::equal(s.maskRows(3, 5), s.mask().narrow(0, 3, 5)));
            const auto blockMask = s.mask().narrow(1, b.begin, count);
            QCOMPARE(blockMask.sum().item<int64_t>(), b.prunedInBlock);
        }
    }

    void nmGroupsChosenFromCurrentWeights()
    {
        const auto p = problemByName("synthetic-correlated");
        SolverOptions o;
        o.nmN = 2;
        o.nmM = 4;
        SparseGptStepper s(p.weight, p.hessian, o);
        QVERIFY(s.stepColumn());
        const auto& c = s.lastColumn();
        QCOMPARE(c.groupWidth, int64_t(4));
        // Per row: the 2 smallest of the group's 4 scores are pruned.
        const auto m = s.mask();
        for (int64_t r = 0; r < s.rows(); ++r) {
            std::vector<float> scores(c.groupSaliency.begin() + r * 4, c.groupSaliency.begin() + r * 4 + 4);
            auto sorted = scores;
            std::sort(sorted.begin(), sorted.end());
            int pruned = 0;
            for (int k = 0; k < 4; ++k) {
                const bool isPruned = m[r][k].item<bool>();
                pruned += isPruned ? 1 : 0;
                if (isPruned)
                    QVERIFY(scores[size_t(k)] <= sorted[1]);
            }
            QCOMPARE(pruned, 2);
        }
        QVERIFY(std::isnan(s.block().threshold));
    }

    void comparisonCurves()
    {
        const auto& p = demo().layers.at("model.layers.0.self_attn.q_proj");
        ComparisonParams params;
        params.points = 16;
        const auto curves = compareOnLayer(p.weight, p.hessian, params);
        QCOMPARE(int(curves.size()), 4);
        QCOMPARE(QString::fromStdString(curves[0].label), QString("magnitude 50%"));
        QCOMPARE(QString::fromStdString(curves[3].label), QString("SparseGPT 2:4"));
        for (size_t k = 0; k < curves.size(); ++k) {
            const auto& c = curves[k];
            QCOMPARE(c.columns.back(), p.weight.size(1));
            QCOMPARE(c.loss.size(), c.columns.size());
            // The curves end at the solvers' own figures.
            SolverOptions o;
            o.method = k % 2 == 0 ? Method::Magnitude : Method::SparseGpt;
            if (k >= 2) {
                o.nmN = 2;
                o.nmM = 4;
            }
            auto w = p.weight.clone();
            const auto r = solveLayer(w, p.hessian, o);
            QVERIFY2(std::abs(c.relOutputError.back() - r.stats.relOutputError) <= 1e-4 * r.stats.relOutputError,
                     qPrintable(QString("%1: %2 vs %3").arg(c.label.c_str()).arg(c.relOutputError.back())
                                    .arg(r.stats.relOutputError)));
            QCOMPARE(c.sparsity, r.stats.sparsity);
            if (o.method == Method::SparseGpt)
                QCOMPARE(c.loss.back(), r.stats.loss);
            for (size_t i = 1; i < c.loss.size(); ++i)
                QVERIFY(c.loss[i] >= c.loss[i - 1] - 1e-9); // pruning more columns only adds loss
        }
        // On a real layer SparseGPT's compensation beats magnitude pruning at the same sparsity.
        QVERIFY(curves[1].relOutputError.back() < curves[0].relOutputError.back());
        QVERIFY(curves[3].relOutputError.back() < curves[2].relOutputError.back());
        QVERIFY(curves[1].loss.back() < curves[0].loss.back());
    }

    void syntheticProblems()
    {
        SyntheticProblemParams params;
        params.preset = HessianPreset::Identity;
        auto a = makeSyntheticProblem(params);
        QCOMPARE(a.weight.sizes(), (torch::IntArrayRef{8, 16}));
        QVERIFY(torch::equal(a.hessian, torch::eye(16)));
        // Weights on the 0.01 grid within [−1, 1]; the same seed gives the same problem.
        QVERIFY(((a.weight * 100).round() - a.weight * 100).abs().max().item<double>() < 1e-4);
        QVERIFY(maxAbs(a.weight) <= 1.0);
        QVERIFY(torch::equal(makeSyntheticProblem(params).weight, a.weight));
        params.seed = 1;
        QVERIFY(!torch::equal(makeSyntheticProblem(params).weight, a.weight));
        params.preset = HessianPreset::RandomInputs;
        const auto r = makeSyntheticProblem(params);
        QVERIFY(torch::allclose(r.hessian, r.hessian.t()));
        QVERIFY(at::linalg_eigvalsh(r.hessian.to(torch::kDouble)).min().item<double>() > 0.0);
        // Correlated: the factor of H⁻¹ is the bidiagonal U of the header (computed by the solver's
        // own factorisation, compared with the closed form).
        const auto u = sd::upperCholeskyOfInverse(correlatedHessian(16, 0.5));
        for (int i = 0; i < 16; ++i)
            for (int j = 0; j < 16; ++j) {
                const double expected = i == j ? (i < 15 ? 1.0 / std::sqrt(0.75) : 1.0)
                    : (j == i + 1 ? -0.5 / std::sqrt(0.75) : 0.0);
                QVERIFY(std::abs(u[i][j].item<double>() - expected) < 1e-5);
            }
        params.rows = 0;
        QVERIFY_THROWS_EXCEPTION(InputError, (void)makeSyntheticProblem(params));
    }

    void parseMatrix()
    {
        const auto m = parseMatrixText("1, 2  3\n\n-4.5\t5e-1 6;7 8 9\n", "W");
        QCOMPARE(m.sizes(), (torch::IntArrayRef{3, 3}));
        QCOMPARE(m[1][0].item<float>(), -4.5f);
        QCOMPARE(m[1][1].item<float>(), 0.5f);
        QCOMPARE(m[2][2].item<float>(), 9.0f);
        try {
            (void)parseMatrixText("1 2\n3", "W");
            QFAIL("ragged rows accepted");
        } catch (const InputError& e) {
            QCOMPARE(QString(e.what()), QString("W: row 2 has 1 numbers, row 1 has 2"));
        }
        QVERIFY_THROWS_EXCEPTION(InputError, (void)parseMatrixText("1 x", "H"));
        QVERIFY_THROWS_EXCEPTION(InputError, (void)parseMatrixText("1 nan", "H"));
        QVERIFY_THROWS_EXCEPTION(InputError, (void)parseMatrixText(" \n ", "H"));
    }

    void stepperRejectsBadInput()
    {
        QVERIFY_THROWS_EXCEPTION(InputError, SparseGptStepper(torch::ones({4}), torch::eye(4), SolverOptions()));
        QVERIFY_THROWS_EXCEPTION(InputError, SparseGptStepper(torch::ones({4, 4}), torch::eye(5), SolverOptions()));
        SolverOptions o;
        o.nmN = 2;
        o.nmM = 4;
        o.blocksize = 6;
        QVERIFY_THROWS_EXCEPTION(InputError, SparseGptStepper(torch::ones({4, 8}), torch::eye(8), o));
        auto bad = torch::ones({4, 4});
        bad[0][0] = NAN;
        QVERIFY_THROWS_EXCEPTION(InputError, SparseGptStepper(bad, torch::eye(4), SolverOptions()));
    }

    void captureMatchesDirectAccumulation()
    {
        // H of block 0's q_proj from the capture equals (2/N)·Σ XᵀX of that layer's inputs
        // collected with the model's hook over the same windows, summed here in double.
        const auto& d = demo();
        const auto& p = d.layers.at("model.layers.0.self_attn.q_proj");
        QCOMPARE(p.samples, int64_t(32));
        QCOMPARE(p.block, int64_t(0));
        torch::NoGradGuard noGrad;
        const auto ids = torch::from_blob(const_cast<int64_t*>(d.windows.ids.data()), {32, 256}, torch::kInt64);
        torch::Tensor sum = torch::zeros({64, 64}, torch::kDouble);
        (void)d.model->runBlock(0, d.model->embed(ids), [&](const model::LinearLayer& l, const torch::Tensor& x) {
            if (l.name == "model.layers.0.self_attn.q_proj.weight") {
                const auto xs = x.reshape({-1, 64}).to(torch::kDouble);
                sum += xs.t().matmul(xs);
            }
        });
        const auto expected = sum * (2.0 / 32.0);
        const double rel = maxAbs(p.hessian.to(torch::kDouble) - expected) / maxAbs(expected);
        QVERIFY2(rel < 1e-5, qPrintable(QString::number(rel)));
        QVERIFY(torch::equal(p.weight, d.model->linears(0)[0].weight));
        // Unknown layers are named in the error; cancel stops the capture.
        try {
            (void)pipeline::captureLayerProblem(*d.model, d.windows, "model.layers.9.nope");
            QFAIL("unknown layer accepted");
        } catch (const InputError& e) {
            QVERIFY(QString(e.what()).contains("model.layers.9.nope"));
        }
        CancelToken cancel;
        cancel.cancel();
        QVERIFY_THROWS_EXCEPTION(CancelledError, (void)pipeline::captureLayerProblem(
                                                     *d.model, d.windows, p.name, 8, {{}, &cancel}));
    }
};

QTEST_GUILESS_MAIN(TestSparseGptStepper)
#include "test_sparsegpt_stepper.moc"
