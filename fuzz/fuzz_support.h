#pragma once
// Shared by the libFuzzer targets: the readers take paths, so each input is written to a
// per-process scratch file (in $TMPDIR, default /tmp) and handed over by name. An InputError
// is the expected answer to malformed bytes; anything else escaping (another exception, a
// sanitizer report, a crash, a hang) is a finding.

#include "util/errors.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace sparselab::fuzz {

// A scratch folder unique to this process, created on first use and removed at exit. (The
// path lives on the heap for the whole run, so the exit handler never sees it destroyed.)
inline const std::filesystem::path& scratchDir()
{
    static const std::filesystem::path* const dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        auto* d = new std::filesystem::path(std::filesystem::path(tmp && *tmp ? tmp : "/tmp")
                                            / ("sparselab-fuzz-" + std::to_string(::getpid())));
        std::filesystem::create_directories(*d);
        return d;
    }();
    static const bool cleanupRegistered = [] {
        std::atexit([] {
            std::error_code ignored;
            std::filesystem::remove_all(*dir, ignored);
        });
        return true;
    }();
    (void)cleanupRegistered;
    return *dir;
}

// Writes the fuzz input to scratchDir()/name and returns that path.
inline std::filesystem::path writeInput(const std::string& name, const uint8_t* data, size_t size)
{
    const std::filesystem::path path = scratchDir() / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    return path;
}

// Runs `body`; InputError is the expected answer to malformed input and is swallowed.
// Any other exception aborts, so libFuzzer records it as a crash with the input.
template <typename Body>
int runExpectingOnlyInputErrors(Body&& body)
{
    try {
        body();
    } catch (const sparselab::InputError&) {
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz: unexpected exception (not an InputError): %s\n", e.what());
        std::abort();
    }
    return 0;
}

} // namespace sparselab::fuzz
