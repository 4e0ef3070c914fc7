#pragma once
// Atomic output: everything SparseLab writes goes to a temporary name beside the target
// and is renamed over it only when complete (after fsync), so a crash, a cancel or a full
// disk never leaves a partial file, and a reader never sees one.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

namespace sparselab {

// Writes `bytes` to `target` atomically. Throws InputError naming `target` on failure.
void writeFileAtomically(const std::filesystem::path& target, std::string_view bytes);

// Calls `write(tempPath)` to produce the file at a temporary path in the same folder,
// fsyncs it, renames it onto `target` and fsyncs the folder (best effort: the rename has
// happened); a failed fsync (e.g. ENOSPC on delayed allocation) is an InputError naming `target`
// and leaves `target` as it was. On any exception the temporary is removed and
// the exception propagates.
void writeFileAtomically(const std::filesystem::path& target,
                         const std::function<void(const std::filesystem::path& tempPath)>& write);

// For outputs that are folders (a Hugging Face export): fsyncs every file and folder under
// `tempFolder` and `tempFolder` itself, renames it onto `target` (which must not exist) and
// fsyncs the parent (best effort), so after a crash either the complete folder or nothing is there.
// InputError naming `target` on failure (the caller removes `tempFolder`).
void renameFolderIntoPlace(const std::filesystem::path& tempFolder, const std::filesystem::path& target);
// fsync of every file and folder under `folder`, and `folder` itself; InputError naming
// `nameInError` on failure.
void syncFolderTree(const std::filesystem::path& folder, const std::filesystem::path& nameInError);

// The folder for scratch files (a GGUF model's import, a streamed prune's spilled blocks):
// $TMPDIR, or /tmp when TMPDIR is unset or empty. InputError naming TMPDIR when it is missing,
// not a folder or not writable, so a command says so before its work instead of failing late.
[[nodiscard]] std::filesystem::path scratchFolder();

// A temporary sibling path: "<dir>/.<name>.tmp-<pid>-<counter>".
[[nodiscard]] std::filesystem::path temporarySibling(const std::filesystem::path& target);

// ---- reading inputs ----------------------------------------------------------------------
// Every input is a regular file (after symlinks): a FIFO, a device such as /dev/zero or a
// socket is refused with "not a regular file" before anything is read, so no reader blocks
// on an open or reads without end. Whatever is read into memory whole has a size cap.

// The cap on a text read whole (calibration, evaluation and prompt texts, tokenizer.model).
inline constexpr std::uintmax_t kMaxTextFileBytes = std::uintmax_t(1) << 30; // 1 GiB

// InputError naming `file` unless it exists and is a regular file ("file not found",
// "is a folder, expected a file", "not a regular file"). Does not open it.
void requireRegularFile(const std::filesystem::path& file);

// Reads a whole regular file of at most `maxBytes` bytes; InputError naming the file when it
// is not one, cannot be read, or is larger ("larger than N MiB").
[[nodiscard]] std::string readTextFile(const std::filesystem::path& file,
                                       std::uintmax_t maxBytes = kMaxTextFileBytes);

} // namespace sparselab
