#pragma once
// Trade-off work for the workbench, off the GUI thread, in the shape of engine_jobs.h
// (Params in, Result out, progress/finished/failed/cancelled, cancel from any thread):
//
//   SensitivityJob  analysis::scanSensitivity on the loaded (dense) model with the Calibration
//                   view's windows: every linear layer at every (sparsity, bits) level from one
//                   Hessian factorisation per layer. The model is not modified.
//   SweepJob        analysis::runSweepPoints over a grid of methods × layer groups × bits ×
//                   sparsities, each point a prune of a fresh copy and a perplexity;
//   ReportJob       the hand-over report (core report/report.h) of one run of the session:
//                   the run's compressed model, still in memory, is written to a private
//                   temporary folder with its provenance (as Export would write it), then both
//                   models are measured on the run's evaluation text (perplexity, KL, greedy
//                   continuations) and the HTML and/or PDF are rendered and written
//                   atomically. Nothing is left behind on failure or cancel. A run read
//                   from a workspace (no model in memory) is reported from the workspace: its
//                   recorded export folder, with the model's hashes checked.
//
//   OwlJob          OWL's per-block sparsities (allocation/owl.h) for the loaded (dense)
//                   model with the Calibration view's windows, as the recipe the plan takes.
//   SearchJob       the end-to-end allocation search (allocation/search.h) on the loaded
//                   model with the Calibration view's windows: the best KL per generation as
//                   it goes (generationFinished), the per-layer levels as a recipe at the end.
//                   stop() ends the search keeping the best levels so far.
//
// No LibTorch in this header; analysis_jobs.cpp is one of the GUI's engine translation units.

#include "engine_jobs.h"

#include <QList>
#include <QString>
#include <QStringList>
#include <QVector>

#include <cmath>
#include <memory>
#include <vector>

namespace sparselab::analysis {
struct SensitivityResult;
struct SweepResult;
} // namespace sparselab::analysis
namespace sparselab::report {
struct ReportData;
struct ReportParams;
} // namespace sparselab::report

namespace sparselab::gui {

class SensitivityJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model;         // required: the dense model
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        CalibrationSettings calibration;
        std::vector<double> sparsities;  // each in [0, 1)
        std::vector<int> bits;           // each 2..8 or 16
        PlanMethod method = PlanMethod::SparseGpt; // SparseGPT, Magnitude or Wanda
        double damp = 0.01;
        qint64 blocksize = 128;
        EngineThreads threads;
    };
    struct Result {
        std::shared_ptr<const analysis::SensitivityResult> scan; // with model/calibration provenance
        double seconds = 0;
    };

    explicit SensitivityJob(Params params, QObject* parent = nullptr);

Q_SIGNALS:
    void finished(const sparselab::gui::SensitivityJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

class OwlJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model;         // required: the dense model
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        CalibrationSettings calibration;
        double targetSparsity = 0.5; // the average over blocks, exact
        EngineThreads threads;
    };
    struct Result {
        QByteArray recipeJson;  // SparseGPT with the block sparsities, one rule per layer
        QString summary;        // one line for the log: the block sparsities
    };

    explicit OwlJob(Params params, QObject* parent = nullptr);

Q_SIGNALS:
    void finished(const sparselab::gui::OwlJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

class SearchJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model;         // required: the dense model
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        CalibrationSettings calibration;
        double targetSparsity = 0.5;  // the average linear sparsity, exact
        qint64 budgetBytes = 0;       // > 0: the whole model's bytes instead, sparsity × 16/8/4 bits
        qint64 generations = 200;
        double timeLimitSeconds = 0;  // 0 = none
        quint64 seed = 0;
        EngineThreads threads;
    };
    struct LayerLevel {
        QString name;                 // module name
        qint64 block = 0;
        QString kind;                 // e.g. "mlp.down_proj"
        double sparsity = 0;
        int bits = 16;
    };
    struct Result {
        QByteArray recipeJson;        // SparseGPT, one rule per layer
        QString summary;              // one line for the log
        QList<LayerLevel> profile;
        double uniformKl = 0, bestKl = 0;
        qint64 generations = 0;
        QString stoppedBy;            // "generations", "time" or "stop"
    };

    explicit SearchJob(Params params, QObject* parent = nullptr);
    // Thread-safe: ends the search after the current generation, keeping the best so far.
    void stop() { m_stop.cancel(); }

Q_SIGNALS:
    // Once, before the database is built: the layers in the search's order, the uniform level
    // (< 0 with a size budget) and OWL's per-block sparsities at it (empty with a size budget).
    void layersKnown(const QList<sparselab::gui::SearchJob::LayerLevel>& layers, double uniform,
                     const QVector<double>& owlPerBlock);
    // After every generation; `sparsity` (per layer, layersKnown's order) only when the best
    // levels changed, else empty.
    void generationFinished(qint64 generation, double bestKl, const QVector<double>& sparsity);
    void finished(const sparselab::gui::SearchJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
    CancelToken m_stop;
};

// A sweep (pipeline/sweep.h) over the loaded model: every grid point prunes a fresh copy of the
// dense model with the Calibration view's windows and measures perplexity on the Evaluation
// view's text. pointFinished() carries the sweep so far after each point (live table and
// plots); cancel stops between and inside points, keeping nothing.
class SweepJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model;         // required: the dense model
        std::shared_ptr<const tokenize::Tokenizer> tokenizer; // required
        CalibrationSettings calibration;
        EvaluationSettings evaluation;    // text, seqlen (0 = calibration's), max windows, batch
        std::vector<double> sparsities;
        std::vector<int> bits;
        std::vector<PlanMethod> methods;  // SparseGpt, Magnitude, Wanda
        std::vector<std::string> groups;  // "all", "attention", "mlp"
        std::vector<std::string> allocations{"uniform"}; // "uniform", "owl", "search" (pipeline/sweep.h)
        int64_t searchGenerations = 50;   // the search's generations, one search per sparsity level
        uint64_t searchSeed = 0;
        double densePerplexity = NAN;     // the dense model's perplexity for these evaluation settings, when known: not measured again
        EngineThreads threads;
    };
    struct Result {
        std::shared_ptr<const analysis::SweepResult> sweep;
        double seconds = 0;
    };

    explicit SweepJob(Params params, QObject* parent = nullptr);
    // Points in the grid (0 when a list is empty).
    [[nodiscard]] static qint64 pointCount(const Params& params);

Q_SIGNALS:
    void finished(const sparselab::gui::SweepJob::Result& result);
    void pointFinished(const std::shared_ptr<const sparselab::analysis::SweepResult>& sweepSoFar);

protected:
    void execute() override;

private:
    Params m_params;
};

class ReportJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        std::shared_ptr<const model::CausalLM> model; // the run's compressed copy, or null with:
        QString originFile, originId; // a workspace run: report::workspaceReportParams (its export
                                      // folder, hashes checked), as `sparselab-cli report W.h5 --run ID`
        RunRecord record;             // the run (its settings, statistics, evaluation text)
        QString htmlPath, pdfPath;    // at least one; must not be an input; their folders must exist
        QString evalTextPath;         // used when the run measured no perplexity
        QStringList prompts;          // greedy continuation prompts (empty = the report's defaults)
        qint64 newTokens = 40;
        qint64 maxWindows = 0;        // evaluation windows for KL/perplexity; 0 = the run's setting
        std::shared_ptr<const analysis::SweepResult> sweep;             // optional plots
        std::shared_ptr<const analysis::SensitivityResult> sensitivity; // optional heat-map
        QList<RunRecord> sessionRuns; // listed in section 7 (empty = no section 7)
        QString workspaceFile;        // shown in section 7 ("" = not saved)
        EngineThreads threads;
    };
    struct Result {
        QString htmlPath, pdfPath;    // what was written ("" = not asked)
        double densePerplexity = 0, compressedPerplexity = 0;
        double meanKl = 0, top1Agreement = 0;
        qint64 windows = 0;
        double seconds = 0;
    };

    explicit ReportJob(Params params, QObject* parent = nullptr);

    // "" when the outputs may be written, else the one-line reason (wrong extension, missing
    // folder, an input would be overwritten, nothing asked).
    [[nodiscard]] static QString outputProblem(const Params& params);

Q_SIGNALS:
    void finished(const sparselab::gui::ReportJob::Result& result);

protected:
    void execute() override;

private:
    void applyReportOptions(report::ReportParams& params) const; // prompts, tokens, windows
    void writeReport(const report::ReportData& data, const QElapsedTimer& timer);
    Params m_params;
};

} // namespace sparselab::gui

Q_DECLARE_METATYPE(sparselab::gui::SensitivityJob::Result)
Q_DECLARE_METATYPE(sparselab::gui::ReportJob::Result)
Q_DECLARE_METATYPE(sparselab::gui::SweepJob::Result)
