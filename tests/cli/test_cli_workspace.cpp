// `prune --workspace`: the run is recorded (model hashes, settings, layer table, masks that
// match the exported weights, perplexities with per-token NLL), and a prune killed with
// SIGKILL after block k resumes from block k+1 and writes the same export byte for byte as an
// uninterrupted run, also when both runs stream the model block by block (--stream). Bad
// workspace files give exit 2 and one line naming the file.
// The kill is deterministic: SPARSELAB_TEST_KILL_AFTER_BLOCK=k makes sparselab-cli SIGKILL
// itself right after block k's checkpoint is on disk (what a kill -9 at that moment does).

#include "testsupport.h"

#include "cli/cli_runner.h"

#include "model/causal_lm.h"
#include "store/run_records.h"
#include "store/workspace.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

#include <nlohmann/json.hpp>

#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace sparselab;

namespace {

struct Run {
    int exitCode = -1;         // -1: crashed or killed
    int signal = 0;            // QProcess::CrashExit → exit code holds nothing useful
    QString stderrText, stdoutText;
};

Run runCli(const QStringList& args, const QString& killAfterBlock = {}, const QString& interruptAfterBlock = {})
{
    QProcess process;
    auto env = QProcessEnvironment::systemEnvironment();
    if (!killAfterBlock.isEmpty())
        env.insert("SPARSELAB_TEST_KILL_AFTER_BLOCK", killAfterBlock);
    if (!interruptAfterBlock.isEmpty())
        env.insert("SPARSELAB_TEST_INTERRUPT_AFTER_BLOCK", interruptAfterBlock);
    process.setProcessEnvironment(env);
    process.start(QStringLiteral(SPARSELAB_CLI_PATH), args);
    process.waitForFinished(600000);
    Run run;
    run.exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
    run.stderrText = QString::fromUtf8(process.readAllStandardError());
    run.stdoutText = QString::fromUtf8(process.readAllStandardOutput());
    return run;
}

std::string fileBytes(const fs::path& file)
{
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

QString q(const fs::path& p) { return QString::fromStdString(p.string()); }

// The layers of sparselab.json without their timings (which differ between any two runs).
nlohmann::json layersWithoutSeconds(const fs::path& outDir)
{
    auto layers = nlohmann::json::parse(fileBytes(outDir / "sparselab.json")).at("layers");
    for (auto& l : layers)
        l.erase("seconds");
    return layers;
}

QStringList pruneArgs(const fs::path& out, const fs::path& workspace, const QString& sparsity = "0.5")
{
    return {"prune", q(testing::demoModelDir()), "--calib", q(testing::demoCalibText()), "--out", q(out),
            "--nsamples", "8", "--seqlen", "64", "--sparsity", sparsity, "--workspace", q(workspace), "--quiet"};
}

} // namespace

class TestCliWorkspace : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void recordsTheRun();
    void resumeAfterKillIsBitIdentical_data();
    void resumeAfterKillIsBitIdentical();
    void gptqResumeKeepsGridOptions();
    void gptqResumeGgufIsByteIdentical_data();
    void gptqResumeGgufIsByteIdentical();
    void staleCheckpointsAreDiscarded();
    void badWorkspaceFiles();
    void interruptSaysWhatIsKept();

private:
    QTemporaryDir m_dir;
    fs::path m_root;
    fs::path m_reference;   // uninterrupted export
};

void TestCliWorkspace::initTestCase()
{
    QVERIFY(m_dir.isValid());
    m_root = m_dir.path().toStdString();
    m_reference = m_root / "reference";
    const auto run = runCli(pruneArgs(m_reference, m_root / "reference.h5"));
    QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
}

void TestCliWorkspace::recordsTheRun()
{
    // A short evaluation text keeps this quick: the first 6000 characters of the bundled one.
    const fs::path evalText = m_root / "eval_short.txt";
    writeFileAtomically(evalText, readTextFile(testing::demoEvalText()).substr(0, 6000));
    const fs::path ws = m_root / "recorded.h5";
    const fs::path out = m_root / "recorded";
    auto args = pruneArgs(out, ws);
    args << "--eval" << q(evalText) << "--json";
    const auto run = runCli(args);
    QVERIFY2(run.exitCode == 0, qPrintable(run.stderrText));
    const auto json = nlohmann::json::parse(run.stdoutText.toStdString());
    QCOMPARE(json.at("run_id").get<std::string>(), std::string("run_0001"));

    const auto contents = store::loadWorkspace(ws);
    QVERIFY(contents.model.has_value());
    QCOMPARE(contents.model->architecture, std::string("LlamaForCausalLM"));
    QCOMPARE(contents.model->fileSha256.at("model.safetensors"),
             sha256File(testing::demoModelDir() / "model.safetensors"));
    QCOMPARE(contents.model->fileSha256.size(), size_t(std::distance(fs::directory_iterator(testing::demoModelDir()),
                                                                       fs::directory_iterator())));
    QCOMPARE(contents.calibration->sha256, sha256Hex(readTextFile(testing::demoCalibText())));
    QCOMPARE(contents.calibration->nsamples, int64_t(8));
    QCOMPARE(contents.evaluation->sha256, sha256Hex(readTextFile(evalText)));
    QCOMPARE(contents.runs.size(), size_t(1));
    const auto& r = contents.runs[0];
    QCOMPARE(r.kind, std::string("prune"));
    QCOMPARE(r.label, std::string("sparsegpt 50%"));
    QCOMPARE(r.exportPath, fs::absolute(out).string());
    QVERIFY(r.recipeJson.find("\"sparsity\":0.5") != std::string::npos);
    QCOMPARE(r.layers.size(), size_t(35)); // 5 blocks × 7 linear layers
    QCOMPARE(r.linearSparsity, json.at("linear_sparsity").get<double>());
    QCOMPARE(r.perplexityAfter->perplexity, json.at("perplexity_after").get<double>());
    QCOMPARE(r.perplexityBefore->perplexity, json.at("perplexity_before").get<double>());
    // Per-token NLL: [windows, seqlen−1], its window means are the window losses, and
    // exp(mean of the window losses) is the perplexity (design.md §3).
    const auto& after = *r.perplexityAfter;
    QVERIFY(after.windows >= 1);
    QCOMPARE(int64_t(after.tokenNll.size()), after.windows * 63);
    double sum = 0;
    for (int64_t w = 0; w < after.windows; ++w) {
        double mean = 0;
        for (int64_t t = 0; t < 63; ++t)
            mean += after.tokenNll[size_t(w * 63 + t)] / 63.0;
        QVERIFY(std::abs(mean - after.windowLoss[size_t(w)]) < 1e-5);
        sum += after.windowLoss[size_t(w)];
    }
    QVERIFY(std::abs(std::exp(sum / double(after.windows)) - after.perplexity) < 1e-9 * after.perplexity);
    QVERIFY(r.provenance.threads >= 1);
    QCOMPARE(r.provenance.device, std::string("cpu"));
    QVERIFY(r.timings.totalSeconds >= r.timings.pruneSeconds);

    // Masks equal the exact zeros of the exported weights, and their density the layer stats.
    const auto exported = model::CausalLM::load(out);
    const auto masks = store::zeroMasks(*exported);
    QCOMPARE(r.masks.size(), size_t(35));
    for (const auto& layer : r.layers) {
        const auto& mask = r.masks.at(layer.name);
        QVERIFY2(mask == masks.at(layer.name), layer.name.c_str());
        QCOMPARE(double(mask.countPruned()) / double(layer.rows * layer.cols), layer.stats.sparsity);
    }
    QVERIFY(!fs::exists(ws.string() + ".resume"));

    // The listing command.
    const auto listing = runCli({"workspace", q(ws), "--json"});
    QCOMPARE(listing.exitCode, 0);
    const auto list = nlohmann::json::parse(listing.stdoutText.toStdString());
    QCOMPARE(list.at("runs").size(), size_t(1));
    QCOMPARE(list.at("runs")[0].at("perplexity_after").get<double>(), after.perplexity);
}

// A GPTQ prune with act-order, static groups and fp16 scales, killed after block 1 and
// resumed, must record the same grid for the restored layers as an uninterrupted run: the
// per-layer record once dropped those four options, so the resumed sparselab.json said
// fp16_scale false (and GGUF export re-quantized those layers instead of packing them).
void TestCliWorkspace::gptqResumeKeepsGridOptions()
{
    const auto args = [&](const fs::path& out, const fs::path& ws) {
        return QStringList{"prune", q(testing::demoModelDir()), "--calib", q(testing::demoCalibText()), "--out", q(out),
                           "--nsamples", "8", "--seqlen", "64", "--sparsity", "0", "--bits", "4", "--group", "32",
                           "--sym", "--fp16-scale", "--act-order", "--static-groups", "--workspace", q(ws), "--quiet"};
    };
    const fs::path whole = m_root / "gptq-whole";
    const auto uninterrupted = runCli(args(whole, m_root / "gptq-whole.h5"));
    QVERIFY2(uninterrupted.exitCode == 0, qPrintable(uninterrupted.stderrText));

    const fs::path ws = m_root / "gptq-resume.h5";
    const fs::path out = m_root / "gptq-resumed";
    const auto killed = runCli(args(out, ws), "1");
    QCOMPARE(killed.exitCode, -1);
    const auto resumed = runCli(args(out, ws));
    QVERIFY2(resumed.exitCode == 0, qPrintable(resumed.stderrText));

    const auto layers = layersWithoutSeconds(out);
    QVERIFY(layers == layersWithoutSeconds(whole));
    int restored = 0;
    for (const auto& l : layers) {
        QVERIFY2(l.dump().find("\"fp16_scale\":true") != std::string::npos, l.dump().c_str());
        restored += l.at("block").get<int>() <= 1 ? 1 : 0;
    }
    QCOMPARE(restored, 14); // blocks 0 and 1, seven layers each, came from the checkpoints
    for (const auto& entry : fs::directory_iterator(whole))
        if (entry.path().filename() != "sparselab.json")
            QVERIFY2(fileBytes(entry.path()) == fileBytes(out / entry.path().filename()), entry.path().c_str());
    const auto run = store::loadWorkspace(ws).runs.at(0);
    for (const auto& l : run.layers) {
        QVERIFY(l.options.quant.actOrder);
        QVERIFY(l.options.quant.staticGroups);
        QVERIFY(l.options.quant.fp16Scale);
        QVERIFY(!l.options.quant.signedScale);
    }
}

// The same at 50 % with 4-bit symmetric groups of 32 and fp16 scales (the grid llama.cpp's
// Q4_0 stores), killed after block 1: the resumed export and its GGUF Q4_0 are byte for byte
// those of an uninterrupted run. The export packs a layer losslessly from its recorded grid
// when Q4_0 can hold it (contiguous groups: no act-order, or act-order with static groups);
// a grid option lost on resume would re-quantize the restored layers. With act-order alone
// the groups follow the permuted columns, which Q4_0 cannot hold: both runs re-quantize every
// layer, identically.
void TestCliWorkspace::gptqResumeGgufIsByteIdentical_data()
{
    QTest::addColumn<QStringList>("grid");
    QTest::addColumn<int>("lossless");
    QTest::newRow("act-order") << QStringList{"--act-order"} << 0;
    // 30 = every layer but the five down_proj, whose 172 columns are no whole number of
    // Q4_0's 32-column blocks.
    QTest::newRow("act-order, static groups") << QStringList{"--act-order", "--static-groups"} << 30;
    QTest::newRow("columns in order") << QStringList{} << 30;
}

void TestCliWorkspace::gptqResumeGgufIsByteIdentical()
{
    QFETCH(QStringList, grid);
    QFETCH(int, lossless);
    static int row = 0;
    const QString tag = QString::number(++row);
    const auto args = [&](const fs::path& out, const fs::path& ws) {
        return QStringList{"prune", q(testing::demoModelDir()), "--calib", q(testing::demoCalibText()), "--out", q(out),
                           "--nsamples", "8", "--seqlen", "64", "--sparsity", "0.5", "--bits", "4", "--group", "32",
                           "--sym", "--fp16-scale", "--workspace", q(ws), "--quiet"}
               + grid;
    };
    const fs::path whole = m_root / ("q4-whole" + tag.toStdString());
    const auto uninterrupted = runCli(args(whole, m_root / ("q4-whole" + tag.toStdString() + ".h5")));
    QVERIFY2(uninterrupted.exitCode == 0, qPrintable(uninterrupted.stderrText));
    const fs::path ws = m_root / ("q4-resume" + tag.toStdString() + ".h5");
    const fs::path out = m_root / ("q4-resumed" + tag.toStdString());
    QCOMPARE(runCli(args(out, ws), "1").exitCode, -1);
    QVERIFY(!fs::exists(out));
    const auto resumed = runCli(args(out, ws));
    QVERIFY2(resumed.exitCode == 0, qPrintable(resumed.stderrText));

    for (const auto& entry : fs::directory_iterator(whole))
        if (entry.path().filename() != "sparselab.json")
            QVERIFY2(fileBytes(entry.path()) == fileBytes(out / entry.path().filename()), entry.path().c_str());
    QVERIFY(layersWithoutSeconds(out) == layersWithoutSeconds(whole));

    std::vector<fs::path> files;
    for (const fs::path& dir : {whole, out}) {
        files.push_back(m_root / (dir.filename().string() + ".gguf"));
        // One name for both: by default the GGUF is named after its folder.
        const auto exported = runCli({"export", q(dir), "--gguf", q(files.back()), "--type", "q4_0", "--name", "q4",
                                      "--json"});
        QVERIFY2(exported.exitCode == 0, qPrintable(exported.stderrText));
        QCOMPARE(nlohmann::json::parse(exported.stdoutText.toStdString()).at("lossless_grids").get<int>(), lossless);
    }
    QVERIFY(fileBytes(files[0]).size() > 1000);
    QVERIFY(fileBytes(files[0]) == fileBytes(files[1]));
}

void TestCliWorkspace::resumeAfterKillIsBitIdentical_data()
{
    QTest::addColumn<int>("killAfter");
    QTest::addColumn<bool>("streamed");
    QTest::newRow("after block 0") << 0 << false;
    QTest::newRow("after block 3 of 5") << 3 << false;
    // --stream: one block in memory; the killed and the resumed run both stream, and the
    // export equals the uninterrupted in-memory run's.
    QTest::newRow("streamed, after block 2 of 5") << 2 << true;
}

void TestCliWorkspace::resumeAfterKillIsBitIdentical()
{
    QFETCH(int, killAfter);
    QFETCH(bool, streamed);
    const std::string tag = std::to_string(killAfter) + (streamed ? "s" : "");
    const fs::path ws = m_root / ("resume" + tag + ".h5");
    const fs::path out = m_root / ("resumed" + tag);
    const auto withStream = [streamed](QStringList args) {
        if (streamed)
            args << "--stream";
        return args;
    };
    // A run recorded earlier in the same workspace must survive the kill and the resume.
    const auto first = runCli(pruneArgs(m_root / ("earlier" + tag), ws, "0.25"));
    QVERIFY2(first.exitCode == 0, qPrintable(first.stderrText));

    const auto killed = runCli(withStream(pruneArgs(out, ws)), QString::number(killAfter));
    QCOMPARE(killed.exitCode, -1); // died by SIGKILL
    QVERIFY(!fs::exists(out));
    const fs::path resumeFolder = ws.string() + ".resume";
    for (int b = 0; b <= killAfter; ++b)
        QVERIFY(fs::exists(resumeFolder / ("block_0000" + std::to_string(b) + ".h5")));
    QVERIFY(!fs::exists(resumeFolder / ("block_0000" + std::to_string(killAfter + 1) + ".h5")));
    QCOMPARE(store::listRuns(ws).size(), size_t(1)); // the killed run recorded nothing

    auto resumeArgs = withStream(pruneArgs(out, ws));
    resumeArgs.removeAll("--quiet"); // the resume notice is a log line
    const auto resumed = runCli(resumeArgs);
    QVERIFY2(resumed.exitCode == 0, qPrintable(resumed.stderrText));
    QVERIFY2(resumed.stderrText.contains(QString("resuming: %1 of 5 blocks restored").arg(killAfter + 1)),
             qPrintable(resumed.stderrText));

    // Bit for bit: every exported file but the provenance (which carries timestamps and
    // timings) is byte-identical; the provenance's per-layer results equal without timings.
    for (const auto& entry : fs::directory_iterator(m_reference)) {
        const auto name = entry.path().filename();
        if (name == "sparselab.json")
            continue;
        QVERIFY2(fileBytes(entry.path()) == fileBytes(out / name), name.c_str());
    }
    QVERIFY(layersWithoutSeconds(out) == layersWithoutSeconds(m_reference));
    QVERIFY(!fs::exists(resumeFolder));

    const auto contents = store::loadWorkspace(ws);
    QCOMPARE(contents.runs.size(), size_t(2));
    QCOMPARE(contents.runs[0].label, std::string("sparsegpt 25%"));
    const auto reference = store::loadWorkspace(m_root / "reference.h5").runs.at(0);
    const auto& again = contents.runs[1];
    QVERIFY(again.masks == reference.masks);
    QCOMPARE(again.layers.size(), reference.layers.size());
    for (size_t i = 0; i < again.layers.size(); ++i) {
        auto a = again.layers[i], b = reference.layers[i];
        a.stats.seconds = b.stats.seconds = 0;
        QVERIFY2(a == b, a.name.c_str());
    }
}

void TestCliWorkspace::staleCheckpointsAreDiscarded()
{
    const fs::path ws = m_root / "stale.h5";
    const auto killed = runCli(pruneArgs(m_root / "stale_a", ws), "1");
    QCOMPARE(killed.exitCode, -1);
    // Other settings (sparsity 0.6): the checkpoints do not apply and are replaced.
    auto args = pruneArgs(m_root / "stale_b", ws, "0.6");
    args.removeAll("--quiet");
    const auto other = runCli(args);
    QVERIFY2(other.exitCode == 0, qPrintable(other.stderrText));
    QVERIFY(other.stderrText.contains("discarding the checkpoints"));
    QVERIFY(!other.stderrText.contains("resuming"));
    const auto fresh = runCli(pruneArgs(m_root / "stale_c", m_root / "stale_fresh.h5", "0.6"));
    QCOMPARE(fresh.exitCode, 0);
    QVERIFY(fileBytes(m_root / "stale_b" / "model.safetensors") == fileBytes(m_root / "stale_c" / "model.safetensors"));
}

void TestCliWorkspace::badWorkspaceFiles()
{
    // Not HDF5: exit 2, one line naming the file, nothing written, the file untouched.
    const fs::path notes = m_root / "notes.h5";
    writeFileAtomically(notes, std::string_view("not a workspace\n"));
    const auto run = runCli(pruneArgs(m_root / "bad_out", notes));
    QCOMPARE(run.exitCode, 2);
    const auto lines = run.stderrText.split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 1);
    QVERIFY2(lines[0].contains(q(notes) + ": not an HDF5 file"), qPrintable(lines[0]));
    QVERIFY(!fs::exists(m_root / "bad_out"));
    QCOMPARE(fileBytes(notes), std::string("not a workspace\n"));

    // A workspace of another model: refused before any work.
    const fs::path otherModel = m_root / "other_model";
    fs::create_directories(otherModel);
    for (const auto& entry : fs::directory_iterator(testing::demoModelDir()))
        fs::copy_file(entry.path(), otherModel / entry.path().filename());
    {
        std::ofstream extra(otherModel / "README.md");
        extra << "a different folder\n";
    }
    auto args = pruneArgs(m_root / "bad_out2", m_root / "reference.h5");
    args[1] = q(otherModel);
    const auto wrongModel = runCli(args);
    QCOMPARE(wrongModel.exitCode, 2);
    QVERIFY2(wrongModel.stderrText.contains("whose files differ"), qPrintable(wrongModel.stderrText));
    QVERIFY(!fs::exists(m_root / "bad_out2"));

    const auto listing = runCli({"workspace", q(notes)});
    QCOMPARE(listing.exitCode, 2);
    QVERIFY(listing.stderrText.trimmed().endsWith(": not an HDF5 file"));
}

// Ctrl-C during prune --workspace keeps the finished blocks' checkpoints on purpose: the
// message says so (it said "nothing was written"), exit 130, no output folder; the same
// command then resumes and finishes.
void TestCliWorkspace::interruptSaysWhatIsKept()
{
    const fs::path out = m_root / "interrupted_out";
    const fs::path workspace = m_root / "interrupted.h5";
    const auto interrupted = runCli(pruneArgs(out, workspace), {}, "1");
    QCOMPARE(interrupted.exitCode, 130);
    const QString last = interrupted.stderrText.trimmed().split('\n').last();
    QVERIFY2(last.startsWith("cancelled: no model was written; 2 of 5 finished blocks are kept in "),
             qPrintable(interrupted.stderrText));
    QVERIFY2(last.contains(q(workspace) + ".resume"), qPrintable(last));
    QVERIFY(!fs::exists(out));
    QVERIFY(fs::exists(fs::path(workspace.string() + ".resume")));
    const auto resumed = runCli(pruneArgs(out, workspace));
    QCOMPARE(resumed.exitCode, 0);
    QVERIFY(fs::exists(out / "model.safetensors"));
}

QTEST_GUILESS_MAIN(TestCliWorkspace)
#include "test_cli_workspace.moc"
