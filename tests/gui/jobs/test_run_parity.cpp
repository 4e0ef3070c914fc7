// The two front ends make one run: the workbench's RunJob (then its ExportJob and the record
// its workspace save writes) and `sparselab-cli prune --workspace` with the same spec write the
// same sparselab.json, timings and the writer's name aside, and the same workspace entry:
// text hashes and token counts taken at run time, every per-layer option and statistic, the
// masks and both perplexities with their per-window and per-token detail.
// Before the run existed once (workflow/compression_run.h) the GUI's sparselab.json lacked
// hessian_dtype and hard-coded the layer filter, the CLI's lacked device and run_name, and the
// GUI recorded 0 tokens and hashed the texts when saving rather than when running.
#include "engine_jobs.h"
#include "recipe_bridge.h"
#include "workspace_jobs.h"
#include "plan_panel.h"
#include "cli/cli_runner.h"
#include "testsupport.h"

#include "store/workspace.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

#include <nlohmann/json.hpp>

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QThreadPool>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>

using namespace sparselab;
using namespace sparselab::gui;
namespace fs = std::filesystem;

namespace {

QString qpath(const fs::path& p) { return QString::fromStdString(p.string()); }

// Runs an engine job on `pool` to its one final signal; the finished result, or a failure.
template <typename Job>
std::optional<typename Job::Result> runToEnd(Job& job, QThreadPool& pool, QString* error)
{
    std::optional<typename Job::Result> result;
    bool ended = false;
    QObject::connect(&job, &Job::finished, &job, [&](const typename Job::Result& r) { result = r; ended = true; });
    QObject::connect(&job, &Job::failed, &job, [&](const QString& m) { *error = m; ended = true; });
    QObject::connect(&job, &Job::cancelled, &job, [&] { *error = QStringLiteral("cancelled"); ended = true; });
    pool.start(&job);
    if (!QTest::qWaitFor([&] { return ended; }, 600'000))
        *error = QStringLiteral("the job did not end in time");
    pool.waitForDone();
    return result;
}

// sparselab.json without what differs between two runs of one spec: when and by what it was
// written, and how long each step took.
nlohmann::json withoutTimings(nlohmann::json provenance)
{
    for (const char* key : {"created_utc", "created_by", "prune_seconds"})
        provenance.erase(key);
    for (auto& layer : provenance.at("layers"))
        layer.erase("seconds");
    if (provenance.contains("recovery"))
        provenance["recovery"].erase("seconds");
    return provenance;
}

// A workspace run without its id, times, export facts and the workbench's own groups.
store::RunRecord comparable(store::RunRecord run)
{
    run.id.clear();
    run.createdUtc.clear();
    run.timings = {};
    run.exportPath.clear();
    run.sizeBytes = -1;
    run.extras.clear();
    for (auto& layer : run.layers)
        layer.stats.seconds = 0;
    for (auto* p : {&run.perplexityBefore, &run.perplexityAfter})
        if (*p)
            (*p)->seconds = 0;
    return run;
}

// A GPTQ-style plan setting: 50 % SparseGPT with a 4-bit symmetric grid in groups of 32, fp16
// scales and act-order.
LayerSetting gptqSetting()
{
    LayerSetting setting;
    setting.sparsity = 0.5;
    setting.bits = 4;
    setting.group = 32;
    setting.sym = true;
    setting.fp16Scale = true;
    setting.actOrder = true;
    return setting;
}

// A run of the demo model on one thread with `setting` on every layer: `nsamples` × `seqlen`
// windows of the demo calibration text (seed 0), perplexity on the first `evalWindows` windows
// of the demo evaluation text.
RunJob::Params demoRun(const LoadModelJob::Result& loaded, const QString& name, const LayerSetting& setting,
                       qint64 nsamples, qint64 seqlen, qint64 evalWindows)
{
    RunJob::Params params;
    params.model = loaded.model;
    params.tokenizer = loaded.tokenizer;
    params.name = name;
    params.calibration.textPath = qpath(testing::demoCalibText());
    params.calibration.nsamples = nsamples;
    params.calibration.seqlen = seqlen;
    params.evaluation.enabled = true;
    params.evaluation.textPath = qpath(testing::demoEvalText());
    params.evaluation.maxWindows = evalWindows;
    params.plan = PlanPanel::rowsFor(loaded.summary, setting);
    params.threads = EngineThreads::uniform(1);
    return params;
}

} // namespace

class TestRunParity : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void guiAndCliRecordTheSameRun();
    void recoveryIsTheSameInBothFrontEnds();
    void stopRecoveryKeepsTheRun();
    void runResumesFromCheckpoints();
};

void TestRunParity::guiAndCliRecordTheSameRun()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const fs::path root = dir.path().toStdString();
    QThreadPool pool;
    QString error;

    LoadModelJob load({qpath(testing::demoModelDir()), 1});
    const auto loaded = runToEnd(load, pool, &error);
    QVERIFY2(loaded, qPrintable(error));

    // Every grid option has to travel both ways.
    const LayerSetting setting = gptqSetting();
    RunJob::Params params;
    params.model = loaded->model;
    params.tokenizer = loaded->tokenizer;
    params.name = QStringLiteral("parity");
    params.calibration.textPath = qpath(testing::demoCalibText());
    params.calibration.nsamples = 8;
    params.calibration.seqlen = 64;
    params.calibration.seed = 3;
    params.evaluation.enabled = true;
    params.evaluation.textPath = qpath(testing::demoEvalText());
    params.evaluation.maxWindows = 6;
    params.plan = PlanPanel::rowsFor(loaded->summary, setting);
    params.threads = EngineThreads::uniform(1);
    RunJob run(params);
    const auto ran = runToEnd(run, pool, &error);
    QVERIFY2(ran, qPrintable(error));
    RunRecord record = ran->record;
    record.name = params.name;

    ExportJob exportJob({ran->model, qpath(root / "gui-out"), QString(), record, 1});
    const auto exported = runToEnd(exportJob, pool, &error);
    QVERIFY2(exported, qPrintable(error));

    // The CLI with the same spec: the plan as the recipe file the workbench saves.
    const fs::path recipe = root / "plan.json";
    writeFileAtomically(recipe, std::string(record.recipeJson.constData(), size_t(record.recipeJson.size())));
    const fs::path workspace = root / "cli.h5";
    const auto cli = testing::runCli({"prune", qpath(testing::demoModelDir()), "--calib", qpath(testing::demoCalibText()),
                                      "--eval", qpath(testing::demoEvalText()), "--eval-windows", "6", "--nsamples", "8",
                                      "--seqlen", "64", "--seed", "3", "--recipe", qpath(recipe), "--name", "parity",
                                      "--threads", "1", "--out", qpath(root / "cli-out"), "--workspace",
                                      qpath(workspace), "--quiet"});
    QVERIFY2(cli.exitCode == 0, qPrintable(cli.stderrText));

    const auto gui = nlohmann::json::parse(readTextFile(root / "gui-out" / "sparselab.json"));
    const auto cliJson = nlohmann::json::parse(readTextFile(root / "cli-out" / "sparselab.json"));
    QCOMPARE(gui.at("created_by").get<std::string>(), std::string("sparselab (GUI)"));
    QCOMPARE(cliJson.at("created_by").get<std::string>(), std::string("sparselab-cli prune"));
    const auto a = withoutTimings(gui), b = withoutTimings(cliJson);
    QVERIFY2(a == b, (a.dump(1) + "\n---- CLI ----\n" + b.dump(1)).c_str());
    // The values themselves, not only their agreement: taken when the run read the texts.
    QCOMPARE(gui.at("calibration").at("sha256").get<std::string>(),
             sha256File(testing::demoCalibText()));
    QVERIFY(gui.at("calibration").at("tokens").get<int64_t>() > 8 * 64);
    QCOMPARE(gui.at("evaluation").at("windows").get<int64_t>(), int64_t(6));
    QCOMPARE(gui.at("layers").size(), size_t(35));
    for (const auto& layer : gui.at("layers"))
        QVERIFY2(layer.at("quant").at("fp16_scale").get<bool>() && layer.at("quant").at("act_order").get<bool>(),
                 layer.dump().c_str());

    // The workspace entry the workbench's save writes, against the CLI's.
    const auto stored = store::loadWorkspace(workspace);
    QCOMPARE(stored.runs.size(), size_t(1));
    const store::RunRecord fromCli = comparable(stored.runs.at(0));
    const store::RunRecord fromGui = comparable(toStoreRun(record));
    QVERIFY(fromGui.calibration && fromCli.calibration);
    QCOMPARE(fromGui.calibration->tokens, gui.at("calibration").at("tokens").get<int64_t>());
    QVERIFY(fromGui.calibration == fromCli.calibration);
    QVERIFY(fromGui.evaluation == fromCli.evaluation);
    QVERIFY(fromGui.layers == fromCli.layers);
    QVERIFY(fromGui.masks == fromCli.masks);
    QCOMPARE(fromGui.masks.size(), size_t(35));
    QVERIFY(fromGui.perplexityBefore == fromCli.perplexityBefore);
    QVERIFY(fromGui.perplexityAfter == fromCli.perplexityAfter);
    QVERIFY(fromGui.perplexityAfter->tokenNll.size() == size_t(6 * 63));
    QVERIFY(fromGui.provenance == fromCli.provenance);
    QVERIFY(fromGui == fromCli);
}

// Recovery after pruning through the workbench's Run and through `prune --recover`: the same
// training (loss curve bit for bit, on one thread), the same held-out and evaluation figures,
// the same sparselab.json; the live signals carry the curve; the workspace record keeps the
// recovery group and reads back as a recovered run.
void TestRunParity::recoveryIsTheSameInBothFrontEnds()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const fs::path root = dir.path().toStdString();
    QThreadPool pool;
    QString error;
    LoadModelJob load({qpath(testing::demoModelDir()), 1});
    const auto loaded = runToEnd(load, pool, &error);
    QVERIFY2(loaded, qPrintable(error));

    RunJob::Params params = demoRun(*loaded, QStringLiteral("recovered"), LayerSetting{}, 16, 64, 6);
    params.recovery.enabled = true;
    params.recovery.steps = 10;
    params.recovery.learningRate = 2e-3;
    RunJob run(params);
    QSignalSpy steps(&run, &RunJob::recoveryStep);
    QSignalSpy heldOut(&run, &RunJob::recoveryHeldOut);
    const auto ran = runToEnd(run, pool, &error);
    QVERIFY2(ran, qPrintable(error));
    RunRecord record = ran->record;
    record.name = params.name;
    QVERIFY(record.recovery.enabled);
    QVERIFY(std::isfinite(record.perplexityPruned));
    QVERIFY2(record.perplexityAfter < record.perplexityPruned,
             qPrintable(QString("%1 -> %2").arg(record.perplexityPruned).arg(record.perplexityAfter)));
    QVERIFY(!steps.isEmpty());
    QCOMPARE(steps.last().at(0).toLongLong(), qint64(10)); // the last step always arrives
    QCOMPARE(heldOut.size(), 11);                          // before training and every step (10 / 10)
    QCOMPARE(heldOut.first().at(0).toLongLong(), qint64(0));

    ExportJob exportJob({ran->model, qpath(root / "gui-out"), QString(), record, 1});
    QVERIFY2(runToEnd(exportJob, pool, &error), qPrintable(error));
    const auto cli = testing::runCli({"prune", qpath(testing::demoModelDir()), "--calib", qpath(testing::demoCalibText()),
                                      "--eval", qpath(testing::demoEvalText()), "--eval-windows", "6", "--nsamples", "16",
                                      "--seqlen", "64", "--sparsity", "0.5", "--name", "recovered", "--recover", "10",
                                      "--recover-lr", "0.002", "--threads", "1", "--out", qpath(root / "cli-out"),
                                      "--quiet"});
    QVERIFY2(cli.exitCode == 0, qPrintable(cli.stderrText));
    auto gui = nlohmann::json::parse(readTextFile(root / "gui-out" / "sparselab.json"));
    auto cliJson = nlohmann::json::parse(readTextFile(root / "cli-out" / "sparselab.json"));
    QCOMPARE(gui.at("recovery").at("loss_curve").size(), size_t(10));
    QCOMPARE(gui.at("recovery").at("perplexity_pruned").get<double>(), record.perplexityPruned);
    // The recipe differs only in its source's spelling (plan rows vs options): compare the rest.
    gui.erase("recipe");
    cliJson.erase("recipe");
    const auto a = withoutTimings(gui), b = withoutTimings(cliJson);
    QVERIFY2(a == b, (a.dump(1) + "\n---- CLI ----\n" + b.dump(1)).c_str());

    // The workspace record keeps the group and reads back as a recovered run.
    const store::RunRecord storedRun = toStoreRun(record);
    const auto group = std::find_if(storedRun.extras.begin(), storedRun.extras.end(),
                                    [](const store::ExtraGroup& g) { return g.path == "recovery"; });
    QVERIFY(group != storedRun.extras.end());
    QCOMPARE(group->dataset("loss_curve")->f64.size(), size_t(10));
    const RunRecord back = fromStoreRun(storedRun);
    QVERIFY(back.recovery.enabled);
    QCOMPARE(back.recovery.steps, qint64(10));
    QCOMPARE(back.perplexityPruned, record.perplexityPruned);
    QVERIFY(back.methodSummary().endsWith(QStringLiteral("+ KL recovery")));
}

// Stop Recovery (RunJob::stopRecovery, from the GUI thread while the worker trains) ends the
// training early and the run is completed and recorded, unlike Cancel.
void TestRunParity::stopRecoveryKeepsTheRun()
{
    QThreadPool pool;
    QString error;
    LoadModelJob load({qpath(testing::demoModelDir()), 1});
    const auto loaded = runToEnd(load, pool, &error);
    QVERIFY2(loaded, qPrintable(error));
    RunJob::Params params = demoRun(*loaded, QStringLiteral("stopped"), LayerSetting{}, 16, 64, 4);
    params.recovery.enabled = true;
    params.recovery.steps = 100000; // far more than the test waits for
    RunJob run(params);
    bool sawRecovering = false;
    QObject::connect(&run, &RunJob::runProgress, &run, [&](const RunProgress& p) { sawRecovering |= p.recovering; });
    QObject::connect(&run, &RunJob::recoveryStep, &run, [&](qint64 step, double) {
        if (step >= 3)
            run.stopRecovery();
    });
    const auto ran = runToEnd(run, pool, &error);
    QVERIFY2(ran, qPrintable(error));
    QVERIFY(sawRecovering);
    QVERIFY(ran->record.recovery.enabled);
    QVERIFY(std::isfinite(ran->record.perplexityAfter));
    const auto& extras = ran->record.stored->extras;
    const auto group = std::find_if(extras.begin(), extras.end(), [](const store::ExtraGroup& g) { return g.path == "recovery"; });
    QVERIFY(group != extras.end());
    QCOMPARE(std::get<std::string>(group->attributes.at("stopped_by")), std::string("stop"));
    const int64_t stepsRun = std::get<int64_t>(group->attributes.at("steps_run"));
    QVERIFY2(stepsRun >= 3 && stepsRun < 1000, qPrintable(QString::number(stepsRun)));
}

// The workbench's Run resumes from checkpoints as the CLI's prune does (same run, same key):
// checkpoints of blocks 0 and 1 left by a prune killed after block 1, given to a RunJob as its
// checkpoint folder, are restored instead of solved again, and the export is byte-identical to
// that of an uninterrupted Run. The folder is removed once the run completes.
void TestRunParity::runResumesFromCheckpoints()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const fs::path root = dir.path().toStdString();
    QThreadPool pool;
    QString error;
    LoadModelJob load({qpath(testing::demoModelDir()), 1});
    const auto loaded = runToEnd(load, pool, &error);
    QVERIFY2(loaded, qPrintable(error));

    const LayerSetting setting = gptqSetting(); // every grid option has to survive the checkpoint
    RunJob::Params params = demoRun(*loaded, QStringLiteral("resumed"), setting, 8, 64, 0);
    params.evaluation.enabled = false;

    // Uninterrupted, without checkpoints.
    RunJob whole(params);
    const auto wholeRun = runToEnd(whole, pool, &error);
    QVERIFY2(wholeRun, qPrintable(error));
    ExportJob wholeExport({wholeRun->model, qpath(root / "whole"), QString(), wholeRun->record, 1});
    QVERIFY2(runToEnd(wholeExport, pool, &error), qPrintable(error));

    // The same run by the CLI, killed after block 1's checkpoint.
    const fs::path recipe = root / "plan.json";
    const QByteArray& recipeJson = wholeRun->record.recipeJson;
    writeFileAtomically(recipe, std::string(recipeJson.constData(), size_t(recipeJson.size())));
    const fs::path workspace = root / "killed.h5";
    const auto killed = testing::runCli({"prune", qpath(testing::demoModelDir()), "--calib", qpath(testing::demoCalibText()),
                                         "--nsamples", "8", "--seqlen", "64", "--recipe", qpath(recipe), "--threads", "1",
                                         "--out", qpath(root / "cli-out"), "--workspace", qpath(workspace), "--quiet"},
                                        {QStringLiteral("SPARSELAB_TEST_KILL_AFTER_BLOCK=1")});
    QCOMPARE(killed.exitCode, -1);
    const fs::path checkpoints = root / "killed.h5.resume";
    QVERIFY(fs::exists(checkpoints / "block_00001.h5"));
    QVERIFY(!fs::exists(checkpoints / "block_00002.h5"));

    // The workbench's Run with those checkpoints.
    params.checkpointFolder = qpath(checkpoints);
    RunJob resumed(params);
    QStringList log;
    QObject::connect(&resumed, &RunJob::logLine, &resumed, [&](const QString& line) { log << line; });
    const auto resumedRun = runToEnd(resumed, pool, &error);
    QVERIFY2(resumedRun, qPrintable(error));
    QVERIFY2(log.filter(QStringLiteral("resuming: 2 of 5 blocks restored")).size() == 1, qPrintable(log.join('\n')));
    QVERIFY(!fs::exists(checkpoints));
    ExportJob resumedExport({resumedRun->model, qpath(root / "resumed"), QString(), resumedRun->record, 1});
    QVERIFY2(runToEnd(resumedExport, pool, &error), qPrintable(error));
    QVERIFY(readTextFile(root / "resumed" / "model.safetensors") == readTextFile(root / "whole" / "model.safetensors"));
    QCOMPARE(resumedRun->record.layers.size(), wholeRun->record.layers.size());
    for (qsizetype i = 0; i < wholeRun->record.layers.size(); ++i) {
        solve::LayerRecord a = resumedRun->record.layers[i], b = wholeRun->record.layers[i];
        a.stats.seconds = b.stats.seconds = 0;
        QVERIFY2(a == b, a.name.c_str());
    }

    // Checkpoints that cannot be written (here: the folder would be inside a file) do not end
    // the run: it says so once and completes without them.
    params.checkpointFolder = qpath(recipe / "resume");
    RunJob unwritable(params);
    QStringList notes;
    QObject::connect(&unwritable, &RunJob::logLine, &unwritable, [&](const QString& line) { notes << line; });
    const auto unwritableRun = runToEnd(unwritable, pool, &error);
    QVERIFY2(unwritableRun, qPrintable(error));
    QCOMPARE(notes.filter(QStringLiteral("resume checkpoints stopped: ")).size(), 1);
    QCOMPARE(unwritableRun->record.layers.size(), wholeRun->record.layers.size());
}

QTEST_MAIN(TestRunParity)
#include "test_run_parity.moc"
