#include "io/mapped_file.h"

#include "util/errors.h"

#include <cerrno>
#include <cstdint>
#include <utility>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sparselab::io {

MappedFile::MappedFile(const std::filesystem::path& path)
{
    // O_NONBLOCK: a FIFO's open() would otherwise wait for a writer; fstat below refuses it.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        throw inputError(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        throw inputError(path, std::string("cannot stat: ") + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw inputError(path, "not a regular file");
    }
    m_size = size_t(st.st_size);
    if (m_size > 0) {
        void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            throw inputError(path, std::string("cannot memory-map: ") + std::strerror(err));
        }
        m_data = static_cast<const std::byte*>(p);
    }
    ::close(fd);
}

MappedFile::~MappedFile()
{
    if (m_data)
        ::munmap(const_cast<std::byte*>(m_data), m_size);
}

namespace {

// The whole pages inside [data, data + bytes), or an empty range.
std::pair<void*, size_t> innerPages(const void* data, size_t bytes, bool outer)
{
    const auto page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const auto begin = uintptr_t(data);
    const auto end = begin + bytes;
    const uintptr_t first = outer ? begin / page * page : (begin + page - 1) / page * page;
    const uintptr_t last = outer ? (end + page - 1) / page * page : end / page * page;
    if (!data || last <= first)
        return {nullptr, 0};
    return {reinterpret_cast<void*>(first), size_t(last - first)};
}

} // namespace

void releaseMappedPages(const void* data, size_t bytes)
{
    const auto [start, length] = innerPages(data, bytes, /*outer=*/false);
    if (length > 0)
        (void)::madvise(start, length, MADV_DONTNEED);
}

void prefetchMappedPages(const void* data, size_t bytes)
{
    const auto [start, length] = innerPages(data, bytes, /*outer=*/true);
    if (length > 0)
        (void)::madvise(start, length, MADV_WILLNEED);
}

} // namespace sparselab::io
