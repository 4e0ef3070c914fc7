#pragma once
// Functions of libraries looked up by name at run time: the optional parts of the process that
// the project does not link itself (OpenBLAS's extensions and LAPACK, which LibTorch has
// loaded; cuSOLVER; NVML, opened with dlopen). One place for the dlsym-to-function-pointer
// conversion, which C++ allows only through a copy of the bits.

#include <cstring>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define SPARSELAB_HAVE_DLSYM 1
#endif

namespace sparselab::util {

// The function `name` of `library` (a dlopen handle), or of any library already loaded into the
// process when `library` is null; nullptr when absent or where there is no dlsym.
template <class Fn>
Fn dynamicFunction(const char* name, void* library = nullptr)
{
    Fn fn = nullptr;
#if defined(SPARSELAB_HAVE_DLSYM)
    void* symbol = dlsym(library ? library : RTLD_DEFAULT, name);
    static_assert(sizeof(fn) == sizeof(symbol));
    std::memcpy(&fn, &symbol, sizeof(fn));
#else
    (void)name;
    (void)library;
#endif
    return fn;
}

} // namespace sparselab::util
