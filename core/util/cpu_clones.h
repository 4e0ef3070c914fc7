#pragma once
// SPARSELAB_CPU_CLONES: compile a hot function three times, for x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2, FMA) and the baseline, and let the loader pick the clone the CPU runs
// (GCC's target_clones, an ifunc resolved once). Elsewhere it expands to nothing.
//
// Where results must round exactly like a reference (the SparseGPT column loop), the file is
// compiled with -ffp-contract=off (core/CMakeLists.txt), so that a·b − c is never fused into
// an FMA in the AVX2 and AVX-512 clones.

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SPARSELAB_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SPARSELAB_CPU_CLONES
#endif
