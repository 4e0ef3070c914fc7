#pragma once
// OpenBLAS's kernels matched to the CPU the process runs on, set once at start-up by each front
// end (sparselab-cli, the workbench), first thing in main.
//
// Why: every large float32 product on the CPU — Hessian accumulation, the solver's lazy
// updates, the forward passes — is OpenBLAS's sgemm, through LibTorch or directly. OpenBLAS
// (DYNAMIC_ARCH) picks its kernels by CPU model when it is loaded, and a release older than the
// CPU does not know the model: Debian 12's OpenBLAS 0.3.21 on an Intel Xeon of family 6, model
// 207 (Emerald Rapids, AVX-512) falls back to its "Prescott" SSE3 kernels, 20 GFLOP/s of sgemm
// on one thread where its "SkylakeX" kernels give 114 on the same core (bench/bench_blas_kernels.sh).
// OpenBLAS reads OPENBLAS_CORETYPE only while it is loaded, so the remedy is to start the
// process again with it set: the cost is one more start-up (≈ 0.3 s), paid only where
// OpenBLAS fell back to kernels older than the CPU's instruction set.
//
// The choice is the user's when they make one: OPENBLAS_CORETYPE set beforehand is left alone,
// and SPARSELAB_KEEP_BLAS_KERNELS=1 keeps OpenBLAS's own choice (the test suite sets it, so
// that an in-process computation and the CLI's agree to the bit).

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

// Starts this program again with OPENBLAS_CORETYPE set (execv of /proc/self/exe with the same
// arguments) when betterOpenBlasCore says so and neither OPENBLAS_CORETYPE nor
// SPARSELAB_KEEP_BLAS_KERNELS is set; returns (doing nothing) otherwise or when execv fails.
void matchBlasKernelsToCpu(char** argv);

// One line for logs and `version`: the kernels in use, and what OpenBLAS had picked when
// matchBlasKernelsToCpu replaced its choice. "" when the BLAS is not OpenBLAS.
[[nodiscard]] std::string blasKernelsNote();

} // namespace sparselab::util
