#include "pipeline/block_walker.h"

#include "memory/memory_plan.h"
#include "pipeline/ordered_hook_calls.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/fork_join.h"

#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <vector>

namespace sparselab::pipeline {

BlockWalker::BlockWalker(const model::CausalLM& model, const data::CalibrationWindows& windows,
                         int64_t forwardBatch, const CancelToken* cancel)
    : m_model(model), m_batch(std::max<int64_t>(1, forwardBatch)), m_cancel(cancel)
{
    if (windows.nsamples < 1 || int64_t(windows.ids.size()) != windows.nsamples * windows.seqlen)
        throw std::invalid_argument("BlockWalker: malformed calibration windows");
    const auto ids = torch::from_blob(const_cast<int64_t*>(windows.ids.data()), {windows.nsamples, windows.seqlen},
                                      torch::kInt64)
                         .to(model.device());
    std::vector<torch::Tensor> embedded;
    for (int64_t start = 0; start < windows.nsamples; start += m_batch) {
        throwIfCancelled(m_cancel);
        embedded.push_back(model.embed(ids.slice(0, start, std::min(windows.nsamples, start + m_batch))));
    }
    m_inputs = torch::cat(embedded, 0);
}

int64_t BlockWalker::batchCount() const { return (m_inputs.size(0) + m_batch - 1) / m_batch; }

int BlockWalker::batchThreads() const
{
    if (!m_model.device().is_cpu() || at::GradMode::is_enabled() || c10::InferenceMode::is_enabled()
        || libraryThreads() != 1)
        return 1;
    return memory::parallelForwardBatches(m_model.config(), m_batch, m_inputs.size(1), batchCount(), kernelThreads());
}

void BlockWalker::walk(int64_t block, const model::LinearInputHook& hook, const model::LinearOutputHook& outputHook,
                       model::BlockResult result) const
{
    const int64_t batches = batchCount();
    // Batch i through the block: its outputs (when asked for) over its inputs, which only this
    // runBlock reads (the hooks consume them before it returns).
    const auto runBatch = [&](int64_t i, const model::LinearInputHook& inputSeen,
                              const model::LinearOutputHook& outputSeen) {
        throwIfCancelled(m_cancel);
        const int64_t start = i * m_batch, end = std::min(m_inputs.size(0), start + m_batch);
        torch::Tensor window = m_inputs.slice(0, start, end);
        const torch::Tensor out = m_model.runBlock(block, window, inputSeen, result, outputSeen);
        if (result == model::BlockResult::Output)
            window.copy_(out);
    };
    const int threads = batchThreads();
    if (threads <= 1) {
        for (int64_t i = 0; i < batches; ++i)
            runBatch(i, hook, outputHook);
        return;
    }
    OrderedHookCalls order;
    // Each batch on one thread: its products (OpenBLAS's pool held to one thread for the walk,
    // whatever this thread's setting says) and its kernels (attention, rotary), which must not
    // split a batch over the threads the other batches use.
    const BlasOnCallingThread productsOnCaller;
    forkJoin(batches, threads, [&](int, int64_t i) {
        if (order.failed())
            return;
        // Everything in the try: a batch that failed without telling `order` would leave the
        // next one waiting for its turn for ever.
        try {
            const KernelThreadsScope oneThread(1);
            const c10::AutoGradMode noGrad(false); // the mode is per thread; batchThreads() saw it off
            size_t calls = 0;                       // hook calls of this batch so far, both kinds
            model::LinearInputHook inputSeen;
            if (hook)
                inputSeen = [&](const model::LinearLayer& layer, const torch::Tensor& x) {
                    order.run(i, calls++, [&] { hook(layer, x); });
                };
            model::LinearOutputHook outputSeen;
            if (outputHook)
                outputSeen = [&](const model::LinearLayer& layer, const torch::Tensor& y) {
                    order.run(i, calls++, [&] { outputHook(layer, y); });
                };
            runBatch(i, inputSeen, outputSeen);
        } catch (const OrderedHookCalls::Stopped&) {
            // another batch failed first; its error is the one rethrown
        } catch (...) {
            order.fail(std::current_exception());
        }
    });
    order.rethrowFailure();
}

void BlockWalker::observe(int64_t block, const model::LinearInputHook& hook,
                          const model::LinearOutputHook& outputHook) const
{
    walk(block, hook, outputHook, model::BlockResult::LinearInputsOnly);
}

void BlockWalker::advance(int64_t block, const model::LinearInputHook& hook)
{
    walk(block, hook, {}, model::BlockResult::Output);
}

} // namespace sparselab::pipeline
