#include "util/atomic_file.h"

#include "util/errors.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

namespace sparselab {

namespace fs = std::filesystem;

fs::path temporarySibling(const fs::path& target)
{
    static std::atomic<unsigned> counter{0};
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    return dir / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-"
                  + std::to_string(counter++));
}

namespace {
void fsyncPath(const fs::path& path)
{
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0)
        return;
    ::fsync(fd);
    ::close(fd);
}
} // namespace

void writeFileAtomically(const fs::path& target, const std::function<void(const fs::path&)>& write)
{
    const fs::path temp = temporarySibling(target);
    try {
        write(temp);
        fsyncPath(temp);
        std::error_code ec;
        fs::rename(temp, target, ec);
        if (ec)
            throw inputError(target, "cannot move the finished file into place: " + ec.message());
        fsyncPath(target.has_parent_path() ? target.parent_path() : fs::path("."));
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
        out.flush();
        if (!out)
            throw inputError(target, "write failed (disk full?)");
    });
}

std::string readTextFile(const fs::path& file)
{
    std::error_code ec;
    if (!fs::exists(file, ec))
        throw inputError(file, "file not found");
    if (fs::is_directory(file, ec))
        throw inputError(file, "is a folder, expected a file");
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw inputError(file, std::string("cannot open: ") + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace sparselab
