#pragma once
// How the process hands freed memory back to the system, set once at start-up by each front
// end (sparselab-cli, the workbench).
//
// Why: glibc's malloc serves blocks above its (adaptive, initially 128 KiB) mmap threshold
// with fresh mmap calls and returns freed heap tops to the system above 128 KiB. Torch's
// forward and backward passes allocate and free the same multi-megabyte tensors again and
// again, so every step paid for fresh zeroed pages: on the demo model a recovery step spent
// more time in page faults than in arithmetic (30 steps: 23.6 s with 1.6 M minor faults,
// 9.8 s and 0.12 M faults with this policy; bench/recovery).
// The policy: blocks up to 32 MiB (glibc's maximum for this setting) come from the heap, and
// up to 256 MiB of freed heap is kept for reuse instead of being trimmed.

namespace sparselab {

// Applies the policy (mallopt); a no-op where the C library has no mallopt.
void reuseFreedMemory();

} // namespace sparselab
