// The engine's thread counts: LibTorch's side (its intra-op pool, and the thread-local counts
// the engine's kernels read). engine_threads.cpp has the parts without LibTorch.

#include "util/engine_threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>

namespace sparselab {

namespace {

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

void setEngineThreads(EngineThreads threads)
{
    (void)machineThreads(); // remembered before the first change
    if (threads.kernels > 0)
        t_kernelThreads = threads.kernels;
    if (threads.libraries > 0) {
        t_libraryThreads = threads.libraries;
        at::set_num_threads(userChoseOpenMpWaiting() ? threads.libraries : 1);
        setBlasThreads(threads.libraries);
    }
}

void setEngineThreads(int threads)
{
    setEngineThreads(EngineThreads::uniform(std::max(threads, 1)));
}

int kernelThreads() { return t_kernelThreads > 0 ? t_kernelThreads : std::max(1, at::get_num_threads()); }

KernelThreadsScope::KernelThreadsScope(int threads) : m_saved(t_kernelThreads)
{
    t_kernelThreads = std::max(threads, 1);
}

KernelThreadsScope::~KernelThreadsScope() { t_kernelThreads = m_saved; }

int libraryThreads() { return t_libraryThreads > 0 ? t_libraryThreads : std::max(1, at::get_num_threads()); }

} // namespace sparselab
