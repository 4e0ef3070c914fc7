#include "workflow/recovery_step.h"

#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"

namespace sparselab::workflow {

using json = nlohmann::json;

PreparedTeacher prepareTeacher(const model::CausalLM& dense, bool prunedInPlace, const data::CalibrationWindows& windows,
                               const recovery::RecoveryParams& params, const CancelToken* cancel)
{
    PreparedTeacher teacher;
    if (params.loss == recovery::RecoveryLoss::LogitKl
        && recovery::teacherLogProbsBytes(dense, windows) <= params.teacherCacheBytes) {
        teacher.signal.logProbs = recovery::teacherLogProbs(dense, windows, 8, cancel);
        return teacher;
    }
    if (!prunedInPlace) {
        teacher.signal.model = &dense;
        return teacher;
    }
    const bool streamed = params.loss == recovery::RecoveryLoss::BlockMse && dense.streamed();
    teacher.ownedDense = model::CausalLM::load(dense.folder(), dense.device(), streamed);
    teacher.signal.model = teacher.ownedDense.get();
    return teacher;
}

std::set<std::string> quantizedLayerNames(const std::vector<solve::LayerRecord>& layers)
{
    std::set<std::string> names;
    for (const auto& l : layers)
        if (!l.dense && l.options.quant.enabled())
            names.insert(l.name + ".weight");
    return names;
}


json recoveryJson(const recovery::RecoveryParams& p, const recovery::RecoveryResult& r,
                  std::optional<double> perplexityPruned)
{
    json heldOut = json::array();
    for (const auto& point : r.heldOut)
        heldOut.push_back({{"step", point.step}, {"perplexity", point.perplexity}});
    json out = {{"loss", recovery::lossName(p.loss)},
                {"steps", p.steps},
                {"learning_rate", p.learningRate},
                {"schedule", recovery::scheduleName(p.schedule)},
                {"warmup_steps", p.warmupSteps},
                {"batch_windows", p.batchWindows},
                {"seed", p.seed},
                {"train_norms", p.trainNorms},
                {"held_out_windows", p.heldOutWindows},
                {"eval_every", p.evalEvery},
                {"patience", p.patience},
                {"frozen_layers", std::vector<std::string>(p.frozenLayers.begin(), p.frozenLayers.end())},
                {"steps_run", r.stepsRun},
                {"stopped_by", r.stoppedBy},
                {"best_step", r.bestStep},
                {"trained_tensors", r.trainedTensors},
                {"trained_weights", r.trainedWeights},
                {"nonzero_before", r.nonzeroBefore},
                {"nonzero_after", r.nonzeroAfter},
                {"seconds", r.seconds},
                {"loss_curve", r.loss},
                {"held_out", heldOut}};
    if (perplexityPruned)
        out["perplexity_pruned"] = *perplexityPruned;
    return out;
}

store::ExtraGroup recoveryExtraGroup(const recovery::RecoveryParams& p, const recovery::RecoveryResult& r,
                                     std::optional<double> perplexityPruned)
{
    store::ExtraGroup group;
    group.path = "recovery";
    group.attributes = {{"loss", std::string(recovery::lossName(p.loss))},
                        {"steps", p.steps},
                        {"learning_rate", p.learningRate},
                        {"schedule", std::string(recovery::scheduleName(p.schedule))},
                        {"warmup_steps", p.warmupSteps},
                        {"batch_windows", p.batchWindows},
                        {"seed", int64_t(p.seed)},
                        {"train_norms", int64_t(p.trainNorms)},
                        {"held_out_windows", p.heldOutWindows},
                        {"eval_every", p.evalEvery},
                        {"patience", p.patience},
                        {"steps_run", r.stepsRun},
                        {"stopped_by", r.stoppedBy},
                        {"best_step", r.bestStep},
                        {"nonzero_before", r.nonzeroBefore},
                        {"nonzero_after", r.nonzeroAfter},
                        {"seconds", r.seconds}};
    if (perplexityPruned)
        group.attributes["perplexity_pruned"] = *perplexityPruned;
    if (!r.loss.empty())
        group.datasets.push_back(store::Dataset::float64("loss_curve", r.loss));
    std::vector<int64_t> steps;
    std::vector<double> perplexities;
    for (const auto& point : r.heldOut) {
        steps.push_back(point.step);
        perplexities.push_back(point.perplexity);
    }
    if (!steps.empty()) {
        group.datasets.push_back(store::Dataset::int64("held_out_step", steps));
        group.datasets.push_back(store::Dataset::float64("held_out_perplexity", perplexities));
    }
    if (!p.frozenLayers.empty())
        group.datasets.push_back(store::Dataset::text(
            "frozen_layers", std::vector<std::string>(p.frozenLayers.begin(), p.frozenLayers.end())));
    return group;
}

} // namespace sparselab::workflow
