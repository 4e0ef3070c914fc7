// Magnitude and Wanda baselines: golden masks from a transcription of locuslab/wanda's
// prune.py (tests/data/solver/{magnitude,wanda}_*.safetensors, see tests/data/README.md), and
// direct computations (full sorts) on random and hand-made matrices.

#include "solve/solver.h"
#include "solve/solver_detail.h"
#include "solver_test_data.h"
#include "util/errors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <QTest>

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

using namespace sparselab;
using namespace sparselab::solve;
namespace sd = sparselab::solve::detail;
using sparselab::testing::caseFiles;
using sparselab::testing::caseOptions;
using sparselab::testing::loadProblem;
using sparselab::testing::loadTensor;
using sparselab::testing::metaValue;

namespace {

torch::Tensor matrix(std::vector<float> values, int64_t rows)
{
    const auto n = int64_t(values.size());
    return torch::tensor(values).reshape({rows, n / rows});
}

LayerResult prune(torch::Tensor& w, const torch::Tensor& h, Method method, double sparsity, int n = 0, int m = 0)
{
    SolverOptions o;
    o.method = method;
    o.sparsity = sparsity;
    o.nmN = n;
    o.nmM = m;
    return solveLayer(w, h, o);
}

// Magnitude by a full sort: prune |W| <= sorted(|W|)[int(numel·p)].
torch::Tensor magnitudeBySort(const torch::Tensor& w, double p)
{
    auto a = w.abs().flatten();
    std::vector<float> v(a.data_ptr<float>(), a.data_ptr<float>() + a.numel());
    std::sort(v.begin(), v.end());
    return w.abs() <= v[size_t(double(v.size()) * p)];
}

// Wanda by a stable sort per row of |W|·sqrt(diag(H)/2).
torch::Tensor wandaBySort(const torch::Tensor& w, const torch::Tensor& h, double p)
{
    const auto score = (w.abs() * at::sqrt(at::diag(h) / 2).reshape({1, -1})).contiguous();
    const int64_t rows = w.size(0);
    const int64_t cols = w.size(1);
    auto mask = torch::zeros({rows, cols}, torch::kBool);
    const int64_t k = int64_t(double(cols) * p);
    for (int64_t r = 0; r < rows; ++r) {
        const float* s = score.data_ptr<float>() + r * cols;
        std::vector<int64_t> order(static_cast<size_t>(cols));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
        for (int64_t j = 0; j < k; ++j)
            mask[r][order[size_t(j)]] = true;
    }
    return mask;
}

} // namespace

class TestBaselines : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void golden_data()
    {
        QTest::addColumn<QString>("file");
        for (const char* prefix : {"magnitude_", "wanda_"})
            for (const auto& path : caseFiles(prefix))
                QTest::newRow(path.stem().string().c_str()) << QString::fromStdString(path.string());
    }

    void golden()
    {
        QFETCH(QString, file);
        const auto golden = io::SafetensorsFile::open(file.toStdString());
        auto problem = loadProblem(metaValue(golden, "problem"));
        const auto expectedMask = loadTensor(golden, "mask").to(torch::kBool);
        auto w = problem.weight.clone();
        const auto r = solveLayer(w, problem.hessian, caseOptions(golden));
        QCOMPARE((r.mask != expectedMask).sum().item<int64_t>(), int64_t(0));
        // No weight update: kept weights unchanged, pruned ones zero.
        QVERIFY(torch::equal(w, problem.weight.masked_fill(expectedMask, 0.0)));
        QCOMPARE(r.stats.loss, 0.0);
    }

    void directComputation_data()
    {
        QTest::addColumn<int>("method");
        QTest::addColumn<double>("sparsity");
        for (double p : {0.1, 0.5, 0.75, 0.9}) {
            QTest::addRow("magnitude %g", p) << int(Method::Magnitude) << p;
            QTest::addRow("wanda %g", p) << int(Method::Wanda) << p;
        }
    }

    void directComputation()
    {
        QFETCH(int, method);
        QFETCH(double, sparsity);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
        const auto w0 = at::randn({37, 120}, gen);
        const auto x = at::randn({200, 120}, gen) * at::rand({1, 120}, gen);
        HessianAccumulator acc(120, torch::kCPU);
        acc.add(x);
        auto w = w0.clone();
        const auto r = prune(w, acc.hessian(), Method(method), sparsity);
        const auto expected = Method(method) == Method::Magnitude ? magnitudeBySort(w0, sparsity)
                                                                  : wandaBySort(w0, acc.hessian(), sparsity);
        QVERIFY(torch::equal(r.mask, expected));
        QCOMPARE(r.stats.sparsity, expected.to(torch::kFloat64).mean().item<double>());
        // relOutputError on the inputs (H = 2·XᵀX).
        auto x64 = x.to(torch::kFloat64);
        const double num = x64.mm((w0 - w).to(torch::kFloat64).t()).pow(2).sum().item<double>();
        const double den = x64.mm(w0.to(torch::kFloat64).t()).pow(2).sum().item<double>();
        QVERIFY(std::abs(r.stats.relOutputError - num / den) <= 1e-4 * num / den);
    }

    void magnitudeTiesByHand()
    {
        // |W| sorted: 0, 0.5, 1, 1, 1, 2, 2, 3; int(8·0.5) = 4 → threshold 1 → all five
        // entries with |w| <= 1 go (the reference's `<=` rule prunes every tie).
        auto w = matrix({1, -1, 2, 0, 3, 1, -2, 0.5}, 2);
        const auto r = prune(w, torch::eye(4), Method::Magnitude, 0.5);
        QVERIFY(torch::equal(w, matrix({0, 0, 2, 0, 3, 0, -2, 0}, 2)));
        QCOMPARE(r.stats.sparsity, 5.0 / 8.0);
    }

    void wandaTiesByHand()
    {
        // Scores |w|·sqrt(H_jj/2): with diag H = (8, 2, 2, 2) → (2, 1, 1, 2) and (2, 2, 1, 1):
        // the 2 smallest per row, ties to the lower column.
        auto w = matrix({1, -1, 1, 2, 1, 2, 1, 1}, 2);
        auto h = torch::diag(torch::tensor({8.0f, 2.0f, 2.0f, 2.0f}));
        const auto r = prune(w, h, Method::Wanda, 0.5);
        QVERIFY(torch::equal(r.mask, matrix({0, 1, 1, 0, 0, 0, 1, 1}, 2).to(torch::kBool)));
        // All equal: the first two columns.
        auto flat = matrix({1, 1, 1, 1}, 1);
        const auto r2 = prune(flat, torch::eye(4) * 2, Method::Wanda, 0.5);
        QVERIFY(torch::equal(r2.mask, matrix({1, 1, 0, 0}, 1).to(torch::kBool)));
    }

    void nmByHand()
    {
        // 2:4 per row per group: (3, −1, 0.5, 2) → columns 1, 2; (0.1, −4, 4, 0.2) → 0, 3.
        auto w = matrix({3, -1, 0.5, 2, 0.1, -4, 4, 0.2}, 1);
        const auto r = prune(w, torch::eye(8), Method::Magnitude, 0.0, 2, 4);
        QVERIFY(torch::equal(w, matrix({3, 0, 0, 2, 0, -4, 4, 0}, 1)));
        // Wanda weights the columns: H_jj = 2·(1, 1, 100, 1, ...) makes column 2 count ×10.
        auto w2 = matrix({3, -1, 0.5, 2, 0.1, -4, 4, 0.2}, 1);
        auto h = torch::diag(torch::tensor({2.0f, 2.0f, 200.0f, 2.0f, 2.0f, 2.0f, 2.0f, 2.0f}));
        (void)prune(w2, h, Method::Wanda, 0.0, 2, 4);
        QVERIFY(torch::equal(w2, matrix({3, 0, 0.5, 0, 0, -4, 4, 0}, 1)));
        // A trailing partial group (10 columns, 2:4): the last 2 columns prune min(2, 2).
        auto w3 = torch::arange(1, 11, torch::kFloat).reshape({1, 10});
        const auto r3 = prune(w3, torch::eye(10), Method::Magnitude, 0.0, 2, 4);
        QVERIFY(torch::equal(r3.mask, matrix({1, 1, 0, 0, 1, 1, 0, 0, 1, 1}, 1).to(torch::kBool)));
        QCOMPARE(r.stats.sparsity, 0.5);
    }

    void sparsityZero()
    {
        for (auto m : {Method::Magnitude, Method::Wanda}) {
            auto w = matrix({1, 0.5, -2, 3}, 2);
            const auto r = prune(w, torch::eye(2), m, 0.0);
            QVERIFY(!r.mask.any().item<bool>());
            QVERIFY(torch::equal(w, matrix({1, 0.5, -2, 3}, 2)));
        }
    }

    void quantizedAfterMasking_data()
    {
        QTest::addColumn<int>("group");
        QTest::addColumn<bool>("sym");
        QTest::newRow("per row") << 0 << false;
        QTest::newRow("per row, symmetric") << 0 << true;
        QTest::newRow("groups of 16") << 16 << false;
        QTest::newRow("groups of 50 (partial)") << 50 << true;
    }

    void quantizedAfterMasking()
    {
        QFETCH(int, group);
        QFETCH(bool, sym);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
        const auto w0 = at::randn({12, 64}, gen);
        auto w = w0.clone();
        SolverOptions o;
        o.method = Method::Magnitude;
        o.quant.bits = 3;
        o.quant.groupSize = group;
        o.quant.symmetric = sym;
        const auto r = solveLayer(w, torch::eye(64), o);
        QVERIFY(torch::equal(r.mask, magnitudeBySort(w0, 0.5)));
        QVERIFY((w.masked_select(r.mask) == 0).all().item<bool>());
        // Kept weights: round-to-nearest on the dense W's grid of their row / group.
        const int64_t g = group > 0 ? group : 64;
        for (int64_t c0 = 0; c0 < 64; c0 += g) {
            const int64_t len = std::min<int64_t>(g, 64 - c0);
            const auto grid = sd::findQuantGrid(w0.narrow(1, c0, len), 3, sym);
            const auto expected = sd::quantizeWithGrid(w0.narrow(1, c0, len), grid)
                                      .masked_fill(r.mask.narrow(1, c0, len), 0.0);
            QVERIFY(torch::equal(w.narrow(1, c0, len), expected));
        }
    }
};

QTEST_GUILESS_MAIN(TestBaselines)
#include "test_baselines.moc"
