#pragma once
// The CPU kernels of engine arithmetic — OpenBLAS's and ATen's — matched to the CPU the process
// runs on, set once at start-up by each front end (sparselab-cli, the workbench), first thing
// in main.
//
// Why: every large float32 product on the CPU — Hessian accumulation, the solver's lazy
// updates, the forward passes — is OpenBLAS's sgemm, through LibTorch or directly. OpenBLAS
// (DYNAMIC_ARCH) picks its kernels by CPU model when it is loaded, and a release older than the
// CPU does not know the model: Debian 12's OpenBLAS 0.3.21 on an Intel Xeon of family 6, model
// 207 (Emerald Rapids, AVX-512) falls back to its "Prescott" SSE3 kernels, 33 GFLOP/s of sgemm
// on one thread where its "SkylakeX" kernels give 152–164 on the same core
// (bench/bench_blas_kernels.sh; bench/results/blas-kernels-2026-12-05-xeon.jsonl).
// OpenBLAS reads OPENBLAS_CORETYPE when it picks its kernels: at load, and again when its
// (exported, undocumented) gotoblas_dynamic_quit/gotoblas_dynamic_init are called, which only
// clear and re-run that choice. So the remedy is to set it and re-run the choice first thing in
// main, before any BLAS call or thread; an OpenBLAS without those two functions gets the
// process started again with it set (one more start-up, ≈ 0.3 s). Either happens only where
// OpenBLAS fell back to kernels older than the CPU's instruction set.
//
// ATen's own vectorised kernels (softmax's exp, norms, element-wise ops) are picked the same
// way, once, at their first use: Debian's LibTorch 1.13 runs its AVX2 ones on that AVX-512 CPU,
// and ATEN_CPU_CAPABILITY=avx512 (PyTorch's own switch; its AVX-512 kernels are built) made the
// demo model's perplexity pass 10–15 % faster (three interleaved runs: 6.2–7.0 s against
// 5.2–6.2 s). So on a CPU with AVX-512 F/BW/DQ/VL and FMA, ATEN_CPU_CAPABILITY is set to avx512
// before the first tensor operation.
//
// The choice is the user's when they make one: OPENBLAS_CORETYPE or ATEN_CPU_CAPABILITY set
// beforehand is left alone, and SPARSELAB_KEEP_CPU_KERNELS=1 keeps both libraries' own choice
// (the test suite sets it, so that an in-process computation and the CLI's agree to the bit).

#include <string>

namespace sparselab::util {

// The CPU features that decide which OpenBLAS kernels it can run.
struct CpuVectorFeatures {
    bool avx2Fma = false; // AVX2 and FMA3 (OpenBLAS "Haswell")
    bool avx512 = false;  // AVX-512 F, BW, DQ and VL with the OS saving their state (OpenBLAS "SkylakeX")
};
// This CPU's.
[[nodiscard]] CpuVectorFeatures cpuVectorFeatures();

// The OpenBLAS core type to ask for when OpenBLAS chose `chosenCore` on a CPU with `cpu`:
// "SkylakeX" or "Haswell" when `chosenCore` is one of OpenBLAS's pre-AVX2 fallbacks (Prescott,
// Core2, Penryn, Dunnington, Nehalem, Atom, Sandybridge, Katmai, Coppermine, Northwood, Banias)
// and the CPU runs the better kernels; "" to keep the choice (also when it is not a fallback).
[[nodiscard]] std::string betterOpenBlasCore(const std::string& chosenCore, const CpuVectorFeatures& cpu);

// The kernels the loaded OpenBLAS runs ("SkylakeX", "Prescott", …), "" when the BLAS in the
// process is not OpenBLAS.
[[nodiscard]] std::string openBlasCoreName();

// Unless SPARSELAB_KEEP_CPU_KERNELS is set: sets ATEN_CPU_CAPABILITY=avx512 where the CPU has
// AVX-512 and it is unset; and when betterOpenBlasCore says so and OPENBLAS_CORETYPE is unset,
// sets OPENBLAS_CORETYPE and has OpenBLAS pick its kernels again in this process, or, where it
// cannot, starts this program again (execv of /proc/self/exe, same arguments). Returns having
// done nothing otherwise, or when neither works. Call first in main, before any thread or
// tensor operation exists.
void matchKernelsToCpu(char** argv);

// One line for logs and `version`: the kernels in use, and what OpenBLAS had picked when
// matchKernelsToCpu replaced its choice. "" when the BLAS is not OpenBLAS.
[[nodiscard]] std::string blasKernelsNote();

// The CPU kernels for a run's provenance (results differ in the last bits between them), e.g.
// "OpenBLAS SkylakeX, ATen avx512"; ATen's is "default" unless ATEN_CPU_CAPABILITY is set.
[[nodiscard]] std::string cpuKernelsProvenance();

} // namespace sparselab::util
