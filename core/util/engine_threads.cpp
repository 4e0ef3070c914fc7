#include "util/engine_threads.h"

#include <ATen/Parallel.h>

#include <dlfcn.h>

#include <algorithm>

namespace sparselab {

namespace {

using SetThreads = void (*)(int);
using GetThreads = int (*)();

// Looked up at run time: the project does not link OpenBLAS itself, LibTorch's BLAS may be
// another library, and then there is nothing to set.
SetThreads openBlasSetThreads()
{
    static const SetThreads function =
        reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    return function;
}

// OpenBLAS's pool as the process started (its default, or OPENBLAS_NUM_THREADS /
// OMP_NUM_THREADS from the environment), read once before anything here changes it.
int openBlasInitialThreads()
{
    static const int initial = [] {
        const auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
        return get ? std::max(1, get()) : 0;
    }();
    return initial;
}

// Torch's intra-op threads as the process started (hardware threads or OMP_NUM_THREADS), read
// once before setEngineThreads changes them.
int torchInitialThreads()
{
    static const int initial = std::max(1, at::get_num_threads());
    return initial;
}

} // namespace

int defaultEngineThreads(int64_t hiddenSize)
{
    const int all = torchInitialThreads();
    return hiddenSize > 0 && hiddenSize < kAllThreadsFromHidden ? 1 : all;
}

void setEngineThreads(int threads)
{
    (void)torchInitialThreads(); // remembered before the first change
    if (threads < 1)
        threads = 1;
    at::set_num_threads(threads);
    const int initial = openBlasInitialThreads();
    if (const SetThreads set = openBlasSetThreads(); set && initial > 0)
        set(std::min(threads, initial));
}

bool openBlasThreadsControllable() { return openBlasSetThreads() != nullptr; }

} // namespace sparselab
