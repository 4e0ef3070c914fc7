#include "util/cpu_kernels.h"

#include "util/dynamic_symbol.h"

#include <array>
#include <cstdlib>
#include <string_view>

#if defined(__unix__)
#include <unistd.h>
#endif

namespace sparselab::util {

namespace {

// Set when the kernels were replaced (in this process, or for the one started again): the core
// OpenBLAS had chosen by itself.
constexpr const char* kReplacedCoreVariable = "SPARSELAB_REPLACED_BLAS_CORE";

bool isSet(const char* name)
{
    const char* value = std::getenv(name);
    return value && *value;
}

using VoidFn = void (*)();

} // namespace

CpuVectorFeatures cpuVectorFeatures()
{
    CpuVectorFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    // libgcc's checks include the OS's support for the YMM/ZMM state (XGETBV).
    f.avx2Fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    f.avx512 = f.avx2Fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    return f;
}

std::string betterOpenBlasCore(const std::string& chosenCore, const CpuVectorFeatures& cpu)
{
    static constexpr std::array<std::string_view, 11> kFallbacks = {
        "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom",
        "Sandybridge", "Katmai", "Coppermine", "Northwood", "Banias"};
    bool fallback = false;
    for (const std::string_view name : kFallbacks)
        fallback = fallback || chosenCore == name;
    if (!fallback)
        return {};
    if (cpu.avx512)
        return "SkylakeX";
    if (cpu.avx2Fma)
        return "Haswell";
    return {};
}

std::string openBlasCoreName()
{
    const auto coreName = dynamicFunction<char* (*)()>("openblas_get_corename");
    const char* name = coreName ? coreName() : nullptr;
    return name ? std::string(name) : std::string();
}

void matchKernelsToCpu(char** argv)
{
#if defined(__linux__)
    if (!argv || isSet("SPARSELAB_KEEP_CPU_KERNELS"))
        return;
    const CpuVectorFeatures cpu = cpuVectorFeatures();
    if (cpu.avx512 && !isSet("ATEN_CPU_CAPABILITY"))
        ::setenv("ATEN_CPU_CAPABILITY", "avx512", 1); // read at ATen's first dispatch
    if (isSet("OPENBLAS_CORETYPE"))
        return;
    const std::string chosen = openBlasCoreName();
    const std::string better = betterOpenBlasCore(chosen, cpu);
    if (better.empty())
        return;
    ::setenv("OPENBLAS_CORETYPE", better.c_str(), 1);
    ::setenv(kReplacedCoreVariable, chosen.c_str(), 1);
    // OpenBLAS's DYNAMIC_ARCH choice: quit clears the kernel table, init picks it again,
    // reading OPENBLAS_CORETYPE.
    const auto quit = dynamicFunction<VoidFn>("gotoblas_dynamic_quit");
    const auto init = dynamicFunction<VoidFn>("gotoblas_dynamic_init");
    if (quit && init) {
        quit();
        init();
        if (openBlasCoreName() != better) { // not taken: OpenBLAS's own choice is back
            ::unsetenv("OPENBLAS_CORETYPE");
            ::unsetenv(kReplacedCoreVariable);
            quit();
            init();
        }
        return;
    }
    ::execv("/proc/self/exe", argv);
    // Still here: execv failed. Go on with OpenBLAS's own choice, and say nothing was replaced.
    ::unsetenv("OPENBLAS_CORETYPE");
    ::unsetenv(kReplacedCoreVariable);
#else
    (void)argv;
#endif
}

std::string blasKernelsNote()
{
    const std::string core = openBlasCoreName();
    if (core.empty())
        return {};
    std::string note = "OpenBLAS " + core + " kernels";
    if (const char* replaced = std::getenv(kReplacedCoreVariable); replaced && *replaced)
        note += std::string(" (OpenBLAS had picked ") + replaced
            + " for this CPU, which it does not recognise; OPENBLAS_CORETYPE=" + core
            + " chooses the kernels its instruction set runs)";
    return note;
}

std::string cpuKernelsProvenance()
{
    const std::string core = openBlasCoreName();
    const char* aten = std::getenv("ATEN_CPU_CAPABILITY");
    return (core.empty() ? std::string("BLAS unknown") : "OpenBLAS " + core) + ", ATen "
        + (aten && *aten ? std::string(aten) : std::string("default"));
}

} // namespace sparselab::util
