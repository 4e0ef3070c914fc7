// SparseGPT (Frantar & Alistarh 2023) as IST-DASLab/sparsegpt's SparseGPT.fasterprune, with
// joint quantization as its quant.py and GPTQ groups as IST-DASLab/gptq.
//
// Two implementations of the column loop share the preamble (dead inputs, damping, Hinv):
//  - Generic: the reference's tensor-op sequence, line for line (any device);
//  - CpuTiled: the plain-C++ loop of solve/cpu_column_loop.h on the tensors' buffers (row
//    tiles on a team of workers, the reference's float operations in its order).
// Masks follow the reference's rules exactly: unstructured prunes score <= the value at
// sorted index int(numel·sparsity); N:M reproduces torch.topk's CPU selection, ties included.

#include "solve/cpu_column_loop.h"
#include "solve/cpu_solver.h"
#include "solve/inverse_cholesky.h"
#include "solve/solver_detail.h"
#include "solve/sparsegpt_kernels.h"

#include "util/engine_threads.h"
#include "util/errors.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <sstream>
#include <utility>
#include <vector>


namespace sparselab::solve::detail {

namespace {

// ---- factorisation -------------------------------------------------------------------------------

// U with UᵀU = H⁻¹ through the plain CPU solver's factorisation (cpu_solver.h): the result
// is U column-major.
torch::Tensor upperCholeskyOfInverseBlas(const torch::Tensor& h, const torch::Tensor& diagonal)
{
    const int64_t n = h.size(0);
    const auto hc = h.contiguous();
    const auto dc = diagonal.to(torch::kFloat).contiguous();
    auto buffer = torch::empty({n * n}, h.options());
    if (!cpu::upperCholeskyOfInverse(hc.data_ptr<float>(), dc.data_ptr<float>(), n, buffer.data_ptr<float>(),
                                     kernelThreads()))
        return {};
    return buffer.view({n, n}).t(); // [n, n] upper triangular, column-major strides
}

// The same with ATen's linalg (any device): symmetric from the lower triangle, flipped,
// Cholesky, L⁻¹, flipped back. L⁻¹ is cuSOLVER's trtri on CUDA where the process has it, else
// a triangular solve against I (≈3× the work of trtri).
torch::Tensor upperCholeskyOfInverseAten(const torch::Tensor& h, const torch::Tensor& diagonal)
{
    auto sym = at::tril(h) + at::tril(h, -1).t();
    sym.diagonal().copy_(diagonal);
    auto [l, info] = at::linalg_cholesky_ex(sym.flip({0, 1}), /*upper=*/false, /*check_errors=*/false);
    if (info.item<int64_t>() != 0)
        return {};
    torch::Tensor lInv = l.is_cuda() ? detail::invertLowerTriangularCuda(l) : torch::Tensor();
    if (!lInv.defined())
        lInv = at::linalg_solve_triangular(l, torch::eye(h.size(0), l.options()), /*upper=*/false);
    if (!at::isfinite(lInv).all().item<bool>())
        return {};
    return lInv.flip({0, 1});
}

// ---- shared state of one solve ------------------------------------------------------------------

struct Problem {
    torch::Tensor& w;          // [rows, cols] float32 contiguous, updated in place
    const torch::Tensor& hinv; // [cols, cols] upper Cholesky factor of the damped H⁻¹
    torch::Tensor& mask;       // [rows, cols] bool, filled
    const SolverOptions& options;
    const QuantGrid& rowGrid;  // per-row grid from the dense W
    int64_t rows = 0;
    int64_t cols = 0;
    // Static groups (QuantOptions::staticGroups): every group's grid [groups, rows] computed
    // up front, and the group of the column at each visiting position [cols].
    torch::Tensor staticScale;
    torch::Tensor staticZero;
    const int64_t* groupAt = nullptr;
};

// ---- Generic: the reference's op sequence --------------------------------------------------------

double runGeneric(Problem& p, ProgressReporter& reporter, const CancelToken* cancel, const std::string& note)
{
    const SolverOptions& o = p.options;
    const QuantOptions& qo = o.quant;
    QuantGrid grid = p.rowGrid;
    double loss = 0.0;
    const int64_t blocks = (p.cols + o.blocksize - 1) / o.blocksize;
    for (int64_t b = 0; b < blocks; ++b) {
        throwIfCancelled(cancel);
        const int64_t i1 = b * o.blocksize;
        const int64_t i2 = std::min(i1 + o.blocksize, p.cols);
        const int64_t count = i2 - i1;

        auto w1 = p.w.narrow(1, i1, count).clone();            // [rows, count]
        auto q1 = torch::zeros_like(w1);
        auto err1 = torch::zeros_like(w1);
        auto losses1 = torch::zeros_like(w1);
        auto hinv1 = p.hinv.narrow(0, i1, count).narrow(1, i1, count); // [count, count]
        auto diag1 = hinv1.diagonal();                          // [count]

        torch::Tensor mask1 = torch::zeros({p.rows, count}, w1.options().dtype(torch::kBool));
        if (!o.structured() && o.sparsity > 0.0) {
            auto tmp = w1.pow(2) / diag1.reshape({1, -1}).pow(2);
            const int64_t k = unstructuredRank(tmp.numel(), o.sparsity);
            // CUDA: a device-wide sort (kthvalue over one long row is one thread block's work).
            auto thresh = tmp.is_cuda() ? std::get<0>(at::sort(tmp.flatten())).select(0, k)
                                        : std::get<0>(at::kthvalue(tmp.flatten(), k + 1));
            mask1 = tmp <= thresh;
        }

        for (int64_t i = 0; i < count; ++i) {
            auto w = w1.select(1, i);
            auto d = hinv1[i][i];
            if (o.structured() && i % o.nmM == 0) {
                const int64_t width = std::min<int64_t>(o.nmM, count - i);
                auto tmp = w1.narrow(1, i, width).pow(2) / diag1.narrow(0, i, width).reshape({1, -1}).pow(2);
                const int64_t n = std::min<int64_t>(o.nmN, width);
                mask1.scatter_(1, std::get<1>(at::topk(tmp, n, 1, /*largest=*/false)) + i, true);
            }
            if (qo.enabled() && p.groupAt) {
                const int64_t g = p.groupAt[i1 + i];
                grid.scale = p.staticScale[g];
                grid.zero = p.staticZero[g];
            } else if (qo.enabled() && qo.groupSize > 0 && (i1 + i) % qo.groupSize == 0) {
                grid = findQuantGrid(p.w.narrow(1, i1 + i, std::min(qo.groupSize, p.cols - i1 - i)), qo.bits,
                                     qo.symmetric, qo.fp16Scale, qo.signedScale);
            }
            auto q = w.clone();
            q.masked_fill_(mask1.select(1, i), 0.0);
            if (qo.enabled())
                q = quantizeWithGrid(q.unsqueeze(1), grid).flatten();
            q1.select(1, i).copy_(q);
            losses1.select(1, i).copy_((w - q).pow(2) / d.pow(2));
            auto e = (w - q) / d;
            w1.narrow(1, i, count - i).sub_(e.unsqueeze(1).matmul(hinv1[i].narrow(0, i, count - i).unsqueeze(0)));
            err1.select(1, i).copy_(e);
        }
        p.w.narrow(1, i1, count).copy_(q1);
        p.mask.narrow(1, i1, count).copy_(mask1);
        loss += at::sum(losses1, at::kDouble).item<double>() / 2.0;
        if (i2 < p.cols)
            p.w.narrow(1, i2, p.cols - i2).sub_(err1.matmul(p.hinv.narrow(0, i1, count).narrow(1, i2, p.cols - i2)));
        reporter.report(b + 1, note);
    }
    return loss;
}


// The CPU column loop (cpu_column_loop.h) on the tensors' buffers: W and the mask row-major
// float32/bool on the CPU, Hinv with either stride 1 (the factorisation gives column-major).
double runCpuTiled(Problem& p, ProgressReporter& reporter, const CancelToken* cancel, const std::string& note)
{
    const torch::Tensor hinv = unitStrideHinv(p.hinv);
    torch::Tensor rowScale, rowZero;
    cpu::ColumnLoop loop = columnLoopOver(p.w, hinv);
    loop.mask = p.mask.data_ptr<bool>();
    loop.options = &p.options;
    if (p.options.quant.enabled()) {
        rowScale = p.rowGrid.scale.to(torch::kCPU, torch::kFloat).contiguous();
        rowZero = p.rowGrid.zero.to(torch::kCPU, torch::kFloat).contiguous();
        loop.rowScale = rowScale.data_ptr<float>();
        loop.rowZero = rowZero.data_ptr<float>();
    }
    if (p.groupAt) {
        loop.staticScale = p.staticScale.data_ptr<float>();
        loop.staticZero = p.staticZero.data_ptr<float>();
        loop.groupAt = p.groupAt;
    }
    return cpu::runColumnLoop(loop, reporter, cancel, note);
}


} // namespace

torch::Tensor unitStrideHinv(const torch::Tensor& hinv)
{
    return hinv.stride(0) == 1 || hinv.stride(1) == 1 ? hinv : hinv.contiguous();
}

cpu::ColumnLoop columnLoopOver(const torch::Tensor& w, const torch::Tensor& hinv)
{
    cpu::ColumnLoop loop;
    loop.w = w.data_ptr<float>();
    loop.rows = w.size(0);
    loop.cols = w.size(1);
    loop.hinv = hinv.data_ptr<float>();
    loop.hinvRowStride = hinv.stride(0);
    loop.hinvColStride = hinv.stride(1);
    loop.workers = kernelThreads();
    if (!cpu::columnLoopAvailable()) // no sgemm_ symbol in this process's BLAS: ATen's product
        loop.lazyUpdate = [w, hinv](int64_t r0, int64_t nr, int64_t i1, int64_t count, int64_t i2, const float* errT) {
            const int64_t rows = w.size(0);
            const int64_t cols = w.size(1);
            const auto err = torch::from_blob(const_cast<float*>(errT), {count, rows}, torch::kFloat);
            w.narrow(0, r0, nr).narrow(1, i2, cols - i2)
                .addmm_(err.narrow(1, r0, nr).t(), hinv.narrow(0, i1, count).narrow(1, i2, cols - i2), 1.0, -1.0);
        };
    return loop;
}

torch::Tensor upperCholeskyOfInverse(const torch::Tensor& h, const torch::Tensor& diagonal, bool allowBlas)
{
    const int64_t n = h.size(0);
    const bool useBlas = allowBlas && h.device().is_cpu() && h.scalar_type() == torch::kFloat
        && n < 46341 /* n² < 2³¹ */ && inverseCholeskyAvailable();
    return useBlas ? upperCholeskyOfInverseBlas(h, diagonal) : upperCholeskyOfInverseAten(h, diagonal);
}

torch::Tensor upperCholeskyOfInverse(const torch::Tensor& h, bool allowBlas)
{
    return upperCholeskyOfInverse(h, at::diag(h), allowBlas);
}

torch::Tensor upperCholeskyOfInverseReference(const torch::Tensor& h)
{
    auto l = at::linalg_cholesky(h);
    return at::linalg_cholesky(at::cholesky_inverse(l), /*upper=*/true);
}

HessianFactor factorHessianImpl(const torch::Tensor& h, double damp, const CancelToken* cancel)
{
    HessianFactor factor;
    factor.dampRequested = damp;
    const int64_t n = h.size(0);
    if (h.device().is_cpu() && h.scalar_type() == torch::kFloat && n < 46341 && cpu::available()) {
        // The plain-C++ preamble (cpu_solver.h), the one `solve-layer` runs without LibTorch.
        const auto hc = h.contiguous();
        auto buffer = torch::empty({n * n}, hc.options());
        const cpu::Factor raw = cpu::factorHessian(hc.data_ptr<float>(), n, damp, buffer.data_ptr<float>(),
                                                   kernelThreads(), cancel);
        factor.hinv = buffer.view({n, n}).t(); // U column-major
        factor.dead = torch::from_blob(const_cast<uint8_t*>(raw.dead.data()), {n}, torch::kUInt8).to(torch::kBool);
        factor.deadInputs = raw.deadInputs;
        factor.dampUsed = raw.dampUsed;
        factor.dampRaises = raw.dampRaises;
        factor.dampAbsolute = raw.dampAbsolute;
        return factor;
    }
    // Dead inputs: H[j,j] = 1 (their columns of W are zeroed by the solve). Only the diagonal
    // of H is changed, and it is handed to the factorisation separately, so H is never copied.
    auto diagonal = at::diag(h).clone(); // [cols]
    factor.dead = diagonal == 0;
    factor.deadInputs = factor.dead.sum().item<int64_t>();
    if (factor.deadInputs > 0)
        diagonal.masked_fill_(factor.dead, 1.0);
    const auto meanDiagonal = diagonal.mean(); // float32, as torch.mean(torch.diag(H))

    // Damping H += damp·mean(diag H)·I, raised ×10 while the factorisation fails.
    const cpu::Damping damping = cpu::raiseDampingUntilFactored(damp, cancel, [&](double relDamp) {
        const auto absolute = meanDiagonal * relDamp; // float32, as the reference's percdamp·mean
        factor.hinv = upperCholeskyOfInverse(h, diagonal + absolute);
        if (!factor.hinv.defined())
            return false;
        factor.dampAbsolute = absolute.item<double>();
        return true;
    });
    factor.dampUsed = damping.relative;
    factor.dampRaises = damping.raises;
    return factor;
}

SparseGptSetup prepareSparseGpt(torch::Tensor& w, const torch::Tensor& hIn, const SolverOptions& options,
                                const CancelToken* cancel, const HessianFactor* sharedFactor)
{
    const int64_t rows = w.size(0);
    const int64_t cols = w.size(1);
    const QuantOptions& qo = options.quant;
    SparseGptSetup setup;

    // Quantization grid from the dense W, before dead inputs are zeroed (reference order).
    if (qo.enabled())
        setup.grid = findQuantGrid(w, qo.bits, qo.symmetric, qo.fp16Scale, qo.signedScale);

    // Dead inputs: H[j,j] = 1, W[:, j] = 0. Only the diagonal of H is changed, and it is handed
    // to the factorisation separately, so H itself is never copied here.
    auto diagonal = at::diag(hIn).clone(); // [cols]
    auto dead = diagonal == 0;
    setup.deadInputs = dead.sum().item<int64_t>();
    if (setup.deadInputs > 0) {
        diagonal.masked_fill_(dead, 1.0);
        if (w.device().is_cpu()) {
            const auto deadIndex = dead.nonzero().flatten().to(torch::kLong).contiguous();
            float* pw = w.data_ptr<float>();
            for (int64_t k = 0; k < deadIndex.numel(); ++k) {
                const int64_t j = deadIndex.data_ptr<int64_t>()[k];
                for (int64_t r = 0; r < rows; ++r)
                    pw[r * cols + j] = 0.0f;
            }
        } else {
            w.masked_fill_(dead.unsqueeze(0), 0.0);
        }
    }

    // GPTQ static groups (after dead inputs are zeroed, in the original column order) and
    // act-order (W, H and the diagonal permuted; the result is permuted back at the end).
    if (qo.enabled() && qo.staticGroups) {
        const int64_t groups = (cols + qo.groupSize - 1) / qo.groupSize;
        setup.staticScale = torch::empty({groups, rows}, w.options());
        setup.staticZero = torch::empty({groups, rows}, w.options());
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t c0 = g * qo.groupSize;
            const QuantGrid gg = findQuantGrid(w.narrow(1, c0, std::min(qo.groupSize, cols - c0)), qo.bits,
                                               qo.symmetric, qo.fp16Scale, qo.signedScale);
            setup.staticScale[g].copy_(gg.scale);
            setup.staticZero[g].copy_(gg.zero);
        }
    }
    torch::Tensor hPermuted;
    if (qo.enabled() && qo.actOrder) {
        setup.perm = actOrderPermutation(diagonal);
        const auto permOnDevice = setup.perm.to(w.device());
        setup.wOriginalOrder = w;
        w = w.index_select(1, permOnDevice).contiguous();
        hPermuted = hIn.index_select(0, permOnDevice).index_select(1, permOnDevice).contiguous();
    }
    const torch::Tensor& h = hPermuted.defined() ? hPermuted : hIn;
    if (qo.enabled() && qo.groupSize > 0) {
        const auto position = torch::arange(cols, torch::kLong);
        const auto column = setup.perm.defined() ? setup.perm : position;
        if (qo.staticGroups) {
            setup.groupAt = column.div(qo.groupSize, "floor").contiguous(); // group of the visited column
            setup.groupIndex = position.div(qo.groupSize, "floor");
        } else {
            // Boundaries every groupSize visited positions: column perm[k] is in group k / groupSize.
            setup.groupIndex = torch::empty({cols}, torch::kLong);
            setup.groupIndex.index_copy_(0, column, position.div(qo.groupSize, "floor"));
        }
    }

    // Damping and Hinv (of the permuted H with act-order, whose mean diagonal is then summed in
    // the visiting order, as gptq.py does). A shared factor (hessian_factor.h) replaces this
    // step; it was made from the unpermuted H, so act-order cannot use one.
    HessianFactor ownFactor;
    if (sharedFactor) {
        if (sharedFactor->dampRequested != options.damp || !sharedFactor->hinv.defined()
            || sharedFactor->hinv.size(0) != cols || setup.perm.defined())
            throw std::invalid_argument("prepareSparseGpt: the shared Hessian factor does not match the options");
    } else {
        ownFactor = factorHessianImpl(h, options.damp, cancel);
    }
    const HessianFactor& factor = sharedFactor ? *sharedFactor : ownFactor;
    setup.hinv = factor.hinv;
    setup.dampUsed = factor.dampUsed;
    setup.dampRaises = factor.dampRaises;
    setup.dampAbsolute = factor.dampAbsolute;
    return setup;
}

LayerResult solveSparseGpt(torch::Tensor& w, const torch::Tensor& h, const SolverOptions& options,
                           const ProgressCallback& progress, const CancelToken* cancel, Backend backend,
                           double* dampAbsolute, const HessianFactor* sharedFactor)
{
    const int64_t rows = w.size(0);
    const int64_t cols = w.size(1);
    const QuantOptions& qo = options.quant;
    LayerResult result;
    // With act-order `w` is the column-permuted copy from here on (permuted back at the end).
    const SparseGptSetup setup = prepareSparseGpt(w, h, options, cancel, sharedFactor);
    result.groupIndex = setup.groupIndex;
    const QuantGrid& grid = setup.grid;
    const torch::Tensor& hinv = setup.hinv;
    const double relDamp = setup.dampUsed;
    const int raises = setup.dampRaises;
    if (dampAbsolute)
        *dampAbsolute = setup.dampAbsolute;
    result.stats.deadInputs = setup.deadInputs;
    result.stats.dampUsed = relDamp;
    result.stats.dampRaises = raises;

    // Every entry is written block by block (by the tiles, or by the generic loop).
    result.mask = torch::empty({rows, cols}, w.options().dtype(torch::kBool));
    Problem p{w, hinv, result.mask, options, grid, rows, cols, {}, {}, nullptr};
    const int64_t blocks = (cols + options.blocksize - 1) / options.blocksize;
    ProgressReporter reporter(progress, "solve", blocks);
    const std::string note = cpu::dampNote(raises, relDamp);
    // The CUDA kernel finds GPTQ group grids itself, the plain way: static groups, fp16 or
    // signed scales with groups stay on the generic LibTorch path.
    const bool kernelGrids = !(qo.enabled() && qo.groupSize > 0 && (qo.staticGroups || qo.fp16Scale || qo.signedScale));
    if (backend == Backend::Auto)
        backend = w.device().is_cpu() ? (rows < INT_MAX && cols < INT_MAX ? Backend::CpuTiled : Backend::Generic)
            : (w.device().is_cuda() && cudaKernelsBuilt() && options.blocksize <= kCudaMaxBlockColumns && kernelGrids)
            ? Backend::CudaKernels
            : Backend::Generic;
    if (backend == Backend::CpuTiled && !w.device().is_cpu())
        throw std::invalid_argument("solveSparseGpt: the CpuTiled backend needs CPU tensors");
    if (setup.groupAt.defined()) {
        p.staticScale = setup.staticScale.contiguous(); // on W's device: CPU for CpuTiled
        p.staticZero = setup.staticZero.contiguous();
        p.groupAt = setup.groupAt.data_ptr<int64_t>();
    }
    if (backend == Backend::CudaKernels)
        result.stats.loss = runCudaKernels(w, hinv, result.mask, options, grid, reporter, cancel, note);
    else
        result.stats.loss = backend == Backend::CpuTiled ? runCpuTiled(p, reporter, cancel, note)
                                                         : runGeneric(p, reporter, cancel, note);
    if (setup.perm.defined()) {
        // Back to the original column order (GPTQ's Q[:, invperm]).
        const auto permOnDevice = setup.perm.to(w.device());
        torch::Tensor original = setup.wOriginalOrder;
        original.index_copy_(1, permOnDevice, w);
        auto mask = torch::empty_like(result.mask);
        mask.index_copy_(1, permOnDevice, result.mask);
        result.mask = mask;
        w = original;
    }
    return result;
}

} // namespace sparselab::solve::detail
