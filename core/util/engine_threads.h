#pragma once
// The number of threads the engine computes with, in one place for every front end.
//
// Torch's intra-op pool (at::set_num_threads) is not the only pool: Debian's LibTorch does its
// matrix products in OpenBLAS (libblas.so.3 → openblas-pthread), whose own pthread pool
// starts with one thread per core and ignores torch's setting. With `--threads 1` the products
// still ran on two threads that spin while they wait (the allocation search on the demo: 19.3 s
// wall, 30.7 s user, 7.2 s system; with OpenBLAS held to one thread 14.6 s, 14.3 s, 0.3 s —
// bench/bench_blas_threads.sh). So both pools get the same number.

namespace sparselab {

// Sets torch's intra-op threads and, when the BLAS in the process is OpenBLAS, its threads.
// threads ≥ 1.
void setEngineThreads(int threads);

// Whether an OpenBLAS thread setting was found in the process (for logs and tests).
[[nodiscard]] bool openBlasThreadsControllable();

} // namespace sparselab
