#pragma once
// The workbench's session: what one window works on, apart from how its views show it.
//   - the loaded dense model, its tokenizer, its summary (the views' description of it) and
//     its shapes for the memory planner;
//   - the compressed models of runs still in memory (for export, reports and analyses), kept
//     newest first while they fit a budget;
//   - the dense perplexity already measured per evaluation setting, so that a run or a sweep
//     with the same settings does not measure it again;
//   - the run ids of the session;
//   - the one JobRunner every engine job of the window goes through (job_runner.h: one job at
//     a time, one job per model), shared with the Teaching Mode window.
// MainWindow owns one and builds its views over it; the controllers (workspace, analysis) take
// it by reference. No views here and no LibTorch. GUI thread only.

#include "job_runner.h"
#include "model_summary.h"
#include "session_types.h"

#include <QList>
#include <QString>

#include <map>
#include <memory>
#include <optional>

namespace sparselab::model { class CausalLM; }
namespace sparselab::tokenize { class Tokenizer; }
namespace sparselab::memory { struct MemoryPlanInput; }

namespace sparselab::gui {

class Workbench {
public:
    // Compressed models kept: the latest always, older ones while their linear weights
    // (float32) stay under this budget.
    static constexpr qint64 kKeptModelBytes = qint64(4) << 30;

    Workbench();
    ~Workbench();
    Workbench(const Workbench&) = delete;
    Workbench& operator=(const Workbench&) = delete;

    [[nodiscard]] JobRunner& jobs() { return m_jobs; }
    [[nodiscard]] const JobRunner& jobs() const { return m_jobs; }

    // ---- the dense model ----
    [[nodiscard]] bool hasModel() const { return m_model != nullptr; }
    [[nodiscard]] const std::shared_ptr<const model::CausalLM>& model() const { return m_model; }
    [[nodiscard]] const std::shared_ptr<const tokenize::Tokenizer>& tokenizer() const { return m_tokenizer; }
    [[nodiscard]] const widgets::ModelSummary& summary() const { return m_summary; }
    // The model's shapes for the memory planner (memory/memory_plan.h); null when its files
    // cannot be described (e.g. a .gguf file).
    [[nodiscard]] const memory::MemoryPlanInput* memoryInput() const { return m_memoryInput.get(); }
    // Replaces the loaded model. The dense perplexities measured so far are forgotten; so are
    // the compressed models of runs when `summary` names another folder (runs belong to the
    // model they compressed). Returns whether it is the same folder as before.
    bool setModel(std::shared_ptr<const model::CausalLM> model, std::shared_ptr<const tokenize::Tokenizer> tokenizer,
                  const widgets::ModelSummary& summary);

    // Where runs of the loaded model keep their resume checkpoints (RunJob::Params::
    // checkpointFolder): a folder of the user's cache named after the model folder's path.
    // Checkpoints made with other settings are discarded by the run that finds them.
    [[nodiscard]] QString checkpointFolder() const;

    // ---- runs ----
    [[nodiscard]] int nextRunId() const { return m_nextRunId; }
    int takeRunId() { return m_nextRunId++; }
    void keepRunModel(int runId, std::shared_ptr<model::CausalLM> model);
    // The compressed model of a run, while it is kept (null otherwise).
    [[nodiscard]] std::shared_ptr<const model::CausalLM> runModel(int runId) const;
    void forgetRunModel(int runId);
    void forgetRunModels();
    // Releases the models of older runs until the kept ones fit kKeptModelBytes (the newest
    // is always kept). Returns the ids of the runs whose models were released.
    QList<int> releaseOldRunModels();

    // ---- the dense perplexity per evaluation setting ----
    struct DenseEvaluation {
        double perplexity = 0;
        EvaluationDetailPtr detail;
    };
    // Known for evaluation text `text` (any spelling of its path), window length `seqlen` and
    // `maxWindows` (0 = all)?
    [[nodiscard]] std::optional<DenseEvaluation> densePerplexity(const QString& text, qint64 seqlen,
                                                                 qint64 maxWindows) const;
    void rememberDensePerplexity(const QString& text, qint64 seqlen, qint64 maxWindows, const DenseEvaluation& value);
    // The dense perplexity a run measured (its evaluation settings), if it measured one.
    // `replace`: overwrite what is known (a run just made) or keep it (runs read back).
    void rememberDensePerplexityOf(const RunRecord& run, bool replace);

private:
    JobRunner m_jobs;
    std::shared_ptr<const model::CausalLM> m_model;
    std::shared_ptr<const tokenize::Tokenizer> m_tokenizer;
    widgets::ModelSummary m_summary;
    std::shared_ptr<const memory::MemoryPlanInput> m_memoryInput;
    std::map<int, std::shared_ptr<model::CausalLM>> m_runModels; // run id → compressed copy
    std::map<QString, DenseEvaluation> m_densePerplexity;        // evaluation settings → dense ppl
    int m_nextRunId = 1;
};

} // namespace sparselab::gui
