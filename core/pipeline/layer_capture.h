#pragma once
// Calibration inputs of one linear layer of a dense model, for the teaching mode: the layer's
// weight and the Hessian H = (2/N)·Σ XᵀX of its inputs over the calibration windows, as the
// pipeline would accumulate it for that layer when every earlier layer is left dense.
// (pruneModel solves earlier blocks first, so its Hessian for a later block differs; here
// the model is never modified.)
// The windows are embedded, run through the dense blocks before the layer's block, and
// through that block with a hook that accumulates only this layer's inputs (BlockWalker, the
// pipeline's own loop, so the Hessian is the one pruneModel would accumulate for block 0).

#include "data/calibration.h"
#include "util/progress.h"

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace sparselab::model { class CausalLM; }

namespace sparselab::pipeline {

struct LayerProblem {
    std::string name;        // module name, e.g. "model.layers.0.self_attn.q_proj"
    int64_t block = 0;
    torch::Tensor weight;    // [out, in] float32 CPU, a copy of the model's
    torch::Tensor hessian;   // [in, in] float32 CPU
    int64_t samples = 0;     // calibration sequences accumulated
};

// `layer`: module name (as moduleName() gives it) or weight tensor name. InputError naming the
// layer when the model has no such linear layer; CancelledError when cancelled. Progress:
// stage "capture", one unit per block walked; cancel checked per window batch.
[[nodiscard]] LayerProblem captureLayerProblem(const model::CausalLM& model, const data::CalibrationWindows& windows,
                                               const std::string& layer, int64_t forwardBatch = 8,
                                               const Watch& watch = {});

} // namespace sparselab::pipeline
