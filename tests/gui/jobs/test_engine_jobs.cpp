// The GUI's engine jobs: LoadModelJob and PerplexityJob on a QThreadPool, observed through
// their signals exactly as the main window sees them (QSignalSpy on the GUI thread).
#include "engine_jobs.h"
#include "testsupport.h"

#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QTest>
#include <QThreadPool>

#include <algorithm>
#include <cmath>
#include <optional>

using namespace sparselab;
using namespace sparselab::gui;

namespace {

QString qpath(const std::filesystem::path& p) { return QString::fromStdString(p.string()); }

// Full-text perplexity of the demo model on tinystories_eval.txt at seqlen 256, measured
// independently (Hugging Face transformers, the reference convention of design.md §3).
constexpr double kDemoFullPerplexity256 = 5.8471;

struct Outcome {
    std::optional<PerplexityJob::Result> result;
    QString error;
    bool cancelled = false;
    int progressSignals = 0;
    qint64 lastDone = -1;
    qint64 lastTotal = -1;
    QString lastText;
};

} // namespace

class TestEngineJobs : public QObject {
    Q_OBJECT

private:
    QThreadPool m_pool;
    LoadModelJob::Result m_loaded;

    // Runs a PerplexityJob to its end and collects what it signalled.
    Outcome runPerplexity(PerplexityJob::Params params, int timeoutMs = 120'000,
                          std::function<void(PerplexityJob*, qint64, qint64)> onProgress = {})
    {
        Outcome out;
        PerplexityJob job(std::move(params));
        QSignalSpy finishedSpy(&job, &PerplexityJob::finished);
        QSignalSpy failedSpy(&job, &PerplexityJob::failed);
        QSignalSpy cancelledSpy(&job, &PerplexityJob::cancelled);
        connect(&job, &PerplexityJob::finished, this, [&](const PerplexityJob::Result& r) { out.result = r; });
        connect(&job, &PerplexityJob::failed, this, [&](const QString& m) { out.error = m; });
        connect(&job, &PerplexityJob::cancelled, this, [&] { out.cancelled = true; });
        connect(&job, &PerplexityJob::progress, this, [&](qint64 done, qint64 total, double, const QString& text) {
            // Signals arrive on the thread that owns the job, never on the worker.
            QCOMPARE(QThread::currentThread(), job.thread());
            ++out.progressSignals;
            out.lastDone = done;
            out.lastTotal = total;
            out.lastText = text;
            if (onProgress)
                onProgress(&job, done, total);
        });
        m_pool.start(&job);
        const bool ended = QTest::qWaitFor(
            [&] { return finishedSpy.count() + failedSpy.count() + cancelledSpy.count() > 0; }, timeoutMs);
        m_pool.waitForDone();
        QCoreApplication::processEvents(); // anything still queued would be a second final signal
        [&] {
            QVERIFY2(ended, "the job did not end in time");
            QCOMPARE(finishedSpy.count() + failedSpy.count() + cancelledSpy.count(), 1);
        }();
        return out;
    }

    PerplexityJob::Params demoParams(qint64 seqlen, qint64 maxWindows) const
    {
        PerplexityJob::Params p;
        p.model = m_loaded.model;
        p.tokenizer = m_loaded.tokenizer;
        p.textPath = qpath(testing::demoEvalText());
        p.seqlen = seqlen;
        p.maxWindows = maxWindows;
        p.threads = EngineThreads::uniform(2);
        return p;
    }

private Q_SLOTS:
    void initTestCase()
    {
        m_pool.setMaxThreadCount(1);
        LoadModelJob job({qpath(testing::demoModelDir()), 2});
        QSignalSpy finished(&job, &LoadModelJob::finished);
        QSignalSpy failed(&job, &LoadModelJob::failed);
        QSignalSpy progress(&job, &LoadModelJob::progress);
        connect(&job, &LoadModelJob::finished, this, [this](const LoadModelJob::Result& r) { m_loaded = r; });
        connect(&job, &LoadModelJob::failed, this, [](const QString& m) { qWarning("load failed: %s", qPrintable(m)); });
        m_pool.start(&job);
        QVERIFY(finished.wait(60'000));
        m_pool.waitForDone();
        QCOMPARE(failed.count(), 0);
        QVERIFY(m_loaded.model);
        QVERIFY(m_loaded.tokenizer);
        // The final state of loading is always delivered.
        QVERIFY(!progress.isEmpty());
        QCOMPARE(progress.last().at(0).toLongLong(), progress.last().at(1).toLongLong());
    }

    void summaryDescribesDemoModel()
    {
        const ModelSummary& s = m_loaded.summary;
        QCOMPARE(s.name, QStringLiteral("stories260K-hf"));
        QCOMPARE(s.architecture, QStringLiteral("LlamaForCausalLM"));
        QCOMPARE(s.hiddenSize, 64);
        QCOMPARE(s.intermediateSize, 172);
        QCOMPARE(s.numHeads, 8);
        QCOMPARE(s.numKvHeads, 4);
        QCOMPARE(s.vocabSize, 512);
        QCOMPARE(s.blocks.size(), 5);
        QCOMPARE(s.linearLayerCount(), 35);
        QVERIFY(!s.tokenizer.isEmpty());
        QVERIFY(!s.storedDtype.isEmpty());
        qint64 linear = 0;
        for (const auto& block : s.blocks) {
            QCOMPARE(block.linears.size(), 7);
            for (const auto& l : block.linears) {
                QCOMPARE(l.parameters, l.rows * l.cols + (l.hasBias ? l.rows : 0));
                linear += l.parameters;
            }
        }
        QCOMPARE(s.linearParameters, linear);
        // Llama: q, k, v, o, gate, up, down; GQA halves k and v.
        const auto& b0 = s.blocks.first().linears;
        QVERIFY(b0.at(0).kind.contains(QStringLiteral("q_proj")));
        QCOMPARE(b0.at(0).rows, 64);
        QCOMPARE(b0.at(0).cols, 64);
        QCOMPARE(b0.at(1).rows, 32);
        QCOMPARE(b0.at(4).rows, 172);
        QCOMPARE(b0.at(4).cols, 64);
        QCOMPARE(b0.at(6).rows, 64);
        QCOMPARE(b0.at(6).cols, 172);
        // Embeddings and norms are listed but not counted as linear.
        qint64 other = 0;
        for (const auto& t : s.otherTensors)
            other += t.parameters;
        QCOMPARE(s.linearParameters + other, s.totalParameters);
    }

    void loadFailures_data()
    {
        QTest::addColumn<QString>("folder");
        QTest::addColumn<QString>("expected");
        QTest::newRow("empty") << QString() << QStringLiteral("No model folder");
        QTest::newRow("missing") << QStringLiteral("/nonexistent/sparselab-model") << QStringLiteral("no such folder");
        QTest::newRow("no config") << QStringLiteral("@tempdir") << QStringLiteral("config.json");
    }

    void loadFailures()
    {
        QFETCH(QString, folder);
        QFETCH(QString, expected);
        QTemporaryDir tmp;
        if (folder == QLatin1String("@tempdir"))
            folder = tmp.path();
        LoadModelJob job({folder, 1});
        QSignalSpy failed(&job, &LoadModelJob::failed);
        QSignalSpy finished(&job, &LoadModelJob::finished);
        m_pool.start(&job);
        QVERIFY(failed.wait(30'000));
        m_pool.waitForDone();
        QCOMPARE(finished.count(), 0);
        const QString message = failed.first().first().toString();
        QVERIFY2(message.contains(expected), qPrintable(message));
        QVERIFY2(!message.contains(QLatin1Char('\n')), "engine errors are one line");
    }

    // The first K windows: their perplexity is exp of the mean of their window losses (the
    // convention of design.md §3), and each window loss is the one the full-text run gives
    // that window (perplexityFullTextMatchesReference checks the full text against
    // transformers; here the first windows must agree with it to the last bit).
    void perplexityFirstWindows()
    {
        const Outcome out = runPerplexity(demoParams(256, 4));
        QVERIFY2(out.error.isEmpty(), qPrintable(out.error));
        QVERIFY(out.result.has_value());
        const auto& r = out.result->perplexity;
        QCOMPARE(r.windows, 4);
        QCOMPARE(r.seqlen, 256);
        QCOMPARE(qsizetype(r.windowLoss.size()), 4);
        double meanLoss = 0;
        for (double loss : r.windowLoss)
            meanLoss += loss / 4.0;
        QVERIFY2(std::abs(r.perplexity - std::exp(meanLoss)) <= 1e-9 * r.perplexity,
                 qPrintable(QString::number(r.perplexity, 'f', 9)));
        // Per-token NLL: 255 predictions per window, whose mean is the window's loss.
        QCOMPARE(qsizetype(r.tokenNll.size()), 4 * 255);
        for (int w = 0; w < 4; ++w) {
            double sum = 0;
            for (int t = 0; t < 255; ++t)
                sum += double(r.tokenNll[size_t(w * 255 + t)]);
            QVERIFY2(std::abs(sum / 255.0 - r.windowLoss[size_t(w)]) <= 1e-5, qPrintable(QString::number(w)));
        }
        QVERIFY(r.tokens > 4 * 256);
        // The final state is always delivered.
        QVERIFY(out.progressSignals >= 1);
        QCOMPARE(out.lastDone, out.lastTotal);
    }

    // The whole text against transformers' figure, always (about a minute on one thread).
    void perplexityFullTextMatchesReference()
    {
        QElapsedTimer timer;
        timer.start();
        const Outcome out = runPerplexity(demoParams(256, 0), 1'200'000);
        QVERIFY2(out.error.isEmpty(), qPrintable(out.error));
        QVERIFY(out.result.has_value());
        const auto& r = out.result->perplexity;
        const double seconds = double(timer.elapsed()) / 1000.0;
        qInfo("full text: %lld windows, perplexity %.5f in %.1f s, %d progress signals", qlonglong(r.windows),
              r.perplexity, seconds, out.progressSignals);
        QCOMPARE(r.windows, 764);
        QVERIFY2(std::abs(r.perplexity - kDemoFullPerplexity256) <= 5e-4,
                 qPrintable(QString::number(r.perplexity, 'f', 6)));
        // ~10 Hz: not one signal per batch of a fast evaluation (96 batches here).
        QVERIFY2(out.progressSignals <= int(seconds * 10.0) + 5, qPrintable(QString::number(out.progressSignals)));
        QCOMPARE(out.lastDone, out.lastTotal);

        // The first windows alone give the same window losses.
        const Outcome first = runPerplexity(demoParams(256, 4));
        QVERIFY(first.result.has_value());
        for (size_t w = 0; w < 4; ++w)
            QCOMPARE(first.result->perplexity.windowLoss[w], r.windowLoss[w]);
    }

    void cancelMidway()
    {
        auto params = demoParams(256, 0);
        params.batchSize = 1; // many cancellation points
        bool requested = false;
        const Outcome out = runPerplexity(params, 120'000, [&](PerplexityJob* job, qint64 done, qint64 total) {
            if (!requested && total > 0 && done < total) {
                requested = true;
                job->cancel();
            }
        });
        QVERIFY(requested);
        QVERIFY(out.cancelled);
        QVERIFY(!out.result.has_value());
        QVERIFY(out.error.isEmpty());
    }

    void cancelBeforeStart()
    {
        PerplexityJob job(demoParams(256, 0));
        QSignalSpy cancelled(&job, &PerplexityJob::cancelled);
        QSignalSpy finished(&job, &PerplexityJob::finished);
        job.cancel();
        m_pool.start(&job);
        QVERIFY(cancelled.wait(30'000));
        m_pool.waitForDone();
        QCOMPARE(finished.count(), 0);
    }

    void perplexityErrors_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<qint64>("seqlen");
        QTest::addColumn<bool>("withModel");
        QTest::addColumn<QString>("expected");
        const QString eval = qpath(testing::demoEvalText());
        QTest::newRow("missing text") << QStringLiteral("/nonexistent/eval.txt") << qint64(256) << true
                                      << QStringLiteral("/nonexistent/eval.txt");
        QTest::newRow("seqlen beyond context") << eval << qint64(4096) << true << QStringLiteral("seqlen");
        QTest::newRow("no model") << eval << qint64(256) << false << QStringLiteral("No model");
    }

    void perplexityErrors()
    {
        QFETCH(QString, text);
        QFETCH(qint64, seqlen);
        QFETCH(bool, withModel);
        QFETCH(QString, expected);
        auto params = demoParams(seqlen, 2);
        params.textPath = text;
        if (!withModel)
            params.model.reset();
        const Outcome out = runPerplexity(params);
        QVERIFY(!out.result.has_value());
        QVERIFY2(out.error.contains(expected), qPrintable(out.error));
    }
};

QTEST_GUILESS_MAIN(TestEngineJobs)
#include "test_engine_jobs.moc"
