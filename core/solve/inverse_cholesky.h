#pragma once
// The upper Cholesky factor of a symmetric positive definite matrix's inverse, in place, at the
// BLAS's level-3 rate: SparseGPT's Hinv (design.md §3 step 3, §5). No LibTorch here.
//
// With H = R·Rᵀ, R upper triangular (the Cholesky factorisation taken from the bottom-right
// corner up: R = J·L·J where J·H·J = L·Lᵀ), U = R⁻¹ is upper triangular with a positive
// diagonal and Uᵀ·U = H⁻¹ — the factor the reference gets as cholesky(cholesky_inverse(
// cholesky(H)), upper=True). Split H into 2×2 blocks, the lower-right one first:
//
//     H22 → U22                      (the same, recursively)
//     R12 = H12·R22⁻ᵀ = H12·U22ᵀ     (strmm)
//     H11 ← H11 − R12·R12ᵀ           (ssyrk)
//     H11 → U11                      (recursively)
//     U12 = −U11·R12·U22             (two strmm)
//
// R is never formed whole: each R12 becomes U12 once the blocks beside it are inverted. The
// work is the 2n³/3 flops of a Cholesky factorisation plus a triangular inverse, but all of it
// outside the 32-wide diagonal leaves is in strmm and ssyrk, which run near sgemm's rate; the
// whole-matrix spotrf + strtri of OpenBLAS 0.3.21 reach about 0.6 of it at n = 4096 and 0.1–0.2
// of it below n = 512 (bench/bench_solve_layer --breakdown 1). The leaves are LAPACK's spotrf +
// strtri on the reversed block, as the whole matrix was before; rounding differs from that
// route in the last bits, with the same accuracy against a float64 factor.
//
// The BLAS and LAPACK are the ones LibTorch loaded into the process, looked up by name
// (Fortran ABI, LP64): nothing is linked for this.

namespace sparselab::solve {

// True when the process has the four functions used: strmm_, ssyrk_, spotrf_, strtri_.
[[nodiscard]] bool inverseCholeskyAvailable();

// `a` is an n × n column-major matrix with leading dimension `lda` (≥ n) whose upper triangle
// (row ≤ column) holds the upper triangle of a symmetric H; the strictly lower part is neither
// read nor written. On success the upper triangle holds U (Uᵀ·U = H⁻¹) and the result is true.
// False when a diagonal block is not numerically positive definite; `a` is then partly
// overwritten. Requires inverseCholeskyAvailable() and n ≥ 1. Uses the BLAS's own threads.
[[nodiscard]] bool upperCholeskyOfInverseInPlace(float* a, int n, int lda);

} // namespace sparselab::solve
