#pragma once
// Recovery after pruning: the surviving weights of a pruned model are trained to imitate the
// dense model (distillation), while every pruned weight stays exactly zero.
//
//   mask = (W ≠ 0) for every linear layer, taken when recovery starts;
//   each step: loss on a batch of calibration windows → backward → gradients masked → Adam
//   (β = 0.9/0.999, ε = 1e-8, no weight decay, torch.optim.Adam's arithmetic) → W ⊙= mask.
//
// Two losses:
//   - LogitKl: KL(p_dense ‖ p_pruned) of the next-token distributions at every position of a
//     window, averaged over positions. The dense log-probabilities are computed once and
//     kept (TeacherSignal::logProbs) when they fit, or by a dense model per batch.
//   - BlockMse: block by block, the pruned block's output on its own (pruned) inputs is
//     matched to the dense block's output on the dense inputs (mean squared error), `steps`
//     steps per block; needs only the current block's weights (works on streamed models).
//
// Layers on a quantization grid (GPTQ bits < 16) are kept frozen: their values are exactly
// the grid points the exporters pack losslessly, and an Adam step of lr ~1e-3 is far below a
// 4-bit grid spacing, so re-projecting after each step would round almost every update away
// while still costing the packing guarantee for the few that cross a boundary.
//
// Held-out windows (heldOutWindows) come from the calibration text, never the evaluation
// text, and never overlap a training window. Their perplexity is measured before training and
// every `evalEvery` steps (LogitKl; BlockMse measures it before and after, on models in
// memory). With LogitKl the weights of the best evaluation are the ones kept at the end, and
// with `patience` > 0 training stops after that many evaluations without improvement.
//
// Deterministic for a seed on one thread. Cancel is checked before every step and before
// every update: a cancelled recovery returns (stoppedBy "cancel") with the weights of the
// last finished step — never a half-applied update. `stop` ends training early as if the
// steps were done (stoppedBy "stop"): the best held-out weights are kept, as at the end.

#include "data/calibration.h"
#include "util/progress.h"

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::recovery {

enum class RecoveryLoss { LogitKl, BlockMse };
enum class LearningRateSchedule { Constant, Cosine };

[[nodiscard]] const char* lossName(RecoveryLoss loss);                 // "kl", "block"
[[nodiscard]] RecoveryLoss parseLoss(const std::string& text, const std::string& option);
[[nodiscard]] const char* scheduleName(LearningRateSchedule schedule); // "constant", "cosine"
[[nodiscard]] LearningRateSchedule parseSchedule(const std::string& text, const std::string& option);

struct RecoveryParams {
    int64_t steps = 0;                    // optimizer steps (BlockMse: per block); 0 = no recovery
    RecoveryLoss loss = RecoveryLoss::LogitKl;
    double learningRate = 2e-3;           // Adam's peak learning rate (docs/recovery.md: best on the demo)
    LearningRateSchedule schedule = LearningRateSchedule::Cosine; // decay to 0 after warm-up
    int64_t warmupSteps = 0;              // linear warm-up from 0 (counted within `steps`)
    int64_t batchWindows = 8;             // calibration windows per step
    uint64_t seed = 0;                    // order of the windows
    bool trainNorms = false;              // also train norm weights/biases and linear biases
    int64_t heldOutWindows = 16;          // held out from the calibration text; 0 = none
    int64_t evalEvery = 0;                // steps between held-out evaluations; 0 = steps / 10
    int64_t patience = 0;                 // evaluations without improvement before stopping; 0 = never
    std::set<std::string> frozenLayers;   // linear layer names (checkpoint tensor names) not trained
    // Bytes the cached dense log-probabilities may take; above it the teacher model is run per
    // batch instead (LogitKl).
    int64_t teacherCacheBytes = int64_t(2) << 30;

    [[nodiscard]] bool enabled() const { return steps > 0; }
    // InputError naming the option (as on the CLI: "--recover-lr", …) for a value out of range.
    void validate() const;
};

// What the dense model says, for LogitKl: either its log-probabilities on the training
// windows ([windows, seqlen, vocab] float32 on the student's device), or the model itself.
struct TeacherSignal {
    torch::Tensor logProbs;
    const model::CausalLM* model = nullptr;
};

// The dense model's next-token log-probabilities on `windows`, `batch` windows per forward.
[[nodiscard]] torch::Tensor teacherLogProbs(const model::CausalLM& dense, const data::CalibrationWindows& windows,
                                            int64_t batch, const CancelToken* cancel = nullptr);
// Bytes teacherLogProbs would take for these windows on this model.
[[nodiscard]] int64_t teacherLogProbsBytes(const model::CausalLM& model, const data::CalibrationWindows& windows);

// Up to `count` windows of `seqlen` tokens from `ids`, none overlapping a window of `train`,
// spread evenly over the text (non-overlapping, at multiples of seqlen). InputError naming
// `textFile` when not one fits.
[[nodiscard]] data::CalibrationWindows heldOutWindows(const std::vector<int32_t>& ids,
                                                      const data::CalibrationWindows& train, int64_t count,
                                                      const std::filesystem::path& textFile);

// The LogitKl loss on a batch: Σ_positions KL(p_teacher ‖ p_student) / positions, with
// `teacherLogProbs` [batch, seqlen, vocab] and `ids` [batch, seqlen] int64 on the student's
// device. Differentiable with respect to whatever student tensors require grad (call it
// with grad mode on).
[[nodiscard]] torch::Tensor distillationLoss(const model::CausalLM& student, const torch::Tensor& teacherLogProbs,
                                             const torch::Tensor& ids);

struct HeldOutPoint {
    int64_t step = 0;                     // steps finished when measured (0 = before training)
    double perplexity = 0.0;
};

struct RecoveryResult {
    std::vector<double> loss;             // the training loss of every step, in order
                                          // (BlockMse: block after block)
    std::vector<HeldOutPoint> heldOut;    // held-out perplexity as training went
    int64_t stepsRun = 0;
    int64_t bestStep = -1;                // the held-out evaluation whose weights were kept; -1: the last
    std::string stoppedBy;                // "steps", "early-stop", "stop" or "cancel"
    int64_t trainedTensors = 0;           // tensors that were trained
    int64_t trainedWeights = 0;           // their entries that could move (unmasked)
    int64_t nonzeroBefore = 0, nonzeroAfter = 0; // nonzero linear weights (after ≤ before)
    double seconds = 0.0;
};

struct RecoveryObserver {
    ProgressCallback progress;            // stage "recovery", steps done / total
    const CancelToken* cancel = nullptr;
    const CancelToken* stop = nullptr;    // "stop training now, keep the result" (see above)
    std::function<void(int64_t step, double loss)> onStep;         // after every update
    std::function<void(const HeldOutPoint&)> onHeldOut;           // after every evaluation
    std::function<void(const std::string&)> log;
};

// Trains `student` in place. `train` and `heldOut` are windows of the same seqlen; `heldOut`
// may be empty. LogitKl needs `teacher` (logProbs for exactly `train`, or a model), BlockMse
// a teacher model. A streamed student is only supported with BlockMse (InputError otherwise).
[[nodiscard]] RecoveryResult recoverModel(model::CausalLM& student, const TeacherSignal& teacher,
                                          const data::CalibrationWindows& train,
                                          const data::CalibrationWindows& heldOut, const RecoveryParams& params,
                                          const RecoveryObserver& observer = {});

} // namespace sparselab::recovery
