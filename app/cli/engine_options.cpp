#include "engine_options.h"
#include "util/engine_threads.h"

#include "model/causal_lm.h"
#include "model/config.h"
#include "pipeline/recipe.h"
#include "util/errors.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace sparselab::cli {

void applyThreadsOption(const Args& args)
{
    if (const auto threads = args.intOr("threads", 0, 0, 1024); threads > 0)
        setEngineThreads(int(threads));
}

void applyDefaultThreads(const Args& args, const model::CausalLM& model)
{
    if (args.intOr("threads", 0, 0, 1024) == 0)
        setEngineThreads(defaultEngineThreads(model.config().hiddenSize));
}

c10::Device deviceOption(const Args& args)
{
    const std::string name = args.valueOr("device", "cpu");
    if (name == "cpu")
        return c10::kCPU;
    if (name == "cuda") {
        if (!torch::cuda::is_available())
            throw optionError("--device", "CUDA is not available in this build or on this machine");
        return c10::kCUDA;
    }
    throw optionError("--device", "expects cpu or cuda, got '" + name + "'");
}

recovery::RecoveryParams recoveryParamsFromArgs(const Args& args, int64_t nsamples, bool stepsRequired)
{
    recovery::RecoveryParams p;
    const bool epochs = args.value("recover-epochs").has_value();
    if (epochs && args.value("recover"))
        throw optionError("--recover-epochs", "give either --recover STEPS or --recover-epochs E, not both");
    if (stepsRequired && !args.value("recover") && !epochs)
        throw optionError("--recover", "is required (the number of training steps, or --recover-epochs E)");
    p.batchWindows = args.intOr("recover-batch", p.batchWindows, 1, 1 << 20);
    if (epochs) {
        const double e = args.doubleOr("recover-epochs", 0.0);
        if (!(e > 0.0) || e > 1e6)
            throw optionError("--recover-epochs", "must be a positive number of passes over the calibration windows");
        const int64_t perEpoch = std::max<int64_t>(1, nsamples / std::min(p.batchWindows, nsamples));
        p.steps = std::max<int64_t>(1, int64_t(std::ceil(e * double(perEpoch))));
    } else {
        p.steps = args.intOr("recover", 0, stepsRequired ? 1 : 0, int64_t(1) << 30);
    }
    const bool any = args.value("recover-loss") || args.value("recover-lr") || args.value("recover-schedule")
                     || args.value("recover-warmup") || args.value("recover-batch") || args.value("recover-seed")
                     || args.value("recover-heldout") || args.value("recover-eval-every")
                     || args.value("recover-patience") || args.flag("recover-norms");
    if (any && p.steps == 0)
        throw optionError("--recover", "is needed with the other --recover-… options (the number of steps)");
    p.loss = recovery::parseLoss(args.valueOr("recover-loss", "kl"), "--recover-loss");
    p.learningRate = args.doubleOr("recover-lr", p.learningRate);
    p.schedule = recovery::parseSchedule(args.valueOr("recover-schedule", "cosine"), "--recover-schedule");
    p.warmupSteps = args.intOr("recover-warmup", 0, 0, int64_t(1) << 30);
    p.seed = uint64_t(args.intOr("recover-seed", 0, 0, std::numeric_limits<int64_t>::max()));
    p.heldOutWindows = args.intOr("recover-heldout", p.heldOutWindows, 0, 1 << 20);
    p.evalEvery = args.intOr("recover-eval-every", 0, 0, int64_t(1) << 30);
    p.patience = args.intOr("recover-patience", 0, 0, int64_t(1) << 30);
    p.trainNorms = args.flag("recover-norms");
    p.validate();
    return p;
}


data::CalibrationParams calibrationFromArgs(const Args& args, const model::ModelConfig& config)
{
    data::CalibrationParams calibration;
    calibration.nsamples = args.intOr("nsamples", 128, 1, 1 << 20);
    calibration.seqlen = args.intOr("seqlen", std::min<int64_t>(2048, config.maxPositions), 2, 1 << 20);
    calibration.seed = uint64_t(args.intOr("seed", 0, 0, std::numeric_limits<int64_t>::max()));
    model::requireWindowFits(config, calibration.seqlen);
    return calibration;
}

} // namespace sparselab::cli
