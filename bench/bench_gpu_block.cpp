// SparseGPT on one synthetic decoder block of OPT-175B shape (hidden 12288, MLP 49152; six
// linear layers q, k, v, out [d, d], fc1 [4d, d], fc2 [d, 4d]) with `samples` × `seqlen`
// calibration tokens (default 128 × 2048), on one device. Measured, each with a device sync
// around it:
//   hessians — HessianAccumulator over the calibration inputs of each distinct input (q/k/v
//              share one; out, fc1, fc2 one each), in chunks of `chunk` windows;
//   solve    — solveLayer (unstructured 50 %, blocksize 128, damp 0.01) for the six layers;
//   forward  — the six linear GEMMs X·Wᵀ on `forward-samples` windows, scaled to all windows
//              (attention, norms and activations are not included), counted twice per block
//              (the dense pass and the pass through the compressed block);
//   tf32     — opt-in TF32: fc1's solve and one Hessian chunk set again with TF32 allowed,
//              reporting speed and the deviation from float32 (CUDA only);
//   bf16     — opt-in bfloat16 Hessian accumulation: fc1's input Hessian on forward-samples
//              windows in bf16 and in float32 side by side, the relative deviation, and fc1
//              solved with each (loss, mask mismatches, error judged by the float32 Hessian);
//   factor   — the triangular inverse inside the factorisation (CUDA only): cuSOLVER's trtri,
//              which the solver uses, against ATen's triangular solve against I, which it used
//              before, on the damped leading n × n block of fc2's input Hessian (n = min(24576,
//              mlp)), interleaved, median of 3 after a warm-up each; and their difference.
// Per-block seconds as the pipeline would spend them (every layer accumulates its own Hessian,
// as in SparseLab's pipeline and the reference), achieved TFLOP/s of the solve against the
// fp32 peak given with --fp32-peak-tflops, and the projection to `blocks` blocks (96).
// Solve FLOPs are counted the same way for any implementation (bench/README in docs/gpu.md):
// lazy-update GEMMs 2·rows·count·(cols − i2) per column block, in-block updates rows·count²,
// factorisation 2·cols³/3 (Cholesky + triangular inverse). One JSON line on stdout.
//
//   bench_gpu_block [--device cuda|cpu] [--hidden 12288] [--mlp 49152] [--samples 128]
//                   [--seqlen 2048] [--chunk 8] [--forward-samples 16] [--blocks 96]
//                   [--fp32-peak-tflops P] [--skip-tf32] [--skip-bf16] [--skip-factor]
// Data: W ~ N(0, 0.02²), inputs ~ N(0, 1), generated on the device from fixed seeds.

#include "solve/solver.h"
#include "solve/solver_detail.h"

#include <ATen/Context.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using namespace sparselab;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string device = "cuda";
    int64_t hidden = 12288, mlp = 49152, samples = 128, seqlen = 2048, chunk = 8, forwardSamples = 16, blocks = 96;
    double peakTflops = 0.0;
    bool tf32 = true;
    bool bf16 = true;
    bool factor = true;
};

void sync(const torch::Device& device)
{
    if (device.is_cuda())
        torch::cuda::synchronize();
}

template <class Fn>
double timed(const torch::Device& device, const Fn& fn)
{
    sync(device);
    const auto start = Clock::now();
    fn();
    sync(device);
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double solveFlops(int64_t rows, int64_t cols, int64_t bs)
{
    double flops = 2.0 / 3.0 * double(cols) * double(cols) * double(cols);
    for (int64_t i1 = 0; i1 < cols; i1 += bs) {
        const int64_t count = std::min(bs, cols - i1);
        const int64_t rest = cols - i1 - count;
        flops += 2.0 * double(rows) * double(count) * double(rest) + double(rows) * double(count) * double(count);
    }
    return flops;
}

struct Layer {
    std::string name;
    int64_t rows, cols;
    int input; // index of the distinct input it reads
};

} // namespace

int main(int argc, char** argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string key = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "error: %s needs a value\n", key.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (key == "--device") o.device = next();
        else if (key == "--hidden") o.hidden = std::atoll(next().c_str());
        else if (key == "--mlp") o.mlp = std::atoll(next().c_str());
        else if (key == "--samples") o.samples = std::atoll(next().c_str());
        else if (key == "--seqlen") o.seqlen = std::atoll(next().c_str());
        else if (key == "--chunk") o.chunk = std::atoll(next().c_str());
        else if (key == "--forward-samples") o.forwardSamples = std::atoll(next().c_str());
        else if (key == "--blocks") o.blocks = std::atoll(next().c_str());
        else if (key == "--fp32-peak-tflops") o.peakTflops = std::atof(next().c_str());
        else if (key == "--skip-tf32") o.tf32 = false;
        else if (key == "--skip-bf16") o.bf16 = false;
        else if (key == "--skip-factor") o.factor = false;
        else {
            std::fprintf(stderr, "error: unknown option %s\n", key.c_str());
            return 2;
        }
    }
    if (o.device == "cuda" && !torch::cuda::is_available()) {
        std::fprintf(stderr, "error: --device cuda: LibTorch sees no CUDA device\n");
        return 2;
    }
    const torch::Device device = o.device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    torch::NoGradGuard noGrad;
    at::globalContext().setAllowTF32CuBLAS(false);
    const auto fopts = torch::TensorOptions().dtype(torch::kFloat).device(device);
    const int64_t d = o.hidden, I = o.mlp;
    const std::vector<int64_t> inputCols = {d, d, d, I}; // q/k/v input, out input, fc1 input, fc2 input
    const std::vector<Layer> layers = {{"q_proj", d, d, 0},  {"k_proj", d, d, 0},   {"v_proj", d, d, 0},
                                       {"out_proj", d, d, 1}, {"fc1", I, d, 2}, {"fc2", d, I, 3}};

    // Hessians of the distinct inputs.
    std::vector<torch::Tensor> hessians;
    std::vector<double> hessianSeconds;
    for (size_t g = 0; g < inputCols.size(); ++g) {
        solve::HessianAccumulator acc(inputCols[g], device);
        double seconds = 0.0;
        for (int64_t s = 0; s < o.samples; s += o.chunk) {
            torch::manual_seed(uint64_t(1000 * (g + 1) + s));
            const auto x = torch::randn({std::min(o.chunk, o.samples - s), o.seqlen, inputCols[g]}, fopts);
            seconds += timed(device, [&] { acc.add(x); });
        }
        seconds += timed(device, [&] { (void)acc.hessian(); });
        hessians.push_back(acc.hessian());
        hessianSeconds.push_back(seconds);
    }

    solve::SolverOptions so;
    so.sparsity = 0.5;
    so.blocksize = 128;
    nlohmann::json perLayer = nlohmann::json::array();
    double solveSeconds = 0.0, solveFlopsTotal = 0.0, hessianBlockSeconds = 0.0, forwardSeconds = 0.0;
    torch::Tensor fc1Dense, fc1Fp32;
    double fc1LossFp32 = 0.0;
    for (size_t l = 0; l < layers.size(); ++l) {
        const Layer& layer = layers[l];
        torch::manual_seed(uint64_t(l + 1));
        auto w = torch::randn({layer.rows, layer.cols}, fopts) * 0.02;
        if (layer.name == "fc1")
            fc1Dense = w.clone();
        // Forward GEMM on forwardSamples windows, scaled to all of them.
        const int64_t fs = std::min(o.forwardSamples, o.samples);
        torch::manual_seed(7);
        const auto x = torch::randn({fs * o.seqlen, layer.cols}, fopts);
        const double fwd = timed(device, [&] { (void)at::mm(x, w.t()); }) * double(o.samples) / double(fs);
        forwardSeconds += 2.0 * fwd;
        solve::LayerResult result;
        const double seconds = timed(device, [&] { result = solve::solveLayer(w, hessians[size_t(layer.input)], so); });
        const double flops = solveFlops(layer.rows, layer.cols, so.blocksize);
        solveSeconds += seconds;
        solveFlopsTotal += flops;
        hessianBlockSeconds += hessianSeconds[size_t(layer.input)];
        if (layer.name == "fc1") {
            fc1Fp32 = w;
            fc1LossFp32 = result.stats.loss;
        }
        perLayer.push_back({{"name", layer.name},
                            {"rows", layer.rows},
                            {"cols", layer.cols},
                            {"solve_seconds", seconds},
                            {"solve_tflops", flops / seconds / 1e12},
                            {"loss", result.stats.loss},
                            {"sparsity", result.stats.sparsity},
                            {"rel_output_error", result.stats.relOutputError},
                            {"forward_seconds_one_pass", fwd}});
    }
    const double blockSeconds = hessianBlockSeconds + solveSeconds + forwardSeconds;
    const double solveTflops = solveFlopsTotal / solveSeconds / 1e12;
    nlohmann::json out = {
        {"bench", "bench_gpu_block"},
        {"device", o.device},
        {"cuda_solver_kernels", solve::detail::cudaKernelsBuilt()},
        {"cuda_triangular_inverse", solve::detail::cudaTriangularInverseAvailable()},
        {"shape", {{"hidden", d}, {"mlp", I}, {"samples", o.samples}, {"seqlen", o.seqlen}}},
        {"hessian_seconds_by_input", hessianSeconds},
        {"hessian_seconds_block", hessianBlockSeconds},
        {"solve_seconds_block", solveSeconds},
        {"forward_linear_seconds_block", forwardSeconds},
        {"block_seconds", blockSeconds},
        {"solve_tflop", solveFlopsTotal / 1e12},
        {"solve_tflops", solveTflops},
        {"projection_blocks", o.blocks},
        {"projection_hours", blockSeconds * double(o.blocks) / 3600.0},
        {"projection_solve_only_hours", solveSeconds * double(o.blocks) / 3600.0},
        {"layers", perLayer},
    };
    if (o.peakTflops > 0) {
        out["fp32_peak_tflops"] = o.peakTflops;
        out["solve_fraction_of_peak"] = solveTflops / o.peakTflops;
    }
    if (o.tf32 && device.is_cuda()) {
        // Opt-in TF32: fc1's solve from the same dense W and Hessian, and fc1's input Hessian on
        // forward-samples windows, against float32.
        at::globalContext().setAllowTF32CuBLAS(true);
        auto w = fc1Dense.clone();
        solve::LayerResult r;
        const double seconds = timed(device, [&] { r = solve::solveLayer(w, hessians[2], so); });
        const auto fs = std::min(o.forwardSamples, o.samples);
        solve::HessianAccumulator tf(d, device);
        at::globalContext().setAllowTF32CuBLAS(false);
        solve::HessianAccumulator fp(d, device);
        torch::manual_seed(99);
        const auto x = torch::randn({fs, o.seqlen, d}, fopts);
        const double fpSeconds = timed(device, [&] { fp.add(x); (void)fp.hessian(); });
        at::globalContext().setAllowTF32CuBLAS(true);
        const double tfSeconds = timed(device, [&] { tf.add(x); (void)tf.hessian(); });
        at::globalContext().setAllowTF32CuBLAS(false);
        const double hDev = ((tf.hessian() - fp.hessian()).norm() / fp.hessian().norm()).item<double>();
        const double wDev = ((w - fc1Fp32).abs().max() / fc1Fp32.abs().max()).item<double>();
        const int64_t maskDiff = (w.eq(0) != fc1Fp32.eq(0)).sum().item<int64_t>();
        // The six forward GEMMs again with TF32 allowed (same windows and scaling as above).
        double forwardTf32 = 0.0;
        at::globalContext().setAllowTF32CuBLAS(true);
        for (size_t l = 0; l < layers.size(); ++l) {
            torch::manual_seed(uint64_t(l + 1));
            const auto wl = torch::randn({layers[l].rows, layers[l].cols}, fopts) * 0.02;
            torch::manual_seed(7);
            const auto xl = torch::randn({fs * o.seqlen, layers[l].cols}, fopts);
            (void)at::mm(xl, wl.t()); // warm-up: cuBLAS picks its TF32 kernel once
            forwardTf32 += 2.0 * timed(device, [&] { (void)at::mm(xl, wl.t()); }) * double(o.samples) / double(fs);
        }
        at::globalContext().setAllowTF32CuBLAS(false);
        // Block time with every GEMM in TF32, estimated from the measured ratios: Hessians scaled
        // by fc1's Hessian ratio, the solve by fc1's solve ratio, the forward GEMMs measured.
        const double fc1Fp32Seconds = perLayer[4]["solve_seconds"].get<double>();
        const double blockTf32 = hessianBlockSeconds * (tfSeconds / fpSeconds) + solveSeconds * (seconds / fc1Fp32Seconds)
            + forwardTf32;
        out["tf32"] = {{"fc1_solve_seconds", seconds},
                       {"fc1_solve_seconds_fp32", perLayer[4]["solve_seconds"]},
                       {"fc1_loss_rel_deviation", std::fabs(r.stats.loss - fc1LossFp32) / fc1LossFp32},
                       {"fc1_weight_max_rel_deviation", wDev},
                       {"fc1_mask_mismatches", maskDiff},
                       {"hessian_rel_frobenius_deviation", hDev},
                       {"hessian_seconds_tf32", tfSeconds},
                       {"hessian_seconds_fp32", fpSeconds},
                       {"forward_linear_seconds_block_tf32", forwardTf32},
                       {"block_seconds_tf32_estimated", blockTf32},
                       {"projection_hours_tf32_estimated", blockTf32 * double(o.blocks) / 3600.0}};
    }
    if (o.bf16) {
        const auto fs = std::min(o.forwardSamples, o.samples);
        torch::manual_seed(98);
        const auto x = torch::randn({fs, o.seqlen, d}, fopts);
        solve::HessianAccumulator fp(d, device);
        solve::HessianAccumulator bf(d, device, solve::HessianPrecision::BFloat16);
        const double fpSeconds = timed(device, [&] { fp.add(x); (void)fp.hessian(); });
        const double bfSeconds = timed(device, [&] { bf.add(x); (void)bf.hessian(); });
        const torch::Tensor& h32 = fp.hessian();
        const double hDev = ((bf.hessian() - h32).norm() / h32.norm()).item<double>();
        auto w32 = fc1Dense.clone();
        auto w16 = fc1Dense.clone();
        const auto r32 = solve::solveLayer(w32, h32, so);
        const auto r16 = solve::solveLayer(w16, bf.hessian(), so);
        const auto errorBy = [&](const torch::Tensor& w) {
            const auto delta = fc1Dense - w;
            return ((delta.mm(h32) * delta).sum() / (fc1Dense.mm(h32) * fc1Dense).sum()).item<double>();
        };
        out["bf16_hessian"] = {{"windows", fs},
                               {"hessian_seconds_bf16", bfSeconds},
                               {"hessian_seconds_fp32", fpSeconds},
                               {"speedup", fpSeconds / bfSeconds},
                               {"hessian_rel_frobenius_deviation", hDev},
                               {"fc1_loss_rel_deviation", std::fabs(r16.stats.loss - r32.stats.loss) / r32.stats.loss},
                               {"fc1_mask_mismatches", (w16.eq(0) != w32.eq(0)).sum().item<int64_t>()},
                               {"fc1_rel_output_error_fp32_solve", errorBy(w32)},
                               {"fc1_rel_output_error_bf16_solve", errorBy(w16)}};
    }
    if (o.factor && device.is_cuda()) {
        const int64_t n = std::min<int64_t>(24576, I);
        auto h = hessians[3].narrow(0, 0, n).narrow(1, 0, n).clone();
        h.diagonal().add_(0.01 * h.diagonal().mean());
        torch::Tensor l;
        const double choleskySeconds = timed(device, [&] { l = at::linalg_cholesky(h.flip({0, 1})); });
        h = torch::Tensor();
        const auto identity = torch::eye(n, fopts);
        torch::Tensor byTrtri, bySolve;
        std::vector<double> trtriRuns, trsmRuns;
        for (int run = 0; run < 4; ++run) { // run 0 warms both up and is not counted
            const double t = timed(device, [&] { byTrtri = solve::detail::invertLowerTriangularCuda(l); });
            const double u = timed(device, [&] { bySolve = at::linalg_solve_triangular(l, identity, /*upper=*/false); });
            if (run > 0) {
                trtriRuns.push_back(t);
                trsmRuns.push_back(u);
            }
        }
        const auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        nlohmann::json factor = {{"n", n},
                                 {"cholesky_seconds", choleskySeconds},
                                 {"solve_triangular_seconds_median", median(trsmRuns)},
                                 {"solve_triangular_seconds", trsmRuns}};
        if (byTrtri.defined()) {
            factor["trtri_seconds_median"] = median(trtriRuns);
            factor["trtri_seconds"] = trtriRuns;
            factor["speedup"] = median(trsmRuns) / median(trtriRuns);
            factor["max_abs_difference_over_max_abs"] =
                ((byTrtri - bySolve).abs().max() / bySolve.abs().max()).item<double>();
        } else {
            factor["trtri_seconds_median"] = nullptr; // this process has no cuSOLVER trtri
        }
        out["factorisation"] = factor;
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
}
