#include "util/memory_policy.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstdint>
#include <cstdlib> // defines __GLIBC__ on glibc systems
#include <mutex>
#include <new>
#include <unordered_map>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__unix__)
#include <sys/mman.h>
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
            const std::lock_guard lock(mappingsMutex());
            mappings().emplace(data, length);
        }
        return {data, data, &deleteBlock, c10::Device(c10::DeviceType::CPU)};
    }

    c10::DeleterFnPtr raw_deleter() const override { return &deleteBlock; }

private:
    static std::mutex& mappingsMutex()
    {
        static std::mutex mutex;
        return mutex;
    }
    static std::unordered_map<void*, size_t>& mappings()
    {
        static auto* map = new std::unordered_map<void*, size_t>(); // outlives static tensors
        return *map;
    }
    static void deleteBlock(void* data)
    {
        if (!data)
            return;
        size_t length = 0;
        {
            const std::lock_guard lock(mappingsMutex());
            const auto it = mappings().find(data);
            if (it != mappings().end()) {
                length = it->second;
                mappings().erase(it);
            }
        }
        if (length > 0)
            ::munmap(data, length);
        else if (const c10::DeleterFnPtr fallback = c10::GetDefaultCPUAllocator()->raw_deleter())
            fallback(data);
        else
            c10::free_cpu(data);
    }

    c10::Allocator* m_fallback;
};

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
    c10::SetCPUAllocator(&allocator, /*priority=*/1);
#endif
}

} // namespace sparselab
