// The engine's thread counts: the parts without LibTorch (OpenBLAS's pool, the machine's
// threads), which the CPU-only front end links too; LibTorch's side is in engine_threads_torch.cpp.

#include "util/engine_threads.h"

#include "util/dynamic_symbol.h"

#if defined(__linux__)
#include <sched.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

namespace sparselab {

namespace {
using SetThreads = void (*)(int);
using GetThreads = int (*)();

// Looked up at run time: the project does not link OpenBLAS itself, LibTorch's BLAS may be
// another library, and then there is nothing to set.
SetThreads openBlasSetThreads()
{
    static const SetThreads function = util::dynamicFunction<SetThreads>("openblas_set_num_threads");
    return function;
}

GetThreads openBlasGetThreads()
{
    static const GetThreads function = util::dynamicFunction<GetThreads>("openblas_get_num_threads");
    return function;
}

// OpenBLAS's pool as the process started (its default, or OPENBLAS_NUM_THREADS /
// OMP_NUM_THREADS from the environment), read once before anything here changes it.
int openBlasInitialThreads()
{
    static const int initial = [] {
        const GetThreads get = openBlasGetThreads();
        return get ? std::max(1, get()) : 0;
    }();
    return initial;
}

} // namespace

// Not at::get_num_threads(): Debian's LibTorch 1.13 starts with one thread on the 2-CPU machine
// this was measured on (Python's torch.get_num_threads() says 1 there too), so "every core"
// silently meant one, and a TinyLlama-shaped prune ran on one core.
int machineThreads()
{
    static const int initial = [] {
        if (const char* text = std::getenv("OMP_NUM_THREADS"); text && *text) {
            char* end = nullptr;
            const long value = std::strtol(text, &end, 10);
            if (end && *end == '\0' && value >= 1 && value <= 4096)
                return int(value);
        }
#if defined(__linux__)
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
            return CPU_COUNT(&set);
#endif
        return int(std::max(1u, std::thread::hardware_concurrency()));
    }();
    return initial;
}

EngineThreads defaultEngineThreads(int64_t hiddenSize)
{
    const int all = machineThreads();
    return {all, hiddenSize > 0 && hiddenSize < kAllThreadsFromHidden ? 1 : all};
}

void setBlasThreads(int threads)
{
    (void)machineThreads(); // remembered before the first change
    const int initial = openBlasInitialThreads();
    if (const SetThreads set = openBlasSetThreads(); set && initial > 0 && threads > 0)
        set(std::min(threads, initial));
}

void shortenBlasSpinWait()
{
    constexpr const char* kVariable = "OPENBLAS_THREAD_TIMEOUT";
    const char* before = std::getenv(kVariable);
    if (before && *before)
        return; // the user's choice
    using VoidFn = void (*)();
    using StopFn = int (*)();
    const auto readEnvironment = util::dynamicFunction<VoidFn>("openblas_read_env");
    const auto stopPool = util::dynamicFunction<StopFn>("blas_thread_shutdown_");
    if (!readEnvironment || !stopPool)
        return;
    const std::string value = std::to_string(kBlasSpinWaitLog2Cycles);
    const bool wasEmpty = before != nullptr;
    ::setenv(kVariable, value.c_str(), 1);
    readEnvironment();
    if (wasEmpty)
        ::setenv(kVariable, "", 1);
    else
        ::unsetenv(kVariable);
    stopPool();
}

bool openBlasThreadsControllable() { return openBlasSetThreads() != nullptr; }

BlasOnCallingThread::BlasOnCallingThread()
{
    const SetThreads set = openBlasSetThreads();
    const GetThreads get = openBlasGetThreads();
    if (!set || !get)
        return;
    m_restoreThreads = std::max(1, get());
    set(1);
}

BlasOnCallingThread::~BlasOnCallingThread()
{
    if (m_restoreThreads > 0)
        openBlasSetThreads()(m_restoreThreads);
}

} // namespace sparselab
