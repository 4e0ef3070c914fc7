#include "util/engine_threads.h"

#include "util/dynamic_symbol.h"

#include <ATen/Parallel.h>

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

// The threads the machine gives this process, read once: OMP_NUM_THREADS when it is set (as
// LibTorch and OpenBLAS read it), otherwise the CPUs this process may run on. Not
// at::get_num_threads(): Debian's LibTorch 1.13 starts with one thread on the 2-CPU machine
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

thread_local int t_kernelThreads = 0;  // 0: never set on this thread
thread_local int t_libraryThreads = 0; // 0: never set on this thread

// Whether the user chose how libgomp's threads wait (then LibTorch's pool gets the library
// threads, as before; the spinning is theirs to choose).
bool userChoseOpenMpWaiting()
{
    for (const char* name : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"})
        if (const char* value = std::getenv(name); value && *value)
            return true;
    return false;
}

} // namespace

EngineThreads defaultEngineThreads(int64_t hiddenSize)
{
    const int all = machineThreads();
    return {all, hiddenSize > 0 && hiddenSize < kAllThreadsFromHidden ? 1 : all};
}

void setEngineThreads(EngineThreads threads)
{
    (void)machineThreads(); // remembered before the first change
    if (threads.kernels > 0)
        t_kernelThreads = threads.kernels;
    if (threads.libraries > 0) {
        t_libraryThreads = threads.libraries;
        at::set_num_threads(userChoseOpenMpWaiting() ? threads.libraries : 1);
        const int initial = openBlasInitialThreads();
        if (const SetThreads set = openBlasSetThreads(); set && initial > 0)
            set(std::min(threads.libraries, initial));
    }
}

void setEngineThreads(int threads)
{
    setEngineThreads(EngineThreads::uniform(std::max(threads, 1)));
}

int kernelThreads() { return t_kernelThreads > 0 ? t_kernelThreads : std::max(1, at::get_num_threads()); }

int libraryThreads() { return t_libraryThreads > 0 ? t_libraryThreads : std::max(1, at::get_num_threads()); }

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
