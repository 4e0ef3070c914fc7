// `sparselab-cli allocate --method owl` on the bundled stories260K-hf: the recipe's per-block
// sparsities average exactly to the budget and span a band 2λ wide, `prune --recipe` realises that
// average, and bad OWL options exit 2 with one line.

#include "testsupport.h"

#include "cli/cli_runner.h"

#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace fs = std::filesystem;
using sparselab::testing::runCli;
using nlohmann::json;

namespace {

QString str(const fs::path& p) { return QString::fromStdString(p.string()); }

json lastJsonLine(const QString& text) { return json::parse(text.trimmed().split('\n').last().toStdString()); }

} // namespace

class TestCliOwl : public QObject {
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
            << QStringList{"allocate", m_model, "--method", "evolve", "--out", path("never.json")} << "dp or owl";
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

QTEST_GUILESS_MAIN(TestCliOwl)
#include "test_cli_owl.moc"
