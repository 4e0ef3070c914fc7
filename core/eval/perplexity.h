#pragma once
// Perplexity exactly as the SparseGPT reference measures it (design.md §3):
// the whole text is tokenized once (BOS per the tokenizer, none per window), cut into
// non-overlapping windows of `seqlen` tokens (remainder dropped); each window's loss is the
// mean next-token cross-entropy over its seqlen-1 predictions; perplexity = exp(mean of the
// window losses).

#include "util/progress.h"

#include <cstdint>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::eval {

struct PerplexityParams {
    int64_t seqlen = 0;       // tokens per window; 0 = min(model max positions, 2048)
    int64_t maxWindows = 0;   // evaluate only the first K windows; 0 = all
    int64_t batchSize = 8;    // windows per forward pass
    bool keepTokenNll = true; // fill PerplexityResult::tokenNll (4 bytes per token)
};

struct PerplexityResult {
    double perplexity = 0.0;
    int64_t tokens = 0;                 // ids in the whole text (incl. BOS)
    int64_t windows = 0;                // windows evaluated
    int64_t seqlen = 0;
    std::vector<double> windowLoss;     // mean NLL (nats) per window
    // NLL (nats, float32) of every predicted token, window-major: [windows, seqlen-1]
    // flattened; entry (w, t) is −log p(ids[w·seqlen + t + 1] | ids[w·seqlen .. w·seqlen + t]).
    // windowLoss[w] is the mean of row w (accumulated in the model's dtype, then widened).
    std::vector<float> tokenNll;
    double seconds = 0.0;
};

// Runs on the model's device under c10::InferenceMode, `batchSize` windows per forward;
// reports progress ("perplexity", windows done / total) after every batch and checks
// `cancel` before each. Throws InputError (option "--seqlen" / the text) when the text is
// shorter than one window, seqlen exceeds the model's maximum or is below 2, or an id lies
// outside the vocabulary; CancelledError when cancelled.
[[nodiscard]] PerplexityResult evaluatePerplexity(const model::CausalLM& model,
                                                  const std::vector<int32_t>& ids,
                                                  const PerplexityParams& params,
                                                  const ProgressCallback& progress = {},
                                                  const CancelToken* cancel = nullptr);

} // namespace sparselab::eval
