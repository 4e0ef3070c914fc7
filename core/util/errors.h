#pragma once
// Error types shared by the whole engine.
//
// InputError: the user handed us something unusable (a file, an option, a text). Its
// message is ONE line that names the file (or option) and the problem, e.g.
// "models/x/config.json: missing field 'hidden_size'". Front ends show it as is; the CLI
// exits with code 2. Anything else that escapes the engine is an internal failure (exit 1).
//
// CancelledError: a long operation noticed its CancelToken and stopped; it has written
// nothing (outputs are only renamed into place once complete).

#include <filesystem>
#include <stdexcept>
#include <string>

namespace sparselab {

class InputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class CancelledError : public std::runtime_error {
public:
    CancelledError() : std::runtime_error("cancelled") {}
    // `kept`: what the cancelled command left on purpose (e.g. a resume checkpoint), said to
    // the user instead of "nothing was written".
    explicit CancelledError(std::string kept) : std::runtime_error("cancelled"), m_kept(std::move(kept)) {}
    [[nodiscard]] const std::string& kept() const { return m_kept; }

private:
    std::string m_kept;
};

// "FILE: PROBLEM" as one line (newlines in PROBLEM are replaced by spaces).
[[nodiscard]] InputError inputError(const std::filesystem::path& file, const std::string& problem);

// "PROBLEM" for input errors that are about an option rather than a file.
[[nodiscard]] InputError optionError(const std::string& option, const std::string& problem);

} // namespace sparselab
