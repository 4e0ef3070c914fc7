#pragma once
// Comparing a compressed model with its dense original on the same tokens: KL divergence of
// the next-token distributions, top-1 agreement and both perplexities (one forward pass of
// each model per window), and greedy continuations of prompts.
//
// KL(P‖Q) at a position, P = softmax(dense logits), Q = softmax(compressed logits), in nats:
//     Σ_v P_v (log P_v − log Q_v)
// over every position of every non-overlapping window of `seqlen` tokens of the evaluation
// text (remainder dropped, as perplexity does). The mean is over all positions; perplexities
// follow eval/perplexity.h exactly (seqlen − 1 predictions per window, exp of the mean of
// window means), so they equal evaluatePerplexity's figures.

#include "util/progress.h"

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace sparselab::model { class CausalLM; }

namespace sparselab::eval {

// Per-position KL(P‖Q) from logits: reference, other [T, V] float → [T] float64 (nats).
[[nodiscard]] torch::Tensor tokenKl(const torch::Tensor& referenceLogits, const torch::Tensor& otherLogits);

struct DistributionComparison {
    double meanKl = 0.0;             // nats, mean over positions
    double maxKl = 0.0;              // the largest position's KL
    double p99Kl = 0.0;              // 99th percentile of the positions' KL
    double top1Agreement = 0.0;      // fraction of positions where both argmaxes agree
    double referencePerplexity = 0.0;
    double otherPerplexity = 0.0;
    int64_t positions = 0, windows = 0, seqlen = 0;
    std::vector<double> windowKl;    // mean KL per window
};

// Both models on `ids` (the whole evaluation text, tokenized for the model). InputError
// ("--seqlen" or text) as evaluatePerplexity; models must share the vocabulary.
[[nodiscard]] DistributionComparison compareDistributions(const model::CausalLM& reference,
                                                          const model::CausalLM& other,
                                                          const std::vector<int32_t>& ids, int64_t seqlen,
                                                          int64_t maxWindows = 0, int64_t batchSize = 8,
                                                          const ProgressCallback& progress = {},
                                                          const CancelToken* cancel = nullptr);

// Greedy decoding: appends argmax tokens to `prompt` (ids, BOS included as the model expects)
// until `maxNewTokens` or `stopId`; the context is the last maxPositions tokens. Returns only
// the new tokens. Full forward per step (no KV cache): meant for short report continuations.
[[nodiscard]] std::vector<int32_t> greedyContinuation(const model::CausalLM& model, const std::vector<int32_t>& prompt,
                                                      int64_t maxNewTokens, int32_t stopId = -1,
                                                      const CancelToken* cancel = nullptr);

} // namespace sparselab::eval
