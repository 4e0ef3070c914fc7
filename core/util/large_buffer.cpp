#include "util/large_buffer.h"

#include <new>

#if defined(__unix__)
#include <sys/mman.h>
#endif

namespace sparselab::util {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}

LargeBuffer::LargeBuffer(size_t bytes) : m_bytes(bytes)
{
    if (bytes == 0)
        return;
#if defined(__unix__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugePageBufferBytes) {
        // Over-map by one huge page and trim, so that the buffer starts on a 2 MiB boundary.
        const size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        void* raw = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw != MAP_FAILED) {
            const auto base = reinterpret_cast<uintptr_t>(raw);
            const uintptr_t aligned = (base + kHugePage - 1) / kHugePage * kHugePage;
            if (aligned > base)
                ::munmap(raw, aligned - base);
            const uintptr_t end = base + length + kHugePage;
            if (end > aligned + length)
                ::munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
            m_data = reinterpret_cast<void*>(aligned);
            m_mapped = length;
            (void)::madvise(m_data, length, MADV_HUGEPAGE);
            return;
        }
    }
#endif
    m_data = ::operator new(bytes, std::align_val_t(64));
}

LargeBuffer::~LargeBuffer()
{
    if (!m_data)
        return;
#if defined(__unix__)
    if (m_mapped > 0) {
        ::munmap(m_data, m_mapped);
        return;
    }
#endif
    ::operator delete(m_data, std::align_val_t(64));
}

} // namespace sparselab::util
