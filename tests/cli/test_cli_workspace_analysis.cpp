// Sweeps, sensitivity scans and reports through a workspace (.h5), end to end on the bundled
// demo model with a tiny calibration (4 windows of 32 tokens) and a short evaluation text:
//  - a sweep stored in a workspace reads back equal to the JSON written by the same run, and
//    shards stored in workspaces merge to the whole sweep (JSON or workspace output);
//  - a scan stored in a workspace drives `allocate` to the same recipe as its JSON twin;
//  - `report W.h5` finds the dense model (hashes verified), the run's export and evaluation
//    text in the workspace; its perplexities equal the ones `prune --workspace` recorded
//    (same windows, same evaluation code), and the PDF text has every section and figure;
//  - bad cases exit 2 with one line naming the file and the problem, writing nothing.
// pdftotext (poppler-utils) and python3-h5py are needed for two checks (QSKIP without).

#include "cli/cli_runner.h"
#include "testsupport.h"

#include <nlohmann/json.hpp>

#include <QDir>
#include <QFile>
#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <cstdio>

using sparselab::testing::runCli;
namespace fs = std::filesystem;

namespace {

QString model() { return QString::fromStdString(sparselab::testing::demoModelDir().string()); }
QString calib() { return QString::fromStdString(sparselab::testing::demoCalibText().string()); }
const QStringList kTiny = {"--nsamples", "4", "--seqlen", "32", "--quiet"};

nlohmann::json readJson(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return nlohmann::json::parse(f.readAll().toStdString());
}

nlohmann::json withoutSeconds(nlohmann::json j)
{
    for (auto& p : j["points"]) {
        p.erase("prune_seconds");
        p.erase("eval_seconds");
        for (auto& layer : p["layers"])
            layer.erase("seconds"); // each layer's solve time
    }
    return j;
}

// The first 6000 bytes of the demo evaluation text (about 45 windows of 32 tokens): quick.
QString shortEvalText(const QTemporaryDir& dir)
{
    QFile in(QString::fromStdString(sparselab::testing::demoEvalText().string()));
    in.open(QIODevice::ReadOnly);
    const QString path = dir.filePath("eval_short.txt");
    QFile out(path);
    out.open(QIODevice::WriteOnly);
    out.write(in.read(6000));
    return path;
}

std::string pdfText(const QString& pdf)
{
    QProcess process;
    process.start("pdftotext", {"-layout", pdf, "-"});
    if (!process.waitForFinished(60000) || process.exitCode() != 0)
        return {};
    // Collapse whitespace: wrapped lines and table columns become single spaces.
    return QString::fromUtf8(process.readAllStandardOutput()).simplified().toStdString();
}

std::string fixed4(double value)
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.4f", value);
    return buffer;
}

void copyFolder(const QString& from, const QString& to)
{
    fs::copy(from.toStdString(), to.toStdString(), fs::copy_options::recursive);
}

} // namespace

class TestCliWorkspaceAnalysis : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sweepRoundTripsThroughTheWorkspace()
    {
        QTemporaryDir dir;
        const QString evalText = shortEvalText(dir);
        const QString json = dir.filePath("s.json"), ws = dir.filePath("W.h5");
        const QStringList sweep = QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText,
                                              "--sparsities", "0.4,0.6", "--bits", "16,4"}
            + kTiny;
        // One run writes both: the workspace copy must read back identical, timings included.
        auto run = runCli(sweep + QStringList{"--out", json, "--workspace", ws, "--json"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QCOMPARE(QString::fromStdString(nlohmann::json::parse(run.stdoutText.toStdString())["group"].get<std::string>()),
                 QString("sweeps/sweep_0001"));
        const QString back = dir.filePath("back.json");
        run = runCli({"merge", ws, "--out", back, "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QCOMPARE(readJson(back).dump(), readJson(json).dump());

        // The table datasets are readable by h5py and hold the JSON's figures.
        // Debian's python3-h5py installs for /usr/bin/python3 (a pyenv python3 in PATH may lack it).
        const QString python = QFile::exists("/usr/bin/python3") ? QString("/usr/bin/python3") : QString("python3");
        {
            QProcess py;
            py.start(python, {"-c", "import h5py,sys; f=h5py.File(sys.argv[1]); g=f['sweeps/sweep_0001'];"
                                       "print(' '.join('%.17g' % v for v in g['perplexity'][:]), g['bits'][:].tolist())",
                                 ws});
            py.waitForFinished(60000);
            if (py.exitCode() == 0) {
                std::string expected;
                const auto table = readJson(json);
                for (const auto& p : table["points"]) {
                    char buffer[40];
                    std::snprintf(buffer, sizeof buffer, "%.17g", p["perplexity"].get<double>());
                    expected += (expected.empty() ? "" : " ") + std::string(buffer);
                }
                const std::string got = py.readAllStandardOutput().toStdString();
                QVERIFY2(got.rfind(expected + " [16, 16, 4, 4]", 0) == 0, (got + " vs " + expected).c_str());
            } else {
                qWarning("h5py not usable, dataset check skipped: %s", py.readAllStandardError().constData());
            }
        }

        // Shards into two workspaces, merged into a third, equal the whole sweep.
        const QString w0 = dir.filePath("w0.h5"), w1 = dir.filePath("w1.h5"), merged = dir.filePath("M.h5");
        QVERIFY(runCli(sweep + QStringList{"--shard", "0/2", "--out", w0}).exitCode == 0);
        QVERIFY(runCli(sweep + QStringList{"--shard", "1/2", "--out", w1, "--name", "half"}).exitCode == 0);
        run = runCli({"merge", w1, w0, "--from", "half", "--out", merged, "--json"});
        QCOMPARE(run.exitCode, 2); // w0's sweep is sweep_0001, not "half"
        QVERIFY2(run.stderrText.contains("w0.h5") && run.stderrText.contains("half"), qPrintable(run.stderrText));
        run = runCli({"merge", w1, w0, "--out", merged, "--name", "all", "--json"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QCOMPARE(QString::fromStdString(nlohmann::json::parse(run.stdoutText.toStdString())["group"].get<std::string>()),
                 QString("sweeps/all"));
        const QString mergedJson = dir.filePath("m.json");
        QVERIFY(runCli({"merge", merged, "--from", "all", "--out", mergedJson, "--quiet"}).exitCode == 0);
        QCOMPARE(withoutSeconds(readJson(mergedJson))["points"].dump(), withoutSeconds(readJson(json))["points"].dump());

        // A second sweep into the same workspace gets the next name; the first stays.
        QVERIFY(runCli(QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText, "--sparsities", "0.5",
                                   "--out", ws} + kTiny).exitCode == 0);
        const QString first = dir.filePath("first.json");
        QVERIFY(runCli({"merge", ws, "--from", "sweep_0001", "--out", first, "--quiet"}).exitCode == 0);
        QCOMPARE(readJson(first).dump(), readJson(json).dump());
        const QString second = dir.filePath("second.json");
        QVERIFY(runCli({"merge", ws, "--from", "sweep_0002", "--out", second, "--quiet"}).exitCode == 0);
        QCOMPARE(readJson(second)["points"].size(), size_t(1));
    }

    void sensitivityAndReportFromTheWorkspace()
    {
        QTemporaryDir dir;
        const QString evalText = shortEvalText(dir);
        const QString ws = dir.filePath("W.h5"), sens = dir.filePath("s.json");
        const QString pruned = dir.filePath("pruned");
        auto run = runCli(QStringList{"prune", model(), "--calib", calib(), "--sparsity", "0.5", "--eval", evalText,
                                      "--out", pruned, "--workspace", ws} + kTiny);
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        run = runCli(QStringList{"sensitivity", model(), "--calib", calib(), "--sparsities", "0,0.5,0.75", "--out",
                                 sens, "--workspace", ws} + kTiny);
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        run = runCli(QStringList{"sweep", model(), "--calib", calib(), "--eval", evalText, "--sparsities", "0.25,0.5",
                                 "--out", ws} + kTiny);
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));

        // The stored scan drives the allocator exactly like its JSON twin.
        const QString r1 = dir.filePath("r1.json"), r2 = dir.filePath("r2.json");
        QVERIFY(runCli({"allocate", sens, "--budget-sparsity", "0.5", "--out", r1, "--quiet"}).exitCode == 0);
        run = runCli({"allocate", ws, "--budget-sparsity", "0.5", "--out", r2, "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        QCOMPARE(readJson(r2).dump(), readJson(r1).dump());

        // What prune recorded.
        run = runCli({"workspace", ws, "--json"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto listing = nlohmann::json::parse(run.stdoutText.toStdString());
        const auto& recorded = listing["runs"][0];
        const double before = recorded["perplexity_before"].get<double>();
        const double after = recorded["perplexity_after"].get<double>();

        const QString html = dir.filePath("r.html"), pdf = dir.filePath("r.pdf");
        run = runCli({"report", ws, "--pdf", pdf, "--html", html, "--new-tokens", "8", "--json", "--quiet"});
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const auto summary = nlohmann::json::parse(run.stdoutText.toStdString());
        // Same windows (the recorded evaluation settings) and the same evaluation arithmetic.
        QVERIFY2(std::abs(summary["dense_perplexity"].get<double>() - before) <= 1e-6 * before,
                 qPrintable(QString("%1 vs %2").arg(summary["dense_perplexity"].get<double>()).arg(before)));
        QVERIFY2(std::abs(summary["compressed_perplexity"].get<double>() - after) <= 1e-6 * after,
                 qPrintable(QString("%1 vs %2").arg(summary["compressed_perplexity"].get<double>()).arg(after)));
        QVERIFY(summary["mean_kl"].get<double>() > 0);
        QFile h(html);
        QVERIFY(h.open(QIODevice::ReadOnly));
        const QString page = QString::fromUtf8(h.readAll());
        QVERIFY(page.contains("7. Workspace") && page.contains("run_0001"));
        QVERIFY(!page.contains("src=\"http") && !page.contains("<script"));

        if (QStandardPaths::findExecutable("pdftotext").isEmpty())
            QSKIP("pdftotext (poppler-utils) is not installed; the PDF was written but not read back");
        const std::string text = pdfText(pdf);
        QVERIFY2(!text.empty(), "pdftotext could not read the PDF");
        for (const std::string& expected :
             {std::string("1. Summary"), std::string("2. Provenance"), std::string("3. Per-layer results"),
              std::string("4. Plots"), std::string("5. Next-token distribution"), std::string("6. Greedy continuations"),
              std::string("7. Workspace"), std::string("run_0001"), std::string("sparsegpt 50%"),
              std::string("Sweep: perplexity vs sparsity"), std::string("Sweep: size vs perplexity"),
              std::string("Per-layer relative output error"), std::string("model.layers.0.self_attn.q_proj"),
              std::string("files match the SHA-256"), fixed4(before), fixed4(after)})
            QVERIFY2(text.find(expected) != std::string::npos, expected.c_str());
    }

    void reportBadCases()
    {
        QTemporaryDir dir;
        const QString evalText = shortEvalText(dir);
        // A private copy of the model, so the test can change it afterwards.
        const QString copy = dir.filePath("model");
        copyFolder(model(), copy);
        const QString ws = dir.filePath("W.h5"), pruned = dir.filePath("pruned");
        auto run = runCli(QStringList{"prune", copy, "--calib", calib(), "--sparsity", "0.5", "--eval", evalText,
                                      "--out", pruned, "--workspace", ws} + kTiny);
        QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
        const QString outDir = dir.filePath("out");
        QDir().mkpath(outDir);
        const QString html = outDir + "/r.html";
        auto expectOneLine = [&](const QStringList& args, const QString& named) {
            const auto r = runCli(args);
            QCOMPARE(r.exitCode, 2);
            QVERIFY2(r.stderrText.contains(named), qPrintable(r.stderrText));
            QCOMPARE(r.stderrText.trimmed().count('\n'), 0);
            QVERIFY(QDir(outDir).isEmpty());
        };
        expectOneLine({"report", ws, "--html", html, "--run", "run_0099"}, "run_0099");
        expectOneLine({"report", ws, "--html", html, "--dense", copy}, "--dense");
        expectOneLine({"report", ws}, "--html");
        expectOneLine({"report", dir.filePath("missing.h5"), "--html", html}, "missing.h5");
        expectOneLine({"report", evalText, "--html", html}, "usage");
        expectOneLine({"sweep", model(), "--calib", calib(), "--eval", evalText, "--out", ws, "--name", "a/b"}, "--name");
        // The export folder gone: named, with the way out.
        fs::rename(pruned.toStdString(), (pruned + ".moved").toStdString());
        expectOneLine({"report", ws, "--html", html}, "is gone");
        fs::rename((pruned + ".moved").toStdString(), pruned.toStdString());
        // The dense model changed since the run.
        {
            QFile config(copy + "/config.json");
            QVERIFY(config.open(QIODevice::Append));
            config.write("\n");
        }
        expectOneLine({"report", ws, "--html", html}, "config.json");
        // The workspace now records another model than the (changed) copy: a sweep is refused.
        expectOneLine(QStringList{"sweep", copy, "--calib", calib(), "--eval", evalText, "--sparsities", "0.5",
                                  "--out", ws} + kTiny, "differ");
        // A file that is not a workspace.
        const QString fake = dir.filePath("fake.h5");
        QFile(fake).open(QIODevice::WriteOnly);
        expectOneLine({"report", fake, "--html", html}, "fake.h5");
        expectOneLine({"merge", fake, "--out", dir.filePath("x.json")}, "fake.h5");
    }
};

QTEST_GUILESS_MAIN(TestCliWorkspaceAnalysis)
#include "test_cli_workspace_analysis.moc"
