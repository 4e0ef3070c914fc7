// `sparselab-cli solve-layer` end to end: a problem file with a Hessian (the solver goldens'
// problem a) and one with inputs; output file contents, JSON, and the no-overwrite rule.
// (Bad inputs are in test_cli_bad_input.cpp.)

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
