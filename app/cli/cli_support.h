#pragma once
// Small helpers shared by the CLI subcommands: argument parsing, progress on stderr,
// Ctrl-C → CancelToken, JSON on stdout.

#include "util/progress.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sparselab::cli {

// Parsed "--name value" / "--flag" options and positional arguments.
// Construction validates against the allowed option names: unknown options or a value
// missing after an option raise InputError ("--foo: unknown option for 'eval'").
class Args {
public:
    Args(const std::string& command, const std::vector<std::string>& argv,
         const std::set<std::string>& valueOptions, const std::set<std::string>& flagOptions);

    [[nodiscard]] const std::string& command() const { return m_command; }
    [[nodiscard]] const std::vector<std::string>& positional() const { return m_positional; }
    [[nodiscard]] bool flag(const std::string& name) const { return m_flags.count(name) > 0; }
    [[nodiscard]] std::optional<std::string> value(const std::string& name) const;
    [[nodiscard]] std::string valueOr(const std::string& name, const std::string& fallback) const;
    // Typed accessors: InputError naming the option when the value does not parse or is out of range.
    [[nodiscard]] int64_t intOr(const std::string& name, int64_t fallback, int64_t min, int64_t max) const;
    [[nodiscard]] double doubleOr(const std::string& name, double fallback) const;
    // Exactly `count` positionals or InputError with the usage line.
    void requirePositional(size_t count, const std::string& usage) const;

private:
    std::string m_command;
    std::vector<std::string> m_positional;
    std::map<std::string, std::string> m_values;
    std::set<std::string> m_flags;
};

// Runs a command and turns what it throws into the CLI's exit codes, with one line on stderr:
// InputError → "error: …", 2; CancelledError → "cancelled: …", 130; anything else →
// "internal error: …", 1. Both programs' main() run their commands through it.
int exitCodeOf(const std::function<int()>& command);

// A CancelToken that SIGINT (Ctrl-C) and SIGTERM set. Installed once by main().
CancelToken& interruptToken();
void installInterruptHandler();

// Progress printer for stderr: one updating line per stage (\r on a terminal, a line at
// most every 2 s otherwise), with percentage and ETA.
ProgressCallback stderrProgress(bool quiet = false);

// The parts of a comma-separated option value ("a,,b" → {"a", "b"}).
[[nodiscard]] std::vector<std::string> splitList(const std::string& text);

// Prints `object` as one line of JSON on stdout.
void printJson(const nlohmann::json& object);

// Resolves the bundled demo model / texts (installed share/sparselab or the source tree).
std::filesystem::path bundledResource(const std::string& relative);

} // namespace sparselab::cli
