// sparselab-cli sensitivity / allocate / sweep / merge / report end to end on the bundled demo
// model with a tiny calibration (4 windows of 32 tokens), plus their bad-input contract:
// exit 2, one line naming the file or option, nothing written.

#include "cli/cli_runner.h"
#include "testsupport.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <set>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QTest>

using sparselab::testing::runCli;
namespace fs = std::filesystem;

namespace {

QString model() { return QString::fromStdString(sparselab::testing::demoModelDir().string()); }
QString calib() { return QString::fromStdString(sparselab::testing::demoCalibText().string()); }
QString evalText() { return QString::fromStdString(sparselab::testing::demoEvalText().string()); }
const QStringList kTiny = {"--nsamples", "4", "--seqlen", "32", "--max-windows", "2", "--quiet"};

nlohmann::json readJson(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return nlohmann::json::parse(f.readAll().toStdString());
}

nlohmann::json points(nlohmann::json j)
{
    for (auto& p : j["points"]) {
        p.erase("allocation_seconds");
        p.erase("prune_seconds");
        p.erase("eval_seconds");
        for (auto& layer : p["layers"])
            layer.erase("seconds"); // each layer's solve time
    }
    return j["points"];
}

} // namespace

class TestCliTradeoffs : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void shardedSweepMergesToTheWholeSweep()
    {
        QTemporaryDir dir;
        const QString whole = dir.filePath("whole.json"), a = dir.filePath("a.json"), b = dir.filePath("b.json"),
                      merged = dir.filePath("m.json");
        const QStringList sweep = QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(),
                                              "--sparsities", "0.4,0.6", "--bits", "16,4"}
            + kTiny;
        auto run = runCli(sweep + QStringList{"--out", whole});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QVERIFY2(runCli(sweep + QStringList{"--shard", "0/2", "--out", a}).exitCode == 0, "shard 0");
        QVERIFY2(runCli(sweep + QStringList{"--shard", "1/2", "--out", b}).exitCode == 0, "shard 1");
        run = runCli({"merge", b, a, "--out", merged, "--json"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto summary = nlohmann::json::parse(run.stdoutText.toStdString());
        QCOMPARE(summary["points"].get<int>(), 4);
        QVERIFY(summary["missing"].empty());
        QCOMPARE(points(readJson(merged)).dump(), points(readJson(whole)).dump());
        // Index order: (16 bit: 0.4, 0.6), (4 bit: 0.4, 0.6); 60 % is worse than 40 % at either width.
        const auto p = readJson(whole)["points"];
        QCOMPARE(p[2]["bits"].get<int>(), 4);
        QCOMPARE(p[2]["sparsity"].get<double>(), 0.4);
        QVERIFY(p[1]["perplexity"].get<double>() > p[0]["perplexity"].get<double>());
        QVERIFY(p[3]["perplexity"].get<double>() > p[2]["perplexity"].get<double>());

        // merge refuses to overwrite an input, and inputs from another sweep.
        run = runCli({"merge", a, b, "--out", a});
        QCOMPARE(run.exitCode, 2);
        QVERIFY(run.stderrText.contains("--out"));
        const QString other = dir.filePath("other.json");
        QVERIFY(runCli(QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(), "--sparsities", "0.5",
                                   "--out", other} + kTiny).exitCode == 0);
        run = runCli({"merge", a, other, "--out", dir.filePath("x.json")});
        QCOMPARE(run.exitCode, 2);
        QVERIFY2(run.stderrText.contains("other.json"), qPrintable(run.stderrText));
        QVERIFY(!QFile::exists(dir.filePath("x.json")));
    }

    void sweepTakesAnAllocationAxis()
    {
        QTemporaryDir dir;
        const QString out = dir.filePath("alloc.json"), ws = dir.filePath("W.h5");
        auto run = runCli(QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(), "--sparsities", "0.5",
                                      "--allocations", "uniform,owl,search", "--generations", "2", "--fitness-windows",
                                      "4", "--out", out, "--workspace", ws}
                          + kTiny);
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto sweep = readJson(out);
        QCOMPARE(sweep["version"].get<int>(), 3);
        QCOMPARE(sweep["grid"]["allocations"].dump(), std::string(R"(["uniform","owl","search"])"));
        QCOMPARE(sweep["settings"]["allocation"]["search"]["generations"].get<int>(), 2);
        QCOMPARE(sweep["settings"]["allocation"]["owl"]["lambda"].get<double>(), 0.08);
        const auto p = sweep["points"];
        QCOMPARE(p.size(), size_t(3));
        for (size_t i = 0; i < 3; ++i) {
            QCOMPARE(p[i]["allocation"].get<std::string>(), std::string(i == 0 ? "uniform" : i == 1 ? "owl" : "search"));
            QVERIFY(std::abs(p[i]["linear_sparsity"].get<double>() - 0.5) < 3e-3);
        }
        // OWL's points differ per block; the uniform point has one sparsity for every layer.
        std::set<double> owlLevels, uniformLevels;
        for (const auto& layer : p[1]["layers"])
            owlLevels.insert(std::round(layer["sparsity"].get<double>() * 100.0));
        for (const auto& layer : p[0]["layers"])
            uniformLevels.insert(std::round(layer["sparsity"].get<double>() * 100.0));
        QCOMPARE(uniformLevels.size(), size_t(1));
        QVERIFY(owlLevels.size() > 1);
        // The workspace holds the same sweep; merge reads it back.
        const QString merged = dir.filePath("m.json");
        run = runCli({"merge", ws, "--out", merged, "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QCOMPARE(points(readJson(merged)).dump(), points(sweep).dump());
    }

    // With two threads available (OMP_NUM_THREADS=2 in the child; the suite itself runs with
    // 1), a prune without --threads runs the demo's (hidden 64) products on one thread and
    // SparseLab's kernels on two, as util/engine_threads.h decides, and --threads still wins.
    void defaultThreadsFollowTheModelSize()
    {
        QTemporaryDir dir;
        for (const QString& threads : {QString(), QStringLiteral("2")}) {
            const QString out = dir.filePath("threads" + threads);
            QStringList args = {"prune", model(), "--calib", calib(), "--out", out, "--nsamples", "4", "--seqlen", "32",
                                "--sparsity", "0.5", "--quiet"};
            if (!threads.isEmpty())
                args << "--threads" << threads;
            const auto run = runCli(args, {"OMP_NUM_THREADS=2", "OPENBLAS_NUM_THREADS=2"});
            QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
            const auto provenance = readJson(out + "/sparselab.json");
            QCOMPARE(provenance.at("torch_threads").get<int>(), threads.isEmpty() ? 1 : 2);
            QCOMPARE(provenance.at("kernel_threads").get<int>(), 2);
        }
    }

    void sensitivityAllocateAndReport()
    {
        QTemporaryDir dir;
        const QString sens = dir.filePath("s.json"), recipe = dir.filePath("r.json");
        auto run = runCli({"sensitivity", model(), "--calib", calib(), "--nsamples", "4", "--seqlen", "32",
                           "--sparsities", "0,0.25,0.5,0.75", "--out", sens, "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto summary = nlohmann::json::parse(run.stdoutText.toStdString());
        QCOMPARE(summary["layers"].get<int>(), 35);
        QCOMPARE(summary["factorizations"].get<int>(), 35);
        run = runCli({"allocate", sens, "--budget-sparsity", "0.5", "--out", recipe, "--json", "--compare", model(),
                      "--calib", calib(), "--eval", evalText(), "--nsamples", "4", "--seqlen", "32", "--max-windows",
                      "2", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto allocation = nlohmann::json::parse(run.stdoutText.toStdString());
        QVERIFY(allocation["allocated"]["average_sparsity"].get<double>() >= 0.5);
        QVERIFY(allocation["allocated"]["predicted_error"].get<double>()
                <= allocation["uniform"]["predicted_error"].get<double>());
        QVERIFY(allocation["measured"]["allocated"]["perplexity"].get<double>() > 0);
        // The recipe drives prune, and the pruned folder gets a report.
        const QString out = dir.filePath("pruned");
        run = runCli({"prune", model(), "--calib", calib(), "--nsamples", "4", "--seqlen", "32", "--recipe", recipe,
                      "--eval", evalText(), "--out", out, "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const QString html = dir.filePath("r.html"), pdf = dir.filePath("r.pdf");
        run = runCli({"report", "--dense", model(), "--compressed", out, "--html", html, "--pdf", pdf, "--max-windows",
                      "2", "--new-tokens", "8", "--sensitivity", sens, "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QVERIFY(QFile::exists(html));
        QVERIFY(QFile(pdf).size() > 1000);
        QVERIFY(QFile(html).size() > 1000);
    }

    void badInput_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("named");
        QTest::newRow("shard out of range") << QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(),
                                                           "--shard", "2/2", "--out", "OUT.json"} << "--shard";
        QTest::newRow("shard malformed") << QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(),
                                                        "--shard", "1-2", "--out", "OUT.json"} << "--shard";
        QTest::newRow("unknown group") << QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(),
                                                      "--groups", "heads", "--out", "OUT.json"} << "--groups";
        QTest::newRow("unknown allocation") << QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(),
                                                           "--allocations", "dp", "--out", "OUT.json"} << "--allocations";
        QTest::newRow("rtn with owl") << QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(),
                                                     "--methods", "rtn", "--allocations", "owl", "--out", "OUT.json"}
                                      << "--allocations";
        QTest::newRow("search option without search") << QStringList{"sweep", model(), "--calib", calib(), "--eval",
                                                                     evalText(), "--allocations", "owl", "--generations",
                                                                     "3", "--out", "OUT.json"} << "--generations";
        QTest::newRow("owl band at 0.1") << QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(),
                                                        "--allocations", "owl", "--sparsities", "0.1,0.5", "--out",
                                                        "OUT.json"} << "sweep point 0 (owl at sparsity 0.1)";
        QTest::newRow("sparsity 1") << QStringList{"sensitivity", model(), "--calib", calib(), "--sparsities", "0.5,1",
                                                   "--out", "OUT.json"} << "--sparsities";
        QTest::newRow("bits 1") << QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText(), "--bits",
                                               "1", "--out", "OUT.json"} << "--bits";
        QTest::newRow("no budget") << QStringList{"allocate", "MISSING.json", "--out", "OUT.json"} << "--budget-sparsity";
        QTest::newRow("not a scan") << QStringList{"allocate", calib(), "--budget-sparsity", "0.5", "--out", "OUT.json"}
                                    << "tinystories_calib.txt";
        QTest::newRow("merge not a sweep") << QStringList{"merge", calib(), "--out", "OUT.json"} << "tinystories_calib.txt";
        QTest::newRow("report no html/pdf") << QStringList{"report", "--dense", model(), "--compressed", model()} << "--html";
        QTest::newRow("report workspace") << QStringList{"report", "W.h5", "--html", "OUT.html"} << "W.h5";
        QTest::newRow("report not pruned") << QStringList{"report", "--dense", model(), "--compressed", model(),
                                                          "--html", "OUT.html"} << "sparselab.json";
    }
    void badInput()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, named);
        QTemporaryDir dir;
        for (auto& a : args)
            if (a.startsWith("OUT."))
                a = dir.filePath(a);
        const auto run = runCli(args);
        QCOMPARE(run.exitCode, 2);
        QVERIFY2(run.stderrText.contains(named), qPrintable(run.stderrText));
        QCOMPARE(run.stderrText.trimmed().count('\n'), 0); // one line
        QVERIFY(QDir(dir.path()).isEmpty());
    }
};

QTEST_GUILESS_MAIN(TestCliTradeoffs)
#include "test_cli_tradeoffs.moc"
