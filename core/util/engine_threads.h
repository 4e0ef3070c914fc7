#pragma once
// The number of threads the engine computes with, in one place for every front end.
//
// Torch's intra-op pool (at::set_num_threads) is not the only pool: Debian's LibTorch does its
// matrix products in OpenBLAS (libblas.so.3 → openblas-pthread), whose own pthread pool
// starts with one thread per core and ignores torch's setting. With `--threads 1` the products
// still ran on two threads that spin while they wait (the allocation search on the demo: 19.3 s
// wall, 30.7 s user, 7.2 s system; with OpenBLAS held to one thread 14.6 s, 14.3 s, 0.3 s —
// bench/bench_blas_threads.sh). So OpenBLAS gets at most as many threads as the engine.
//
// At most, not exactly: the environment (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS) still caps
// OpenBLAS, as it always did. This matters beyond speed: with OpenBLAS on two threads a GEMM's
// rows are not computed the same way for every batch size, so a window's loss evaluated alone
// and inside a bigger batch differ in the last bits (1.720571757 against 1.720571637 on the
// demo); one BLAS thread, as the tests run, keeps them equal.

namespace sparselab {

// Sets torch's intra-op threads to `threads` (≥ 1) and, when the BLAS in the process is
// OpenBLAS, its pool to min(threads, the pool's size when the process started).
void setEngineThreads(int threads);

// Whether an OpenBLAS thread setting was found in the process (for logs and tests).
[[nodiscard]] bool openBlasThreadsControllable();

} // namespace sparselab
