#pragma once
// Atomic output: everything SparseLab writes goes to a temporary name beside the target
// and is renamed over it only when complete (after fsync), so a crash, a cancel or a full
// disk never leaves a partial file, and a reader never sees one.

#include <filesystem>
#include <functional>
#include <string_view>

namespace sparselab {

// Writes `bytes` to `target` atomically. Throws InputError naming `target` on failure.
void writeFileAtomically(const std::filesystem::path& target, std::string_view bytes);

// Calls `write(tempPath)` to produce the file at a temporary path in the same folder,
// fsyncs it and renames it onto `target`. On any exception the temporary is removed and
// the exception propagates.
void writeFileAtomically(const std::filesystem::path& target,
                         const std::function<void(const std::filesystem::path& tempPath)>& write);

// A temporary sibling path: "<dir>/.<name>.tmp-<pid>-<counter>".
[[nodiscard]] std::filesystem::path temporarySibling(const std::filesystem::path& target);

// Reads a whole (small) file; InputError naming the file when it cannot be read.
[[nodiscard]] std::string readTextFile(const std::filesystem::path& file);

} // namespace sparselab
