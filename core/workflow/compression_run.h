#pragma once
// One compression run, the same for every front end (`sparselab-cli prune` and the
// workbench's Run are thin adapters over it):
//
//   read the texts (hashed as they are read) → tokenize → draw the calibration windows →
//   check the plan → [perplexity before] → [recovery: the dense teacher's signal] → prune,
//   checkpointing every finished block and resuming from earlier checkpoints when a workspace
//   or a checkpoint folder is given → [perplexity before, when the dense model is kept beside the pruned one] →
//   [recovery: perplexity of the pruned model, then distillation from the dense teacher
//   (workflow/recovery_step.h)] → perplexity after → one store::RunRecord and the
//   sparselab.json provenance, both made here and nowhere else.
//
// So a feature that changes what a run does (allocation, recovery, a device) lands here once,
// and both front ends record the same sparselab.json and the same workspace entry: the texts'
// hashes and token counts are taken when the run reads them, not when it is later saved.
//
// Front ends still own what is theirs: parsing options and checking them before slow work
// (the memory plan, the export target), showing progress, exporting, and the order of the
// dense evaluation (the CLI measures it before pruning, in place; the workbench prunes a copy
// and measures the dense model after the solver, so its live view moves at once).

#include "data/calibration.h"
#include "eval/perplexity.h"
#include "pipeline/prune_pipeline.h"
#include "recovery/recovery.h"
#include "store/workspace.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sparselab::model { class CausalLM; }
namespace sparselab::tokenize { class Tokenizer; }

namespace sparselab::workflow {

// What to run. Paths are used as given and recorded absolute.
struct CompressionSpec {
    // The model as the user named it: its folder, or the .gguf it was converted from (recorded
    // as `source_model` with the hash of that file). Empty: the model's folder.
    std::filesystem::path source;
    std::filesystem::path calibrationFile;
    data::CalibrationParams calibration;     // nsamples, seqlen, seed (vocabSize set by the run)
    std::optional<std::filesystem::path> evaluationFile; // none: no perplexities
    eval::PerplexityParams evaluation;       // seqlen 0 = the calibration seqlen; maxWindows; batch
    pipeline::PruneParams prune;             // recipe and its source name, layer filter, true
                                             // sequential, Hessian precision, forward batch
    // Recovery after pruning (off unless recovery.steps > 0). Layers the solver quantized are
    // added to recovery.frozenLayers by the run.
    recovery::RecoveryParams recovery;
    std::string device = "cpu";              // as recorded: "cpu", "cuda", "cuda:0"
    bool streamed = false;                   // the model was loaded with one block resident
    std::string label;                       // the run's name; empty: recipeLabel(recipe, source)
    std::string createdBy;                   // e.g. "sparselab-cli prune", "sparselab (GUI)"
    // Checkpoints in `workspace`.resume/ (store/resume.h) and the model's identity checked
    // against the workspace's; recordRun() then appends the run there.
    std::optional<std::filesystem::path> workspace;
    // Without a workspace: checkpoints in this folder (the workbench's runs), so that a run
    // that was cancelled or died resumes when it is started again with the same settings.
    // The caller removes them (clearCheckpoints) once the run's result is safe. Unlike a
    // workspace's, a checkpoint that cannot be written here is logged and the run goes on
    // without further checkpoints.
    std::optional<std::filesystem::path> checkpointFolder;
    // Keep the record's zero masks even without a workspace (the workbench keeps every run's
    // record for a later save). They are read back from the pruned model — for a streamed
    // model, every spilled block — so a run whose record is not stored skips them.
    bool keepRecordMasks = false;
    // The dense perplexity already measured with the same model, text and evaluation settings:
    // used as the run's "before" instead of measuring it again.
    std::optional<store::PerplexityRecord> knownBefore;
};

// The run's phases, in order, as onPhase announces them.
enum class RunPhase { Tokenizing, Pruning, PerplexityBefore, PerplexityPruned, Recovering, PerplexityAfter, Recording };

// Facts a progress display can weigh the phases by, filled in as they become known.
struct RunFacts {
    int64_t calibrationBytes = 0;
    int64_t evaluationBytes = 0;
    int64_t calibrationTokens = 0;           // 0 until the text is tokenized
    int64_t evaluationTokens = 0;            // 0 until the text is tokenized
};

// Everything a caller watches a run with; every member is optional. Callbacks run on the
// thread that calls runCompression.
struct RunObserver {
    pipeline::PruneObserver prune;           // progress, cancel, per layer/block callbacks, log
    // After the pipeline's onBlockFinished and the block's checkpoint (with a workspace).
    pipeline::BlockFinishedCallback afterCheckpoint;
    std::function<void(RunPhase, const RunFacts&)> onPhase;
    // Progress inside the phases that are not pruning: the evaluator's ("perplexity", windows),
    // and tokenizing's end.
    std::function<void(RunPhase, const Progress&)> onPhaseProgress;
    // Recovery's steps and held-out measurements, as they happen (progress goes to
    // onPhaseProgress with RunPhase::Recovering).
    std::function<void(int64_t step, double loss)> onRecoveryStep;
    std::function<void(const recovery::HeldOutPoint&)> onRecoveryHeldOut;
    // Set from any thread: recovery ends at the next step and the run goes on with the weights
    // it has (the workbench's "Stop Recovery"); unlike cancel, the run is completed.
    const CancelToken* stopRecovery = nullptr;
};

struct CompressionOutcome {
    store::RunRecord record;                 // complete but for id, exportPath, sizeBytes and
                                             // export/total timings (recordRun fills them); its
                                             // masks only with a workspace or keepRecordMasks
    nlohmann::json provenance;               // sparselab.json as exportHuggingFaceFolder writes it
    pipeline::PruneResult prune;             // reports, Hessian deviation, seconds
    std::optional<eval::PerplexityResult> before, after; // as measured (before: not when known)
    std::optional<eval::PerplexityResult> pruned; // after pruning, before recovery (with recovery)
    std::optional<recovery::RecoveryResult> recovery;
    recovery::RecoveryParams recoveryParams; // as run (frozen layers filled in)
    std::optional<store::ModelIdentity> identity; // when a workspace was given (files hashed)
    RunFacts facts;
    double startedAtSeconds = 0;             // steady-clock seconds when the run started
};

// Runs `spec` on `model`, compressing it in place. With `denseBeside` (the same model,
// uncompressed; the workbench prunes a copy) the dense perplexity is measured on it after
// the solver, else on `model` before pruning. InputError naming the file or option on bad
// input; CancelledError when cancelled (saying which checkpoints are kept, if any).
[[nodiscard]] CompressionOutcome runCompression(model::CausalLM& model, const tokenize::Tokenizer& tokenizer,
                                                const CompressionSpec& spec, const RunObserver& observer = {},
                                                const model::CausalLM* denseBeside = nullptr);

// Appends the run to spec.workspace (with the model identity and settings), records where it
// was exported and its size and the export/total seconds, and removes the run's resume
// checkpoints. Returns the run's id.
std::string recordRun(const CompressionSpec& spec, CompressionOutcome& outcome, const std::string& exportPath,
                      int64_t sizeBytes, double exportSeconds);

// Removes the run's resume checkpoints (spec.checkpointFolder, else spec.workspace's), if any.
void clearCheckpoints(const CompressionSpec& spec);

// A short label for lists: "sparsegpt 50%", "sparsegpt 2:4 4-bit", "recipe R.json".
[[nodiscard]] std::string recipeLabel(const pipeline::Recipe& recipe, const std::string& source);

// Fails early (InputError naming the file) unless `file` is absent or a readable workspace
// whose recorded model (if any) has the same files as `model` (one workspace per model).
void checkWorkspaceFor(const std::filesystem::path& file, const store::ModelIdentity& model);

// The run's text, read whole (util/atomic_file.h readTextFile); InputError "FILE: the text is
// empty" when it holds nothing but white space.
[[nodiscard]] std::string readRunText(const std::filesystem::path& file);

} // namespace sparselab::workflow
