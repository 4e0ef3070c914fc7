// The workbench's session (app/gui/session/workbench.h): which compressed models of runs it
// keeps under its memory budget, the dense perplexity it remembers per evaluation setting, and
// what a new model forgets. Values derived by hand.

#include "workbench.h"

#include <QDir>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

// A summary whose linear weights take `gibPerModel` GiB as float32 copies: one block with one
// square layer of n² weights, n² · 4 bytes = gibPerModel GiB.
widgets::ModelSummary summaryOf(const QString& folder, qint64 gibPerModel)
{
    widgets::ModelSummary s;
    s.folder = folder;
    widgets::LinearLayerInfo layer;
    layer.rows = 16384; // 16384² · 4 B = 1 GiB
    layer.cols = 16384 * gibPerModel;
    widgets::BlockInfo block;
    block.linears.append(layer);
    s.blocks.append(block);
    return s;
}

// Run models are only kept and handed back by the session, never used: one object stands for
// every run's compressed copy.
std::shared_ptr<model::CausalLM> standIn()
{
    static int object = 0;
    return std::shared_ptr<model::CausalLM>(std::shared_ptr<int>(), reinterpret_cast<model::CausalLM*>(&object));
}

// The remembered dense perplexity, NaN when none.
double known(const Workbench& session, const QString& text, qint64 seqlen, qint64 maxWindows)
{
    const auto value = session.densePerplexity(text, seqlen, maxWindows);
    return value ? value->perplexity : NAN;
}

} // namespace

class TestSession : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void keepsTheNewestRunModelsThatFitTheBudget()
    {
        // 1 GiB per model against a 4 GiB budget: the newest four stay, older ones go.
        QCOMPARE(Workbench::kKeptModelBytes, qint64(4) << 30);
        Workbench session;
        QVERIFY(!session.setModel(nullptr, nullptr, summaryOf(QStringLiteral("/models/a"), 1)));
        for (int i = 0; i < 6; ++i)
            session.keepRunModel(session.takeRunId(), standIn());
        QCOMPARE(session.nextRunId(), 7);
        const QList<int> released = session.releaseOldRunModels();
        QCOMPARE(released, (QList<int>{2, 1}));
        for (int id = 1; id <= 6; ++id)
            QCOMPARE(session.runModel(id) != nullptr, id >= 3);
        QVERIFY(session.releaseOldRunModels().isEmpty());

        // 5 GiB per model: only the newest, always.
        Workbench big;
        (void)big.setModel(nullptr, nullptr, summaryOf(QStringLiteral("/models/b"), 5));
        big.keepRunModel(1, standIn());
        big.keepRunModel(2, standIn());
        QCOMPARE(big.releaseOldRunModels(), QList<int>{1});
        QVERIFY(big.runModel(2) != nullptr);
        big.forgetRunModel(2);
        QVERIFY(big.runModel(2) == nullptr);
    }

    void remembersDensePerplexityPerEvaluationSetting()
    {
        QTemporaryDir dir;
        const QString text = dir.filePath(QStringLiteral("eval.txt"));
        Workbench session;
        (void)session.setModel(nullptr, nullptr, summaryOf(QStringLiteral("/models/a"), 1));
        session.rememberDensePerplexity(text, 256, 0, {12.5, nullptr});
        // Another spelling of the same path is the same setting; another seqlen or window count is not.
        const QString spelled = dir.path() + QStringLiteral("/./sub/../eval.txt");
        QCOMPARE(known(session, spelled, 256, 0), 12.5);
        QVERIFY(!session.densePerplexity(text, 128, 0));
        QVERIFY(!session.densePerplexity(text, 256, 4));

        // A run's own measurement: under the window length it used, replacing or not.
        RunRecord run;
        run.evaluation.enabled = true;
        run.evaluation.textPath = text;
        run.calibration.seqlen = 128;
        run.evalSeqlen = 0;           // not recorded: the evaluation's, else calibration's length
        run.perplexityBefore = 14.0;
        session.rememberDensePerplexityOf(run, /*replace=*/false);
        QCOMPARE(known(session, text, 128, 0), 14.0);
        run.perplexityBefore = 15.0;
        session.rememberDensePerplexityOf(run, /*replace=*/false);
        QCOMPARE(known(session, text, 128, 0), 14.0);
        session.rememberDensePerplexityOf(run, /*replace=*/true);
        QCOMPARE(known(session, text, 128, 0), 15.0);
        run.evaluation.enabled = false; // nothing measured: nothing remembered
        run.calibration.seqlen = 64;
        session.rememberDensePerplexityOf(run, true);
        QVERIFY(!session.densePerplexity(text, 64, 0));
        run.evaluation.enabled = true;
        run.perplexityBefore = NAN;
        session.rememberDensePerplexityOf(run, true);
        QVERIFY(!session.densePerplexity(text, 64, 0));
    }

    void aNewModelForgetsWhatBelongedToTheOld()
    {
        QTemporaryDir dir;
        const QString text = dir.filePath(QStringLiteral("eval.txt"));
        Workbench session;
        (void)session.setModel(nullptr, nullptr, summaryOf(QStringLiteral("/models/a"), 1));
        session.keepRunModel(session.takeRunId(), standIn());
        session.rememberDensePerplexity(text, 256, 0, {12.5, nullptr});
        // The same folder again (reloaded): its perplexities are measured anew, its runs stay.
        QVERIFY(session.setModel(nullptr, nullptr, summaryOf(QStringLiteral("/models/a"), 1)));
        QVERIFY(!session.densePerplexity(text, 256, 0));
        QVERIFY(session.runModel(1) != nullptr);
        // Another model: its runs go too; run ids keep counting.
        QVERIFY(!session.setModel(nullptr, nullptr, summaryOf(QStringLiteral("/models/b"), 1)));
        QVERIFY(session.runModel(1) == nullptr);
        QCOMPARE(session.takeRunId(), 2);
        QVERIFY(!session.hasModel());
        QVERIFY(session.memoryInput() == nullptr); // no such folder to describe
    }
};

QTEST_GUILESS_MAIN(TestSession)
#include "test_session.moc"
