#pragma once
// Work split over plain threads, for SparseLab's own kernels (the column loop's neighbours,
// attention, rotary embeddings, the solver's O(rows·cols) passes).
//
// Why not at::parallel_for: in LibTorch its OpenMP backend is a template in the header, so in
// a translation unit compiled without -fopenmp (all of ours) `#pragma omp parallel` is ignored
// and the loop runs on the calling thread: the attention kernel ran on one core whatever the
// thread count. And where it does run in parallel (inside LibTorch), its OpenMP workers spin for
// a while after each region, against the OpenBLAS threads of the next product.
//
// The helpers are parked threads, started on first use and kept for the process (they sleep
// on a condition variable between calls and never spin). Starting and joining threads for
// each call, as this did before, cost 60 µs in a small process and about 0.2 ms in one that
// has loaded a model, on this project's virtual machines, and the demo prune made 666 such
// calls. A call made while the helpers are busy (a nested call, or one from another thread)
// starts its own threads, as before.
//
// No Qt, no LibTorch.

#include <cstdint>

namespace sparselab {

namespace detail {
using ForkJoinUnit = void (*)(const void* fn, int worker, int64_t unit);
void runForkJoin(int64_t units, int threads, ForkJoinUnit call, const void* fn);
} // namespace detail

// Calls fn(worker, unit) for every unit in [0, units) on up to `threads` threads (the caller
// is worker 0, helpers are 1 … threads − 1; units are handed out one at a time), returns when
// all have run, and rethrows the first exception (units not yet begun are then skipped). Which
// worker computes a unit varies from run to run, so fn's result for a unit must not depend on
// `worker` (worker only picks per-thread scratch). One thread, or one unit, runs everything on
// the caller in order.
template <class Fn>
void forkJoin(int64_t units, int threads, const Fn& fn)
{
    detail::runForkJoin(
        units, threads,
        [](const void* f, int worker, int64_t unit) { (*static_cast<const Fn*>(f))(worker, unit); }, &fn);
}

} // namespace sparselab
