// SparseGPT solver and Hessian accumulator.
//
// Golden cases (tests/data/solver/sparsegpt_*.safetensors) come from a transcription of the
// published IST-DASLab/sparsegpt SparseGPT class (tests/data/README.md); both backends of the
// column loop (CPU row tiles and the reference's tensor ops) must reproduce the masks exactly
// and the weights to 1e-5. Small cases are worked out by hand below.

#include "solve/cpu_solver.h"
#include "solve/solver.h"
#include "solve/solver_detail.h"
#include "solver_test_data.h"
#include "util/errors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <QTest>

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

using namespace sparselab;
using namespace sparselab::solve;
namespace sd = sparselab::solve::detail;
using sparselab::testing::caseFiles;
using sparselab::testing::caseOptions;
using sparselab::testing::loadProblem;
using sparselab::testing::loadTensor;
using sparselab::testing::metaValue;
using sparselab::testing::solverDataDir;

Q_DECLARE_METATYPE(sparselab::solve::SolverOptions)

namespace {

constexpr double kWeightTolerance = 1e-5;

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b)
{
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

int64_t countDifferent(const torch::Tensor& a, const torch::Tensor& b)
{
    return (a.to(torch::kBool) != b.to(torch::kBool)).sum().item<int64_t>();
}

LayerResult solveWith(torch::Tensor& w, const torch::Tensor& h, const SolverOptions& o, sd::Backend backend,
                      const ProgressCallback& progress = {}, const CancelToken* cancel = nullptr)
{
    return sd::solveLayerWith(w, h, o, progress, cancel, backend);
}

// The solver's threads (at::get_num_threads) for one test, restored at the end.
class SolverThreadsScope {
public:
    explicit SolverThreadsScope(int threads) : m_previous(at::get_num_threads()) { at::set_num_threads(threads); }
    ~SolverThreadsScope() { at::set_num_threads(m_previous); }
    SolverThreadsScope(const SolverThreadsScope&) = delete;
    SolverThreadsScope& operator=(const SolverThreadsScope&) = delete;

private:
    int m_previous;
};

const char* backendName(sd::Backend b)
{
    return b == sd::Backend::CpuTiled ? "tiled" : "generic";
}

// A damped random SPD matrix [n, n].
torch::Tensor randomSpd(int64_t n, int64_t tokens, uint64_t seed)
{
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto x = at::randn({tokens, n}, gen);
    auto h = x.t().mm(x) / double(tokens);
    h.diagonal().add_(0.01 * h.diagonal().mean().item<double>());
    return h;
}

// Solves `w` with a progress callback that cancels once `cancelAt` blocks are done. Returns
// how many progress calls were made, or −1 when the solve did not end in CancelledError.
int progressCallsBeforeCancel(torch::Tensor w, const torch::Tensor& h, const SolverOptions& o, int64_t cancelAt)
{
    CancelToken token;
    int calls = 0;
    try {
        (void)solveLayer(w, h, o, [&](const Progress& p) {
            ++calls;
            if (p.done == cancelAt)
                token.cancel();
        }, &token);
    } catch (const CancelledError&) {
        return calls;
    }
    return -1;
}

} // namespace

class TestSparseGpt : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void hessianAccumulation()
    {
        // add_batch with batches of 2 and 1 sequences (3-D) and one 2-D sequence.
        const auto file = io::SafetensorsFile::open(solverDataDir() / "hessian_accumulation.safetensors");
        HessianAccumulator acc(32, torch::kCPU);
        for (const char* name : {"x0", "x1", "x2"})
            acc.add(loadTensor(file, name));
        QCOMPARE(acc.samples(), int64_t(std::stoll(metaValue(file, "samples"))));
        const auto expected = loadTensor(file, "hessian");
        QVERIFY(maxAbsDiff(acc.hessian(), expected) <= 1e-5 * expected.abs().max().item<double>());
    }

    void hessianBlockedAndSymmetric()
    {
        // 600 columns: one ssyrk with the process's BLAS, else the blocked GEMMs (256-column
        // blocks, a partial last block).
        const int64_t cols = 600;
        auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
        auto x = at::randn({3, 50, cols}, gen);
        HessianAccumulator acc(cols, torch::kCPU);
        acc.add(x.narrow(0, 0, 2));
        acc.add(x[2]);
        const auto& h = acc.hessian();
        QVERIFY(torch::equal(h, h.t()));
        auto x64 = x.reshape({-1, cols}).to(torch::kFloat64);
        auto expected = x64.t().mm(x64) * (2.0 / 3.0);
        QVERIFY(maxAbsDiff(h, expected) <= 1e-5 * expected.abs().max().item<double>());
    }

    void hessianRejectsBadInputs()
    {
        HessianAccumulator acc(8, torch::kCPU);
        QVERIFY_THROWS_EXCEPTION(InputError, acc.add(torch::zeros({4, 7})));
        auto x = torch::zeros({4, 8});
        x[1][2] = std::nan("");
        QVERIFY_THROWS_EXCEPTION(InputError, acc.add(x));
        QCOMPARE(acc.samples(), int64_t(0));

        // A batch of windows is checked whole before any window is added: a bad value in the
        // last window, past the first 4096-value chunk, leaves H and its count untouched.
        for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::quiet_NaN()}) {
            auto batch = torch::ones({3, 300, 8});
            batch[2][299][7] = bad;
            QVERIFY_THROWS_EXCEPTION(InputError, acc.addSequences(batch));
            QCOMPARE(acc.samples(), int64_t(0));
        }
        // The extremes of the finite floats pass.
        auto extremes = torch::zeros({2, 5000, 8});
        extremes[1][4999][0] = std::numeric_limits<float>::max();
        extremes[1][4999][1] = -std::numeric_limits<float>::max();
        extremes[0][7][2] = std::numeric_limits<float>::denorm_min();
        acc.addSequences(extremes); // (H overflows to inf here: only the check is under test)
        QCOMPARE(acc.samples(), int64_t(2));
    }

    void upperCholeskyOfInverse_data()
    {
        QTest::addColumn<int>("n");
        QTest::addColumn<bool>("blas");
        for (int n : {1, 2, 7, 300, 700}) {
            QTest::addRow("n%d-blas", n) << n << true;
            QTest::addRow("n%d-solve", n) << n << false;
        }
    }

    void upperCholeskyOfInverse()
    {
        // Both routes equal the reference's cholesky(cholesky_inverse(cholesky(H)), upper=True):
        // the BLAS recursion (H = R·Rᵀ, U = R⁻¹; solve/inverse_cholesky.h) and ATen's
        // (design.md §5: J·H·J = L·Lᵀ, U = J·L⁻¹·J).
        QFETCH(int, n);
        QFETCH(bool, blas);
        const auto h = randomSpd(n, 2 * n + 3, 11);
        const auto u = sd::upperCholeskyOfInverse(h, blas);
        QVERIFY(u.defined());
        QVERIFY(torch::equal(u, at::triu(u)));
        const auto reference = sd::upperCholeskyOfInverseReference(h);
        QVERIFY2(maxAbsDiff(u, reference) <= 2e-5 * reference.abs().max().item<double>(),
                 qPrintable(QString::number(maxAbsDiff(u, reference))));
    }

    void upperCholeskyOfInverseByHand()
    {
        // H = [[2, 1], [1, 2]]: H⁻¹ = [[2, −1], [−1, 2]]/3, UᵀU = H⁻¹ with U upper:
        // U00 = √(2/3), U01 = −1/(3·U00) = −1/√6, U11 = √(2/3 − 1/6) = 1/√2.
        const auto h = torch::tensor({2.0f, 1.0f, 1.0f, 2.0f}).reshape({2, 2});
        const auto u = sd::upperCholeskyOfInverse(h);
        const auto expected = torch::tensor({float(std::sqrt(2.0 / 3.0)), float(-1.0 / std::sqrt(6.0)), 0.0f,
                                             float(1.0 / std::sqrt(2.0))})
                                  .reshape({2, 2});
        QVERIFY(maxAbsDiff(u, expected) < 1e-6);
        // Not positive definite → undefined.
        QVERIFY(!sd::upperCholeskyOfInverse(torch::tensor({1.0f, 3.0f, 3.0f, 1.0f}).reshape({2, 2})).defined());
    }

    void handDerived2x2_data() { backendsData(); }
    void handDerived2x2()
    {
        // H = [[2, 1], [1, 2]], damp 0, W = [[1, 3], [2, 1]], 50% unstructured, one block.
        // d = diag U = (√(2/3), 1/√2) (see above); scores w²/d²: row 0 (1.5, 18), row 1 (6, 2).
        // The reference prunes score <= sorted[int(4·0.5)] = 6: (0,0), (1,0), (1,1).
        // Row 0: err = (1 − 0)/√(2/3) = √1.5; w01 −= err·U01 → 3 + √1.5/√6 = 3.5
        //        (OBS: δw1 = −H10/H11·δw0 = 0.5); loss 1.5/2.
        // Row 1: err = 2/√(2/3) = √6; w11 = 1 + √6/√6 = 2; then pruned: err = 2·√2;
        //        loss (6 + 8)/2 = 7.
        // tr(ΔW H ΔWᵀ) = 1.5 + 14 (= 2·loss, no damping), tr(W H Wᵀ) = 26 + 14 → 0.3875.
        QFETCH(int, backend);
        auto w = torch::tensor({1.0f, 3.0f, 2.0f, 1.0f}).reshape({2, 2});
        const auto h = torch::tensor({2.0f, 1.0f, 1.0f, 2.0f}).reshape({2, 2});
        SolverOptions o;
        o.sparsity = 0.5;
        o.damp = 0.0;
        const auto r = solveWith(w, h, o, sd::Backend(backend));
        QVERIFY(maxAbsDiff(w, torch::tensor({0.0f, 3.5f, 0.0f, 0.0f}).reshape({2, 2})) < 1e-6);
        QVERIFY(torch::equal(r.mask, torch::tensor({true, false, true, true}).reshape({2, 2})));
        QVERIFY(std::abs(r.stats.loss - 7.75) < 1e-5);
        QVERIFY(std::abs(r.stats.relOutputError - 0.3875) < 1e-6);
        QCOMPARE(r.stats.sparsity, 0.75);
        QCOMPARE(r.stats.dampRaises, 0);
    }

    void identityHessian_data() { backendsData(); }
    void identityHessian()
    {
        // H = I: Hinv = I/√1.01 (damping 0.01·mean diag = 0.01) has no off-diagonal, so no
        // weight moves; the mask is magnitude per block; loss = 1.01·Σ_pruned w²/2;
        // relOutputError = Σ_pruned w²/Σ w² (undamped H = I).
        QFETCH(int, backend);
        // 4×8 weights with distinct magnitudes 0.25, 0.5, ..., 8 in a scrambled order.
        std::vector<float> values(32);
        for (int k = 0; k < 32; ++k)
            values[size_t((k * 13) % 32)] = float(k + 1) * 0.25f * (k % 3 == 0 ? -1.0f : 1.0f);
        auto w = torch::tensor(values).reshape({4, 8});
        const auto original = w.clone();
        SolverOptions o;
        o.sparsity = 0.5;
        o.blocksize = 8;
        const auto r = solveWith(w, torch::eye(8), o, sd::Backend(backend));
        // int(32·0.5) = 16 → the 17 smallest magnitudes (0.25 … 4.25) are pruned.
        const auto expectedMask = original.abs() <= 4.25f;
        QVERIFY(torch::equal(r.mask, expectedMask));
        QVERIFY(torch::equal(w, original.masked_fill(expectedMask, 0.0)));
        const double pruned = original.masked_select(expectedMask).pow(2).sum().item<double>();
        const double all = original.pow(2).sum().item<double>();
        QVERIFY(std::abs(r.stats.loss - 1.01 * pruned / 2) < 1e-5 * pruned);
        QVERIFY(std::abs(r.stats.relOutputError - pruned / all) < 1e-6);
        QCOMPARE(r.stats.sparsity, 17.0 / 32.0);
    }

    void golden_data()
    {
        QTest::addColumn<QString>("file");
        QTest::addColumn<int>("backend");
        QTest::addColumn<int>("threads");
        for (const auto& path : caseFiles("sparsegpt_")) {
            // Two threads: the tiled loop then gives each thread slices of rows and their lazy
            // updates, and the block masks' histograms are counted per thread.
            for (int threads : {1, 2})
                QTest::addRow("%s/%s/%d threads", path.stem().string().c_str(), backendName(sd::Backend::CpuTiled), threads)
                    << QString::fromStdString(path.string()) << int(sd::Backend::CpuTiled) << threads;
            QTest::addRow("%s/%s", path.stem().string().c_str(), backendName(sd::Backend::Generic))
                << QString::fromStdString(path.string()) << int(sd::Backend::Generic) << 1;
        }
    }

    void golden()
    {
        QFETCH(QString, file);
        QFETCH(int, backend);
        QFETCH(int, threads);
        const SolverThreadsScope solverThreads(threads);
        const auto golden = io::SafetensorsFile::open(file.toStdString());
        const SolverOptions o = caseOptions(golden);
        auto problem = loadProblem(metaValue(golden, "problem"));
        const auto expectedWeight = loadTensor(golden, "weight");
        const auto expectedMask = loadTensor(golden, "mask").to(torch::kBool);

        auto w = problem.weight.clone();
        const auto r = solveWith(w, problem.hessian, o, sd::Backend(backend));
        QCOMPARE(countDifferent(r.mask, expectedMask), int64_t(0));
        const double scale = std::max(1.0, expectedWeight.abs().max().item<double>());
        const double diff = maxAbsDiff(w, expectedWeight);
        QVERIFY2(diff <= kWeightTolerance * scale, qPrintable(QString("max |ΔW| = %1").arg(diff)));
        const double loss = std::stod(metaValue(golden, "loss"));
        QVERIFY2(std::abs(r.stats.loss - loss) <= 1e-4 * std::max(1.0, loss),
                 qPrintable(QString("loss %1 vs %2").arg(r.stats.loss).arg(loss)));
        QCOMPARE(r.stats.sparsity, (w == 0).sum().item<double>() / double(w.numel()));
        QVERIFY(r.stats.relOutputError >= 0.0 && r.stats.relOutputError < 1.0);
        // Pruned weights are exact zeros; the problem's dead column counts.
        QVERIFY(w.masked_select(r.mask).abs().max().item<float>() == 0.0f);
        QCOMPARE(r.stats.deadInputs, (at::diag(problem.hessian) == 0).sum().item<int64_t>());
        if (o.structured()) {
            // Exactly N of every M consecutive inputs of a row.
            const auto perGroup = r.mask.to(torch::kInt32).reshape({w.size(0), -1, o.nmM}).sum(2);
            QVERIFY((perGroup == o.nmN).all().item<bool>());
        }
    }

    void quantizedValuesOnGrid()
    {
        // Joint 4-bit: every weight lies on its row's grid from the dense W (quant.py).
        auto problem = loadProblem("a");
        auto w = problem.weight.clone();
        SolverOptions o;
        o.quant.bits = 4;
        const auto grid = sd::findQuantGrid(problem.weight, 4, false);
        const auto r = solveLayer(w, problem.hessian, o);
        const auto level = w / grid.scale.unsqueeze(1) + grid.zero.unsqueeze(1);
        QVERIFY((level - level.round()).abs().max().item<double>() < 1e-3);
        QVERIFY(level.round().min().item<double>() >= 0.0 && level.round().max().item<double>() <= 15.0);
        QVERIFY((w.masked_select(r.mask) == 0).all().item<bool>());
    }

    void tiledMatchesGeneric_data()
    {
        QTest::addColumn<SolverOptions>("options");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<int>("threads");
        QTest::addColumn<bool>("fewValues");
        for (int threads : {1, 2}) {
            const auto row = [threads](const char* name) -> QTestData& {
                return QTest::addRow("%s, %d thread%s", name, threads, threads == 1 ? "" : "s");
            };
            SolverOptions o;
            o.sparsity = 0.6;
            row("unstructured 60%, 300 cols") << o << 70 << 300 << threads << false;
            // Weights of five values and an identity-like Hessian: whole columns tie, so the
            // k-th score's bucket holds thousands of entries (the mask prunes every tie, as the
            // reference's `tmp <= thresh` does).
            row("unstructured 50%, ties") << o << 300 << 256 << threads << true;
            o.sparsity = 0.0;
            o.quant.bits = 3;
            row("sparsity 0 + 3 bit (GPTQ)") << o << 70 << 300 << threads << false;
            o = SolverOptions();
            o.nmN = 4;
            o.nmM = 8;
            row("4:8, partial group at 202") << o << 33 << 202 << threads << false;
            o.quant.bits = 4;
            o.quant.groupSize = 96;
            o.quant.symmetric = true;
            row("4:8 + 4 bit sym groups of 96") << o << 33 << 202 << threads << false;
            o = SolverOptions();
            o.blocksize = 32;
            o.quant.bits = 2;
            o.quant.groupSize = 200;
            row("50% + 2 bit groups of 200, blocks of 32") << o << 140 << 256 << threads << false;
            // Whole tiles (rows a multiple of 32) move by 8 × 8 transposes; the last block of
            // 264 columns is 8 wide.
            o = SolverOptions();
            row("unstructured 50%, whole tiles, 264 cols") << o << 96 << 264 << threads << false;
            // An odd M: columns pair up inside groups only (a pair never straddles a group's
            // start); the last block of 203 columns is 3 wide, one partial group.
            o.nmN = 3;
            o.nmM = 5;
            o.blocksize = 40;
            row("3:5 in blocks of 40, 203 cols") << o << 64 << 203 << threads << false;
        }
    }

    void tiledMatchesGeneric()
    {
        QFETCH(SolverOptions, options);
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(int, threads);
        QFETCH(bool, fewValues);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(rows * 1000 + cols));
        const auto w0 = fewValues ? at::randint(-2, 3, {rows, cols}, gen).to(torch::kFloat) : at::randn({rows, cols}, gen);
        const auto h = fewValues ? torch::eye(cols) * 4.0 : randomSpd(cols, 2 * cols, uint64_t(cols));
        const SolverThreadsScope solverThreads(threads);
        auto a = w0.clone();
        auto b = w0.clone();
        const auto ra = solveWith(a, h, options, sd::Backend::CpuTiled);
        const auto rb = solveWith(b, h, options, sd::Backend::Generic);
        QCOMPARE(countDifferent(ra.mask, rb.mask), int64_t(0));
        QVERIFY(maxAbsDiff(a, b) <= kWeightTolerance * std::max(1.0, b.abs().max().item<double>()));
        QVERIFY(std::abs(ra.stats.loss - rb.stats.loss) <= 1e-5 * std::max(1.0, rb.stats.loss));
        if (options.sparsity == 0.0 && !options.structured())
            QVERIFY(!ra.mask.any().item<bool>());
        if (options.structured()) {
            // Full groups prune exactly N; the trailing group of 202 % 8 = 2 columns prunes both.
            const int64_t full = cols / options.nmM * options.nmM;
            const auto perGroup = ra.mask.narrow(1, 0, full).to(torch::kInt32).reshape({rows, -1, options.nmM}).sum(2);
            QVERIFY((perGroup == options.nmN).all().item<bool>());
            QVERIFY(ra.mask.narrow(1, full, cols - full).all().item<bool>());
        }
    }

    void relOutputErrorOnInputs()
    {
        // relOutputError = ‖XWᵀ − XŴᵀ‖²/‖XWᵀ‖² on the calibration inputs (H ∝ XᵀX).
        auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
        const auto x = at::randn({4, 64, 96}, gen);
        HessianAccumulator acc(96, torch::kCPU);
        acc.add(x);
        auto w = at::randn({24, 96}, gen);
        const auto original = w.clone();
        SolverOptions o;
        o.nmN = 2;
        o.nmM = 4;
        const auto r = solveLayer(w, acc.hessian(), o);
        auto x64 = x.reshape({-1, 96}).to(torch::kFloat64);
        const double num = x64.mm((original - w).to(torch::kFloat64).t()).pow(2).sum().item<double>();
        const double den = x64.mm(original.to(torch::kFloat64).t()).pow(2).sum().item<double>();
        QVERIFY2(std::abs(r.stats.relOutputError - num / den) <= 1e-4 * (num / den),
                 qPrintable(QString("%1 vs %2").arg(r.stats.relOutputError).arg(num / den)));
        QVERIFY(r.stats.seconds >= 0.0);
    }

    // outputEnergy(W, H) = tr(W H Wᵀ) = (2/N)·‖XWᵀ‖² for H accumulated over N sequences, and a
    // denseOutputEnergy given to solveLayer is the denominator of its relative output error.
    void outputEnergyIsTheDenominator()
    {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(6);
        const auto x = at::randn({4, 64, 200}, gen); // 200 columns: more than one symmetric block
        HessianAccumulator acc(200, torch::kCPU);
        acc.add(x);
        const auto dense = at::randn({24, 200}, gen);
        auto x64 = x.reshape({-1, 200}).to(torch::kFloat64);
        const double squares = x64.mm(dense.to(torch::kFloat64).t()).pow(2).sum().item<double>();
        const double energy = outputEnergy(dense, acc.hessian());
        QVERIFY2(std::abs(energy - 2.0 / 4.0 * squares) <= 1e-5 * energy,
                 qPrintable(QString("%1 vs %2").arg(energy).arg(squares / 2.0)));

        SolverOptions o;
        auto computed = dense.clone();
        const auto r = solveLayer(computed, acc.hessian(), o);
        auto given = dense.clone();
        const auto doubled = solveLayer(given, acc.hessian(), o, {}, nullptr, 2.0 * energy);
        QVERIFY(torch::equal(computed, given));
        QVERIFY2(std::abs(doubled.stats.relOutputError - r.stats.relOutputError / 2.0)
                     <= 1e-12 * r.stats.relOutputError,
                 qPrintable(QString("%1 vs %2").arg(doubled.stats.relOutputError).arg(r.stats.relOutputError)));
    }

    void validation_data()
    {
        QTest::addColumn<SolverOptions>("options");
        QTest::addColumn<QString>("option");
        SolverOptions o;
        o.sparsity = 1.0;
        QTest::newRow("sparsity 1") << o << "--sparsity";
        o.sparsity = -0.1;
        QTest::newRow("sparsity < 0") << o << "--sparsity";
        o.sparsity = std::nan("");
        QTest::newRow("sparsity NaN") << o << "--sparsity";
        o = SolverOptions();
        o.nmN = 4;
        o.nmM = 4;
        QTest::newRow("N == M") << o << "--nm";
        o.nmN = 0;
        QTest::newRow("N == 0") << o << "--nm";
        o.nmN = 2;
        o.nmM = 3;
        QTest::newRow("M does not divide blocksize") << o << "--nm";
        o = SolverOptions();
        o.blocksize = 0;
        QTest::newRow("blocksize 0") << o << "--blocksize";
        o = SolverOptions();
        o.damp = -1;
        QTest::newRow("negative damp") << o << "--damp";
        o = SolverOptions();
        for (int bits : {1, 9, 15, 32}) {
            o.quant.bits = bits;
            QTest::addRow("bits %d", bits) << o << "--bits";
        }
        o = SolverOptions();
        o.quant.groupSize = 64;
        QTest::newRow("group without bits") << o << "--group";
        o.quant.bits = 4;
        o.quant.groupSize = -1;
        QTest::newRow("negative group") << o << "--group";
    }

    void validation()
    {
        QFETCH(SolverOptions, options);
        QFETCH(QString, option);
        auto w = torch::ones({4, 16});
        try {
            (void)solveLayer(w, torch::eye(16), options);
            QFAIL("no InputError");
        } catch (const InputError& e) {
            QVERIFY2(QString(e.what()).startsWith(option + ":"), e.what());
        }
        QVERIFY(torch::equal(w, torch::ones({4, 16}))); // untouched
    }

    void badTensors()
    {
        SolverOptions o;
        auto expectError = [&](torch::Tensor w, const torch::Tensor& h, const QString& what) {
            try {
                (void)solveLayer(w, h, o);
                QFAIL("no InputError");
            } catch (const InputError& e) {
                QVERIFY2(QString(e.what()).startsWith(what), e.what());
            }
        };
        auto w = torch::ones({4, 8});
        w[0][3] = std::numeric_limits<float>::infinity();
        expectError(w, torch::eye(8), "weight:");
        auto h = torch::eye(8);
        h[2][2] = std::nan("");
        expectError(torch::ones({4, 8}), h, "hessian:");
        expectError(torch::ones({4, 8}), torch::eye(7), "hessian:");
        // Stays indefinite even at the damping bound.
        auto bad = torch::tensor({1.0f, 30.0f, 30.0f, 1.0f}).reshape({2, 2});
        expectError(torch::ones({3, 2}), bad, "hessian: not positive definite");
    }

    void dampingRaised_data()
    {
        QTest::addColumn<double>("damp");
        QTest::addColumn<int>("raises");
        // H = [[1, 3], [3, 1]] (eigenvalues −2, 4; mean diagonal 1) needs relative damping > 2.
        QTest::newRow("from 0.01") << 0.01 << 3;  // 0.1, 1, 10
        QTest::newRow("from 0") << 0.0 << 5;      // 0.001, 0.01, 0.1, 1, 10
    }

    void dampingRaised()
    {
        QFETCH(double, damp);
        QFETCH(int, raises);
        auto w = torch::tensor({1.0f, 2.0f, -3.0f, 0.5f}).reshape({2, 2});
        SolverOptions o;
        o.damp = damp;
        const auto r = solveLayer(w, torch::tensor({1.0f, 3.0f, 3.0f, 1.0f}).reshape({2, 2}), o);
        QCOMPARE(r.stats.dampRaises, raises);
        QVERIFY(std::abs(r.stats.dampUsed - 10.0) < 1e-9);
    }

    // cpu::torchMean (the plain solver's damping base) rounds as torch.mean on the CPU: every
    // bit, for lengths below, at and above ATen's vector width and its cascade's level steps.
    void plainMeanIsTorchMean()
    {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
        const int lanes = cpu::atenFloatLanes();
        for (int64_t n : {1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 64, 65, 100, 255, 256, 257, 1000, 1024, 2048, 4097, 5632,
                          11008, 30000}) {
            // Positive values over four binary orders of magnitude, as a Hessian's diagonal.
            const auto x = at::exp(at::rand({n}, gen) * 3.0) * 0.37;
            const float expected = x.mean().item<float>();
            const float got = cpu::torchMean(x.data_ptr<float>(), n, lanes);
            if (got != expected)
                QFAIL(qPrintable(QString("n = %1, %2 lanes: %3 against torch.mean %4")
                                     .arg(n).arg(lanes).arg(double(got), 0, 'g', 9).arg(double(expected), 0, 'g', 9)));
        }
    }

    // cpu::copyAllFinite (the solver's copy of the dense W, checked in the same pass): the copy
    // is whole and exact either way, and one NaN or ±Inf anywhere, in the first or the last
    // chunk, in the second 2²⁰-value unit (another thread's) or in a tail shorter than the
    // vector width, is found; the largest finite floats and subnormals are not flagged.
    void copyAllFiniteCopiesAndChecks()
    {
        const int64_t n = (int64_t(1) << 21) + 4096 * 3 + 13; // three units, a partial chunk, a tail
        std::vector<float> x(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i)
            x[size_t(i)] = float(i % 1000) * 0.5f - 250.0f;
        x[7] = std::numeric_limits<float>::max();
        x[8] = -std::numeric_limits<float>::max();
        x[9] = std::numeric_limits<float>::denorm_min();
        for (int threads : {1, 2}) {
            std::vector<float> out(static_cast<size_t>(n), -1.0f);
            QVERIFY(cpu::copyAllFinite(x.data(), n, out.data(), threads));
            QVERIFY(out == x);
            QVERIFY(cpu::allFinite(x.data(), n, threads));
        }
        const float bads[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
        for (const int64_t at : {int64_t(0), int64_t(4095), (int64_t(1) << 20) + 17, n - 1, n - 14}) {
            for (const float bad : bads) {
                std::vector<float> y = x;
                y[size_t(at)] = bad;
                for (int threads : {1, 2}) {
                    std::vector<float> out(static_cast<size_t>(n), -1.0f);
                    QVERIFY2(!cpu::copyAllFinite(y.data(), n, out.data(), threads), qPrintable(QString::number(at)));
                    QVERIFY(!cpu::allFinite(y.data(), n, threads));
                    // Whole and exact (NaN compared by its bits).
                    QVERIFY(std::memcmp(out.data(), y.data(), sizeof(float) * size_t(n)) == 0);
                }
            }
        }
    }

    // The plain solver refuses a W with NaN or Inf, as solveLayer does ("weight: …"), before
    // touching the mask.
    void plainSolverRejectsNonFiniteWeight()
    {
        const int64_t rows = 40;
        const int64_t cols = 24;
        std::vector<float> w(size_t(rows * cols), 0.5f);
        w[size_t(rows * cols - 1)] = std::numeric_limits<float>::quiet_NaN();
        std::vector<float> h(size_t(cols * cols), 0.0f);
        for (int64_t j = 0; j < cols; ++j)
            h[size_t(j * cols + j)] = 1.0f;
        std::vector<uint8_t> mask(size_t(rows * cols), 7);
        SolverOptions o;
        try {
            (void)cpu::solveSparseGpt(w.data(), rows, cols, h.data(), o, reinterpret_cast<bool*>(mask.data()), 2, {},
                                      nullptr);
            QFAIL("no InputError");
        } catch (const InputError& e) {
            QVERIFY2(QString(e.what()).startsWith("weight:"), e.what());
        }
        QVERIFY(std::all_of(mask.begin(), mask.end(), [](uint8_t m) { return m == 7; }));
    }

    // cpu::factorHessianInPlace gives factorHessian's U bit for bit in H's own lower triangle
    // and diagonal (U column-major), leaves H's strict upper triangle untouched, and reports the
    // same damping and dead inputs — also when a failed try must be undone before damping is
    // raised (an indefinite 2 × 2 minor), and with a dead input.
    void inPlaceFactorIsTheCopy_data()
    {
        QTest::addColumn<bool>("singular");
        QTest::newRow("first try") << false;
        QTest::newRow("damping raised") << true;
    }

    void inPlaceFactorIsTheCopy()
    {
        QFETCH(bool, singular);
        const int64_t n = 300; // a partial leaf and uneven halves in the recursion
        auto h = randomSpd(n, 2 * n, 21);
        if (singular) {
            const float big = 2.0f * h.diagonal().max().item<float>();
            h.index_put_({5, 6}, big);
            h.index_put_({6, 5}, big);
        }
        h.select(0, 40).zero_();
        h.select(1, 40).zero_();
        h = h.contiguous();
        std::vector<float> copied(size_t(n * n));
        const cpu::Factor copy = cpu::factorHessian(h.data_ptr<float>(), n, 0.01, copied.data(), 2, nullptr);
        auto storage = h.clone();
        float* inPlace = storage.data_ptr<float>();
        const cpu::Factor own = cpu::factorHessianInPlace(inPlace, n, 0.01, 2, nullptr);
        QCOMPARE(own.dampRaises, copy.dampRaises);
        QVERIFY(singular == (own.dampRaises > 0));
        QCOMPARE(own.dampUsed, copy.dampUsed);
        QCOMPARE(own.dampAbsolute, copy.dampAbsolute);
        QCOMPARE(own.deadInputs, int64_t(1));
        QVERIFY(own.dead == copy.dead);
        const float* original = h.data_ptr<float>();
        int64_t uDiffers = 0;
        int64_t hDiffers = 0;
        for (int64_t c = 0; c < n; ++c)
            for (int64_t r = 0; r < n; ++r) {
                const size_t at = size_t(c * n + r); // column-major (r, c); row-major (c, r)
                if (r <= c)
                    uDiffers += std::memcmp(&inPlace[at], &copied[at], sizeof(float)) != 0;
                else
                    hDiffers += std::memcmp(&inPlace[at], &original[at], sizeof(float)) != 0;
            }
        QCOMPARE(uDiffers, int64_t(0));
        QCOMPARE(hDiffers, int64_t(0));
    }

    // cpu::solveSparseGpt (what `sparselab-cli solve-layer` runs without LibTorch) gives the
    // engine's solveLayer bytes: weights, mask and statistics, with a dead input, partial row
    // tiles and column blocks, damping raised, on one and two threads.
    void plainSolverIsTheEngines_data()
    {
        QTest::addColumn<bool>("structured");
        QTest::addColumn<bool>("singular");
        QTest::addColumn<int>("threads");
        QTest::newRow("unstructured") << false << false << 2;
        QTest::newRow("unstructured, one thread") << false << false << 1;
        QTest::newRow("2:4") << true << false << 2;
        QTest::newRow("damping raised") << false << true << 2;
    }

    void plainSolverIsTheEngines()
    {
        QFETCH(bool, structured);
        QFETCH(bool, singular);
        QFETCH(int, threads);
        SolverThreadsScope scope(threads);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
        const int64_t rows = 200;
        const int64_t cols = 320;
        auto h = randomSpd(cols, 600, 11);
        if (singular) { // an indefinite 2 × 2 minor: damping must be raised to 1 or 10
            const float big = 2.0f * h.diagonal().max().item<float>();
            h.index_put_({3, 4}, big);
            h.index_put_({4, 3}, big);
        }
        h.select(0, 17).zero_();
        h.select(1, 17).zero_(); // a dead input
        const auto dense = at::randn({rows, cols}, gen);
        SolverOptions o;
        o.blocksize = 128; // 320 columns: a partial last block
        if (structured) {
            o.nmN = 2;
            o.nmM = 4;
        }
        auto engineW = dense.clone();
        const auto engine = solveLayer(engineW, h, o);
        auto plainW = dense.clone();
        auto plainMask = torch::empty({rows, cols}, torch::kBool);
        const auto hc = h.clone(); // the plain solver's Hinv storage too
        const LayerStats plain = cpu::solveSparseGpt(plainW.data_ptr<float>(), rows, cols, hc.data_ptr<float>(), o,
                                                     plainMask.data_ptr<bool>(), threads, {}, nullptr);
        // H's diagonal and strict upper triangle are back; the strict lower one holds U, whose
        // column-major upper part it is (U[0, 1] at h[1, 0], ≠ H[1, 0]).
        QVERIFY(torch::equal(hc.triu(), h.triu()));
        QVERIFY(hc.index({1, 0}).item<float>() != h.index({1, 0}).item<float>());
        QVERIFY(torch::equal(plainW, engineW));
        QVERIFY(torch::equal(plainMask, engine.mask));
        QCOMPARE(plain.deadInputs, int64_t(1));
        QCOMPARE(plain.deadInputs, engine.stats.deadInputs);
        QCOMPARE(plain.dampRaises, engine.stats.dampRaises);
        if (singular)
            QVERIFY(plain.dampRaises > 0);
        QCOMPARE(plain.dampUsed, engine.stats.dampUsed);
        QCOMPARE(plain.sparsity, engine.stats.sparsity);
        QCOMPARE(plain.loss, engine.stats.loss);
        QCOMPARE(plain.relOutputError, engine.stats.relOutputError);
        QVERIFY(plain.relOutputError > 0.0 && plain.relOutputError < 1.0);
    }

    // When the damping is nearly all of the loss, the relative output error is the direct
    // tr(ΔW H ΔWᵀ)/tr(W H Wᵀ), from a ΔW the statistics allocate: the caller's dense W (here
    // handed to the CPU solver as a separate, read-only array, as solve-layer hands it the
    // mapped file) is never written. H = diag(1, 1, 1, ε, ε, ε, ε, ε), ε = 10⁻⁶, W [2, 8] with
    // ones in the first three columns and 1.0, 1.1, …, 1.9 in the other five (row by row):
    // H being diagonal, nothing is updated and the saliency is w²·(H_jj + λ), λ = 0.01·mean
    // diag ≈ 0.00375, so the mask takes the nine smallest ε-column weights (int(16·0.5) + the
    // threshold's own), all but 1.9. Then 2·loss = (ε + λ)·Σ w² over them and λ·‖ΔW‖² is more
    // than 0.95 of it, so the error is ε·Σ_pruned w² / (6 + ε·Σ_ε-columns w²).
    void statisticsWhenTheDampingDominates()
    {
        const int64_t rows = 2, cols = 8;
        const float epsilon = 1e-6f;
        std::vector<float> h(size_t(cols * cols), 0.0f);
        for (int64_t j = 0; j < cols; ++j)
            h[size_t(j * cols + j)] = j < 3 ? 1.0f : epsilon;
        std::vector<float> dense(size_t(rows * cols), 1.0f);
        double smallColumns = 0.0;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 3; j < cols; ++j) {
                const float value = 1.0f + 0.1f * float(r * 5 + j - 3);
                dense[size_t(r * cols + j)] = value;
                smallColumns += double(value) * double(value);
            }
        const float kept = dense[size_t(rows * cols - 1)]; // 1.9
        const double prunedSquares = smallColumns - double(kept) * double(kept);
        const double expected = double(epsilon) * prunedSquares / (6.0 + double(epsilon) * smallColumns);
        SolverOptions o;
        o.sparsity = 0.5;
        o.blocksize = 8;
        for (const bool separate : {false, true}) {
            std::vector<float> w = dense;
            std::vector<float> hinvStorage = h;
            std::vector<uint8_t> mask(size_t(rows * cols), 0);
            const LayerStats stats = cpu::solveSparseGpt(w.data(), rows, cols, hinvStorage.data(), o,
                                                         reinterpret_cast<bool*>(mask.data()), 1, {}, nullptr,
                                                         separate ? dense.data() : nullptr);
            for (int64_t e = 0; e < rows * cols; ++e) {
                const bool pruned = e % cols >= 3 && e != rows * cols - 1;
                QCOMPARE(bool(mask[size_t(e)]), pruned);
                QCOMPARE(w[size_t(e)], pruned ? 0.0f : dense[size_t(e)]);
            }
            const double damp = 0.01 * (3.0 + 5.0 * double(epsilon)) / 8.0;
            QVERIFY(damp * prunedSquares > 0.95 * 2.0 * stats.loss); // the case under test
            QVERIFY2(std::abs(stats.relOutputError - expected) <= 1e-5 * expected,
                     qPrintable(QString("%1 vs %2").arg(stats.relOutputError, 0, 'g', 10).arg(expected, 0, 'g', 10)));
            QCOMPARE(dense[0], 1.0f); // read only: kept entries, whose W − Ŵ is 0
            QCOMPARE(dense[size_t(rows * cols - 1)], kept);
        }
    }

    void deadInputsAndDefaults()
    {
        auto problem = loadProblem("a");
        auto w = problem.weight.clone();
        const auto r = solveLayer(w, problem.hessian, SolverOptions());
        QCOMPARE(r.stats.deadInputs, int64_t(1));
        QVERIFY((w.select(1, 17) == 0).all().item<bool>()); // the dead input's column
        QCOMPARE(r.stats.dampUsed, 0.01);
        QCOMPARE(r.stats.dampRaises, 0);
        QVERIFY(r.mask.sizes() == w.sizes());
        QVERIFY(r.mask.scalar_type() == torch::kBool);
    }

    void progressAndCancel()
    {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
        const auto h = randomSpd(256, 300, 3);
        SolverOptions o;
        o.blocksize = 64;
        {
            auto w = at::randn({8, 256}, gen);
            std::vector<int64_t> done;
            const auto r = solveLayer(w, h, o, [&](const Progress& p) {
                QCOMPARE(p.total, int64_t(4));
                done.push_back(p.done);
            });
            QVERIFY(done == (std::vector<int64_t>{1, 2, 3, 4}));
        }
        // Cancelled halfway: CancelledError at the next block boundary.
        QCOMPARE(progressCallsBeforeCancel(at::randn({8, 256}, gen), h, o, 2), 2);
        {
            auto w = at::randn({8, 256}, gen);
            CancelToken token;
            token.cancel();
            QVERIFY_THROWS_EXCEPTION(CancelledError, (void)solveLayer(w, h, o, {}, &token));
        }
    }

    void teamOfWorkers()
    {
        // Two workers over 200 rows (six whole tiles and a partial one): the same masks as one
        // worker, the weights the same but for OpenBLAS's last bits, progress reported in order
        // on the calling thread, and a cancel honoured at the next block.
        auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
        const auto h = randomSpd(256, 300, 5);
        const auto w0 = at::randn({200, 256}, gen);
        for (const bool nm : {false, true}) {
            SolverOptions o;
            o.blocksize = 64;
            if (nm) {
                o.nmN = 2;
                o.nmM = 4;
            }
            auto one = w0.clone();
            LayerResult single;
            {
                const SolverThreadsScope solverThreads(1);
                single = solveLayer(one, h, o);
            }
            const SolverThreadsScope solverThreads(2);
            auto two = w0.clone();
            std::vector<int64_t> done;
            const auto caller = std::this_thread::get_id();
            bool onCaller = true;
            const auto team = solveLayer(two, h, o, [&](const Progress& p) {
                done.push_back(p.done);
                onCaller = onCaller && std::this_thread::get_id() == caller;
            });
            QVERIFY(done == (std::vector<int64_t>{1, 2, 3, 4}));
            QVERIFY(onCaller);
            QVERIFY(torch::equal(team.mask, single.mask));
            QVERIFY((two - one).abs().max().item<float>() <= 1e-6f);
            QCOMPARE(team.stats.sparsity, single.stats.sparsity);
            QVERIFY(std::abs(team.stats.loss - single.stats.loss) <= 1e-6 * single.stats.loss);
            QCOMPARE(progressCallsBeforeCancel(w0.clone(), h, o, 2), 2);
        }
    }

    void nonContiguousAndHalfWeights()
    {
        // A transposed view and a float16 tensor are solved through a float32 copy and written back.
        auto problem = loadProblem("b");
        SolverOptions o;
        auto expected = problem.weight.clone();
        (void)solveLayer(expected, problem.hessian, o);
        auto storage = problem.weight.t().contiguous();
        auto view = storage.t();
        (void)solveLayer(view, problem.hessian, o);
        QVERIFY(torch::equal(view, expected));
        auto half = problem.weight.to(torch::kHalf);
        const auto r = solveLayer(half, problem.hessian, o);
        QVERIFY(half.scalar_type() == torch::kHalf);
        QVERIFY((half.masked_select(r.mask) == 0).all().item<bool>());
    }

    void methodNames()
    {
        for (auto m : {Method::SparseGpt, Method::Magnitude, Method::Wanda})
            QVERIFY(parseMethod(methodName(m)) == m);
        QVERIFY_THROWS_EXCEPTION(InputError, (void)parseMethod("obs"));
    }

private:
    static void backendsData()
    {
        QTest::addColumn<int>("backend");
        QTest::newRow("tiled") << int(sd::Backend::CpuTiled);
        QTest::newRow("generic") << int(sd::Backend::Generic);
    }
};

QTEST_GUILESS_MAIN(TestSparseGpt)
#include "test_sparsegpt.moc"
