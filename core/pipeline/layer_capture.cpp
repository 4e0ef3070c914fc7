#include "pipeline/layer_capture.h"

#include "model/causal_lm.h"
#include "pipeline/block_walker.h"
#include "pipeline/prune_pipeline.h"
#include "solve/solver.h"
#include "util/errors.h"

#include <algorithm>

namespace sparselab::pipeline {

LayerProblem captureLayerProblem(const model::CausalLM& model, const data::CalibrationWindows& windows,
                                 const std::string& layer, int64_t forwardBatch, const Watch& watch)
{
    const ProgressCallback& progress = watch.progress;
    const CancelToken* cancel = watch.cancel;
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
    solve::HessianAccumulator hessian(found->weight.size(1), model.device());
    // The windows through the dense blocks before the layer's, then through its block with a
    // hook that accumulates this layer's inputs only. Progress: one unit per block walked.
    const int64_t units = found->block + 1;
    ProgressReporter blocks(progress, "capture", units);
    BlockWalker walker(model, windows, forwardBatch, cancel);
    for (int64_t b = 0; b < found->block; ++b) {
        blocks.report(b, "block " + std::to_string(b));
        walker.advance(b);
    }
    const std::string target = found->name;
    walker.observe(found->block, [&](const model::LinearLayer& l, const torch::Tensor& x) {
        if (l.name == target)
            hessian.addSequences(x);
    });
    problem.weight = found->weight.to(torch::kCPU).clone();
    problem.hessian = hessian.hessian().to(torch::kCPU).clone();
    problem.samples = hessian.samples();
    blocks.report(units, problem.name);
    return problem;
}

} // namespace sparselab::pipeline
