// Times one layer's SparseGPT: Hessian accumulation (HessianAccumulator, calibration tokens in
// sequences of --seqlen) and solveLayer (damping, Hinv, column loop, lazy updates, statistics)
// on random square layers. One JSON line per size on stdout:
//   {"size": n, "tokens": T, "threads": k, "hessian_s": …, "solve_s": …, "total_s": …, …}
// scripts/bench_reference_solver.sh runs the published reference on the same shapes.
//
// usage: bench_solve_layer [--sizes 1024,2048,4096] [--tokens 8192] [--seqlen 2048]
//                          [--threads N] [--sparsity 0.5 | --nm N:M] [--bits B] [--repeat R]
//                          [--breakdown 1]
// --breakdown 1 also times the pieces of the solve separately, best of --repeat each: the Hinv
// factorisation ("hinv_s"), the column loop itself (cpu::runColumnLoop on a fresh copy of W,
// "loop_s": mask selection, in-block and lazy updates; with --bits the solve's remainder), one
// quadratic trace of the statistics ("trace_s"), and what the solve spends besides them
// ("rest_s" = solve − the three: copying and checking W, buffers, the statistics' O(r·n)
// passes). The solve timed is the engine's solveLayer, which factors into a buffer of its own
// (solve-layer's CPU solve factors inside H's: cpu::factorHessianInPlace). It adds an n×n×n sgemm at the same
// threads ("sgemm_gflops", best of 3) and each phase's rate in GFLOP/s with its share of that
// sgemm rate ("*_gflops", "*_of_sgemm"). FLOPs counted (n inputs, r rows, T tokens):
//   Hessian      T·n²           (XᵀX is symmetric: half of the 2·T·n² of a full product)
//   factorisation 2n³/3         (Cholesky n³/3, triangular inverse n³/3)
//   column loop  r·n²           (lazy block updates r·n·(n − B) plus in-block updates r·n·B)
//   trace        r·n·(n + 256)  (tr(W H Wᵀ) over the block-upper part, 256-column blocks)
// "solve_rest_of_sgemm" is the column loop's flops over solve − factorisation − trace, the
// share the loop would have if it carried the rest too (the figure reported before the loop
// was timed on its own).

#include "solve/cpu_column_loop.h"
#include "solve/solver.h"
#include "solve/solver_detail.h"
#include "util/engine_threads.h"
#include "util/progress.h"
#include "util/memory_policy.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>


namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

[[noreturn]] void usage()
{
    std::fputs("usage: bench_solve_layer [--sizes 1024,2048,4096] [--tokens 8192] [--seqlen 2048] "
               "[--threads N] [--sparsity 0.5 | --nm N:M] [--bits B] [--repeat R] "
               "[--breakdown 1]\n",
               stderr);
    std::exit(2);
}

} // namespace

int main(int argc, char** argv)
{
    using namespace sparselab;
    // sparselab-cli's start-up: its memory policy and OpenBLAS's short spin, so that the phases
    // fault and share the cores as they do there.
    shortenBlasSpinWait();
    reuseFreedMemory();
    std::vector<int64_t> sizes{1024, 2048, 4096};
    int64_t tokens = 8192;
    int64_t seqlen = 2048;
    int threads = 0;
    int repeat = 1;
    bool breakdown = false;
    solve::SolverOptions options;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc)
            usage();
        const std::string value = argv[++i];
        if (arg == "--sizes") {
            sizes.clear();
            std::stringstream s(value);
            for (std::string item; std::getline(s, item, ',');)
                sizes.push_back(std::stoll(item));
        } else if (arg == "--tokens") {
            tokens = std::stoll(value);
        } else if (arg == "--seqlen") {
            seqlen = std::stoll(value);
        } else if (arg == "--threads") {
            threads = std::stoi(value);
        } else if (arg == "--sparsity") {
            options.sparsity = std::stod(value);
        } else if (arg == "--nm") {
            options.nmN = std::stoi(value.substr(0, value.find(':')));
            options.nmM = std::stoi(value.substr(value.find(':') + 1));
        } else if (arg == "--bits") {
            options.quant.bits = std::stoi(value);
        } else if (arg == "--breakdown") {
            breakdown = value != "0";
        } else if (arg == "--repeat") {
            repeat = std::stoi(value);
        } else {
            usage();
        }
    }
    if (threads > 0) {
        at::set_num_threads(threads);
        setBlasThreads(threads);
    }
    torch::NoGradGuard noGrad;
    for (const int64_t n : sizes) {
        auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(n));
        const auto x = at::randn({tokens, n}, gen);   // [tokens, n]
        const auto w0 = at::randn({n, n}, gen) * 0.02; // [rows, cols]
        double best[3] = {1e300, 1e300, 1e300};
        solve::LayerStats stats;
        for (int rep = 0; rep < repeat; ++rep) {
            auto t0 = Clock::now();
            solve::HessianAccumulator acc(n, torch::kCPU);
            for (int64_t s = 0; s < tokens; s += seqlen)
                acc.add(x.narrow(0, s, std::min(seqlen, tokens - s)));
            const torch::Tensor& h = acc.hessian(); // completes the symmetric matrix
            const double hessian = since(t0);
            auto w = w0.clone();
            t0 = Clock::now();
            stats = solve::solveLayer(w, h, options).stats;
            const double solveSeconds = since(t0);
            best[0] = std::min(best[0], hessian);
            best[1] = std::min(best[1], solveSeconds);
            best[2] = std::min(best[2], hessian + solveSeconds);
        }
        std::string extra;
        if (breakdown) {
            // sgemm at the same threads, best of 3: the machine's limit for this size.
            const auto a = at::randn({n, n}, gen), b = at::randn({n, n}, gen);
            double sgemm = 1e300;
            for (int k = 0; k < 3; ++k) {
                const auto t0 = Clock::now();
                (void)at::mm(a, b);
                sgemm = std::min(sgemm, since(t0));
            }
            const double sgemmRate = 2.0 * double(n) * double(n) * double(n) / sgemm / 1e9;
            solve::HessianAccumulator acc(n, torch::kCPU);
            acc.add(x);
            auto hd = acc.hessian().clone();
            hd.diagonal().add_(0.01 * hd.diagonal().mean().item<double>());
            // Best of --repeat each, like the solve they are subtracted from (one timing of each
            // made the loop's share scatter by ±0.15 between rounds).
            double hinvSeconds = 1e300;
            double loopSeconds = 1e300;
            double traceSeconds = 1e300;
            // The column loop as the engine's solve sets it up (solve::detail::columnLoopOver)
            // on the U the timed factorisation returns, a fresh copy of W each time (the copy is
            // not timed; the mask's pages are touched beforehand). With --bits the loop needs the
            // solver's quantization grid, so it is taken as the solve's remainder there.
            const bool timeLoop = !options.quant.enabled();
            torch::Tensor u;
            auto wLoop = torch::empty_like(w0);
            auto mask = torch::zeros({n, n}, torch::kBool);
            const ProgressCallback noProgress; // outlives the reporters that refer to it
            for (int rep = 0; rep < repeat; ++rep) {
                auto t0 = Clock::now();
                auto factored = solve::detail::upperCholeskyOfInverse(hd);
                hinvSeconds = std::min(hinvSeconds, since(t0));
                if (!factored.defined()) {
                    std::fprintf(stderr, "bench_solve_layer: the damped Hessian of size %lld did not factor\n",
                                 static_cast<long long>(n));
                    return 1;
                }
                if (!u.defined())
                    u = std::move(factored);
                if (timeLoop) {
                    wLoop.copy_(w0);
                    solve::cpu::ColumnLoop loop = solve::detail::columnLoopOver(wLoop, u);
                    loop.mask = mask.data_ptr<bool>();
                    loop.options = &options;
                    ProgressReporter reporter(noProgress, "solve", 1);
                    t0 = Clock::now();
                    (void)solve::cpu::runColumnLoop(loop, reporter, nullptr, {});
                    loopSeconds = std::min(loopSeconds, since(t0));
                }
                t0 = Clock::now();
                (void)solve::detail::quadraticTrace(w0, acc.hessian());
                traceSeconds = std::min(traceSeconds, since(t0));
            }
            const double nn = double(n) * double(n), rows = double(n), T = double(tokens);
            const double solveRestSeconds = std::max(1e-9, best[1] - hinvSeconds - traceSeconds);
            if (!timeLoop)
                loopSeconds = solveRestSeconds;
            const double restSeconds = best[1] - hinvSeconds - loopSeconds - traceSeconds;
            const double rates[4] = {T * nn / best[0] / 1e9, 2.0 * nn * double(n) / 3.0 / hinvSeconds / 1e9,
                                     rows * nn / loopSeconds / 1e9, rows * double(n) * double(n + 256) / traceSeconds / 1e9};
            char text[640];
            std::snprintf(text, sizeof text,
                          ", \"hinv_s\": %.4f, \"loop_s\": %.4f, \"trace_s\": %.4f, \"rest_s\": %.4f, "
                          "\"sgemm_gflops\": %.1f, "
                          "\"hessian_gflops\": %.1f, \"hinv_gflops\": %.1f, \"loop_gflops\": %.1f, \"trace_gflops\": %.1f, "
                          "\"hessian_of_sgemm\": %.2f, \"hinv_of_sgemm\": %.2f, \"loop_of_sgemm\": %.2f, "
                          "\"trace_of_sgemm\": %.2f, \"solve_rest_of_sgemm\": %.2f",
                          hinvSeconds, loopSeconds, traceSeconds, restSeconds, sgemmRate, rates[0], rates[1], rates[2],
                          rates[3], rates[0] / sgemmRate, rates[1] / sgemmRate, rates[2] / sgemmRate,
                          rates[3] / sgemmRate, rows * nn / solveRestSeconds / 1e9 / sgemmRate);
            extra = text;
        }
        std::printf("{\"size\": %lld, \"tokens\": %lld, \"threads\": %d, \"hessian_s\": %.4f, \"solve_s\": %.4f, "
                    "\"total_s\": %.4f, \"sparsity\": %.6f, \"rel_output_error\": %.6g%s}\n",
                    static_cast<long long>(n), static_cast<long long>(tokens), at::get_num_threads(), best[0],
                    best[1], best[2], stats.sparsity, stats.relOutputError, extra.c_str());
        std::fflush(stdout);
    }
    return 0;
}
