#pragma once
// Work split over plain threads, for SparseLab's own kernels (the column loop, attention,
// rotary embeddings).
//
// Why not at::parallel_for: in LibTorch its OpenMP backend is a template in the header, so in
// a translation unit compiled without -fopenmp (all of ours) `#pragma omp parallel` is ignored
// and the loop runs on the calling thread: the attention kernel ran on one core whatever the
// thread count. And where it does run in parallel (inside LibTorch), its OpenMP workers spin for
// a while after each region, against the OpenBLAS threads of the next product. Threads that
// have exited cost nothing; creating a few per call is tens of microseconds, negligible next to
// the work of each caller here (milliseconds).
//
// No Qt, no LibTorch.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sparselab {

// Calls fn(worker, unit) for every unit in [0, units) on up to `threads` plain std::threads
// (the caller is worker 0; units are handed out one at a time), then joins; rethrows the first
// exception. Which worker computes a unit varies from run to run, so fn's result for a unit
// must not depend on `worker` (worker only picks per-thread scratch).
template <class Fn>
void forkJoin(int64_t units, int threads, const Fn& fn)
{
    const int64_t count = std::min<int64_t>(std::max(threads, 1), units);
    if (count <= 1) {
        for (int64_t u = 0; u < units; ++u)
            fn(0, u);
        return;
    }
    std::atomic<int64_t> next{0};
    std::exception_ptr failure;
    std::mutex failureMutex;
    auto work = [&](int worker) {
        try {
            for (int64_t u = next.fetch_add(1); u < units; u = next.fetch_add(1))
                fn(worker, u);
        } catch (...) {
            std::lock_guard lock(failureMutex);
            if (!failure)
                failure = std::current_exception();
            next.store(units);
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(size_t(count - 1));
    for (int w = 1; w < int(count); ++w)
        pool.emplace_back(work, w);
    work(0);
    for (auto& t : pool)
        t.join();
    if (failure)
        std::rethrow_exception(failure);
}

} // namespace sparselab
