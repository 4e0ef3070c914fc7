#include "eval/model_comparison.h"

#include "model/causal_lm.h"
#include "util/errors.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

namespace sparselab::eval {

namespace {

// Mean next-token cross-entropy (nats) of logits [T, V] against targets [T] int64.
double meanNll(const torch::Tensor& logits, const torch::Tensor& targets)
{
    const auto logProbs = at::log_softmax(logits, -1);
    return -logProbs.gather(1, targets.unsqueeze(1)).mean().item<double>();
}

} // namespace

torch::Tensor tokenKl(const torch::Tensor& referenceLogits, const torch::Tensor& otherLogits)
{
    if (referenceLogits.sizes() != otherLogits.sizes() || referenceLogits.dim() != 2)
        throw std::invalid_argument("tokenKl: expected two [T, V] logits of the same shape");
    const auto logP = at::log_softmax(referenceLogits.to(torch::kDouble), -1);
    const auto logQ = at::log_softmax(otherLogits.to(torch::kDouble), -1);
    return (logP.exp() * (logP - logQ)).sum(-1);
}

DistributionComparison compareDistributions(const model::CausalLM& reference, const model::CausalLM& other,
                                            const std::vector<int32_t>& ids, int64_t seqlen, int64_t maxWindows,
                                            int64_t batchSize, const ProgressCallback& progress,
                                            const CancelToken* cancel)
{
    c10::InferenceMode inference;
    if (seqlen < 2)
        throw optionError("--seqlen", "must be at least 2");
    model::requireWindowFits(reference.config(), seqlen);
    model::requireWindowFits(other.config(), seqlen);
    if (reference.config().vocabSize != other.config().vocabSize)
        throw InputError("the dense and compressed models have different vocabularies");
    int64_t windows = int64_t(ids.size()) / seqlen;
    if (windows < 1)
        throw InputError("the evaluation text has fewer tokens than one window of " + std::to_string(seqlen));
    if (maxWindows > 0)
        windows = std::min(windows, maxWindows);
    for (int64_t i = 0; i < windows * seqlen; ++i)
        if (ids[size_t(i)] < 0 || ids[size_t(i)] >= reference.config().vocabSize)
            throw InputError("the evaluation text has a token id outside the vocabulary");

    const auto all = torch::from_blob(const_cast<int32_t*>(ids.data()), {windows, seqlen}, torch::kInt32)
                         .to(torch::kInt64);
    DistributionComparison result;
    result.windows = windows;
    result.seqlen = seqlen;
    std::vector<torch::Tensor> kls;
    double refLoss = 0.0, otherLoss = 0.0, agree = 0.0;
    ProgressReporter reporter(progress, "kl divergence", windows);
    const int64_t batch = std::max<int64_t>(1, batchSize);
    for (int64_t start = 0; start < windows; start += batch) {
        throwIfCancelled(cancel);
        const int64_t end = std::min(windows, start + batch);
        const auto chunk = all.slice(0, start, end);
        const auto refLogits = reference.logits(chunk.to(reference.device())).to(torch::kCPU, torch::kFloat);
        const auto otherLogits = other.logits(chunk.to(other.device())).to(torch::kCPU, torch::kFloat);
        for (int64_t w = 0; w < end - start; ++w) {
            const auto r = refLogits[w];   // [seqlen, V]
            const auto o = otherLogits[w];
            const auto kl = tokenKl(r, o); // [seqlen]
            kls.push_back(kl);
            result.windowKl.push_back(kl.mean().item<double>());
            agree += (r.argmax(-1) == o.argmax(-1)).sum().item<double>();
            const auto targets = chunk[w].slice(0, 1, seqlen);
            refLoss += meanNll(r.slice(0, 0, seqlen - 1), targets);
            otherLoss += meanNll(o.slice(0, 0, seqlen - 1), targets);
        }
        reporter.report(end);
    }
    const auto flat = torch::cat(kls);
    result.positions = flat.numel();
    result.meanKl = flat.mean().item<double>();
    result.maxKl = flat.max().item<double>();
    const auto sorted = std::get<0>(flat.sort());
    result.p99Kl = sorted[std::min<int64_t>(flat.numel() - 1, int64_t(std::floor(0.99 * double(flat.numel()))))]
                       .item<double>();
    result.top1Agreement = agree / double(result.positions);
    result.referencePerplexity = std::exp(refLoss / double(windows));
    result.otherPerplexity = std::exp(otherLoss / double(windows));
    return result;
}

std::vector<int32_t> greedyContinuation(const model::CausalLM& model, const std::vector<int32_t>& prompt,
                                        int64_t maxNewTokens, int32_t stopId, const CancelToken* cancel)
{
    c10::InferenceMode inference;
    std::vector<int64_t> context(prompt.begin(), prompt.end());
    if (context.empty())
        throw InputError("a prompt must have at least one token");
    std::vector<int32_t> out;
    const int64_t window = model.config().maxPositions;
    for (int64_t step = 0; step < maxNewTokens; ++step) {
        throwIfCancelled(cancel);
        const int64_t first = std::max<int64_t>(0, int64_t(context.size()) - window);
        const int64_t length = int64_t(context.size()) - first;
        const auto ids = torch::from_blob(context.data() + first, {1, length}, torch::kInt64).to(model.device());
        const auto logits = model.logits(ids); // [1, length, V]
        const auto next = int32_t(logits[0][length - 1].argmax().item<int64_t>());
        if (next == stopId)
            break;
        out.push_back(next);
        context.push_back(next);
    }
    return out;
}

} // namespace sparselab::eval
