#pragma once
// Calibration activations walked through a model's decoder blocks: the one loop that every
// whole-model pass shares (the pruning pipeline, the sensitivity scan, the teaching mode's
// layer capture).
//
//   BlockWalker walker(model, windows, forwardBatch, cancel); // embeds every window once
//   walker.observe(b, hook);  // block b over all windows for `hook` only (each linear's inputs)
//   walker.advance(b);        // block b's outputs become the inputs of block b + 1
//
// Windows go through a block `forwardBatch` at a time (cancel checked before each batch); the
// inputs of the current block, [nsamples, seqlen, hidden] on the model's device, are the only
// activations kept: advance writes each batch's outputs over that batch's inputs, so a pass
// holds one set of activations and one batch's temporaries, not two sets (at 128 × 2048
// tokens of a 2048-wide model a set is 2 GiB).
// Streamed models (CausalLM::streamed) need their block resident: the caller pages it in and
// out (materializeBlock / finishBlock) around observe and advance, since only it knows whether
// the block changes (pruning) or not (a scan).

#include "data/calibration.h"
#include "model/causal_lm.h"
#include "util/progress.h"

#include <torch/types.h>

#include <cstdint>

namespace sparselab::pipeline {

class BlockWalker {
public:
    BlockWalker(const model::CausalLM& model, const data::CalibrationWindows& windows, int64_t forwardBatch,
                const CancelToken* cancel);

    // Inputs of the block to run next, [nsamples, seqlen, hidden].
    [[nodiscard]] const torch::Tensor& inputs() const { return m_inputs; }
    // Block `block` over every window for the hooks only: `hook` sees every linear's inputs,
    // `outputHook` every linear's output but the last's; the block's outputs are not computed
    // (model::BlockResult::LinearInputsOnly), the inputs stay.
    void observe(int64_t block, const model::LinearInputHook& hook, const model::LinearOutputHook& outputHook = {}) const;
    // Block `block` over every window, its outputs replacing the inputs in place (the tensor
    // inputs() returns is overwritten). If cancelled, the inputs are left partly advanced and
    // the walker is of no further use.
    void advance(int64_t block, const model::LinearInputHook& hook = {});
    [[nodiscard]] int64_t batch() const { return m_batch; }

private:
    const model::CausalLM& m_model;
    int64_t m_batch = 8;
    const CancelToken* m_cancel = nullptr;
    torch::Tensor m_inputs;
};

} // namespace sparselab::pipeline
