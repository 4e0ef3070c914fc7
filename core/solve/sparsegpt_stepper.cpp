// The teaching stepper. Every float operation on a weight mirrors runTile / scoreRows
// / runCpuTiled in sparsegpt.cpp (same expressions, same order; see the header); the per-row
// arithmetic does not depend on how rows are grouped into tiles or threads, so one thread over
// all rows gives the solver's bits. Only the loss is summed in the solver's tiles.

#include "solve/sparsegpt_stepper.h"

#include "solve/solver_detail.h"
#include "solve/sparsegpt_kernels.h"
#include "util/errors.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace sparselab::solve {

SparseGptStepper::SparseGptStepper(const torch::Tensor& weight, const torch::Tensor& hessian,
                                   const SolverOptions& options)
    : m_options(options)
{
    if (!weight.defined() || weight.dim() != 2)
        throw InputError("weight: expected a 2-D tensor [rows, cols]");
    m_rows = weight.size(0);
    m_cols = weight.size(1);
    if (!hessian.defined() || hessian.dim() != 2 || hessian.size(0) != m_cols || hessian.size(1) != m_cols)
        throw InputError("hessian: expected shape [" + std::to_string(m_cols) + ", " + std::to_string(m_cols)
                         + "] to match the weight's " + std::to_string(m_cols) + " input columns");
    m_options.method = Method::SparseGpt;
    m_options.validate(m_cols);
    // The stepper shows the columns in their stored order: GPTQ's act-order and static groups
    // (another visiting order, grids fixed up front) are the solver's alone.
    if (m_options.quant.actOrder || m_options.quant.staticGroups)
        throw InputError("teaching mode: act-order and static groups are not shown step by step (use the solver)");
    torch::NoGradGuard noGrad;
    m_dense = weight.to(torch::kCPU, torch::kFloat).contiguous().clone();
    m_h = hessian.to(torch::kCPU, torch::kFloat).contiguous().clone();
    detail::requireFinite(m_dense, "weight");
    detail::requireFinite(m_h, "hessian");

    m_w = m_dense.clone();
    const detail::SparseGptSetup setup = detail::prepareSparseGpt(m_w, m_h, m_options, nullptr);
    m_hinv = setup.hinv;
    m_dampAbsolute = setup.dampAbsolute;
    m_setupStats.deadInputs = setup.deadInputs;
    m_setupStats.dampUsed = setup.dampUsed;
    m_setupStats.dampRaises = setup.dampRaises;
    if (m_options.quant.enabled()) {
        const auto scale = setup.grid.scale.to(torch::kCPU).contiguous();
        const auto zero = setup.grid.zero.to(torch::kCPU).contiguous();
        m_scale.assign(scale.data_ptr<float>(), scale.data_ptr<float>() + m_rows);
        m_zero.assign(zero.data_ptr<float>(), zero.data_ptr<float>() + m_rows);
        m_maxq = float((int64_t(1) << m_options.quant.bits) - 1);
    }
    m_errT.assign(size_t(m_rows * std::min(m_options.blocksize, m_cols)), 0.0f);
    m_mask = torch::zeros({m_rows, m_cols}, m_w.options().dtype(torch::kBool));
}

void SparseGptStepper::beginBlock()
{
    const int64_t b = m_next / m_options.blocksize;
    m_i1 = b * m_options.blocksize;
    const int64_t i2 = std::min(m_i1 + m_options.blocksize, m_cols);
    m_count = i2 - m_i1;
    const int64_t count = m_count;
    m_hinv1 = m_hinv.narrow(0, m_i1, count).narrow(1, m_i1, count).contiguous(); // [count, count]
    const float* h1 = m_hinv1.data_ptr<float>();
    const float* w = m_w.data_ptr<float>();

    m_t.assign(size_t(m_rows * count), 0.0f);
    m_e.assign(size_t(m_rows * count), 0.0f);
    m_m.assign(size_t(m_rows * count), 0);
    m_rowLoss.assign(size_t(m_rows), 0.0);
    for (int64_t r = 0; r < m_rows; ++r)
        std::memcpy(m_t.data() + r * count, w + r * m_cols + m_i1, size_t(count) * sizeof(float));

    m_block = BlockInfo{};
    m_block.index = b;
    m_block.begin = m_i1;
    m_block.end = i2;
    m_block.startWeights = m_t;
    m_block.hinvDiagonal.resize(size_t(count));
    std::vector<float> d2(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) {
        const float d = h1[j * count + j];
        m_block.hinvDiagonal[size_t(j)] = d;
        d2[size_t(j)] = d * d;
    }
    // Saliency exactly as scoreRows computes it: (x·x)/d².
    m_block.saliency.resize(size_t(m_rows * count));
    for (int64_t r = 0; r < m_rows; ++r)
        for (int64_t j = 0; j < count; ++j) {
            const float x = m_t[size_t(r * count + j)];
            m_block.saliency[size_t(r * count + j)] = (x * x) / d2[size_t(j)];
        }
    if (!m_options.structured() && m_options.sparsity > 0.0) {
        const int64_t k = detail::unstructuredRank(m_rows * count, m_options.sparsity);
        std::vector<float> scores = m_block.saliency;
        std::nth_element(scores.begin(), scores.begin() + k, scores.end());
        const float thresh = scores[size_t(k)];
        m_block.threshold = thresh;
        m_block.rank = k;
        for (size_t n = 0; n < m_m.size(); ++n) {
            m_m[n] = m_block.saliency[n] <= thresh ? 1 : 0;
            m_block.prunedInBlock += m_m[n];
        }
    }
    m_inBlock = true;
}

bool SparseGptStepper::stepColumn()
{
    if (finished())
        return false;
    torch::NoGradGuard noGrad;
    if (!m_inBlock)
        beginBlock();
    const SolverOptions& o = m_options;
    const QuantOptions& qo = o.quant;
    const int64_t count = m_count;
    const int64_t i = m_next - m_i1;
    const float* h1 = m_hinv1.data_ptr<float>();
    const float* hrow = h1 + i * count;

    ColumnInfo c;
    c.column = m_next;
    c.local = i;
    c.blockBefore = m_t;
    if (o.structured() && i % o.nmM == 0) {
        const int64_t width = std::min<int64_t>(o.nmM, count - i);
        c.groupWidth = width;
        c.groupSaliency.resize(size_t(m_rows * width));
        std::vector<float> groupScores(static_cast<size_t>(width));
        std::vector<uint8_t> chosen(static_cast<size_t>(width));
        std::vector<topk::Entry> queue;
        for (int64_t r = 0; r < m_rows; ++r) {
            for (int64_t k = 0; k < width; ++k) {
                const float x = m_t[size_t(r * count + i + k)];
                const float d = h1[(i + k) * count + (i + k)];
                groupScores[size_t(k)] = (x * x) / (d * d);
                c.groupSaliency[size_t(r * width + k)] = groupScores[size_t(k)];
            }
            detail::selectSmallest(groupScores.data(), width, o.nmN, queue, chosen.data());
            for (int64_t k = 0; k < width; ++k)
                if (chosen[size_t(k)])
                    m_m[size_t(r * count + i + k)] = 1;
        }
    }
    if (qo.enabled() && qo.groupSize > 0 && (m_i1 + i) % qo.groupSize == 0) {
        // As the solver: the group's grid comes from W, whose block columns still hold their
        // values from the start of the block.
        const int64_t len = std::min(qo.groupSize, m_cols - m_i1 - i);
        const float* w = m_w.data_ptr<float>();
        for (int64_t r = 0; r < m_rows; ++r)
            detail::findRowGrid(w + r * m_cols + m_i1 + i, len, m_maxq, qo, m_scale[size_t(r)], m_zero[size_t(r)]);
    }

    const float d = hrow[i];
    const float d2 = d * d;
    c.d = d;
    c.w.resize(size_t(m_rows));
    c.q.resize(size_t(m_rows));
    c.err.resize(size_t(m_rows));
    c.pruned.resize(size_t(m_rows));
    c.hinvRow.assign(hrow + i, hrow + count);
    double columnLoss = 0.0;
    for (int64_t r = 0; r < m_rows; ++r) {
        float* t = m_t.data() + r * count;
        const uint8_t pruned = m_m[size_t(r * count + i)];
        const float x = t[i];
        float q = pruned ? 0.0f : x;
        if (qo.enabled())
            q = detail::quantizeValue(q, m_scale[size_t(r)], m_zero[size_t(r)], m_maxq);
        const float diff = x - q;
        const double term = double((diff * diff) / d2);
        m_rowLoss[size_t(r)] += term;
        columnLoss += term;
        const float e = diff / d;
        m_e[size_t(r * count + i)] = e;
        t[i] = q;
        for (int64_t j = i + 1; j < count; ++j)
            t[j] -= e * hrow[j];
        c.w[size_t(r)] = x;
        c.q[size_t(r)] = q;
        c.err[size_t(r)] = e;
        c.pruned[size_t(r)] = pruned;
    }
    c.columnLoss = columnLoss / 2.0;
    c.blockAfter = m_t;
    ++m_next;
    if (i == count - 1) {
        endBlock();
        c.endedBlock = true;
    }
    m_column = std::move(c);
    m_lossCurve.push_back(loss());
    return true;
}

void SparseGptStepper::endBlock()
{
    const int64_t count = m_count;
    const int64_t i2 = m_i1 + count;
    float* w = m_w.data_ptr<float>();
    bool* mask = m_mask.data_ptr<bool>();
    for (int64_t r = 0; r < m_rows; ++r)
        for (int64_t j = 0; j < count; ++j) {
            w[r * m_cols + m_i1 + j] = m_t[size_t(r * count + j)];
            mask[r * m_cols + m_i1 + j] = m_m[size_t(r * count + j)] != 0;
        }
    // The solver's loss: per row tile, the rows' sums added in row order, halved, tile by tile.
    for (int64_t r0 = 0; r0 < m_rows; r0 += detail::kTileRows) {
        double total = 0.0;
        for (int64_t r = r0; r < std::min(m_rows, r0 + detail::kTileRows); ++r)
            total += m_rowLoss[size_t(r)];
        m_lossBefore += total / 2.0;
    }
    if (i2 < m_cols) {
        // The solver's lazy update, call for call (the CpuTiled backend's setup and
        // cpu::applyLazyUpdate: its row split and transposes), so that the weights are its floats.
        float* errT = m_errT.data();
        for (int64_t r = 0; r < m_rows; ++r)
            for (int64_t j = 0; j < count; ++j)
                errT[j * m_rows + r] = m_e[size_t(r * count + j)];
        const torch::Tensor hinv = detail::unitStrideHinv(m_hinv);
        cpu::applyLazyUpdate(detail::columnLoopOver(m_w, hinv), m_i1, count, errT);
    }
    m_inBlock = false;
}

bool SparseGptStepper::stepBlock()
{
    if (finished())
        return false;
    do {
        stepColumn();
    } while (m_inBlock);
    return true;
}

void SparseGptStepper::runToEnd(const CancelToken* cancel)
{
    while (!finished()) {
        throwIfCancelled(cancel);
        stepBlock();
    }
}

torch::Tensor SparseGptStepper::weightRows(int64_t firstRow, int64_t count) const
{
    auto w = m_w.narrow(0, firstRow, count).clone();
    if (m_inBlock) {
        float* p = w.data_ptr<float>();
        for (int64_t r = 0; r < count; ++r)
            std::memcpy(p + r * m_cols + m_i1, m_t.data() + (firstRow + r) * m_count, size_t(m_count) * sizeof(float));
    }
    return w;
}

torch::Tensor SparseGptStepper::effectiveWeight() const
{
    torch::NoGradGuard noGrad;
    auto w = weight();
    const int64_t done = m_inBlock ? m_next - m_i1 : 0;
    const int64_t i2 = m_i1 + m_count;
    if (done > 0 && i2 < m_cols) {
        const auto err = torch::from_blob(const_cast<float*>(m_e.data()), {m_rows, m_count}, torch::kFloat)
                             .narrow(1, 0, done);                       // [rows, done]
        w.narrow(1, i2, m_cols - i2).sub_(err.matmul(m_hinv.narrow(0, m_i1, done).narrow(1, i2, m_cols - i2)));
    }
    return w;
}

torch::Tensor SparseGptStepper::maskRows(int64_t firstRow, int64_t count) const
{
    auto m = m_mask.narrow(0, firstRow, count).clone();
    if (m_inBlock) {
        bool* p = m.data_ptr<bool>();
        for (int64_t r = 0; r < count; ++r)
            for (int64_t j = 0; j < m_count; ++j)
                p[r * m_cols + m_i1 + j] = m_m[size_t((firstRow + r) * m_count + j)] != 0;
    }
    return m;
}

torch::Tensor SparseGptStepper::dampedHessian() const
{
    auto hd = m_h.clone();
    auto diagonal = at::diag(m_h).clone();
    diagonal.masked_fill_(diagonal == 0, 1.0);
    hd.diagonal().copy_(diagonal + float(m_dampAbsolute));
    return hd;
}

double SparseGptStepper::loss() const
{
    if (!m_inBlock)
        return m_lossBefore;
    double block = 0.0;
    for (double l : m_rowLoss)
        block += l;
    return m_lossBefore + block / 2.0;
}

LayerStats SparseGptStepper::stats() const
{
    if (m_haveFinalStats)
        return m_finalStats;
    LayerStats s = m_setupStats;
    s.loss = loss();
    if (finished()) {
        torch::NoGradGuard noGrad;
        s.sparsity = m_w.numel() > 0 ? double((m_w == 0).sum().item<int64_t>()) / double(m_w.numel()) : 0.0;
        const double denominator = detail::quadraticTrace(m_dense, m_h);
        s.relOutputError = denominator > 0.0 ? detail::quadraticTrace(m_dense - m_w, m_h) / denominator : 0.0;
        m_finalStats = s;
        m_haveFinalStats = true;
    }
    return s;
}

} // namespace sparselab::solve
