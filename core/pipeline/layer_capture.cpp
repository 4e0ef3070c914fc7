#include "pipeline/layer_capture.h"

#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "solve/solver.h"
#include "util/errors.h"

#include <algorithm>

namespace sparselab::pipeline {

LayerProblem captureLayerProblem(const model::CausalLM& model, const data::CalibrationWindows& windows,
                                 const std::string& layer, int64_t forwardBatch, const ProgressCallback& progress,
                                 const CancelToken* cancel)
{
    torch::NoGradGuard noGrad;
    const model::LinearLayer* found = nullptr;
    for (int64_t b = 0; b < model.numBlocks() && !found; ++b)
        for (const auto& l : model.linears(b))
            if (l.name == layer || moduleName(l.name) == layer) {
                found = &l;
                break;
            }
    if (!found)
        throw InputError("layer '" + layer + "': the model has no such linear layer");
    if (windows.nsamples < 1 || int64_t(windows.ids.size()) != windows.nsamples * windows.seqlen)
        throw std::invalid_argument("captureLayerProblem: malformed calibration windows");
    model::requireWindowFits(model.config(), windows.seqlen);

    LayerProblem problem;
    problem.name = moduleName(found->name);
    problem.block = found->block;
    ProgressReporter reporter(progress, "capture", windows.nsamples);
    reporter.report(0, "embedding calibration windows");
    const auto ids = torch::from_blob(const_cast<int64_t*>(windows.ids.data()), {windows.nsamples, windows.seqlen},
                                      torch::kInt64)
                         .to(model.device());
    const int64_t batch = std::max<int64_t>(1, forwardBatch);
    solve::HessianAccumulator hessian(found->weight.size(1), model.device());
    // Window batches go through the blocks one batch at a time: only one batch's activations live.
    for (int64_t start = 0; start < windows.nsamples; start += batch) {
        throwIfCancelled(cancel);
        const int64_t end = std::min(windows.nsamples, start + batch);
        auto hidden = model.embed(ids.slice(0, start, end));
        for (int64_t b = 0; b < found->block; ++b) {
            throwIfCancelled(cancel);
            hidden = model.runBlock(b, hidden);
        }
        const std::string target = found->name;
        (void)model.runBlock(found->block, hidden, [&](const model::LinearLayer& l, const torch::Tensor& x) {
            if (l.name == target)
                hessian.addSequences(x);
        });
        reporter.report(end, problem.name);
    }
    problem.weight = found->weight.to(torch::kCPU).clone();
    problem.hessian = hessian.hessian().to(torch::kCPU).clone();
    problem.samples = hessian.samples();
    reporter.report(windows.nsamples, problem.name);
    return problem;
}

} // namespace sparselab::pipeline
