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

} // namespace sparselab::io
