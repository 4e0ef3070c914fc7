#include "util/atomic_file.h"

#include "util/errors.h"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sparselab {

std::filesystem::path scratchFolder()
{
    const char* variable = std::getenv("TMPDIR");
    const bool fromEnvironment = variable && *variable;
    const std::filesystem::path folder = fromEnvironment ? variable : "/tmp";
    const std::string named = fromEnvironment ? "TMPDIR (" + folder.string() + ")" : folder.string();
    struct stat info{};
    if (::stat(folder.c_str(), &info) != 0)
        throw InputError(named + ": " + std::strerror(errno) + "; scratch files need a writable folder "
                         "(set TMPDIR to one)");
    if (!S_ISDIR(info.st_mode))
        throw InputError(named + ": not a folder; scratch files need a writable folder (set TMPDIR to one)");
    if (::access(folder.c_str(), W_OK | X_OK) != 0)
        throw InputError(named + ": not writable (" + std::strerror(errno)
                         + "); scratch files need a writable folder (set TMPDIR to one)");
    return folder;
}

namespace fs = std::filesystem;

fs::path temporarySibling(const fs::path& target)
{
    static std::atomic<unsigned> counter{0};
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    return dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-"
                  + std::to_string(counter++));
}

namespace {

// fsync(2) of a file or folder. A folder's fsync makes a rename inside it durable; some file
// systems refuse to fsync folders (EINVAL) and are then as durable as they get.
void fsyncOrThrow(const fs::path& path, const fs::path& nameInError, bool folder)
{
    const int fd = ::open(path.c_str(), (folder ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw inputError(nameInError, std::string("cannot open to flush to disk: ") + std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0 && !(folder && (err == EINVAL || err == ENOTSUP)))
        throw inputError(nameInError, std::string("cannot flush to disk: ") + std::strerror(err));
}

// After the rename the new file is in place whatever happens next: flushing the folder is
// then best effort (an error here must not claim the output failed).
void fsyncFolderQuietly(const fs::path& folder)
{
    const int fd = ::open(folder.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

fs::path parentOf(const fs::path& target)
{
    return target.has_parent_path() ? target.parent_path() : fs::path(".");
}

} // namespace

void syncFolderTree(const fs::path& folder, const fs::path& nameInError)
{
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(folder, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        if (it->is_directory(ec))
            fsyncOrThrow(it->path(), nameInError, true);
        else if (it->is_regular_file(ec))
            fsyncOrThrow(it->path(), nameInError, false);
    }
    if (ec)
        throw inputError(nameInError, "cannot list the finished folder: " + ec.message());
    fsyncOrThrow(folder, nameInError, true);
}

void renameFolderIntoPlace(const fs::path& tempFolder, const fs::path& target)
{
    syncFolderTree(tempFolder, target);
    std::error_code ec;
    fs::rename(tempFolder, target, ec);
    if (ec)
        throw inputError(target, "cannot move the finished folder into place: " + ec.message());
    fsyncFolderQuietly(parentOf(target));
}

void writeFileAtomically(const fs::path& target, const std::function<void(const fs::path&)>& write)
{
    const fs::path temp = temporarySibling(target);
    try {
        write(temp);
        fsyncOrThrow(temp, target, false);
        std::error_code ec;
        fs::rename(temp, target, ec);
        if (ec)
            throw inputError(target, "cannot move the finished file into place: " + ec.message());
        fsyncFolderQuietly(parentOf(target));
    } catch (...) {
        std::error_code ignored;
        fs::remove(temp, ignored);
        throw;
    }
}

void writeFileAtomically(const fs::path& target, std::string_view bytes)
{
    writeFileAtomically(target, [&](const fs::path& temp) {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        if (!out)
            throw inputError(target, std::string("cannot create file: ") + std::strerror(errno));
        out.write(bytes.data(), std::streamsize(bytes.size()));
        out.close();
        if (!out)
            throw inputError(target, std::string("write failed: ") + std::strerror(errno));
    });
}

namespace {

std::string byteSize(std::uintmax_t bytes)
{
    const std::uintmax_t mib = std::uintmax_t(1) << 20;
    return bytes % mib == 0 ? std::to_string(bytes / mib) + " MiB" : std::to_string(bytes) + " bytes";
}

} // namespace

void requireRegularFile(const fs::path& file)
{
    std::error_code ec;
    const fs::file_status st = fs::status(file, ec); // follows symlinks; never opens
    if (st.type() == fs::file_type::not_found)
        throw inputError(file, "file not found");
    if (ec)
        throw inputError(file, "cannot read: " + ec.message());
    if (st.type() == fs::file_type::directory)
        throw inputError(file, "is a folder, expected a file");
    if (st.type() != fs::file_type::regular)
        throw inputError(file, "not a regular file");
}

std::string readTextFile(const fs::path& file, std::uintmax_t maxBytes)
{
    requireRegularFile(file);
    // O_NONBLOCK: should the path have become a FIFO since the check, open() still returns
    // (and fstat below refuses it); for a regular file the flag changes nothing.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        throw inputError(file, std::string("cannot open: ") + std::strerror(errno));
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        throw inputError(file, std::string("cannot read: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw inputError(file, "not a regular file");
    if (st.st_size < 0 || std::uintmax_t(st.st_size) > maxBytes)
        throw inputError(file, "larger than " + byteSize(maxBytes));
    // Reads what the file held when it was opened; a file growing meanwhile is cut there.
    std::string text(size_t(st.st_size), '\0');
    size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw inputError(file, std::string("cannot read: ") + std::strerror(errno));
        }
        if (n == 0)
            break; // shrunk meanwhile
        got += size_t(n);
    }
    text.resize(got);
    return text;
}

} // namespace sparselab
