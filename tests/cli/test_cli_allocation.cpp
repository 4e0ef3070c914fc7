// `sparselab-cli allocate --method owl|search` on the bundled stories260K-hf: the recipe's
// sparsities average exactly to the budget (OWL's per-block ones span a band 2λ wide; the
// search's weighted by the layers' sizes, recomputed here from the model's shapes), the same
// seed gives the same recipe, `prune --recipe` realises that average, and bad options exit 2
// with one line.

#include "testsupport.h"

#include "cli/cli_runner.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

namespace fs = std::filesystem;
using sparselab::testing::runCli;
using nlohmann::json;

namespace {

QString str(const fs::path& p) { return QString::fromStdString(p.string()); }

json lastJsonLine(const QString& text) { return json::parse(text.trimmed().split('\n').last().toStdString()); }

} // namespace

class TestCliAllocation : public QObject {
    Q_OBJECT
private:
    QTemporaryDir m_dir;
    QString path(const QString& name) const { return m_dir.filePath(name); }
    const QString m_model = str(sparselab::testing::demoModelDir());
    const QString m_calib = str(sparselab::testing::demoCalibText());

private Q_SLOTS:
    void owlRecipeHoldsTheBudget()
    {
        auto run = runCli({"allocate", m_model, "--method", "owl", "--calib", m_calib, "--budget-sparsity", "0.6",
                           "--nsamples", "16", "--seqlen", "64", "--out", path("owl.json"), "--threads", "1", "--json",
                           "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const json out = lastJsonLine(run.stdoutText);
        QVERIFY(std::abs(out["average_sparsity"].get<double>() - 0.6) < 1e-12);
        std::vector<double> sparsity;
        for (const auto& block : out["blocks"])
            sparsity.push_back(block["sparsity"].get<double>());
        QCOMPARE(sparsity.size(), size_t(5));
        // The band is 2λ = 0.16 wide and contains the budget.
        const auto [lo, hi] = std::minmax_element(sparsity.begin(), sparsity.end());
        QVERIFY2(std::abs((*hi - *lo) - 0.16) < 1e-12 && *lo < 0.6 && *hi > 0.6,
                 qPrintable(QString("%1 .. %2").arg(*lo).arg(*hi)));

        // The recipe runs as is; the realised linear sparsity is the budget (per-layer rounding aside).
        run = runCli({"prune", m_model, "--calib", m_calib, "--recipe", path("owl.json"), "--nsamples", "16",
                      "--seqlen", "64", "--out", path("pruned"), "--threads", "1", "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QVERIFY(std::abs(lastJsonLine(run.stdoutText)["linear_sparsity"].get<double>() - 0.6) < 0.003);
    }

    void searchRecipeHoldsTheBudget()
    {
        const QStringList args = {"allocate", m_model, "--method", "search", "--calib", m_calib,
                                  "--budget-sparsity", "0.7", "--nsamples", "16", "--seqlen", "64",
                                  "--generations", "4", "--offspring", "6", "--fitness-windows", "8",
                                  "--search-seed", "9", "--threads", "1", "--json", "--quiet", "--out"};
        auto run = runCli(args + QStringList{path("search.json")});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const json out = lastJsonLine(run.stdoutText);
        QCOMPARE(out["generations"].get<int>(), 4);
        QCOMPARE(out["history"].size(), size_t(5));
        QVERIFY(out["search_kl"].get<double>() <= out["uniform_kl"].get<double>());
        // stories260K: per block q,o 64×64; k,v 32×64; gate,up 172×64; down 64×172.
        const std::map<std::string, double> weights = {{"q_proj", 4096}, {"o_proj", 4096}, {"k_proj", 2048},
                                                       {"v_proj", 2048}, {"gate_proj", 11008},
                                                       {"up_proj", 11008}, {"down_proj", 11008}};
        double weighted = 0, total = 0;
        QCOMPARE(out["layers"].size(), size_t(35));
        for (const auto& layer : out["layers"]) {
            const std::string name = layer["name"];
            const double w = weights.at(name.substr(name.rfind('.') + 1));
            QCOMPARE(layer["weights"].get<double>(), w);
            weighted += w * layer["sparsity"].get<double>();
            total += w;
        }
        QVERIFY2(std::abs(weighted / total - 0.7) < 1e-12, qPrintable(QString::number(weighted / total, 'g', 17)));

        // Same seed, same recipe file.
        run = runCli(args + QStringList{path("search2.json")});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QFile a(path("search.json")), b(path("search2.json"));
        QVERIFY(a.open(QIODevice::ReadOnly) && b.open(QIODevice::ReadOnly));
        QCOMPARE(a.readAll(), b.readAll());

        // The recipe runs as is through the real pipeline.
        run = runCli({"prune", m_model, "--calib", m_calib, "--recipe", path("search.json"), "--nsamples", "16",
                      "--seqlen", "64", "--out", path("pruned-search"), "--threads", "1", "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QVERIFY(std::abs(lastJsonLine(run.stdoutText)["linear_sparsity"].get<double>() - 0.7) < 0.003);
    }

    void searchWithABytesBudget()
    {
        // 200,000 bytes for stories260K (fp16: 520,064): sparsity and bits searched together.
        auto run = runCli({"allocate", m_model, "--method", "search", "--calib", m_calib, "--budget-bytes", "200000",
                           "--nsamples", "16", "--seqlen", "64", "--generations", "3", "--offspring", "4",
                           "--fitness-windows", "8", "--threads", "1", "--json", "--quiet", "--out", path("bytes.json")});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const json out = lastJsonLine(run.stdoutText);
        QCOMPARE(out["budget_bytes"].get<int64_t>(), int64_t(200000));
        QVERIFY(out["model_bytes"].get<int64_t>() <= 200000);
        QVERIFY(out["uniform"]["model_bytes"].get<int64_t>() <= 200000);
        QCOMPARE(out["levels"].size(), size_t(10 * 3)); // 0 … 0.9 by 0.1, × 16, 8, 4 bits
        for (const auto& layer : out["layers"]) {
            const int bits = layer["bits"].get<int>();
            QVERIFY(bits == 16 || bits == 8 || bits == 4);
        }
        run = runCli({"prune", m_model, "--calib", m_calib, "--recipe", path("bytes.json"), "--nsamples", "16",
                      "--seqlen", "64", "--out", path("pruned-bytes"), "--threads", "1", "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
    }

    void badSearchInput_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("expected");
        const QStringList base = {"allocate", m_model, "--method", "search", "--out", path("never.json")};
        QTest::newRow("both budgets")
            << (base + QStringList{"--calib", m_calib, "--budget-bytes", "1000", "--budget-sparsity", "0.5"}) << "--budget";
        QTest::newRow("more fitness windows than samples")
            << (base + QStringList{"--calib", m_calib, "--budget-sparsity", "0.5", "--nsamples", "8", "--seqlen", "64",
                                   "--fitness-windows", "9"})
            << "--fitness-windows";
        QTest::newRow("survivors above offspring")
            << (base + QStringList{"--calib", m_calib, "--budget-sparsity", "0.5", "--offspring", "4", "--survivors", "5"})
            << "--survivors";
        QTest::newRow("budget above the top level")
            << (base + QStringList{"--calib", m_calib, "--budget-sparsity", "0.97"}) << "--budget-sparsity";
        QTest::newRow("bits with a sparsity budget")
            << (base + QStringList{"--calib", m_calib, "--budget-sparsity", "0.5", "--bits", "16,4"}) << "--bits";
        QTest::newRow("bytes budget below every uniform level")
            << (base + QStringList{"--calib", m_calib, "--budget-bytes", "70000", "--nsamples", "8", "--seqlen", "32"})
            << "--budget-bytes";
        QTest::newRow("search option with dp")
            << QStringList{"allocate", path("scan.json"), "--budget-sparsity", "0.5", "--generations", "3", "--out",
                           path("never.json")}
            << "--generations";
    }

    void badSearchInput() { badOwlInput(); }

    void badOwlInput_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("expected");
        const QStringList base = {"allocate", m_model, "--method", "owl", "--out", path("never.json")};
        QTest::newRow("no calibration") << (base + QStringList{"--budget-sparsity", "0.5"}) << "--calib";
        QTest::newRow("bytes budget") << (base + QStringList{"--calib", m_calib, "--budget-bytes", "1000"}) << "--budget";
        QTest::newRow("lambda too large")
            << (base + QStringList{"--calib", m_calib, "--budget-sparsity", "0.5", "--owl-lambda", "0.6"}) << "--owl-lambda";
        QTest::newRow("no room above")
            << (base + QStringList{"--calib", m_calib, "--budget-sparsity", "0.95"}) << "--budget-sparsity";
        QTest::newRow("unknown method")
            << QStringList{"allocate", m_model, "--method", "evolve", "--out", path("never.json")} << "dp, owl or search";
    }

    void badOwlInput()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, expected);
        const auto run = runCli(args);
        QCOMPARE(run.exitCode, 2);
        const QString last = run.stderrText.trimmed().split('\n').last();
        QVERIFY2(last.startsWith("error: ") && last.contains(expected), qPrintable(run.stderrText));
        QVERIFY(!fs::exists(path("never.json").toStdString()));
    }
};

QTEST_GUILESS_MAIN(TestCliAllocation)
#include "test_cli_allocation.moc"
