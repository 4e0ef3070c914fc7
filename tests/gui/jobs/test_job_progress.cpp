// The workbench's progress model (app/gui/jobs/job_progress.h): phases weighted by expected
// seconds, shares that never go back, and the ETA — from the expected costs before 1 % and half
// a second, from the elapsed time after. Values derived by hand.

#include "job_progress.h"

#include <QTest>

#include <thread>

using namespace sparselab::gui;

class TestJobProgress : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sharesAreWeightedByExpectedSeconds()
    {
        // Phases of 1 s and 3 s: half of the second is (1 + 1.5) / 4 = 0.625 of the job.
        PhasedProgress progress({{QStringLiteral("Tokenizing"), 1.0}, {QStringLiteral("Pruning"), 3.0}});
        progress.set(0, 0.5);
        QCOMPARE(progress.overall(), 0.125);
        progress.set(1, 0.5);
        QCOMPARE(progress.overall(), 0.625);
        QCOMPARE(progress.label(), QStringLiteral("Pruning"));
        progress.set(1, 0.25); // never backwards
        QCOMPARE(progress.overall(), 0.625);
        progress.finish();
        QCOMPARE(progress.overall(), 1.0);
        QCOMPARE(progress.etaSeconds(), 0.0);
    }

    void expectedSecondsOfAPhaseNotEnteredCanChange()
    {
        PhasedProgress progress({{QStringLiteral("A"), 1.0}, {QStringLiteral("B"), 1.0}, {QStringLiteral("C"), 2.0}});
        progress.set(1, 0.0);
        progress.setExpectedSeconds(2, 6.0); // (1 + 0) / (1 + 1 + 6)
        progress.setExpectedSeconds(0, 9.0); // done already: ignored
        progress.set(1, 1.0);
        QCOMPARE(progress.overall(), 0.25);
    }

    void etaFromExpectedCostsFirstThenFromElapsedTime()
    {
        PhasedProgress progress({{QStringLiteral("Tokenizing"), 1.0}, {QStringLiteral("Pruning"), 3.0}});
        // Before 1 %: the whole expected time.
        QCOMPARE(progress.etaSeconds(), 4.0);
        // Under half a second: the expected seconds left, 4 × (1 − 0.625). The elapsed time is read
        // around the call, so a slow machine checks the other branch instead of failing here.
        progress.set(1, 0.5);
        const double early = progress.etaSeconds();
        if (progress.elapsedSeconds() < 0.5)
            QCOMPARE(early, 1.5);
        // After half a second: elapsed × 0.375 / 0.625, whatever the machine's speed.
        std::this_thread::sleep_for(std::chrono::milliseconds(600));
        const double before = progress.elapsedSeconds();
        const double eta = progress.etaSeconds();
        const double after = progress.elapsedSeconds();
        QVERIFY2(before >= 0.5, "the sleep lasted at least 0.6 s");
        QVERIFY2(eta >= before * 0.6 - 1e-9 && eta <= after * 0.6 + 1e-9, qPrintable(QString::number(eta)));
        // No phase with a cost: unknown.
        PhasedProgress empty({{QStringLiteral("A"), 0.0}});
        QCOMPARE(empty.etaSeconds(), -1.0);
    }
};

QTEST_GUILESS_MAIN(TestJobProgress)
#include "test_job_progress.moc"
