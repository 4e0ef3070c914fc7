// The run's live feed (app/gui/jobs/run_live_feed.h) driven by hand-made run events, the way
// workflow::runCompression reports them, on a plan of two decoder blocks with one layer solved
// in each (256 input columns, SparseGPT blocks of 128) and one dense layer. Only pruning has an
// expected cost here (no evaluation, no recovery, an empty text), so the overall share is the
// pruning share, derived by hand from the feed's contract: a block is 45 % collecting its
// inputs, 10 % solving its layers (by layers solved and column blocks), 45 % passing them on.
// Events are spaced past the feed's 100 ms throttle so that each one is delivered.
#include "run_live_feed.h"

#include <QTest>

#include <thread>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

PlanRow row(int block, const QString& kind, bool dense)
{
    PlanRow r;
    r.name = QStringLiteral("model.layers.%1.%2").arg(block).arg(kind);
    r.kind = kind;
    r.block = block;
    r.rows = 64;
    r.cols = 256;
    r.setting.method = dense ? PlanMethod::Dense : PlanMethod::SparseGpt;
    r.setting.blocksize = 128;
    return r;
}

solve::LayerRecord record(const PlanRow& r)
{
    solve::LayerRecord l;
    l.name = r.name.toStdString();
    l.block = r.block;
    l.dense = r.setting.dense();
    return l;
}

Progress pruneEvent(const std::string& detail, int64_t layersDone)
{
    Progress p;
    p.stage = "prune";
    p.detail = detail;
    p.done = layersDone;
    p.total = 2;
    return p;
}

void pastThrottle() { std::this_thread::sleep_for(std::chrono::milliseconds(120)); }

struct Frame {
    QString layer;
    int64_t colsFinal, blocksDone, blocksTotal;
};

} // namespace

class TestRunLiveFeed : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void pruningProgressAndFramesByHand()
    {
        const QList<PlanRow> plan = {row(0, QStringLiteral("self_attn.q_proj"), true),
                                     row(0, QStringLiteral("mlp.down_proj"), false),
                                     row(1, QStringLiteral("self_attn.q_proj"), true),
                                     row(1, QStringLiteral("mlp.down_proj"), false)};
        workflow::CompressionSpec spec;
        CalibrationSettings calibration;
        calibration.nsamples = 4;
        calibration.seqlen = 32;
        EvaluationSettings evaluation;
        evaluation.enabled = false;
        QList<double> shares;
        QList<RunProgress> reports;
        QList<Frame> frames;
        QStringList finished;
        RunFeedSink sink;
        sink.progress = [&](const RunProgress& p, qint64 done, const QString&) {
            reports << p;
            shares << double(done) / 10000.0;
        };
        sink.frame = [&](const QString& layer, int64_t cols, int64_t done, int64_t total) {
            frames << Frame{layer, cols, done, total};
        };
        sink.layerFinished = [&](const solve::LayerRecord& r) { finished << QString::fromStdString(r.name); };
        RunLiveFeed feed(spec, plan, 2, calibration, evaluation, RecoverySettings{}, CostRates{}, sink);
        std::map<std::string, RunLiveFeed::Layer> layers;
        for (const PlanRow& r : plan)
            layers[r.name.toStdString()] = {r.block, r.cols};
        feed.setLayers(layers);
        QCOMPARE(feed.layerCount(), int64_t(2));
        CostRates measured;
        const workflow::RunObserver observer = feed.observer(measured, nullptr, nullptr);
        const std::string layer0 = plan[1].name.toStdString(), layer1 = plan[3].name.toStdString();

        observer.onPhase(workflow::RunPhase::Tokenizing, {});
        observer.onPhase(workflow::RunPhase::Pruning, {});
        QCOMPARE(shares.last(), 0.0);
        QCOMPARE(reports.last().stage, QStringLiteral("Pruning"));
        // The first layer to be solved is shown dense at once.
        QCOMPARE(frames.size(), 1);
        QCOMPARE(frames[0].layer, plan[1].name);
        QCOMPARE(frames[0].colsFinal, int64_t(0));

        pastThrottle();
        observer.prune.progress(pruneEvent("block 0: collecting inputs", 0));
        QCOMPARE(shares.last(), 0.0);
        pastThrottle();
        observer.prune.progress(pruneEvent(layer0, 0)); // inputs collected: 0.45 of block 0
        QCOMPARE(shares.last(), 0.225);
        QCOMPARE(reports.last().layer, plan[1].name);
        pastThrottle();
        observer.prune.onBlock(layer0, 1, 2, {}); // half its columns: 0.45 + 0.10 · 0.5
        QCOMPARE(shares.last(), 0.25);
        QCOMPARE(reports.last().layerFraction, 0.5);
        QCOMPARE(frames.last().colsFinal, int64_t(128)); // one SparseGPT block of 128 columns final
        QCOMPARE(frames.last().blocksDone, int64_t(1));
        observer.prune.onLayer(record(plan[0])); // a dense layer: reported, no frame
        pastThrottle();
        const qsizetype framesBefore = frames.size();
        observer.prune.onLayer(record(plan[1])); // solved: 0.55 of block 0
        QCOMPARE(shares.last(), 0.275);
        QCOMPARE(frames.size(), framesBefore + 1);
        QCOMPARE(frames.last().colsFinal, int64_t(256)); // the finished layer, every column final
        QCOMPARE(frames.last().blocksDone, int64_t(2));

        pastThrottle();
        observer.prune.progress(pruneEvent("block 1: collecting inputs", 1)); // block 0 passed on
        QCOMPARE(shares.last(), 0.5);
        pastThrottle();
        observer.prune.progress(pruneEvent(layer1, 1));
        QCOMPARE(shares.last(), 0.725);
        QCOMPARE(reports.last().layerIndex, qint64(1));
        pastThrottle();
        observer.prune.onLayer(record(plan[3]));
        QCOMPARE(shares.last(), 0.775);

        feed.finish();
        QCOMPARE(shares.last(), 1.0);
        QCOMPARE(reports.last().stage, QStringLiteral("Done"));
        QCOMPARE(finished, (QStringList{plan[0].name, plan[1].name, plan[3].name}));
        for (qsizetype i = 1; i < shares.size(); ++i)
            QVERIFY2(shares[i] >= shares[i - 1], qPrintable(QStringLiteral("share %1 fell").arg(i)));
    }
};

QTEST_GUILESS_MAIN(TestRunLiveFeed)
#include "test_run_live_feed.moc"
