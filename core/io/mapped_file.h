#pragma once
// A whole file mapped read-only (RAII). Shared by the safetensors and GGUF readers.
// The descriptor is closed right after mmap: the mapping keeps the pages reachable on its own.
// Errors are InputErrors naming the file. Movable only through unique_ptr (not copyable).

#include <cstddef>
#include <filesystem>

namespace sparselab::io {

class MappedFile {
public:
    explicit MappedFile(const std::filesystem::path& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    [[nodiscard]] const std::byte* data() const { return m_data; } // null for an empty file
    [[nodiscard]] size_t size() const { return m_size; }

private:
    const std::byte* m_data = nullptr;
    size_t m_size = 0;
};

// Drops the whole pages inside [data, data + bytes) of a read-only file mapping (such as a
// MappedFile's) from this process's resident set (madvise MADV_DONTNEED); later reads fault
// them in again from the file. Use after copying a tensor out of a mapping, so that streaming
// through a file larger than RAM keeps the resident set bounded. Never call it on anonymous or
// written memory (its contents would be lost). No-op where unsupported.
void releaseMappedPages(const void* data, size_t bytes);
// Asks the kernel to start reading [data, data + bytes) of a file mapping in the background
// (madvise MADV_WILLNEED): overlaps the next block's disk reads with the current work.
void prefetchMappedPages(const void* data, size_t bytes);

} // namespace sparselab::io
