#include "pipeline/block_walker.h"

#include "util/errors.h"

#include <algorithm>
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

void BlockWalker::observe(int64_t block, const model::LinearInputHook& hook,
                          const model::LinearOutputHook& outputHook) const
{
    for (int64_t start = 0; start < m_inputs.size(0); start += m_batch) {
        throwIfCancelled(m_cancel);
        const int64_t end = std::min(m_inputs.size(0), start + m_batch);
        (void)m_model.runBlock(block, m_inputs.slice(0, start, end), hook, model::BlockResult::LinearInputsOnly,
                               outputHook);
    }
}

void BlockWalker::advance(int64_t block, const model::LinearInputHook& hook)
{
    for (int64_t start = 0; start < m_inputs.size(0); start += m_batch) {
        throwIfCancelled(m_cancel);
        const int64_t end = std::min(m_inputs.size(0), start + m_batch);
        // The batch's inputs are read only by this runBlock (the hook consumes them before it
        // returns), so its outputs may take their place.
        torch::Tensor window = m_inputs.slice(0, start, end);
        window.copy_(m_model.runBlock(block, window, hook));
    }
}

} // namespace sparselab::pipeline
