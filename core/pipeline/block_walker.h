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
//
// Threads: on the CPU, with the products on one thread (libraryThreads() == 1, the engine's
// choice for models narrower than kAllThreadsFromHidden, whose products are too small to split)
// and outside grad and inference mode, the batches run on kernelThreads() threads, each batch on
// one thread with one-thread kernels and OpenBLAS held to the calling thread, as many at once as
// keep the extra batches' temporaries within memory::kParallelBatchExtraBytes (the memory plan
// counts them). A small model's forward pass is dozens of small products and element-wise
// operations per batch that no single operation can spread over the cores; whole batches can.
// What the hooks see: the calls come one at a time (a hook needs no locking), and for each call
// position within a batch (the k-th linear's input or output) in window order, as a sequential
// walk makes them; calls of different positions may interleave across batches (batch 1's first
// before batch 0's last). So a hook whose state is per linear (every one here: Hessians, sums of
// squares, captures) sees what it would see sequentially, to the bit; one whose state spans
// linears must not rely on the order across them. Hooks may run on a helper thread, with
// kernelThreads() 1 (pipeline/ordered_hook_calls.h has the turns).
// Every batch is computed as it is alone, so the results are the same bits on any number of
// threads. Elsewhere (a GPU, products on several threads) the batches run one after another.
//
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
    // The threads observe and advance would run batches on now, from this thread (see above).
    [[nodiscard]] int batchThreads() const;

private:
    [[nodiscard]] int64_t batchCount() const; // batches of m_batch windows (the last may be short)
    // Block `block` over every batch, hooks in the sequential order. Writes each batch's outputs
    // over its inputs when `result` is Output (advance; m_inputs's storage, not the handle).
    void walk(int64_t block, const model::LinearInputHook& hook, const model::LinearOutputHook& outputHook,
              model::BlockResult result) const;
    const model::CausalLM& m_model;
    int64_t m_batch = 8;
    const CancelToken* m_cancel = nullptr;
    torch::Tensor m_inputs;
};

} // namespace sparselab::pipeline
