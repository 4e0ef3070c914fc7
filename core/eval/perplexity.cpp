#include "eval/perplexity.h"

#include "model/causal_lm.h"
#include "util/errors.h"

#include <c10/core/InferenceMode.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace sparselab::eval {

PerplexityResult evaluatePerplexity(const model::CausalLM& model, const std::vector<int32_t>& ids,
                                    const PerplexityParams& params, const ProgressCallback& progress,
                                    const CancelToken* cancel)
{
    // Guards are thread-local: set here, on whatever thread runs the evaluation.
    c10::InferenceMode inferenceMode;

    const model::ModelConfig& config = model.config();
    const int64_t seqlen = params.seqlen > 0 ? params.seqlen : std::min<int64_t>(config.maxPositions, 2048);
    if (seqlen < 2)
        throw optionError("--seqlen", "must be at least 2 tokens, got " + std::to_string(seqlen));
    model::requireWindowFits(config, seqlen);
    const int64_t available = int64_t(ids.size()) / seqlen;
    if (available == 0)
        throw optionError("--seqlen", "the text has only " + std::to_string(ids.size())
                                          + " tokens, fewer than one window of " + std::to_string(seqlen));
    const auto outOfRange = std::find_if(ids.begin(), ids.end(), [&](int32_t id) {
        return id < 0 || id >= config.vocabSize;
    });
    if (outOfRange != ids.end())
        throw optionError("--text", "token id " + std::to_string(*outOfRange) + " is outside the model's vocabulary of "
                                        + std::to_string(config.vocabSize) + " (wrong tokenizer?)");

    const int64_t windows = params.maxWindows > 0 ? std::min(params.maxWindows, available) : available;
    const int64_t batchSize = std::max<int64_t>(1, params.batchSize);

    PerplexityResult result;
    result.tokens = int64_t(ids.size());
    result.windows = windows;
    result.seqlen = seqlen;
    result.windowLoss.reserve(size_t(windows));
    if (params.keepTokenNll)
        result.tokenNll.reserve(size_t(windows * (seqlen - 1)));

    // All windows as one [windows, seqlen] tensor; batches are row slices of it.
    const torch::Tensor all = torch::from_blob(const_cast<int32_t*>(ids.data()), {windows, seqlen}, torch::kInt)
                                  .to(model.device(), torch::kLong);

    ProgressReporter reporter(progress, "perplexity", windows);
    for (int64_t first = 0; first < windows; first += batchSize) {
        throwIfCancelled(cancel);
        const int64_t count = std::min(batchSize, windows - first);
        const torch::Tensor batch = all.narrow(0, first, count);                 // [b, T]
        const torch::Tensor logits = model.logits(batch).narrow(1, 0, seqlen - 1); // [b, T-1, V]
        const torch::Tensor targets = batch.narrow(1, 1, seqlen - 1).unsqueeze(-1); // [b, T-1, 1]
        // Cross-entropy as logsumexp − target logit: no [b, T-1, V] log-softmax copy.
        const torch::Tensor nll = logits.logsumexp(-1) - logits.gather(-1, targets).squeeze(-1); // [b, T-1]
        const torch::Tensor loss = nll.mean(-1).to(torch::kCPU, torch::kDouble);            // [b]
        if (params.keepTokenNll) {
            const torch::Tensor tokens = nll.to(torch::kCPU, torch::kFloat).contiguous(); // [b, T-1]
            const float* nllValues = tokens.data_ptr<float>();
            result.tokenNll.insert(result.tokenNll.end(), nllValues, nllValues + tokens.numel());
        }
        const double* values = loss.data_ptr<double>();
        result.windowLoss.insert(result.windowLoss.end(), values, values + count);
        reporter.report(first + count, "window " + std::to_string(first + count) + " of " + std::to_string(windows));
    }

    double sum = 0.0;
    for (double l : result.windowLoss)
        sum += l;
    result.perplexity = std::exp(sum / double(windows));
    result.seconds = reporter.elapsedSeconds();
    return result;
}

} // namespace sparselab::eval
