#include "util/engine_threads.h"

#include <ATen/Parallel.h>

#include <dlfcn.h>

namespace sparselab {

namespace {

using SetThreads = void (*)(int);

// Looked up at run time: the project does not link OpenBLAS itself, LibTorch's BLAS may be
// another library, and then there is nothing to set.
SetThreads openBlasSetThreads()
{
    static const SetThreads function =
        reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    return function;
}

} // namespace

void setEngineThreads(int threads)
{
    if (threads < 1)
        threads = 1;
    at::set_num_threads(threads);
    if (const SetThreads set = openBlasSetThreads())
        set(threads);
}

bool openBlasThreadsControllable() { return openBlasSetThreads() != nullptr; }

} // namespace sparselab
