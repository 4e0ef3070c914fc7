#include "util/memory_policy.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib> // defines __GLIBC__ on glibc systems
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__unix__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace sparselab {

namespace {

#if defined(__unix__)

constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kPage = 4096;

// LibTorch's CPU allocator with a huge-page path for large blocks; small ones go to the
// default allocator. The data pointer doubles as the context (as the default allocator's
// does), so raw_allocate/raw_deleter keep working: the deleter looks the pointer up among
// the large mappings and hands anything else to the default allocator's deleter.
class LargeTensorAllocator final : public c10::Allocator {
public:
    explicit LargeTensorAllocator(c10::Allocator* fallback) : m_fallback(fallback) {}

    c10::DataPtr allocate(size_t bytes) const override
    {
        if (bytes < kHugePageAllocationThreshold)
            return m_fallback->allocate(bytes);
        const size_t length = (bytes + kPage - 1) / kPage * kPage;
        if (void* reused = takeCached(length))
            return {reused, reused, &deleteBlock, c10::Device(c10::DeviceType::CPU)};
        // Over-map by one huge page, then trim to a 2 MiB-aligned start.
        void* raw = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
            throw std::bad_alloc();
        const auto base = reinterpret_cast<uintptr_t>(raw);
        const uintptr_t aligned = (base + kHugePage - 1) & ~(uintptr_t(kHugePage) - 1);
        if (aligned > base)
            ::munmap(raw, aligned - base);
        const size_t tail = (base + length + kHugePage) - (aligned + length);
        if (tail > 0)
            ::munmap(reinterpret_cast<void*>(aligned + length), tail);
        void* data = reinterpret_cast<void*>(aligned);
#if defined(MADV_HUGEPAGE)
        (void)::madvise(data, length, MADV_HUGEPAGE); // advice only: small pages if refused
#endif
        {
            const std::lock_guard lock(state().mutex);
            state().live.emplace(data, length);
            ++state().mapped;
        }
        return {data, data, &deleteBlock, c10::Device(c10::DeviceType::CPU)};
    }

    c10::DeleterFnPtr raw_deleter() const override { return &deleteBlock; }

    static LargeBlockCacheStats stats()
    {
        const std::lock_guard lock(state().mutex);
        return {state().cachedBytes, state().cached.size(), state().reused, state().mapped, state().cacheLimit};
    }

    static void releaseCached()
    {
        std::vector<Mapping> unmap;
        {
            const std::lock_guard lock(state().mutex);
            unmap.swap(state().cached);
            state().cachedBytes = 0;
        }
        for (const Mapping& m : unmap)
            ::munmap(m.data, m.length);
    }

    static void setCacheLimit(size_t bytes)
    {
        std::vector<Mapping> unmap;
        {
            const std::lock_guard lock(state().mutex);
            state().cacheLimit = bytes;
            evictOverLimit(unmap);
        }
        for (const Mapping& m : unmap)
            ::munmap(m.data, m.length);
    }

private:
    struct Mapping {
        void* data;
        size_t length;
    };
    struct State {
        std::mutex mutex;
        std::unordered_map<void*, size_t> live; // mappings in use: data → length
        std::vector<Mapping> cached;            // freed mappings kept for reuse, oldest first
        size_t cachedBytes = 0;
        size_t cacheLimit = 0;
        uint64_t reused = 0; // allocations served from `cached`
        uint64_t mapped = 0; // allocations that mapped fresh memory
    };
    static State& state()
    {
        static auto* s = new State(); // outlives static tensors
        return *s;
    }

    // Under the mutex: unmap (into `out`) the oldest cached mappings until the cache fits.
    static void evictOverLimit(std::vector<Mapping>& out)
    {
        State& s = state();
        size_t drop = 0;
        while (drop < s.cached.size() && s.cachedBytes > s.cacheLimit) {
            s.cachedBytes -= s.cached[drop].length;
            out.push_back(s.cached[drop++]);
        }
        s.cached.erase(s.cached.begin(), s.cached.begin() + std::ptrdiff_t(drop));
    }

    // A cached mapping of `length` bytes up to a quarter more (the smallest such), now live; or null.
    static void* takeCached(size_t length)
    {
        State& s = state();
        const std::lock_guard lock(s.mutex);
        const size_t most = length + length / 4;
        size_t best = s.cached.size();
        for (size_t i = 0; i < s.cached.size(); ++i)
            if (s.cached[i].length >= length && s.cached[i].length <= most
                && (best == s.cached.size() || s.cached[i].length < s.cached[best].length))
                best = i;
        if (best == s.cached.size())
            return nullptr;
        const Mapping m = s.cached[best];
        s.cached.erase(s.cached.begin() + std::ptrdiff_t(best));
        s.cachedBytes -= m.length;
        s.live.emplace(m.data, m.length);
        ++s.reused;
        return m.data;
    }

    static void deleteBlock(void* data)
    {
        if (!data)
            return;
        State& s = state();
        bool large = false;
        std::vector<Mapping> unmap;
        {
            const std::lock_guard lock(s.mutex);
            const auto it = s.live.find(data);
            if (it != s.live.end()) {
                large = true;
                const Mapping m{data, it->second};
                s.live.erase(it);
                if (m.length <= s.cacheLimit) {
                    s.cached.push_back(m);
                    s.cachedBytes += m.length;
                    evictOverLimit(unmap);
                } else {
                    unmap.push_back(m);
                }
            }
        }
        for (const Mapping& m : unmap)
            ::munmap(m.data, m.length); // outside the lock: unmapping 100 MB takes a while
        if (large)
            return;
        if (const c10::DeleterFnPtr fallback = c10::GetDefaultCPUAllocator()->raw_deleter())
            fallback(data);
        else
            c10::free_cpu(data);
    }

    c10::Allocator* m_fallback;
};

size_t defaultCacheLimit()
{
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long pageSize = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || pageSize <= 0)
        return kLargeBlockCacheMaxBytes / 4;
    return std::min(kLargeBlockCacheMaxBytes, size_t(pages) * size_t(pageSize) / 16);
}

#endif

} // namespace

void reuseFreedMemory()
{
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
#if defined(__unix__)
    static LargeTensorAllocator allocator(c10::GetDefaultCPUAllocator());
    static const bool limitSet = [] {
        LargeTensorAllocator::setCacheLimit(defaultCacheLimit());
        return true;
    }();
    (void)limitSet;
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
#endif
}

LargeBlockCacheStats largeBlockCacheStats()
{
#if defined(__unix__)
    return LargeTensorAllocator::stats();
#else
    return {};
#endif
}

void releaseCachedLargeBlocks()
{
#if defined(__unix__)
    LargeTensorAllocator::releaseCached();
#endif
}

void setLargeBlockCacheLimit(size_t bytes)
{
#if defined(__unix__)
    LargeTensorAllocator::setCacheLimit(bytes);
#else
    (void)bytes;
#endif
}

} // namespace sparselab
