#include "solve/inverse_cholesky.h"

#include "solve/fortran_blas.h"

#include <cstddef>

namespace sparselab::solve {

namespace {

using fortran::functions;
using fortran::Functions;

// Diagonal blocks up to this size are factored and inverted by LAPACK, whose small-matrix
// speed is poor; the leaves' share of the work is n·32²/3 flops of 2n³/3. On the development
// machine (one thread) 32 was as fast as 64 and 128 at n = 2048–4096 and faster at n = 1024
// (0.97 of sgemm against 0.69–0.73).
constexpr int kLeaf = 32;

// Leaf: H = R·Rᵀ through LAPACK on the reversed block (J·H·J = L·Lᵀ, R = J·L·J), then
// U = R⁻¹ = J·L⁻¹·J. Column-major element (r, c) of the block is (n−1−r, n−1−c) of the
// reversed one; the upper triangle maps to the lower one that spotrf('L') reads.
bool leaf(float* a, int n, int lda)
{
    float reversed[kLeaf * kLeaf];
    for (int c = 0; c < n; ++c)
        for (int r = 0; r <= c; ++r)
            reversed[(n - 1 - c) * n + (n - 1 - r)] = a[std::ptrdiff_t(c) * lda + r];
    int info = 0;
    functions().spotrf("L", &n, reversed, &n, &info, 1);
    if (info != 0)
        return false;
    functions().strtri("L", "N", &n, reversed, &n, &info, 1, 1);
    if (info != 0)
        return false;
    for (int c = 0; c < n; ++c)
        for (int r = 0; r <= c; ++r)
            a[std::ptrdiff_t(c) * lda + r] = reversed[(n - 1 - c) * n + (n - 1 - r)];
    return true;
}

bool recurse(float* a, int n, int lda)
{
    if (n <= kLeaf)
        return leaf(a, n, lda);
    // The lower-right block about half, rounded up to whole leaves (always < n for n > kLeaf);
    // the remainder goes to the top-left block.
    const int n2 = (n / 2 + kLeaf - 1) / kLeaf * kLeaf;
    const int n1 = n - n2;
    float* a11 = a;
    float* a12 = a + std::ptrdiff_t(n1) * lda;
    float* a22 = a12 + n1;
    const float one = 1.0f;
    const float minusOne = -1.0f;
    const Functions& f = functions();
    if (!recurse(a22, n2, lda))
        return false;
    f.strmm("R", "U", "T", "N", &n1, &n2, &one, a22, &lda, a12, &lda, 1, 1, 1, 1);           // R12 = H12·U22ᵀ
    f.ssyrk("U", "N", &n1, &n2, &minusOne, a12, &lda, &one, a11, &lda, 1, 1);                // H11 −= R12·R12ᵀ
    if (!recurse(a11, n1, lda))
        return false;
    f.strmm("L", "U", "N", "N", &n1, &n2, &minusOne, a11, &lda, a12, &lda, 1, 1, 1, 1);      // −U11·R12
    f.strmm("R", "U", "N", "N", &n1, &n2, &one, a22, &lda, a12, &lda, 1, 1, 1, 1);           // ·U22
    return true;
}

} // namespace

bool inverseCholeskyAvailable()
{
    const Functions& f = functions();
    return f.strmm && f.ssyrk && f.spotrf && f.strtri;
}

bool upperCholeskyOfInverseInPlace(float* a, int n, int lda)
{
    return recurse(a, n, lda);
}

} // namespace sparselab::solve
