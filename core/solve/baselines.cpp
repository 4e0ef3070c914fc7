// Magnitude and Wanda baselines (no weight update), as locuslab/wanda's prune.py:
//   magnitude, unstructured: per matrix, prune |W| <= the value at sorted index int(numel·p);
//   wanda, unstructured:     score |W_ij|·sqrt(H_jj/2); per row, the int(cols·p) smallest by a
//                            stable sort (ties → lower column first);
//   N:M (both):              per row, torch.topk(score[:, g:g+M], N, largest=False) per group.
// Selection uses kthvalue / topk rather than full sorts; the results are the same sets.

#include "solve/solver_detail.h"

#include <algorithm>

namespace sparselab::solve::detail {

namespace {

torch::Tensor nmMask(const torch::Tensor& score, int64_t n, int64_t m)
{
    const int64_t rows = score.size(0);
    const int64_t cols = score.size(1);
    auto mask = torch::zeros({rows, cols}, score.options().dtype(torch::kBool));
    const int64_t groups = cols / m;
    if (groups > 0) {
        // Each [rows, groups, M] slice along the last axis is what the reference's
        // topk(score[:, g:g+M]) sees, so the selection (ties included) is the same.
        auto grouped = score.narrow(1, 0, groups * m).reshape({rows, groups, m});
        auto index = std::get<1>(at::topk(grouped, n, 2, /*largest=*/false));
        auto maskGroups = torch::zeros({rows, groups, m}, mask.options());
        maskGroups.scatter_(2, index, true);
        mask.narrow(1, 0, groups * m).copy_(maskGroups.reshape({rows, groups * m}));
    }
    const int64_t tail = cols - groups * m;
    if (tail > 0) {
        // A trailing partial group prunes min(N, width) (the reference requires M | cols).
        auto part = score.narrow(1, groups * m, tail);
        auto index = std::get<1>(at::topk(part, std::min(n, tail), 1, /*largest=*/false));
        mask.narrow(1, groups * m, tail).scatter_(1, index, true);
    }
    return mask;
}

// The k smallest of each row, ties resolved towards the lower column (= a stable sort's first k).
torch::Tensor rowSmallestStable(const torch::Tensor& score, int64_t k)
{
    if (k <= 0)
        return torch::zeros(score.sizes(), score.options().dtype(torch::kBool));
    auto kth = std::get<0>(at::kthvalue(score, k, 1, /*keepdim=*/true)); // [rows, 1]
    auto less = score < kth;
    auto equal = score == kth;
    auto need = k - less.sum(1, /*keepdim=*/true);                      // equals still to take
    auto rankAmongEqual = equal.cumsum(1);                              // 1-based
    return less.logical_or(equal.logical_and(rankAmongEqual <= need));
}

} // namespace

LayerResult solveBaseline(torch::Tensor& w, const torch::Tensor& h, const SolverOptions& options)
{
    LayerResult result;
    const int64_t rows = w.size(0);
    const int64_t cols = w.size(1);
    auto hDiag = at::diag(h); // [cols]
    result.stats.deadInputs = (hDiag == 0).sum().item<int64_t>();

    torch::Tensor score = w.abs();
    if (options.method == Method::Wanda)
        score = score * at::sqrt(hDiag / 2).reshape({1, -1});

    torch::Tensor mask;
    if (options.structured()) {
        mask = nmMask(score, options.nmN, options.nmM);
    } else if (options.method == Method::Wanda) {
        mask = rowSmallestStable(score, int64_t(double(cols) * options.sparsity));
    } else if (options.sparsity > 0.0) {
        const int64_t numel = score.numel();
        const int64_t k = std::clamp<int64_t>(int64_t(double(numel) * options.sparsity), 0, numel - 1);
        auto thresh = std::get<0>(at::kthvalue(score.flatten(), k + 1));
        mask = score <= thresh;
    } else {
        mask = torch::zeros({rows, cols}, w.options().dtype(torch::kBool));
    }

    // Quantization grid from the dense W (per row, or per group of columns), applied to the
    // kept weights after masking; quantize(0) == 0, so pruned weights stay exactly zero.
    const QuantOptions& q = options.quant;
    if (q.enabled()) {
        const int64_t group = q.groupSize > 0 ? q.groupSize : cols;
        std::vector<QuantGrid> grids;
        for (int64_t c0 = 0; c0 < cols; c0 += group)
            grids.push_back(
                findQuantGrid(w.narrow(1, c0, std::min(group, cols - c0)), q.bits, q.symmetric, q.fp16Scale,
                                          q.signedScale));
        w.masked_fill_(mask, 0.0);
        for (size_t g = 0; g < grids.size(); ++g) {
            const int64_t c0 = int64_t(g) * group;
            auto block = w.narrow(1, c0, std::min(group, cols - c0));
            block.copy_(quantizeWithGrid(block, grids[g]));
        }
    } else {
        w.masked_fill_(mask, 0.0);
    }
    result.mask = mask;
    if (q.enabled() && q.groupSize > 0)
        result.groupIndex = torch::arange(cols, torch::kLong).div(q.groupSize, "floor");
    return result;
}

} // namespace sparselab::solve::detail
