#pragma once
// What the workbench shows while a compression run goes on, made from what the run reports
// (workflow::RunObserver): the overall progress with its ETA and stage (RunProgress), the Live
// Solver's heat-map frames of the layer being solved, each finished layer's record, the
// recovery's loss curve and held-out perplexity, and log lines. RunJob (engine_jobs.h) makes one
// per run and hands each product to its RunFeedSink, which posts it to the GUI thread.
//
// Progress is one PhasedProgress (job_progress.h) over the run's phases — tokenizing, pruning,
// perplexity before, perplexity of the pruned model, recovery, perplexity after — each weighed
// by its expected seconds from the CostRates. Pruning advances per decoder block: collecting
// the block's inputs (kCollect of it), solving its layers (kSolve, by layers solved), passing
// the inputs on (the rest, done when the next block starts). Every block costs about the same,
// so the block boundaries fall on the right time. Progress is throttled to ~10 a second and
// frames to one per 100 ms; a layer's last frame, and the final state, always go out.
//
// Runs on the job's worker thread only; no LibTorch here (frames are made by the sink).

#include "job_progress.h"
#include "session_types.h"

#include "workflow/compression_run.h"

#include <QList>
#include <QString>

#include <chrono>
#include <functional>
#include <map>
#include <string>

namespace sparselab::gui {

// Where the feed delivers what it makes (RunJob posts each to the GUI thread).
struct RunFeedSink {
    // Overall share in 1/10000, and the text for the status bar beside the RunProgress.
    std::function<void(const RunProgress& progress, qint64 done, const QString& text)> progress;
    // The heat-map of `layer` with its first `colsFinal` columns final, after `blocksDone`
    // of `blocksTotal` column blocks.
    std::function<void(const QString& layer, int64_t colsFinal, int64_t blocksDone, int64_t blocksTotal)> frame;
    std::function<void(const solve::LayerRecord& record)> layerFinished;
    std::function<void(int64_t step, double loss)> recoveryStep;
    std::function<void(int64_t step, double perplexity)> recoveryHeldOut;
    std::function<void(const QString& line)> log;
};

class RunLiveFeed {
public:
    // A linear layer of the model the run compresses.
    struct Layer {
        int64_t block = 0; // decoder block
        int64_t cols = 0;  // input columns
    };

    // The run of `spec` (made from these settings; it must outlive the feed) over `plan` on a
    // model of `numBlocks` decoder blocks; the clock starts now.
    RunLiveFeed(const workflow::CompressionSpec& spec, const QList<PlanRow>& plan, int64_t numBlocks,
                const CalibrationSettings& calibration, const EvaluationSettings& evaluation,
                const RecoverySettings& recovery, const CostRates& rates, RunFeedSink sink);

    // The compressed model's linear layers by module name (frames and the layer progress).
    void setLayers(std::map<std::string, Layer> layers) { m_layers = std::move(layers); }
    // The observer to hand to workflow::runCompression. `measured` gets the rates the run shows
    // as it goes; the feed and `measured` must outlive the run.
    [[nodiscard]] workflow::RunObserver observer(CostRates& measured, const CancelToken* cancel,
                                                 const CancelToken* stopRecovery);
    // The rest of the rates the finished run measured (pruning, recovery, evaluation).
    void measureRates(const workflow::CompressionOutcome& outcome, CostRates& measured) const;
    // The run is done: the final state (100 %, "Done"), delivered at once.
    void finish();

    [[nodiscard]] int64_t layerCount() const { return m_layerCount; }
    [[nodiscard]] double elapsedSeconds() const { return m_progress.elapsedSeconds(); }

private:
    enum Phase { Tokenize = 0, Prune = 1, Before = 2, Pruned = 3, Recover = 4, After = 5 };
    static constexpr double kCollect = 0.45;
    static constexpr double kSolve = 0.10;

    void onPhase(workflow::RunPhase phase, const workflow::RunFacts& facts, CostRates& measured);
    void onPruneProgress(const Progress& p);
    void updatePruneFraction();
    void report(bool force);
    void postFrame(const std::string& layer, bool force);

    const workflow::CompressionSpec& m_spec;
    QList<PlanRow> m_plan;
    std::map<std::string, Layer> m_layers;
    CalibrationSettings m_calibration;
    EvaluationSettings m_evaluation;
    RecoverySettings m_recovery;
    CostRates m_rates;
    RunFeedSink m_sink;

    PhasedProgress m_progress;
    QString m_stage;
    int64_t m_layersDone = 0;
    int64_t m_layerCount = 0;
    QString m_currentLayer;
    int64_t m_currentLayerIndex = 0; // 0-based among the layers solved, of m_currentLayer
    double m_layerFraction = 0;
    int64_t m_numBlocks = 1;
    int64_t m_block = 0;       // block being worked on
    double m_blockShare = 0;   // how much of it is done, [0, 1)
    std::map<int64_t, int64_t> m_layersPerBlock; // block → layers to solve
    std::map<int64_t, int64_t> m_solvedPerBlock; // block → layers solved
    std::map<std::string, int64_t> m_blocksize;  // module name → SparseGPT column block
    std::map<std::string, std::pair<int64_t, int64_t>> m_columnBlocks; // module name → last blocks done/total
    std::chrono::steady_clock::time_point m_lastEmit{};
    bool m_emittedOnce = false;
    std::chrono::steady_clock::time_point m_lastFrame{};
    std::chrono::steady_clock::time_point m_lastStepPost{}; // the loss curve's last point
    double m_pruneUnits = 0;    // windows × tokens × blocks to prune
    double m_recoveryUnits = 0; // token-blocks recovery runs through
};

} // namespace sparselab::gui
