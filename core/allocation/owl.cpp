#include "allocation/owl.h"

#include "model/causal_lm.h"
#include "pipeline/block_walker.h"
#include "pipeline/prune_pipeline.h"
#include "util/errors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace sparselab::allocation {

void OwlParams::validate() const
{
    if (!(lambda >= 0.0) || !std::isfinite(lambda) || lambda >= 0.5)
        throw optionError("--owl-lambda", "must be in [0, 0.5)");
    if (!(outlierMultiple > 0.0) || !std::isfinite(outlierMultiple))
        throw optionError("--owl-m", "must be a positive number");
    // The band is 2λ wide and contains S: it stays inside [0, 1) whatever the outliers are.
    if (!(targetSparsity - 2.0 * lambda >= 0.0) || !(targetSparsity + 2.0 * lambda < 1.0))
        throw optionError("--budget-sparsity", "must leave room for the OWL band: S − 2λ ≥ 0 and S + 2λ < 1");
    if (forwardBatch < 1)
        throw std::invalid_argument("OwlParams: forwardBatch must be at least 1");
}

std::vector<double> owlSparsities(const std::vector<double>& ratio, double target, double lambda)
{
    if (ratio.empty())
        return {};
    const auto [lo, hi] = std::minmax_element(ratio.begin(), ratio.end());
    const double low = *lo, span = *hi - *lo;
    std::vector<double> shifted(ratio.size());
    for (size_t i = 0; i < ratio.size(); ++i)
        shifted[i] = span > 0 ? (ratio[i] - low) / span * 2.0 * lambda : 0.0;
    const double mean = std::accumulate(shifted.begin(), shifted.end(), 0.0) / double(shifted.size());
    std::vector<double> sparsity(ratio.size());
    for (size_t i = 0; i < ratio.size(); ++i)
        sparsity[i] = 1.0 - (shifted[i] - mean + (1.0 - target));
    return sparsity;
}

OwlResult owlAllocation(const model::CausalLM& dense, const data::CalibrationWindows& windows, const OwlParams& params,
                        const ProgressCallback& progress, const CancelToken* cancel)
{
    params.validate();
    if (dense.streamed())
        throw optionError("--stream", "OWL reads every block's weights: load the model without --stream");
    torch::NoGradGuard noGrad;
    pipeline::BlockWalker walker(dense, windows, params.forwardBatch, cancel);

    OwlResult result;
    ProgressReporter reporter(progress, "owl", dense.numBlocks());
    for (int64_t b = 0; b < dense.numBlocks(); ++b) {
        throwIfCancelled(cancel);
        // Σ over calibration tokens of x_j² for every input feature of every linear layer.
        std::map<std::string, torch::Tensor> sumSquares;
        const model::LinearInputHook hook = [&sumSquares](const model::LinearLayer& layer, const torch::Tensor& x) {
            const torch::Tensor part = x.reshape({-1, x.size(-1)}).to(torch::kDouble).pow(2).sum(0);
            auto& s = sumSquares[layer.name];
            s = s.defined() ? s + part : part;
        };
        walker.advance(b, hook);
        // The block's scores A = |W| · ‖X_j‖, their mean over all the block's weights, and the
        // share above M × mean.
        double sum = 0.0;
        int64_t count = 0;
        std::vector<torch::Tensor> scores;
        for (const auto& layer : dense.linears(b)) {
            const torch::Tensor norm = sumSquares.at(layer.name).sqrt();
            scores.push_back(layer.weight.to(torch::kDouble).abs() * norm.unsqueeze(0));
            sum += scores.back().sum().item<double>();
            count += scores.back().numel();
        }
        const double threshold = params.outlierMultiple * sum / double(std::max<int64_t>(1, count));
        int64_t outliers = 0;
        for (const auto& s : scores)
            outliers += (s > threshold).sum().item<int64_t>();
        result.outlierRatio.push_back(double(outliers) / double(std::max<int64_t>(1, count)));
        reporter.report(b + 1, "block " + std::to_string(b));
    }
    result.blockSparsity = owlSparsities(result.outlierRatio, params.targetSparsity, params.lambda);
    result.averageSparsity = result.blockSparsity.empty()
                                 ? 0.0
                                 : std::accumulate(result.blockSparsity.begin(), result.blockSparsity.end(), 0.0)
                                       / double(result.blockSparsity.size());
    return result;
}

pipeline::Recipe owlRecipe(const OwlResult& owl, const model::CausalLM& model, const solve::SolverOptions& base)
{
    pipeline::Recipe recipe;
    recipe.defaults.options = base;
    for (int64_t b = 0; b < model.numBlocks() && size_t(b) < owl.blockSparsity.size(); ++b)
        for (const auto& layer : model.linears(b)) {
            pipeline::RecipeRule rule;
            rule.pattern = pipeline::moduleName(layer.name);
            rule.sparsity = owl.blockSparsity[size_t(b)];
            recipe.rules.push_back(rule);
        }
    return recipe;
}

} // namespace sparselab::allocation
