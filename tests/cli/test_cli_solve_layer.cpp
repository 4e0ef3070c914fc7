// `sparselab-cli solve-layer` end to end: a problem file with a Hessian (the solver goldens'
// problem a) and one with inputs; output file contents, JSON, and the no-overwrite rule; the
// CPU-only front end against the engine. (Bad inputs are in test_cli_bad_input.cpp.)

#include "io/safetensors.h"
#include "solve/solver.h"
#include "testsupport.h"

#include "cli/cli_runner.h"
#include "core/solver_test_data.h"

#include <ATen/CPUGeneratorImpl.h>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace sparselab;

namespace {

using sparselab::testing::runCli;
using sparselab::testing::runCliEngine;

// The tensors of a solve-layer output, and its statistics without the time taken.
struct SolveOutput {
    std::vector<char> weight;
    std::vector<char> mask;
    nlohmann::json stats;
};

SolveOutput readOutput(const QString& path)
{
    const auto file = io::SafetensorsFile::open(path.toStdString());
    SolveOutput out;
    for (const auto& [name, bytes] : {std::pair{"weight", &out.weight}, std::pair{"mask", &out.mask}}) {
        const auto view = file.view(name);
        bytes->assign(reinterpret_cast<const char*>(view.data), reinterpret_cast<const char*>(view.data) + view.nbytes);
    }
    out.stats = nlohmann::json::parse(file.metadata().at("stats"));
    out.stats.erase("seconds");
    return out;
}

// Whether LibTorch was loaded into the process that ran (LD_DEBUG=files lists every library
// the dynamic loader opens, across execv).
bool loadedLibTorch(const testing::CliRun& run) { return run.stderrText.contains("libtorch_cpu"); }

fs::path solverData(const std::string& name) { return testing::solverDataDir() / name; }

} // namespace

class TestCliSolveLayer : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString path(const QString& name) const { return m_dir.filePath(name); }

private Q_SLOTS:
    void hessianProblemMatchesGolden()
    {
        // problem a with 2:4 is the golden case sparsegpt_nm24_bs128 (published reference).
        const QString out = path("nm24.safetensors");
        const auto run = runCli({"solve-layer", "--problem", QString::fromStdString(solverData("problem_a.safetensors").string()),
                                 "--out", out, "--nm", "2:4", "--json", "--threads", "2"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto json = nlohmann::json::parse(run.stdoutText.toStdString());
        for (const char* key : {"sparsity", "loss", "rel_output_error", "seconds", "damp_used", "damp_raises"})
            QVERIFY2(json.contains(key), key);
        QCOMPARE(json["damp_raises"].get<int>(), 0);
        QCOMPARE(json["damp_used"].get<double>(), 0.01);

        const auto result = io::SafetensorsFile::open(out.toStdString());
        QVERIFY(result.find("weight")->dtype == io::DType::F32);
        QVERIFY(result.find("mask")->dtype == io::DType::U8);
        const auto golden = io::SafetensorsFile::open(solverData("sparsegpt_nm24_bs128.safetensors"));
        const auto mask = testing::loadTensor(result, "mask");
        QVERIFY(torch::equal(mask, testing::loadTensor(golden, "mask")));
        const auto weight = testing::loadTensor(result, "weight");
        const auto expected = testing::loadTensor(golden, "weight");
        QVERIFY((weight - expected).abs().max().item<double>() <= 1e-5 * expected.abs().max().item<double>());
        const double loss = std::stod(golden.metadata().at("loss"));
        QVERIFY(std::abs(json["loss"].get<double>() - loss) <= 1e-4 * loss);
        QCOMPARE(json["sparsity"].get<double>(), (weight == 0).to(torch::kFloat64).mean().item<double>());
        QVERIFY(result.metadata().count("options") == 1);
    }

    void inputsProblem_data()
    {
        QTest::addColumn<QStringList>("options");
        QTest::addColumn<double>("sparsity");
        QTest::newRow("sparsegpt 60%") << QStringList{"--sparsity", "0.6"} << 0.6;
        QTest::newRow("sparsegpt 50% 4-bit groups") << QStringList{"--bits", "4", "--group", "16", "--sym"} << 0.5;
        QTest::newRow("magnitude 2:4") << QStringList{"--method", "magnitude", "--nm", "2:4"} << 0.5;
        QTest::newRow("wanda 30%") << QStringList{"--method", "wanda", "--sparsity", "0.3"} << 0.3;
    }

    void inputsProblem()
    {
        // inputs [tokens, cols] F16 are one calibration sequence: H = 2·XᵀX.
        QFETCH(QStringList, options);
        QFETCH(double, sparsity);
        const QString problem = path("inputs.safetensors");
        auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
        const auto w = at::randn({12, 64}, gen);
        const auto x = at::randn({80, 64}, gen).to(torch::kHalf);
        io::writeSafetensors(problem.toStdString(),
                             {{"weight", io::DType::F32, {12, 64}, w.data_ptr<float>(), size_t(w.nbytes())},
                              {"inputs", io::DType::F16, {80, 64}, x.data_ptr(), size_t(x.nbytes())}});
        const QString out = path("inputs-out.safetensors");
        const auto run = runCli(QStringList{"solve-layer", "--problem", problem, "--out", out, "--json"} + options);
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto json = nlohmann::json::parse(run.stdoutText.toStdString());

        // Same result as the library on H = 2·XᵀX.
        solve::HessianAccumulator acc(64, torch::kCPU);
        acc.add(x.to(torch::kFloat));
        solve::SolverOptions o;
        const QStringList& a = options;
        for (int i = 0; i < a.size(); ++i) {
            if (a[i] == "--sparsity") o.sparsity = a[i + 1].toDouble();
            if (a[i] == "--nm") { o.nmN = a[i + 1].section(':', 0, 0).toInt(); o.nmM = a[i + 1].section(':', 1, 1).toInt(); }
            if (a[i] == "--method") o.method = solve::parseMethod(a[i + 1].toStdString());
            if (a[i] == "--bits") o.quant.bits = a[i + 1].toInt();
            if (a[i] == "--group") o.quant.groupSize = a[i + 1].toInt();
            if (a[i] == "--sym") o.quant.symmetric = true;
        }
        auto expected = w.clone();
        const auto r = solve::solveLayer(expected, acc.hessian(), o);
        const auto result = io::SafetensorsFile::open(out.toStdString());
        const auto mask = testing::loadTensor(result, "mask").to(torch::kBool);
        QVERIFY(torch::equal(mask, r.mask));
        QVERIFY(torch::allclose(testing::loadTensor(result, "weight"), expected, 1e-5, 1e-6));
        QVERIFY(std::abs(json["rel_output_error"].get<double>() - r.stats.relOutputError) <= 1e-6);
        QVERIFY(std::abs(mask.to(torch::kFloat64).mean().item<double>() - sparsity) < 0.03);
    }

    // The front end solves CPU SparseGPT without quantization itself, without loading LibTorch,
    // and gives the engine's bytes: weights, mask and statistics. Problems with partial row
    // tiles and column blocks, F16 and 3-D inputs, a given Hessian with a dead input and one
    // whose damping must be raised; one and two threads.
    void frontEndMatchesEngine_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QStringList>("options");
        QTest::newRow("f16 inputs, 50 %") << "inputs16" << QStringList{"--sparsity", "0.5", "--threads", "2"};
        QTest::newRow("f16 inputs, 2:4, 1 thread") << "inputs16" << QStringList{"--nm", "2:4", "--threads", "1"};
        QTest::newRow("3-D inputs, 60 %") << "inputs3d" << QStringList{"--sparsity", "0.6"};
        QTest::newRow("hessian, dead input") << "hessian" << QStringList{"--sparsity", "0.5", "--blocksize", "64"};
        QTest::newRow("damping raised") << "indefinite" << QStringList{"--sparsity", "0.5", "--threads", "2"};
    }

    void frontEndMatchesEngine()
    {
        QFETCH(QString, kind);
        QFETCH(QStringList, options);
        const QString problem = path("front-" + kind + ".safetensors");
        auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
        const int64_t rows = 70, cols = 200; // a partial row tile, a partial column block
        const auto w = at::randn({rows, cols}, gen);
        std::vector<io::TensorToWrite> tensors{{"weight", io::DType::F32, {rows, cols}, w.data_ptr<float>(), size_t(w.nbytes())}};
        torch::Tensor extra;
        if (kind == "inputs16") {
            extra = at::randn({150, cols}, gen).to(torch::kHalf);
            tensors.push_back({"inputs", io::DType::F16, {150, cols}, extra.data_ptr(), size_t(extra.nbytes())});
        } else if (kind == "inputs3d") {
            extra = at::randn({3, 40, cols}, gen);
            tensors.push_back({"inputs", io::DType::F32, {3, 40, cols}, extra.data_ptr(), size_t(extra.nbytes())});
        } else {
            const auto x = at::randn({300, cols}, gen);
            extra = x.t().mm(x);
            extra.select(0, 9).zero_();
            extra.select(1, 9).zero_(); // input 9 is dead
            if (kind == "indefinite") {
                const float big = 2.0f * extra.diagonal().max().item<float>();
                extra.index_put_({3, 4}, big);
                extra.index_put_({4, 3}, big);
            }
            extra = extra.contiguous();
            tensors.push_back({"hessian", io::DType::F32, {cols, cols}, extra.data_ptr(), size_t(extra.nbytes())});
        }
        io::writeSafetensors(problem.toStdString(), tensors);

        const QString frontOut = path("front-" + kind + "-out.safetensors");
        const QString engineOut = path("engine-" + kind + "-out.safetensors");
        const QStringList common{"solve-layer", "--problem", problem, "--quiet"};
        const auto front = runCli(common + QStringList{"--out", frontOut} + options, {"LD_DEBUG=files"});
        QVERIFY2(front.exitCode == 0, qPrintable(front.stderrText.right(2000)));
        QVERIFY2(!loadedLibTorch(front), "the front end loaded LibTorch for a CPU SparseGPT solve");
        const auto engine = runCliEngine(common + QStringList{"--out", engineOut} + options);
        QVERIFY2(engine.exitCode == 0, qPrintable(engine.stderrText));
        const SolveOutput a = readOutput(frontOut);
        const SolveOutput b = readOutput(engineOut);
        QVERIFY(a.weight == b.weight);
        QVERIFY(a.mask == b.mask);
        QCOMPARE(QString::fromStdString(a.stats.dump()), QString::fromStdString(b.stats.dump()));
        if (kind == "indefinite")
            QVERIFY(a.stats["damp_raises"].get<int>() > 0);
        if (kind == "hessian")
            QCOMPARE(a.stats["dead_inputs"].get<int>(), 1);
    }

    // What the front end cannot solve goes to the engine, which loads LibTorch.
    void frontEndHandsTheRestToTheEngine()
    {
        const QString out = path("handed.safetensors");
        const auto run = runCli({"solve-layer", "--problem", QString::fromStdString(solverData("problem_b.safetensors").string()),
                                 "--out", out, "--bits", "4", "--quiet"},
                                {"LD_DEBUG=files"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText.right(2000)));
        QVERIFY(loadedLibTorch(run));
        QVERIFY(QFile::exists(out));
        const auto version = runCli({"version"});
        QCOMPARE(version.exitCode, 0);
        QVERIFY2(version.stdoutText.startsWith("sparselab-cli "), qPrintable(version.stdoutText));
    }

    void refusesToOverwriteItsInput()
    {
        const QString problem = path("self.safetensors");
        QVERIFY(QFile::copy(QString::fromStdString(solverData("problem_b.safetensors").string()), problem));
        const auto before = fs::file_size(problem.toStdString());
        const auto run = runCli({"solve-layer", "--problem", problem, "--out", problem});
        QCOMPARE(run.exitCode, 2);
        QVERIFY2(run.stderrText.contains("self.safetensors"), qPrintable(run.stderrText));
        QCOMPARE(fs::file_size(problem.toStdString()), before);
        // --sparsity and --nm together are a usage error; nothing is written.
        const QString out = path("both.safetensors");
        const auto both = runCli({"solve-layer", "--problem", problem, "--out", out, "--sparsity", "0.5", "--nm", "2:4"});
        QCOMPARE(both.exitCode, 2);
        QVERIFY2(both.stderrText.contains("--nm"), qPrintable(both.stderrText));
        QVERIFY(!QFile::exists(out));
    }
};

QTEST_GUILESS_MAIN(TestCliSolveLayer)
#include "test_cli_solve_layer.moc"
