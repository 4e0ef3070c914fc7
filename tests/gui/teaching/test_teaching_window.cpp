// Teaching Mode (app/gui/teaching/teaching_window.h), offscreen: the formula panel shows the stepper's
// numbers, playback keeps the event loop responsive and ends at solveLayer's exact result,
// a real demo-model layer is captured and compared on worker threads, figures export as
// valid PNG / SVG / PDF, bad typed matrices give a readable error, and the workbench opens
// the window from View → Teaching Mode.

#include "gui_fixture.h"
#include "main_window.h"
#include "teaching_problem_tensors.h"
#include "teaching_window.h"
#include "testsupport.h"
#include "gui/gui_event_timing.h"

#include "model/causal_lm.h"
#include "solve/solver.h"
#include "solve/sparsegpt_stepper.h"
#include "tokenize/tokenizer.h"

#include <QAction>
#include <QElapsedTimer>
#include <QFile>
#include <QImage>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

#include <torch/types.h>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

QString fmt(double v) { return TeachingWindow::formatNumber(v); }

// The exact result of solveLayer for the window's current problem and options.
torch::Tensor solvedWeight(const TeachingWindow& w)
{
    auto weight = w.problem()->weight.clone();
    (void)solve::solveLayer(weight, w.problem()->hessian, w.stepper()->options());
    return weight;
}

} // namespace

class TestTeachingWindow : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { testing::useFreshSettings(QStringLiteral("SparseLabTeachingTest")); }

    void formulaShowsTheStepperNumbers_data()
    {
        QTest::addColumn<int>("bits");
        QTest::addColumn<bool>("nm24");
        QTest::newRow("unstructured") << 16 << false;
        QTest::newRow("2:4 + 4 bit") << 4 << true;
    }

    void formulaShowsTheStepperNumbers()
    {
        QFETCH(int, bits);
        QFETCH(bool, nm24);
        TeachingWindow w(false);
        w.setErrorHandler([](const QString&, const QString& m) { QFAIL(qPrintable(m)); });
        w.setSyntheticProblem({8, 16, 1, 0.5, 0});
        TeachingWindow::StepOptions o;
        o.bits = bits;
        o.nm24 = nm24;
        w.setStepOptions(o);
        QVERIFY(w.formulaText().contains(QStringLiteral("Ready")));
        for (int step = 0; step < 3; ++step) {
            QVERIFY(w.stepColumn());
            const auto& s = *w.stepper();
            const auto& c = s.lastColumn();
            const int r = w.selectedRow();
            // Followed row: the largest |err| of the column (ties: the first).
            for (size_t k = 0; k < c.err.size(); ++k)
                QVERIFY(std::fabs(c.err[k]) <= std::fabs(c.err[size_t(r)]));
            const QString text = w.formulaText();
            QVERIFY2(text.contains(QStringLiteral("Column i = %1, row r = %2").arg(step).arg(r)), qPrintable(text));
            const QString err = QStringLiteral("err = (w − q) / [H⁻¹]ᵢᵢ = (%1 − %2) / %3 = %4")
                                    .arg(fmt(c.w[size_t(r)]), fmt(c.q[size_t(r)]), fmt(c.d), fmt(c.err[size_t(r)]));
            QVERIFY2(text.contains(err), qPrintable(err + QStringLiteral("\n---\n") + text));
            // The first update term: before − err·Hinv[i, i+1] = after, all from the stepper.
            const int64_t count = int64_t(c.blockBefore.size()) / s.rows();
            const size_t j = size_t(r * count + c.local + 1);
            const QString update = QStringLiteral("%1 − %2 · (%3) = %4")
                                       .arg(fmt(c.blockBefore[j]), fmt(c.err[size_t(r)]), fmt(c.hinvRow[1]), fmt(c.blockAfter[j]));
            QVERIFY2(text.contains(QStringLiteral("j = %1:").arg(c.column + 1)), qPrintable(text));
            QVERIFY2(text.contains(update), qPrintable(update + QStringLiteral("\n---\n") + text));
            QVERIFY(text.contains(QStringLiteral("running loss L = %1").arg(fmt(s.loss()))));
            // The numbers are consistent with the formula itself.
            QVERIFY(std::abs((c.w[size_t(r)] - c.q[size_t(r)]) / c.d - c.err[size_t(r)]) < 1e-6);
        }
        if (!nm24) {
            const auto& b = w.stepper()->block();
            QVERIFY(w.formulaText().contains(QStringLiteral("τ = %1").arg(fmt(b.threshold))));
        }
        // Following a chosen row.
        w.setFollowedRow(3);
        QCOMPARE(w.selectedRow(), 3);
        QVERIFY(w.formulaText().contains(QStringLiteral("row r = 3")));
    }

    void playbackIsResponsiveAndExact()
    {
        TeachingWindow w(false);
        w.setErrorHandler([](const QString&, const QString& m) { QFAIL(qPrintable(m)); });
        w.resize(1400, 900);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        w.setSyntheticProblem({96, 256, 2, 0.5, 3});
        TeachingWindow::StepOptions o;
        o.blocksize = 32;
        o.damp = 0.01;
        w.setStepOptions(o);
        w.setGranularity(TeachingWindow::Granularity::Block);
        w.setSpeed(100);

        // The GUI thread's CPU time per event (gui_event_timing.h), not wall-clock gaps that
        // a loaded machine stretches: no step of the playback holds it for 50 ms.
        QElapsedTimer clock;
        QSignalSpy done(&w, &TeachingWindow::finishedLayer);
        clock.start();
        auto* app = testing::EventTimingApplication::instance();
        app->startMeasuring();
        w.play();
        QVERIFY(w.isPlaying());
        QVERIFY(done.wait(120'000));
        QTest::qWait(100);
        const auto longest = app->stopMeasuring();
        qInfo("playback: %lld ms; %s", clock.elapsed(), qPrintable(longest.describe()));
        QVERIFY2(longest.milliseconds() < 50.0, qPrintable(longest.describe()));
        QVERIFY(!w.isPlaying());
        QVERIFY(w.stepper()->finished());
        QVERIFY(torch::equal(w.stepper()->weight(), solvedWeight(w)));

        // Run to end, from a reset, in slices too.
        w.reset();
        QCOMPARE(w.stepper()->columnsDone(), int64_t(0));
        QSignalSpy again(&w, &TeachingWindow::finishedLayer);
        w.runToEnd();
        QVERIFY(w.isWorking() || w.stepper()->finished());
        QVERIFY(again.wait(60'000));
        QVERIFY(torch::equal(w.stepper()->weight(), solvedWeight(w)));
    }

    void captureAndCompareOnTheDemoModel()
    {
        std::shared_ptr<const model::CausalLM> model = model::CausalLM::load(testing::demoModelDir());
        std::shared_ptr<const tokenize::Tokenizer> tokenizer = tokenize::loadTokenizer(testing::demoModelDir());
        TeachingWindow w(false);
        QString error;
        w.setErrorHandler([&](const QString&, const QString& m) { error = m; });
        w.setModel(model, tokenizer);
        QVERIFY(w.layerNames().contains(QStringLiteral("model.layers.1.mlp.down_proj")));
        CalibrationSettings calib;
        calib.textPath = QString::fromStdString(testing::demoCalibText().string());
        calib.seqlen = 128;
        w.setCalibration(calib);
        QVERIFY(!w.captureLayer(QStringLiteral("model.layers.9.nope")));
        QVERIFY(error.contains(QStringLiteral("model.layers.9.nope")));

        QSignalSpy captured(&w, &TeachingWindow::captureFinished);
        QVERIFY(w.captureLayer(QStringLiteral("model.layers.1.mlp.down_proj")));
        QVERIFY(w.isBusy());
        QVERIFY(captured.wait(120'000));
        QCOMPARE(teachingProblemName(*w.problem()), QStringLiteral("model.layers.1.mlp.down_proj"));
        QCOMPARE(teachingProblemRows(*w.problem()), qint64(64));
        QCOMPARE(teachingProblemCols(*w.problem()), qint64(172));

        TeachingWindow::StepOptions o;
        o.blocksize = 128;
        o.damp = 0.01;
        w.setStepOptions(o);
        QSignalSpy done(&w, &TeachingWindow::finishedLayer);
        w.runToEnd();
        QVERIFY(done.wait(60'000));
        QVERIFY(torch::equal(w.stepper()->weight(), solvedWeight(w)));
        QVERIFY(w.formulaText().contains(QStringLiteral("Layer done")));

        QSignalSpy compared(&w, &TeachingWindow::compareFinished);
        QVERIFY(w.compare());
        QVERIFY(compared.wait(120'000));
        QCOMPARE(w.comparison().size(), 4);
        QCOMPARE(w.comparison()[1].label, QStringLiteral("SparseGPT 50%"));
        QCOMPARE(w.comparison()[1].loss.back(), w.stepper()->loss());

        // A cancelled capture leaves the problem as it was.
        const auto before = w.problem();
        QSignalSpy failed(&w, &TeachingWindow::captureFailed);
        QVERIFY(w.captureLayer(QStringLiteral("model.layers.4.mlp.down_proj")));
        w.cancelJob();
        QVERIFY(failed.wait(60'000) || captured.count() == 2);
        if (captured.count() == 1)
            QCOMPARE(w.problem(), before);
    }

    void exportWritesValidFigures()
    {
        TeachingWindow w(false);
        QString error;
        w.setErrorHandler([&](const QString&, const QString& m) { error = m; });
        w.resize(1200, 800);
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        QVERIFY(w.stepColumn());
        QTemporaryDir dir;
        const QString png = dir.filePath(QStringLiteral("step.png"));
        const QString svg = dir.filePath(QStringLiteral("step.svg"));
        const QString pdf = dir.filePath(QStringLiteral("step.pdf"));
        QVERIFY(w.exportFigure(png));
        QVERIFY(w.exportFigure(svg));
        QVERIFY(w.exportFigure(pdf));
        QImage image(png);
        QVERIFY(!image.isNull());
        QCOMPARE(image.size(), w.figure()->size() * 2);
        QSvgRenderer renderer(svg);
        QVERIFY(renderer.isValid());
        QCOMPARE(renderer.viewBox().size(), w.figure()->size());
        QFile pdfFile(pdf);
        QVERIFY(pdfFile.open(QIODevice::ReadOnly));
        const QByteArray bytes = pdfFile.readAll();
        QVERIFY(bytes.startsWith("%PDF-"));
        QVERIFY(bytes.trimmed().endsWith("%%EOF"));
        QVERIFY(bytes.size() > 2000);
        // Refused: unknown format, unwritable folder — nothing written, a readable message.
        QVERIFY(!w.exportFigure(dir.filePath(QStringLiteral("step.bmp"))));
        QVERIFY(error.contains(QStringLiteral(".png, .svg or .pdf")));
        QVERIFY(!w.exportFigure(dir.filePath(QStringLiteral("missing/step.png"))));
        QVERIFY(error.contains(QStringLiteral("cannot write")));
        QVERIFY(!QFile::exists(dir.filePath(QStringLiteral("step.bmp"))));
    }

    void typedMatrices()
    {
        TeachingWindow w(false);
        QString error;
        w.setErrorHandler([&](const QString&, const QString& m) { error = m; });
        QVERIFY(!w.setCustomProblem(QStringLiteral("1 2\n3"), QStringLiteral("1 0\n0 1")));
        QCOMPARE(error, QStringLiteral("W: row 2 has 1 numbers, row 1 has 2"));
        QVERIFY(!w.setCustomProblem(QStringLiteral("1 2"), QStringLiteral("1 0 0\n0 1 0\n0 0 1")));
        QVERIFY(error.startsWith(QStringLiteral("H: expected 2 × 2")));
        QVERIFY(!w.setCustomProblem(QStringLiteral("1 2"), QStringLiteral("1 2\n0 1")));
        QCOMPARE(error, QStringLiteral("H: not symmetric"));
        // A 2 × 4 problem by hand: H = I, damp 0 → Hinv = I, err = w for pruned entries and
        // nothing spreads. Blocks of 4, 50 %: threshold = 4th smallest w² of the 8 = 0.09.
        TeachingWindow::StepOptions o;
        o.blocksize = 4;
        w.setStepOptions(o);
        QVERIFY(w.setCustomProblem(QStringLiteral("0.1 -0.5 0.3 0.7\n-0.2 0.4 -0.6 0.8"),
                                   QStringLiteral("1 0 0 0; 0 1 0 0; 0 0 1 0; 0 0 0 1")));
        QVERIFY(w.stepColumn());
        // Sorted w²: .01 .04 .09 .16 .25 .36 .49 .64 → index int(8·0.5) = 4 → τ = 0.25, 5 pruned.
        QVERIFY(std::abs(w.stepper()->block().threshold - 0.25f) < 1e-6f);
        QCOMPARE(w.stepper()->block().prunedInBlock, int64_t(5));
        QVERIFY(w.formulaText().contains(QStringLiteral("(-0.2000 − 0) / 1.0000 = -0.2000")));
    }

    void workbenchOpensTeachingMode()
    {
        QStringList errors;
        const auto shown = testing::makeWindow(&errors, QString());
        MainWindow& window = *shown;
        QVERIFY(window.teachingAction());
        QCOMPARE(window.teachingAction()->shortcut(), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_M));
        QVERIFY(!window.teachingWindow());
        window.teachingAction()->trigger();
        QVERIFY(window.teachingWindow());
        QVERIFY(window.teachingWindow()->isVisible());
        QVERIFY(window.teachingWindow()->isWindow());
        window.teachingWindow()->close();
    }
};

SPARSELAB_GUI_TEST_MAIN(TestTeachingWindow)
#include "test_teaching_window.moc"
