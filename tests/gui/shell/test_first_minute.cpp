// The first minute in the workbench (issue 19), offscreen on a 1366 × 768 screen with the
// bundled demo model and default settings:
//   - the window opens inside the screen, every dock inside the window;
//   - the evaluation's Auto window length is the calibration length runs use;
//   - with the dense perplexity cached, the first live frame is painted within 2 s of the run
//     starting (F5), and the run reuses the cached value instead of measuring it again;
//   - in the default layout the heat-map paints at least 2 px per weight row of a 64-row layer;
//   - a run cancelled with Esc leaves a consistent Run view (empty bars, "Cancelled", Run
//     enabled, Cancel disabled, no result added), and the next run starts from zero.
#include "evaluation_panel.h"
#include "calibration_panel.h"
#include "live_view.h"
#include "main_window.h"
#include "mask_heatmap_widget.h"
#include "results_panel.h"
#include "run_panel.h"
#include "gui_fixture.h"
#include "testsupport.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QFile>
#include <QScreen>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

// Notes when the heat-map first paints a frame (what the user sees), on the run's clock.
class FramePaintWatch : public QObject {
public:
    QElapsedTimer clock;
    qint64 firstFrameMs = -1;
    bool eventFilter(QObject* watched, QEvent* event) override
    {
        if (event->type() == QEvent::Paint && firstFrameMs < 0 && clock.isValid()
            && static_cast<widgets::MaskHeatmapWidget*>(watched)->frame().isValid())
            firstFrameMs = clock.elapsed();
        return false;
    }
};

} // namespace

class TestFirstMinute : public QObject {
    Q_OBJECT

private:
    std::unique_ptr<MainWindow> m_window;
    QStringList m_errors;

    bool waitIdle(int ms = 600'000)
    {
        return QTest::qWaitFor([this] { return !m_window->isBusy(); }, ms);
    }

private Q_SLOTS:
    void initTestCase()
    {
        testing::useFreshSettings(QStringLiteral("SparseLabFirstMinuteTest"));
        QVERIFY2(QGuiApplication::primaryScreen()->geometry().size() == QSize(1366, 768),
                 "the offscreen screen is 1366 x 768 (set up in main)");

        // A new user: default settings, and the bundled demo opened at start.
        m_window = testing::makeFirstStartWindow(&m_errors, testing::ErrorText::WithTitle);
        QVERIFY(QTest::qWaitForWindowExposed(m_window.get()));
        QVERIFY(testing::waitForModel(m_window.get()));
        QVERIFY2(m_errors.isEmpty(), qPrintable(m_errors.join(QLatin1Char('\n'))));
    }

    void windowFitsTheScreen()
    {
        const QRect screen = m_window->screen()->availableGeometry();
        QVERIFY2(screen.contains(m_window->frameGeometry()),
                 qPrintable(QStringLiteral("window %1x%2 at %3,%4 on a %5x%6 screen")
                                .arg(m_window->frameGeometry().width())
                                .arg(m_window->frameGeometry().height())
                                .arg(m_window->frameGeometry().x())
                                .arg(m_window->frameGeometry().y())
                                .arg(screen.width())
                                .arg(screen.height())));
        // Every dock in front is inside the window and not squeezed to nothing.
        for (const QString& view : m_window->viewNames()) {
            QDockWidget* dock = m_window->dock(view);
            QVERIFY(dock);
            if (dock->visibleRegion().isEmpty())
                continue; // behind another tab
            const QRect r(dock->mapTo(m_window.get(), QPoint(0, 0)), dock->size());
            QVERIFY2(m_window->rect().contains(r), qPrintable(view));
            QVERIFY2(dock->widget()->width() >= dock->widget()->minimumSizeHint().width() / 2, qPrintable(view));
        }
        QVERIFY(!m_window->dock(QStringLiteral("live"))->visibleRegion().isEmpty());
        QVERIFY(!m_window->dock(QStringLiteral("run"))->visibleRegion().isEmpty());
        // The live view is the biggest thing on screen: wider than the settings and the Run
        // controls beside it (all three run the window's full height).
        const int live = m_window->dock(QStringLiteral("live"))->width();
        const int plan = m_window->dock(QStringLiteral("plan"))->width();
        const int run = m_window->dock(QStringLiteral("run"))->width();
        QVERIFY2(live > plan && live > run, qPrintable(QStringLiteral("live %1, plan %2, run %3 px").arg(live).arg(plan).arg(run)));
    }

    void evaluationAutoLengthIsTheCalibrationLength()
    {
        EvaluationPanel* eval = m_window->evaluationPanel();
        QCOMPARE(eval->seqlen(), qint64(0)); // Auto by default
        QCOMPARE(eval->maxWindows(), EvaluationPanel::kDefaultWindows);
        const CalibrationSettings defaults = m_window->calibrationPanel()->settings();
        CalibrationSettings c = defaults;
        QCOMPARE(eval->effectiveSeqlen(), c.seqlen);
        c.seqlen = 128;
        m_window->calibrationPanel()->setSettings(c);
        QCOMPARE(eval->effectiveSeqlen(), qint64(128));
        c.seqlen = 256;
        m_window->calibrationPanel()->setSettings(c);
        QCOMPARE(eval->effectiveSeqlen(), qint64(256));
        // "All windows" is one click.
        eval->allWindowsBox()->click();
        QCOMPARE(eval->maxWindows(), qint64(0));
        eval->allWindowsBox()->click();
        QCOMPARE(eval->maxWindows(), EvaluationPanel::kDefaultWindows);
        // The runs below use a new user's settings whatever order the functions run in.
        m_window->calibrationPanel()->setSettings(defaults);
    }

    void firstFrameWithinTwoSecondsWhenCached()
    {
        // The dense perplexity for the default evaluation settings, measured once.
        QSignalSpy evaluated(m_window.get(), &MainWindow::evaluationFinished);
        QVERIFY(m_window->evaluate());
        QVERIFY(evaluated.wait(300'000));
        const double dense = evaluated.first().first().toDouble();
        QVERIFY(std::isfinite(dense));
        QVERIFY(waitIdle());

        widgets::MaskHeatmapWidget* heatmap = m_window->liveView()->heatmap();
        FramePaintWatch watch;
        heatmap->installEventFilter(&watch);
        QSignalSpy started(m_window.get(), &MainWindow::runStarted);
        QSignalSpy finished(m_window.get(), &MainWindow::runFinished);
        QSignalSpy progressed(m_window.get(), &MainWindow::runProgressed);
        QObject scope; // ends the connection with this function: `watch` lives on its stack
        connect(m_window.get(), &MainWindow::runStarted, &scope, [&watch] { watch.clock.start(); });
        m_window->activateWindow();
        QVERIFY(QTest::qWaitForWindowActive(m_window.get()));
        QTest::keyClick(m_window.get(), Qt::Key_F5);
        QCOMPARE(started.count(), 1);
        QVERIFY(QTest::qWaitFor([&] { return watch.firstFrameMs >= 0; }, 60'000));
        qInfo("first live frame painted %lld ms after the run started", watch.firstFrameMs);
        QVERIFY2(watch.firstFrameMs <= 2000, qPrintable(QStringLiteral("%1 ms").arg(watch.firstFrameMs)));

        // The heat-map of a 64-row layer: at least 2 px per weight row in the default layout.
        QVERIFY(QTest::qWaitFor([&] { return heatmap->frame().rows == 64 || !m_window->isRunning(); }, 60'000));
        const widgets::HeatmapFrame frame = heatmap->frame();
        QCOMPARE(frame.rows, qint64(64));
        QCOMPARE(frame.height, 64);
        const QRect area = heatmap->matrixArea();
        qInfo("heat-map of %s: %d x %d px for %d x %d cells", qPrintable(frame.layer), area.width(), area.height(),
              frame.width, frame.height);
        QVERIFY2(area.height() >= 2 * frame.height, qPrintable(QStringLiteral("%1 px for 64 rows").arg(area.height())));
        heatmap->removeEventFilter(&watch);

        QVERIFY(finished.wait(600'000) || finished.count() == 1);
        const RunRecord record = finished.first().first().value<RunRecord>();
        // The cached dense perplexity was used: no "Perplexity before" phase in this run.
        QCOMPARE(record.perplexityBefore, dense);
        for (const QList<QVariant>& args : progressed)
            QVERIFY(args.first().value<RunProgress>().stage != QStringLiteral("Perplexity before"));
        QVERIFY(waitIdle());
        QVERIFY2(m_errors.isEmpty(), qPrintable(m_errors.join(QLatin1Char('\n'))));
    }

    void cancelLeavesConsistentRunView()
    {
        const int runsBefore = int(m_window->resultsPanel()->runs().size());
        QSignalSpy cancelled(m_window.get(), &MainWindow::runCancelled);
        QSignalSpy finished(m_window.get(), &MainWindow::runFinished);
        bool pressed = false;
        // Esc once the run is well under way (the solver working).
        auto scope = std::make_unique<QObject>(); // the connection ends with `pressed`, even on failure
        connect(m_window.get(), &MainWindow::runProgressed, scope.get(), [this, &pressed](const RunProgress& p) {
            if (!pressed && p.overall >= 0.05 && !p.layer.isEmpty()) {
                pressed = true;
                QTest::keyClick(m_window.get(), Qt::Key_Escape);
            }
        });
        QVERIFY(m_window->startRun());
        QVERIFY(m_window->cancelAction()->isEnabled());
        QVERIFY(cancelled.wait(300'000));
        QCOMPARE(finished.count(), 0);
        QVERIFY(waitIdle(10'000));

        RunPanel* run = m_window->runPanel();
        QCOMPARE(run->overallValue(), 0);
        QCOMPARE(run->layerValue(), 0);
        QCOMPARE(run->stageText(), QStringLiteral("Cancelled"));
        QVERIFY(run->layerText().isEmpty());
        QVERIFY(run->statusText().contains(QStringLiteral("cancelled")));
        QVERIFY(m_window->runAction()->isEnabled());
        QVERIFY(!m_window->cancelAction()->isEnabled());
        QCOMPARE(int(m_window->resultsPanel()->runs().size()), runsBefore);

        // The next run starts from zero, not from where the cancelled one stopped.
        QSignalSpy progressed(m_window.get(), &MainWindow::runProgressed);
        scope.reset();
        QVERIFY(m_window->startRun());
        QVERIFY(run->overallValue() < 50);
        QVERIFY(run->stageText() != QStringLiteral("Cancelled"));
        m_window->cancelJob();
        QVERIFY(cancelled.wait(300'000));
        QVERIFY(waitIdle(10'000));
        QVERIFY2(m_errors.isEmpty(), qPrintable(m_errors.join(QLatin1Char('\n'))));
    }

    void cleanupTestCase() { m_window.reset(); }
};

int main(int argc, char* argv[])
{
    // A 1366 × 768 offscreen screen (the smallest laptop display the issue names).
    QTemporaryDir dir;
    const QString config = dir.filePath(QStringLiteral("screen.json"));
    QFile file(config);
    if (!file.open(QIODevice::WriteOnly)
        || file.write(R"({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1366, "height": 768,
                          "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]})")
            < 0)
        return 2;
    file.close();
    qputenv("QT_QPA_PLATFORM", QByteArray("offscreen:configfile=") + QFile::encodeName(config));
    QApplication app(argc, argv);
    TestFirstMinute test;
    return QTest::qExec(&test, argc, argv);
}

#include "test_first_minute.moc"
