#pragma once
// How the process gets and hands back memory, set once at start-up by each front end
// (sparselab-cli, the workbench) before any tensor exists.
//
// Why: page faults are the dearest thing a large tensor costs here. glibc's malloc serves
// blocks above its (adaptive, initially 128 KiB) mmap threshold with fresh mmap calls and
// returns freed heap tops to the system above 128 KiB, and every fresh 4 KiB page is one
// fault (≈ 10 µs of system time on this virtual machine). Two measures:
// - Blocks up to 32 MiB (glibc's maximum for this setting) come from the heap, and up to
//   256 MiB of freed heap is kept for reuse instead of being trimmed. Torch's forward and
//   backward passes allocate and free the same multi-megabyte tensors again and again: on the
//   demo model a recovery step spent more time in page faults than in arithmetic (30 steps:
//   23.6 s with 1.6 M minor faults, 9.8 s and 0.12 M faults with this policy; bench/recovery).
// - Tensors of 8 MiB and more (Hessians, their inverses, weights and activations of large
//   layers) get their own mapping, 2 MiB-aligned and advised for transparent huge pages
//   (MADV_HUGEPAGE, which takes effect where the kernel's THP mode is `madvise` or `always`):
//   one fault per 2 MiB instead of 512. A 4096-column solve-layer took 200 k faults and 2.1 s
//   of system time without it (bench/bench_solve_layer_vs_reference.sh).
// - Freed large mappings are kept, up to min(kLargeBlockCacheMaxBytes, a sixteenth of the
//   machine's memory) in all, oldest unmapped first, and handed to the next allocation that
//   fits (a mapping at most 1.25 times the size asked for). A forward pass allocates the same
//   large temporaries for every batch and every block; mapped afresh each time, every one of
//   their pages was cleared by the kernel before the first write (perf on the TinyLlama-shaped
//   prune: 7 % of all samples in clear_page, 9–13 s of system time in a 60 s run). The
//   resident set can exceed the live tensors by up to that bound; releaseCachedLargeBlocks()
//   gives it back.

#include <cstddef>
#include <cstdint>

namespace sparselab {

// Applies the policy: mallopt where the C library has it, and installs the large-tensor
// allocator as LibTorch's CPU allocator (where mmap exists). Call once, first thing in main.
void reuseFreedMemory();

// Allocations of at least this many bytes take the huge-page path.
inline constexpr size_t kHugePageAllocationThreshold = size_t(8) << 20;

// The most freed large mappings kept for reuse, in bytes (see above).
inline constexpr size_t kLargeBlockCacheMaxBytes = size_t(512) << 20;

// The large-block path's state, for logs, benchmarks and tests.
struct LargeBlockCacheStats {
    size_t cachedBytes = 0;  // freed mappings held for reuse
    size_t cachedBlocks = 0;
    uint64_t reused = 0;     // large allocations served from them
    uint64_t mapped = 0;     // large allocations that mapped fresh memory
    size_t limitBytes = 0;   // the bound on cachedBytes
};
[[nodiscard]] LargeBlockCacheStats largeBlockCacheStats();

// Unmaps every cached mapping now (tensors in use are not touched).
void releaseCachedLargeBlocks();

// Sets the bound on the cached bytes, unmapping the oldest cached mappings beyond it; 0
// caches nothing. reuseFreedMemory sets the default on its first call, replacing a bound set
// before it.
void setLargeBlockCacheLimit(size_t bytes);

} // namespace sparselab
