// The solver and the whole pipeline on CUDA tensors against the CPU (issue 6's acceptance):
// masks equal and weights within 1e-4 relative (max |ΔW| / max |W| per layer), float32 with
// TF32 off. Cases: the golden solver problems of tests/data/solver (problem_a/b/c) under
// unstructured, N:M and joint-quantization options, and a whole prune of the bundled demo model
// (stories260K-hf, Llama) on the same calibration windows. Then, opt-in TF32 for the GEMMs:
// its deviation from float32 is printed (and must stay small: loss within 5 %).
// problem_c is all exact ties (integer W, H = I): there the masks are decided by the last bit
// of the factor U's diagonal, and cuSOLVER's U of the damped identity is not uniform to the
// bit (one of 64 diagonal entries differs by an ulp; LAPACK's is uniform), so independent
// factorisations pick different, equally valid, tie-breaks. For it the check is that the
// factors agree within 1e-6 and that, given the same factor, GPU and CPU agree bit for bit.
// Every problem also runs that same-factor comparison.
// With a CUDA LibTorch and the kernels (SPARSELAB_CUDA_SOLVER) the CUDA side runs core/cuda's
// block kernel; with a CUDA LibTorch only, the generic tensor path. Skips (exit 77) when
// LibTorch sees no CUDA device — always so with Debian's CPU LibTorch.

#include "gpu_check.h"

#include "data/calibration.h"
#include "io/safetensors.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "solve/hessian_factor.h"
#include "solve/solver.h"
#include "solve/solver_detail.h"

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace sparselab;
namespace fs = std::filesystem;

torch::Tensor loadF32(const io::SafetensorsFile& file, const std::string& name)
{
    const auto view = file.view(name);
    return torch::from_blob(const_cast<std::byte*>(view.data), view.shape, torch::kFloat32).clone();
}

struct Comparison {
    int64_t maskMismatches = 0;
    double relWeight = 0.0; // max |ΔW| / max |W_cpu|
};

Comparison compare(const torch::Tensor& cpuWeight, const torch::Tensor& cpuMask, const torch::Tensor& gpuWeight,
                   const torch::Tensor& gpuMask)
{
    Comparison c;
    c.maskMismatches = cpuMask.ne(gpuMask.to(torch::kCPU)).sum().item<int64_t>();
    const double scale = std::max(cpuWeight.abs().max().item<double>(), 1e-30);
    c.relWeight = (cpuWeight - gpuWeight.to(torch::kCPU)).abs().max().item<double>() / scale;
    return c;
}

solve::SolverOptions opts(double sparsity, int n, int m, int bits = 16, int64_t group = 0)
{
    solve::SolverOptions o;
    o.sparsity = sparsity;
    o.nmN = n;
    o.nmM = m;
    o.quant.bits = bits;
    o.quant.groupSize = group;
    return o;
}

void solverCases()
{
    const fs::path dir = fs::path(SPARSELAB_TEST_DATA_DIR) / "solver";
    const std::vector<std::pair<std::string, solve::SolverOptions>> variants = {
        {"unstructured 50%", opts(0.5, 0, 0)},
        {"2:4", opts(0.5, 2, 4)},
        {"4:8 4-bit", opts(0.5, 4, 8, 4)},
        {"unstructured 50% 4-bit g64", opts(0.5, 0, 0, 4, 64)},
        {"GPTQ 3-bit", opts(0.0, 0, 0, 3)},
    };
    for (const char* id : {"a", "b", "c"}) {
        const auto file = io::SafetensorsFile::open(dir / (std::string("problem_") + id + ".safetensors"));
        const auto w = loadF32(file, "weight");
        const auto h = loadF32(file, "hessian");
        for (const auto& [name, o] : variants) {
            if (o.quant.groupSize > 0 && w.size(1) < o.quant.groupSize)
                continue;
            auto wCpu = w.clone();
            const auto cpu = solve::solveLayer(wCpu, h, o);
            auto wGpu = w.to(torch::kCUDA);
            const auto gpu = solve::solveLayer(wGpu, h.to(torch::kCUDA), o);
            const auto c = compare(wCpu, cpu.mask, wGpu, gpu.mask);
            const std::string what = std::string("problem_") + id + " " + name;
            std::printf("  %-34s [%lld x %lld] mask mismatches %lld, max|dW|/max|W| %.3g, loss cpu %.8g gpu %.8g\n",
                        what.c_str(), (long long)w.size(0), (long long)w.size(1), (long long)c.maskMismatches,
                        c.relWeight, cpu.stats.loss, gpu.stats.loss);
            const bool exactTies = std::string(id) == "c" && o.sparsity > 0.0;
            if (!exactTies) {
                GPU_CHECK(c.maskMismatches == 0, what + ": masks differ");
                GPU_CHECK(c.relWeight <= 1e-4, what + ": weights beyond 1e-4 relative");
            }
            // The same factor (cuSOLVER's, copied to the CPU) on both devices.
            const auto factorGpu = solve::factorHessian(h.to(torch::kCUDA), o.damp);
            solve::HessianFactor factorCpu = factorGpu;
            factorCpu.hinv = factorGpu.hinv.to(torch::kCPU).contiguous();
            factorCpu.dead = factorGpu.dead.to(torch::kCPU);
            auto wCpuSame = w.clone();
            const auto cpuSame = solve::solveLayerWithFactor(wCpuSame, h, factorCpu, o);
            auto wGpuSame = w.to(torch::kCUDA);
            const auto gpuSame = solve::solveLayerWithFactor(wGpuSame, h.to(torch::kCUDA), factorGpu, o);
            const auto same = compare(wCpuSame, cpuSame.mask, wGpuSame, gpuSame.mask);
            std::printf("  %-34s same factor: mask mismatches %lld, max|dW|/max|W| %.3g%s\n", what.c_str(),
                        (long long)same.maskMismatches, same.relWeight,
                        exactTies ? " (exact ties: independent factors may break them differently)" : "");
            GPU_CHECK(same.maskMismatches == 0, what + ": masks differ with the same factor");
            GPU_CHECK(same.relWeight <= 1e-4, what + ": weights beyond 1e-4 relative with the same factor");
        }
    }
}

// The factor U (UᵀU = H⁻¹ of the damped H) on both devices: LAPACK on the CPU, cuSOLVER through
// ATen on CUDA: within 1e-6 relative. Printed: whether they agree to the bit and how many
// distinct diagonal values each has (one, for problem_c's H = I, when exact) — on exact ties
// the masks are decided by those last bits.
void factorDiagnostics()
{
    const fs::path dir = fs::path(SPARSELAB_TEST_DATA_DIR) / "solver";
    for (const char* id : {"a", "b", "c"}) {
        const auto file = io::SafetensorsFile::open(dir / (std::string("problem_") + id + ".safetensors"));
        const auto h = loadF32(file, "hessian");
        auto diagonal = at::diag(h).clone();
        diagonal.masked_fill_(diagonal.eq(0), 1.0);
        diagonal += diagonal.mean() * 0.01;
        const auto cpu = solve::detail::upperCholeskyOfInverse(h, diagonal).contiguous();
        const auto gpu = solve::detail::upperCholeskyOfInverse(h.to(torch::kCUDA), diagonal.to(torch::kCUDA))
                             .to(torch::kCPU)
                             .contiguous();
        const auto dc = at::diag(cpu), dg = at::diag(gpu);
        std::printf("  factor problem_%s: max|U_gpu - U_cpu|/max|U| %.3g, diagonal entries differing %lld of %lld, "
                    "distinct diagonal values cpu %lld gpu %lld, off-diagonal nonzeros cpu %lld gpu %lld\n",
                    id, ((gpu - cpu).abs().max() / cpu.abs().max()).item<double>(),
                    (long long)dc.ne(dg).sum().item<int64_t>(), (long long)dc.numel(),
                    (long long)std::get<0>(at::_unique(dc)).numel(), (long long)std::get<0>(at::_unique(dg)).numel(),
                    (long long)at::triu(cpu, 1).ne(0).sum().item<int64_t>(),
                    (long long)at::triu(gpu, 1).ne(0).sum().item<int64_t>());
        GPU_CHECK(((gpu - cpu).abs().max() / cpu.abs().max()).item<double>() <= 1e-6,
                  std::string("problem_") + id + ": factors beyond 1e-6 relative");
    }
}

void demoModelPrune()
{
    const fs::path folder = fs::path(SPARSELAB_RESOURCES_DIR) / "models" / "stories260K-hf";
    auto cpuModel = model::CausalLM::load(folder, torch::kCPU);
    auto gpuModel = model::CausalLM::load(folder, torch::kCUDA);
    // Calibration windows of random token ids (fixed seed): the same input on both devices is
    // what matters here, not the text.
    data::CalibrationWindows windows;
    windows.nsamples = 16;
    windows.seqlen = 128;
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int64_t> token(0, cpuModel->config().vocabSize - 1);
    for (int64_t k = 0; k < windows.nsamples * windows.seqlen; ++k)
        windows.ids.push_back(token(rng));
    for (int64_t s = 0; s < windows.nsamples; ++s)
        windows.offsets.push_back(s * windows.seqlen);
    pipeline::PruneParams params;
    params.recipe.defaults.options = opts(0.5, 0, 0);
    const auto cpuResult = pipeline::pruneModel(*cpuModel, windows, params);
    const auto gpuResult = pipeline::pruneModel(*gpuModel, windows, params);
    int64_t layers = 0, mismatches = 0;
    double worst = 0.0;
    for (int64_t b = 0; b < cpuModel->numBlocks(); ++b)
        for (size_t i = 0; i < cpuModel->linears(b).size(); ++i) {
            const auto& lc = cpuModel->linears(b)[i];
            const auto& lg = gpuModel->linears(b)[i];
            const auto c = compare(lc.weight, lc.weight.eq(0), lg.weight, lg.weight.eq(0));
            mismatches += c.maskMismatches;
            worst = std::max(worst, c.relWeight);
            ++layers;
            GPU_CHECK(c.maskMismatches == 0, lc.name + ": masks differ (" + std::to_string(c.maskMismatches) + ")");
            GPU_CHECK(c.relWeight <= 1e-4, lc.name + ": weights beyond 1e-4 relative (" + std::to_string(c.relWeight) + ")");
        }
    std::printf("  demo model prune (%s, %lld layers, 16 x 128 tokens): mask mismatches %lld, worst max|dW|/max|W| %.3g, "
                "sparsity cpu %.6f gpu %.6f, seconds cpu %.2f gpu %.2f\n",
                folder.filename().c_str(), (long long)layers, (long long)mismatches, worst,
                cpuResult.linearSparsity(), gpuResult.linearSparsity(), cpuResult.seconds, gpuResult.seconds);
}

// Opt-in TF32 (cuBLAS GEMMs: the lazy update; Hessians in the pipeline): deviation from float32.
void tf32Deviation()
{
    const fs::path dir = fs::path(SPARSELAB_TEST_DATA_DIR) / "solver";
    const auto file = io::SafetensorsFile::open(dir / "problem_a.safetensors");
    const auto w = loadF32(file, "weight").to(torch::kCUDA);
    const auto h = loadF32(file, "hessian").to(torch::kCUDA);
    const auto o = opts(0.5, 0, 0);
    auto w32 = w.clone();
    const auto r32 = solve::solveLayer(w32, h, o);
    at::globalContext().setAllowTF32CuBLAS(true);
    auto wTf = w.clone();
    const auto rTf = solve::solveLayer(wTf, h, o);
    at::globalContext().setAllowTF32CuBLAS(false);
    const auto c = compare(w32.cpu(), r32.mask.cpu(), wTf, rTf.mask);
    const double lossRel = std::fabs(rTf.stats.loss - r32.stats.loss) / std::max(r32.stats.loss, 1e-30);
    std::printf("  TF32 vs float32 (problem_a, 50%%): mask mismatches %lld, max|dW|/max|W| %.3g, loss rel. dev. %.3g\n",
                (long long)c.maskMismatches, c.relWeight, lossRel);
    GPU_CHECK(lossRel < 0.05, "TF32 loss within 5 % of float32");
}

} // namespace

int main()
{
    const char* suite = "gpu_solver_vs_cpu";
    if (!torch::cuda::is_available())
        return gputest::skip(suite, "LibTorch sees no CUDA device (CPU-only LibTorch or no GPU/driver)");
    torch::NoGradGuard noGrad;
    at::globalContext().setAllowTF32CuBLAS(false);
    std::printf("CUDA solver path: %s\n", solve::detail::cudaKernelsBuilt() ? "core/cuda kernels" : "generic tensor ops");
    solverCases();
    factorDiagnostics();
    demoModelPrune();
    tf32Deviation();
    return gputest::finish(suite);
}
