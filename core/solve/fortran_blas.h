#pragma once
// The Fortran BLAS/LAPACK functions the CPU solver calls directly, looked up once in the
// process (util/dynamic_symbol.h: LibTorch has loaded OpenBLAS and its LAPACK; the project does
// not link them itself). LP64; the trailing string lengths are what gfortran-built libraries
// expect, and OpenBLAS's C implementations ignore them. A member is null where the process
// lacks that function. Torch-free.

#include "util/dynamic_symbol.h"

#include <cstddef>

namespace sparselab::solve::fortran {

using SgemmFn = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                         const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                         const float* beta, float* c, const int* ldc, size_t, size_t);
using StrmmFn = void (*)(const char* side, const char* uplo, const char* transa, const char* diag, const int* m,
                         const int* n, const float* alpha, const float* a, const int* lda, float* b, const int* ldb,
                         size_t, size_t, size_t, size_t);
using SsyrkFn = void (*)(const char* uplo, const char* trans, const int* n, const int* k, const float* alpha,
                         const float* a, const int* lda, const float* beta, float* c, const int* ldc, size_t, size_t);
using SpotrfFn = void (*)(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t);
using StrtriFn = void (*)(const char* uplo, const char* diag, const int* n, float* a, const int* lda, int* info,
                          size_t, size_t);

struct Functions {
    SgemmFn sgemm = util::dynamicFunction<SgemmFn>("sgemm_");
    StrmmFn strmm = util::dynamicFunction<StrmmFn>("strmm_");
    SsyrkFn ssyrk = util::dynamicFunction<SsyrkFn>("ssyrk_");
    SpotrfFn spotrf = util::dynamicFunction<SpotrfFn>("spotrf_");
    StrtriFn strtri = util::dynamicFunction<StrtriFn>("strtri_");
};

inline const Functions& functions()
{
    static const Functions f;
    return f;
}

} // namespace sparselab::solve::fortran
