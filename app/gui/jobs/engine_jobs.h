#pragma once
// Engine work for the GUI, run off the GUI thread.
//
// Every job has one shape (after qBittorrent's TorrentCreator): a Params struct in, a Result
// struct out, a QObject + QRunnable started on a QThreadPool, an atomic cancel flag.
// Signals are emitted on the thread the job object lives in (normally the GUI thread), posted
// there by the worker, so receivers and QSignalSpy never run on the worker:
//   progress(done, total, etaSeconds, text)  at most ~10 per second; the final state of
//                                             every stage is always delivered;
//   finished(result)                          exactly one of finished / failed / cancelled,
//   failed(message)                           once, as the job's last signal;
//   cancelled()                               cancel() was honoured, no result.
// No exception leaves run(): engine InputErrors arrive as their one-line message, anything
// else as "Internal error: …".
//
// Engine objects cross threads as std::shared_ptr held in the results: the GUI keeps the
// loaded model and hands it to the next PerplexityJob. Only one job may use a model at a time.
//
// This header does not include LibTorch; only engine_jobs.cpp does.
//
// Usage:
//     auto* job = new PerplexityJob({model, tokenizer, textPath, 256});
//     connect(job, &PerplexityJob::finished, this, &Window::onEvaluated);
//     pool->start(job);               // the job is not auto-deleted: delete it after its last signal
//     ...
//     job->cancel();                  // from any thread

#include "eval/perplexity.h"
#include "job_progress.h"
#include "mask_heatmap_widget.h"
#include "model_summary.h"
#include "session_types.h"
#include "token_preview_widget.h"
#include "util/engine_threads.h"
#include "util/progress.h"

#include <QObject>
#include <QRunnable>
#include <QString>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

class QElapsedTimer;

namespace sparselab::model {
class CausalLM;
struct LinearLayer;
} // namespace sparselab::model
namespace sparselab::tokenize { class Tokenizer; }
namespace sparselab::workflow {
struct CompressionSpec;
struct RunObserver;
struct CompressionOutcome;
} // namespace sparselab::workflow

namespace sparselab::gui {

class RunLiveFeed;
struct RunFeedSink;

using widgets::ModelSummary;

// Base of all engine jobs: cancellation, throttled progress, the exception boundary.
class EngineJob : public QObject, public QRunnable {
    Q_OBJECT

public:
    ~EngineJob() override;

    // QRunnable: sets up the worker thread (no-grad mode, intra-op threads), calls execute(),
    // and turns every exception into failed()/cancelled().
    void run() final;

    [[nodiscard]] bool isCancelled() const { return m_cancel.cancelled(); }
    // Minimum interval between two progress signals (default 100 ms).
    void setProgressInterval(std::chrono::milliseconds interval) { m_interval = interval; }

public Q_SLOTS:
    // Thread-safe; the job stops at its next check and emits cancelled().
    void cancel() { m_cancel.cancel(); }

Q_SIGNALS:
    void progress(qint64 done, qint64 total, double etaSeconds, const QString& text);
    void failed(const QString& message);
    void cancelled();
    // Emitted right before the final signal (finished, failed or cancelled), on the same
    // thread: JobRunner is idle again before any outcome handler runs.
    void ending();

protected:
    // threads: the engine's threads in this job (util/engine_threads.h); zeros leave the
    // process default.
    explicit EngineJob(EngineThreads threads, QObject* parent = nullptr);

    // The work, on the worker thread. Ends with deliver(...) of the subclass's finished
    // signal; throws InputError / CancelledError / anything else on failure.
    virtual void execute() = 0;

    // Flushes pending progress, then posts `emitFinished` (which emits the subclass's
    // finished signal) to the job's thread. No other signal follows.
    void deliver(std::function<void()> emitFinished);

    // Engine callback that forwards to reportProgress (worker thread).
    [[nodiscard]] ProgressCallback progressCallback();
    [[nodiscard]] const CancelToken* cancelToken() const { return &m_cancel; }
    // Throttled emit of progress(); a report that is skipped is remembered and sent by
    // flushProgress() or by the next report of another stage.
    void reportProgress(const Progress& p);
    void flushProgress();

    // Queues `emitter` to run on the job's thread (where its signals are emitted).
    void post(std::function<void()> emitter);
    // post() for the final signal: ending() first, then `emitFinal`.
    void postFinal(std::function<void()> emitFinal);

private:
    void emitProgress(const Progress& p);

    CancelToken m_cancel;
    bool m_delivered = false; // worker thread only
    EngineThreads m_threads;
    std::chrono::milliseconds m_interval{100};
    std::chrono::steady_clock::time_point m_lastEmit{};
    bool m_emittedOnce = false;
    bool m_pending = false;
    Progress m_latest;
};

// Loads a Hugging Face model folder: config.json, tokenizer, weights (float32 on the CPU).
class LoadModelJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        QString folder;   // model folder (config.json + *.safetensors + tokenizer files)
        EngineThreads threads; // engineThreads(); zeros = process default
    };
    struct Result {
        ModelSummary summary;
        std::shared_ptr<const model::CausalLM> model;
        std::shared_ptr<const tokenize::Tokenizer> tokenizer;
        double seconds = 0.0; // wall time of the load
    };

    explicit LoadModelJob(Params params, QObject* parent = nullptr);
    [[nodiscard]] const Params& params() const { return m_params; }

Q_SIGNALS:
    void finished(const sparselab::gui::LoadModelJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

// Perplexity of a loaded model on a text file (design.md §3, the reference convention).
class PerplexityJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model;         // required
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        QString textPath;        // UTF-8 text file to evaluate on
        qint64 seqlen = 0;       // tokens per window; 0 = min(model context, 2048)
        qint64 maxWindows = 0;   // evaluate only the first K windows; 0 = all
        qint64 batchSize = 8;    // windows per forward pass
        EngineThreads threads;   // engineThreads(); zeros = process default
    };
    struct Result {
        eval::PerplexityResult perplexity; // value, windows, per-window losses, seconds
        QString textPath;
        QString modelFolder;
    };

    explicit PerplexityJob(Params params, QObject* parent = nullptr);
    [[nodiscard]] const Params& params() const { return m_params; }

Q_SIGNALS:
    void finished(const sparselab::gui::PerplexityJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

// Tokenizes a calibration text and draws the windows exactly as a run will (same seed, same
// CPython-exact generator), then decodes the first tokens of the first windows for the
// Calibration view. A text shorter than one window is not a failure here: the result says
// so (tooShort, warning) so the view can warn while the user edits the settings.
class CalibrationPreviewJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        QString textPath;
        qint64 nsamples = 128;
        qint64 seqlen = 256;
        quint64 seed = 0;
        int previewWindows = 6;   // windows decoded for display
        int previewTokens = 160;  // tokens decoded per window
    };
    struct Result {
        QString textPath;
        qint64 textBytes = 0;
        qint64 textTokens = 0;       // ids of the whole text (BOS included when the tokenizer adds it)
        qint64 nsamples = 0;
        qint64 seqlen = 0;
        qint64 calibrationTokens = 0; // nsamples × seqlen
        double coverage = 0;          // share of the text's tokens inside at least one window
        bool tooShort = false;        // fewer than seqlen + 1 tokens: no window can be drawn
        QString warning;              // one line, empty when all is well
        QList<widgets::TokenWindowPreview> windows;
        double seconds = 0;
    };

    explicit CalibrationPreviewJob(Params params, QObject* parent = nullptr);
    [[nodiscard]] const Params& params() const { return m_params; }

Q_SIGNALS:
    void finished(const sparselab::gui::CalibrationPreviewJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

// One compression run on a private copy of the model (the loaded model stays dense, so runs
// can be compared): the workbench's adapter over workflow::runCompression, the run the CLI's
// prune makes too (same record, same sparselab.json): tokenizing and calibration, the
// layer-wise pipeline per the plan, then perplexity before (unless already known), and with
// Params::recovery the pruned model's perplexity and the recovery training, then after.
// The dense evaluation comes after the solver, not before it: the live view starts moving
// within a second of F5 however long the evaluation is. Nothing is written to disk.
//
// What the views show while it runs is made by a RunLiveFeed (run_live_feed.h) from the run's
// events: progress is one PhasedProgress (job_progress.h) over its phases, each weighted by its
// expected seconds from Params::rates; pruning advances block by block. Result::measured gives
// the rates this run showed.
//
// Signals besides EngineJob's (progress() carries the overall share in 1/10000):
//   runProgress(p)      overall share (monotone), ETA, stage, current layer; ≤ ~10 per second,
//                       the final state always delivered before finished();
//   heatmapFrame(f)     the current layer's weight, downsampled on the worker to at most
//                       heatmapCells² cells: when a layer starts and as blocks finish
//                       (≤ ~10 per second), and always when a layer is done;
//   layerFinished(row)  every layer, in pipeline order (dense ones too);
//   logLine(text)       engine notes (damping raised, dead inputs, stage changes);
//   recoveryStep / recoveryHeldOut  the recovery's loss curve and held-out perplexity.
// Cancel stops at the next column block (or recovery step); the copy is dropped and
// cancelled() follows.
class RunJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model;         // required, left untouched
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        CalibrationSettings calibration;
        EvaluationSettings evaluation;
        QString name;              // the run's name (recorded in sparselab.json and the workspace)
        QList<PlanRow> plan;       // one row per linear layer, as PlanModel holds them
        QString device = QStringLiteral("cpu"); // "cpu" or "cuda"
        double perplexityBefore = NAN; // known dense perplexity for these evaluation settings: skip measuring it
        EvaluationDetailPtr detailBefore; // its per-window / per-token detail, when known
        int heatmapCells = 256;    // heat-map cap per side
        EngineThreads threads;
        CostRates rates;           // expected cost of each phase (weights of the progress bar)
        RecoverySettings recovery; // recovery after pruning (off by default)
        // Resume checkpoints (workflow/compression_run.h): every finished decoder block is
        // kept here, so that a run cancelled or killed resumes when started again with the same
        // settings; removed when the run completes. Empty: none.
        QString checkpointFolder;
    };
    struct Result {
        RunRecord record;          // id left for the window to fill in
        std::shared_ptr<model::CausalLM> model; // the compressed copy (for export)
        CostRates measured;        // Params::rates with the phases this run timed replaced
    };

    explicit RunJob(Params params, QObject* parent = nullptr);
    [[nodiscard]] const Params& params() const { return m_params; }
    // Thread-safe: ends recovery at its next step and completes the run with the weights it
    // has (the best held-out ones); unlike cancel(), the run is kept. No effect without recovery.
    void stopRecovery() { m_stopRecovery.cancel(); }

Q_SIGNALS:
    void finished(const sparselab::gui::RunJob::Result& result);
    void runProgress(const sparselab::gui::RunProgress& progress);
    void heatmapFrame(const sparselab::widgets::HeatmapFrame& frame);
    void layerFinished(const sparselab::solve::LayerRecord& row);
    void logLine(const QString& text);
    // Recovery (Params::recovery): the training loss as steps finish (at most ~10 per
    // second, always the last), and every held-out perplexity measured.
    void recoveryStep(qint64 step, double loss);
    void recoveryHeldOut(qint64 step, double perplexity);

protected:
    void execute() override;

private:
    // The steps of execute(), in order. What the views show while the run goes on is made by a
    // RunLiveFeed (run_live_feed.h) and posted through liveSink.
    [[nodiscard]] workflow::CompressionSpec compressionSpec() const;
    [[nodiscard]] RunFeedSink liveSink(const std::map<std::string, model::LinearLayer*>& layers);
    [[nodiscard]] std::shared_ptr<model::CausalLM> copyToPrune() const;
    [[nodiscard]] RunRecord viewRecord(const RunLiveFeed& feed, const workflow::CompressionOutcome& outcome);
    void postLog(const QString& line);

    Params m_params;
    CancelToken m_stopRecovery;
};

// Writes a run's compressed model as a Hugging Face folder (exportHuggingFaceFolder:
// assembled under a temporary name, renamed when complete; nothing left on cancel/failure)
// with a sparselab.json provenance record of the run.
class ExportJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model; // required: the compressed copy
        QString outDir;            // must not exist (the .gguf file when ggufType is set)
        QString ggufType;          // "" = Hugging Face folder; "f32", "f16", "q8_0", "q4_0" = one GGUF file
        RunRecord record;          // for sparselab.json
        EngineThreads threads;
    };
    struct Result {
        QString folder;
        qint64 files = 0;
        qint64 bytes = 0;
        qint64 tensorsReplaced = 0;
        QStringList fileNames;     // what was written, with sizes ("model.safetensors (1.1 MB)")
        double seconds = 0;
    };

    explicit ExportJob(Params params, QObject* parent = nullptr);

Q_SIGNALS:
    void finished(const sparselab::gui::ExportJob::Result& result);

protected:
    void execute() override;

private:
    void exportGgufFile(const std::filesystem::path& out, const QElapsedTimer& timer);
    Params m_params;
};

// A compute device the Run view offers.
struct DeviceChoice {
    QString key;        // "cpu", "cuda"
    QString label;      // "CPU (2 threads)", "CUDA"
    bool available = false;
    QString reason;     // why not, when unavailable (one sentence)
};
// CPU always (labelled with its threads for a model of this hidden size); CUDA when this
// LibTorch build has it and a device is present.
[[nodiscard]] QList<DeviceChoice> availableDevices(qint64 hiddenSize = 0);

// The export overwrite guard (exporting::checkExportTarget): "" when `outDir` may be
// written, else the reason (it exists, or lies inside the model folder).
[[nodiscard]] QString exportTargetProblem(const QString& modelFolder, const QString& outDir);
// "" when a GGUF file may be written at `file` (it must not exist, its folder must, and it
// must end in .gguf), else why not (one sentence).
[[nodiscard]] QString ggufTargetProblem(const QString& file);

// The plain description of a loaded model that widgets display (worker thread safe).
[[nodiscard]] ModelSummary summarizeModel(const model::CausalLM& model, const tokenize::Tokenizer& tokenizer);

// An evaluation as the workspace records it (store::perplexityRecord), shared and immutable.
[[nodiscard]] EvaluationDetailPtr evaluationDetail(const eval::PerplexityResult& result);

// Threads for the window's engine jobs on a model of this hidden size: the engine's default
// (util/engine_threads.h — SparseLab's kernels on one thread per core; the libraries' products
// on one thread below hidden size 1024, one per core from there; 0 = no model yet: one per
// core for both). The jobs run at a lower priority, so the GUI thread keeps its share.
[[nodiscard]] EngineThreads engineThreads(qint64 hiddenSize = 0);

// e.g. "LibTorch 1.13.0, 1 CPU thread" for the log (the threads for this hidden size), or with
// no model yet "LibTorch 1.13.0, 2 CPU cores" (the About box and the log at start-up).
[[nodiscard]] QString engineDescription(qint64 hiddenSize = 0);

} // namespace sparselab::gui

Q_DECLARE_METATYPE(sparselab::gui::LoadModelJob::Result)
Q_DECLARE_METATYPE(sparselab::gui::PerplexityJob::Result)
Q_DECLARE_METATYPE(sparselab::gui::CalibrationPreviewJob::Result)
Q_DECLARE_METATYPE(sparselab::gui::RunJob::Result)
Q_DECLARE_METATYPE(sparselab::gui::ExportJob::Result)
