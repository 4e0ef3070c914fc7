// One job uses a model at a time (job_runner.h): the runner and its model leases on their own,
// then the workbench while a run holds the demo model — a second run, a workspace save and a
// Teaching Mode capture are each refused with one sentence naming the run, and each goes
// through once the run has ended.
#include "job_runner.h"
#include "gui_fixture.h"
#include "main_window.h"
#include "calibration_panel.h"
#include "evaluation_panel.h"
#include "plan_panel.h"
#include "plan_model.h"
#include "results_panel.h"
#include "run_panel.h"
#include "teaching_window.h"
#include "workspace_controller.h"
#include "testsupport.h"

#include "util/errors.h"

#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>

#include <thread>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

// An engine job that works until it is cancelled.
class WaitJob final : public EngineJob {
    Q_OBJECT

public:
    struct Result {};
    WaitJob() : EngineJob(EngineThreads::uniform(1)) {}

Q_SIGNALS:
    void finished(const WaitJob::Result& result);

protected:
    void execute() override
    {
        while (!isCancelled())
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        throw CancelledError();
    }
};

QString qpath(const std::filesystem::path& p) { return QString::fromStdString(p.string()); }

} // namespace

class TestJobRunner : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { testing::useFreshSettings(QStringLiteral("SparseLabJobRunnerTest")); }
    void leasesRefuseASecondJobOnTheSameModel();
    void workbenchRefusesSaveAndCaptureWhileARunHoldsTheModel();
};

void TestJobRunner::leasesRefuseASecondJobOnTheSameModel()
{
    const int modelX = 0, modelY = 0; // two distinct addresses stand for two models
    JobRunner first, second;
    QSignalSpy busy(&first, &JobRunner::busyChanged);
    auto* a = new WaitJob;
    bool idleInHandler = false, leaseFreeInHandler = false;
    connect(a, &EngineJob::cancelled, this, [&] {
        idleInHandler = !first.isBusy();
        leaseFreeInHandler = ModelLease::holderOf(&modelX).isEmpty();
    });
    QCOMPARE(first.start(a, QStringLiteral("job A"), {&modelX}), QString());
    QVERIFY(first.isBusy());
    QCOMPARE(busy.count(), 1);
    QCOMPARE(ModelLease::holderOf(&modelX), QStringLiteral("job A"));

    // The same runner: one job at a time.
    QPointer<WaitJob> refused = new WaitJob;
    const QString sameRunner = first.start(refused, QStringLiteral("job B"), {&modelY});
    QVERIFY2(sameRunner.contains(QStringLiteral("job A")), qPrintable(sameRunner));
    QVERIFY(refused.isNull()); // deleted, never started
    // launch(): a refused job ends all the same, `ended` first, and its refusal is shown once: by
    // the launcher's `refused` handler, else by the runner's refusal handler.
    QStringList shownByRunner;
    first.setRefusalHandler([&](const QString& why) { shownByRunner << why; });
    QStringList steps;
    JobOutcome<WaitJob> outcome;
    outcome.ended = [&] { steps << QStringLiteral("ended"); };
    outcome.refused = [&](const QString& why) { steps << QStringLiteral("refused: ") + why; };
    outcome.failed = [&](const QString&) { steps << QStringLiteral("failed"); };
    QVERIFY(!first.launch(new WaitJob, QStringLiteral("job E"), {}, this, outcome));
    QCOMPARE(steps.size(), 2);
    QCOMPARE(steps[0], QStringLiteral("ended"));
    QVERIFY2(steps[1].startsWith(QStringLiteral("refused: Another job is running (job A)")), qPrintable(steps[1]));
    QVERIFY(shownByRunner.isEmpty());
    outcome.refused = nullptr;
    steps.clear();
    QVERIFY(!first.launch(new WaitJob, QStringLiteral("job F"), {}, this, outcome));
    QCOMPARE(steps, QStringList{QStringLiteral("ended")});
    QCOMPARE(shownByRunner.size(), 1);
    QVERIFY2(shownByRunner[0].contains(QStringLiteral("job A")), qPrintable(shownByRunner[0]));
    QCOMPARE(first.currentWork(), QStringLiteral("job A")); // the running job is untouched
    // Another runner: refused on the held model, free on another one.
    const QString sameModel = second.start(new WaitJob, QStringLiteral("job C"), {&modelX});
    QVERIFY2(sameModel.startsWith(QStringLiteral("The model is in use by job A")), qPrintable(sameModel));
    QVERIFY(!second.isBusy());
    QString refusal;
    QVERIFY(!ModelLease::take({&modelX}, QStringLiteral("a save"), &refusal).held());
    QVERIFY(refusal.contains(QStringLiteral("job A")));
    auto* c = new WaitJob;
    QCOMPARE(second.start(c, QStringLiteral("job D"), {&modelY, nullptr}), QString());
    QCOMPARE(ModelLease::holderOf(&modelY), QStringLiteral("job D"));

    // Ended: the runner is idle and the model free before the outcome handlers run.
    QSignalSpy cancelled(a, &EngineJob::cancelled);
    first.cancel();
    QVERIFY(cancelled.wait(10'000));
    QVERIFY(idleInHandler);
    QVERIFY(leaseFreeInHandler);
    QCOMPARE(busy.count(), 2);
    QVERIFY(ModelLease::take({&modelX}, QStringLiteral("a save"), &refusal).held()); // released at once
    QVERIFY(refusal.isEmpty());
    QSignalSpy cancelledC(c, &EngineJob::cancelled);
    second.cancel();
    QVERIFY(cancelledC.wait(10'000));
    QVERIFY(ModelLease::holderOf(&modelY).isEmpty());
}

void TestJobRunner::workbenchRefusesSaveAndCaptureWhileARunHoldsTheModel()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    QStringList errors;
    const auto shown = testing::makeWindow(&errors, qpath(testing::demoModelDir()));
    MainWindow& window = *shown;
    QVERIFY(testing::waitForModel(&window));

    // A run long enough to act during it: 128 windows of 256 tokens, no evaluation.
    CalibrationSettings calibration = window.calibrationPanel()->settings();
    calibration.textPath = qpath(testing::demoCalibText());
    calibration.nsamples = 128;
    calibration.seqlen = 256;
    window.calibrationPanel()->setSettings(calibration);
    window.evaluationPanel()->setTextPath(QString());
    window.runPanel()->setEvaluate(false);
    window.teachingAction()->trigger();
    TeachingWindow* teaching = window.teachingWindow();
    QVERIFY(teaching);
    QStringList teachingErrors;
    teaching->setErrorHandler([&](const QString&, const QString& message) { teachingErrors << message; });
    teaching->setCalibration(calibration);

    QSignalSpy finished(&window, &MainWindow::runFinished);
    QVERIFY(window.startRun());
    QVERIFY(window.isRunning());

    // A second run: refused while the first one runs.
    errors.clear();
    QVERIFY(!window.startRun());
    QCOMPARE(errors.size(), 1);
    // A workspace save reads the dense model: refused, naming the run, nothing written.
    const QString file = dir.filePath(QStringLiteral("w.h5"));
    QVERIFY(!window.workspace()->saveWorkspaceAs(file));
    QCOMPARE(errors.size(), 2);
    QVERIFY2(errors.last().contains(QStringLiteral("the run")), qPrintable(errors.last()));
    QVERIFY(!QFileInfo::exists(file));
    // A Teaching Mode capture of one of its layers: refused the same way.
    QVERIFY(!teaching->captureLayer(QStringLiteral("model.layers.0.self_attn.q_proj")));
    QCOMPARE(teachingErrors.size(), 1);
    QVERIFY2(teachingErrors.first().contains(QStringLiteral("the run")), qPrintable(teachingErrors.first()));
    QVERIFY(!teaching->isBusy());

    // Once the run has ended, both go through.
    QVERIFY(finished.wait(600'000));
    QVERIFY(QTest::qWaitFor([&] { return !window.isBusy(); }, 10'000));
    QSignalSpy saved(window.workspace(), &WorkspaceController::workspaceSaved);
    QVERIFY(window.workspace()->saveWorkspaceAs(file));
    QVERIFY(saved.wait(120'000));
    QVERIFY(QFileInfo::exists(file));
    QSignalSpy captured(teaching, &TeachingWindow::captureFinished);
    calibration.nsamples = 4;
    calibration.seqlen = 64;
    teaching->setCalibration(calibration);
    QVERIFY(teaching->captureLayer(QStringLiteral("model.layers.0.self_attn.q_proj")));
    QVERIFY(captured.wait(120'000));
    QCOMPARE(teachingErrors.size(), 1);
}

QTEST_MAIN(TestJobRunner)
#include "test_job_runner.moc"
