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

#include <cstdint>

namespace sparselab {

// How the engine's threads are spent.
//   kernels   — SparseLab's own kernels, split over plain threads (util/fork_join.h): the
//               SparseGPT column loop, attention for small heads, rotary embeddings;
//   libraries — OpenBLAS's pool: every matrix product (LibTorch's own pool, which runs the
//               element-wise operations, is held to one thread: see setEngineThreads).
// They differ for small models. Their products are too small to gain from a second thread
// and lose a lot to it — bench/bench_threads.sh on the 2-core machine, medians of 3,
// whole-prune time on 1 library thread over 2: 0.28 at hidden 64 (the demo: 1.8 s against
// 6.4 s), 0.31 at 128, 0.53 at 256, 0.77 at 512, and 1.18 at 1024, where two threads win — while
// SparseLab's kernels split whole attention heads or row tiles, work of milliseconds per thread:
// on the demo, attention on two threads (the products still on one) took the prune from about
// 2.0 s to 1.8 s (one binary, attention's threads switched between interleaved runs).
struct EngineThreads {
    int kernels = 0;   // 0: not set (kernelThreads() then follows LibTorch's setting)
    int libraries = 0; // 0: leave LibTorch's and OpenBLAS's pools as they are
    // One count for both, as a user's `--threads N` gives it.
    [[nodiscard]] static EngineThreads uniform(int threads) { return {threads, threads}; }
    friend bool operator==(const EngineThreads&, const EngineThreads&) = default;
};

// Sets this thread's kernel threads to threads.kernels, its library threads to
// threads.libraries: OpenBLAS's pool (process-wide, when the BLAS in the process is OpenBLAS)
// to min(threads.libraries, the pool's size when the process started), and LibTorch's
// intra-op pool (thread-local) to one thread. A count ≤ 0 leaves that part as it is.
//
// Why LibTorch's pool gets one thread: Debian's LibTorch runs its element-wise operations
// (norms, activations, softmax, residual adds, conversions) on an OpenMP (libgomp) team, whose
// threads spin after each operation for GOMP_SPINCOUNT (300,000 pause loops by default) before
// they sleep, while the next product's OpenBLAS threads and SparseLab's kernels want the same
// cores. perf on a TinyLlama-shaped prune on two cores put 7 % of its samples in libgomp.
// libgomp reads its setting once, when it is loaded (a setenv in the executable's
// .preinit_array is lost: the C library sets the environment up after it), so the wait cannot
// be shortened from inside the process the way shortenBlasSpinWait shortens OpenBLAS's. The
// products stay on OpenBLAS's pool and the heavy loops on SparseLab's kernels; the element-wise
// operations run on the calling thread (bench/bench_forward_threads.sh; README, "Speed on the CPU").
// A scope only around the forward passes, or around the whole prune, gained less: the team's
// threads still spun after the operations outside it. Where the user set OMP_WAIT_POLICY or
// GOMP_SPINCOUNT, LibTorch's pool gets threads.libraries as well.
void setEngineThreads(EngineThreads threads);
// Both kernels and libraries at `threads`: a user's explicit count (`--threads N`).
void setEngineThreads(int threads);

// The threads SparseLab's own kernels use on this thread: what setEngineThreads set here, or
// LibTorch's intra-op count when it was never called on this thread (tests set that one).
[[nodiscard]] int kernelThreads();

// While alive, this thread's kernel threads are `threads` (what kernelThreads() returns here),
// restored at the end, whether they had been set or not: for a worker of code that splits the
// work over threads itself (pipeline/block_walker.h), whose kernels must not split it again.
class KernelThreadsScope {
public:
    explicit KernelThreadsScope(int threads);
    ~KernelThreadsScope();
    KernelThreadsScope(const KernelThreadsScope&) = delete;
    KernelThreadsScope& operator=(const KernelThreadsScope&) = delete;

private:
    int m_saved = 0; // the thread's setting before: 0 when it had none
};

// The products' threads on this thread: threads.libraries as setEngineThreads set it here, or
// LibTorch's intra-op count when it was never called on this thread. What sparselab.json
// records as torch_threads (results depend on it in the last bits).
[[nodiscard]] int libraryThreads();

// The threads the machine gives this process, read once: OMP_NUM_THREADS when it is set (as
// LibTorch and OpenBLAS read it), otherwise the CPUs this process may run on (its affinity
// mask).
[[nodiscard]] int machineThreads();

// OpenBLAS's pool (process-wide, when the BLAS in the process is OpenBLAS) to min(threads, the
// pool's size when the process started); nothing for threads ≤ 0. Part of setEngineThreads,
// and all of it for a process without LibTorch (the CPU-only `solve-layer`).
void setBlasThreads(int threads);

// The threads the engine uses when the user gives none (no --threads; the workbench always):
// every CPU the process may run on (its affinity mask, or OMP_NUM_THREADS when set) for
// SparseLab's kernels; the same for the libraries for models whose hidden size is at least
// kAllThreadsFromHidden, one thread below it (see EngineThreads). hiddenSize ≤ 0 (not known
// yet, e.g. while loading): every thread for both.
inline constexpr int64_t kAllThreadsFromHidden = 1024;
[[nodiscard]] EngineThreads defaultEngineThreads(int64_t hiddenSize);

// How long OpenBLAS's idle pool threads spin before they sleep, shortened once at start-up by
// each front end (sparselab-cli, the workbench), first thing in main after
// util::matchKernelsToCpu, before any other thread exists.
//
// Why: after each multi-threaded product, OpenBLAS's pool threads wait for the next one in a
// loop of sched_yield for 2^28 TSC cycles (0.13 s at 2.1 GHz) before they sleep. Whatever the
// engine runs on its own threads next — the column loop after the factorisation, attention
// after the projections — then shares the cores with them: on a 2048-column layer the whole
// column loop ran beside a spinning thread (perf: 19 % of the samples in sched_yield), and a
// solve on two threads took 0.201 s with OpenBLAS's wait against 0.170 s with 2^20 cycles
// (≈ 0.5 ms; 4096 columns: 1.028 s against 0.978 s; bench_solve_layer, 5 interleaved runs,
// medians; bench/results/blas-spin-wait-2026-12-06.jsonl). Products in a row still find the
// threads awake; one after a longer pause wakes them (microseconds).
// How: OPENBLAS_THREAD_TIMEOUT (OpenBLAS's own setting, read when it is loaded) is set, read
// again (openblas_read_env) and the pool stopped (blas_thread_shutdown_); OpenBLAS starts it
// again at its next multi-threaded call, with the new wait. Stopping the pool is safe only
// while no other thread can be in OpenBLAS, hence first thing in main. A value the user set
// (non-empty) is left alone; without those OpenBLAS functions nothing changes. The environment is
// restored afterwards, so child processes make the same choice themselves.
void shortenBlasSpinWait();
// The wait set, as a power of two of TSC cycles.
inline constexpr int kBlasSpinWaitLog2Cycles = 20;

// Whether an OpenBLAS thread setting was found in the process (for logs and tests).
[[nodiscard]] bool openBlasThreadsControllable();

// While alive, OpenBLAS computes every product on the thread that calls it (its pool set to
// one thread, restored at the end): for code that splits products over its own threads, where
// OpenBLAS's threads would spin against them for the same cores. Without OpenBLAS, active()
// is false and nothing changes.
class BlasOnCallingThread {
public:
    BlasOnCallingThread();
    ~BlasOnCallingThread();
    BlasOnCallingThread(const BlasOnCallingThread&) = delete;
    BlasOnCallingThread& operator=(const BlasOnCallingThread&) = delete;
    [[nodiscard]] bool active() const { return m_restoreThreads > 0; }

private:
    int m_restoreThreads = 0;
};

} // namespace sparselab
