#pragma once
// The recovery phase of a run (recovery/recovery.h), shared by `prune --recover`, the
// workbench's Run and `sparselab-cli recover`: the dense teacher is prepared while the model
// is still dense, the training runs after pruning, and its settings and curves go into
// sparselab.json ("recovery") and the workspace record (the run's extra group "recovery").

#include "data/calibration.h"
#include "recovery/recovery.h"
#include "store/workspace.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::workflow {

// What the student is trained against, made before pruning.
struct PreparedTeacher {
    recovery::TeacherSignal signal;
    std::unique_ptr<model::CausalLM> ownedDense; // a dense copy loaded from the model's folder, when needed
};

// `dense` is the model as it is now (dense). `prunedInPlace`: it will be pruned afterwards, so
// the teacher cannot be `dense` itself. LogitKl caches the dense log-probabilities when they fit
// in params.teacherCacheBytes, else (and for BlockMse) a dense model teaches: `dense` itself, or
// a second copy loaded from its folder (streamed when `dense` is).
[[nodiscard]] PreparedTeacher prepareTeacher(const model::CausalLM& dense, bool prunedInPlace,
                                             const data::CalibrationWindows& windows,
                                             const recovery::RecoveryParams& params, const CancelToken* cancel);

// Layers the solver put on a quantization grid: recovery keeps them frozen (recovery.h says why).
[[nodiscard]] std::set<std::string> quantizedLayerNames(const std::vector<solve::LayerRecord>& layers);

// The settings and the outcome as sparselab.json's "recovery" object. `perplexityPruned`: the
// evaluation perplexity of the pruned model before recovery, when measured.
[[nodiscard]] nlohmann::json recoveryJson(const recovery::RecoveryParams& params, const recovery::RecoveryResult& result,
                                          std::optional<double> perplexityPruned);
// The same, as a run's extra group "recovery" in a workspace.
[[nodiscard]] store::ExtraGroup recoveryExtraGroup(const recovery::RecoveryParams& params,
                                                   const recovery::RecoveryResult& result,
                                                   std::optional<double> perplexityPruned);

} // namespace sparselab::workflow
