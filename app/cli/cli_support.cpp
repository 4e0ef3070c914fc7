#include "cli_support.h"

#include "tokenize/unicode.h"
#include "util/errors.h"

#include <csignal>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>

#include <unistd.h>

namespace sparselab::cli {

namespace fs = std::filesystem;

Args::Args(const std::string& command, const std::vector<std::string>& argv,
           const std::set<std::string>& valueOptions, const std::set<std::string>& flagOptions)
    : m_command(command)
{
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& arg = argv[i];
        if (arg.size() > 2 && arg.rfind("--", 0) == 0) {
            std::string name = arg.substr(2);
            std::optional<std::string> inlineValue;
            if (const auto eq = name.find('='); eq != std::string::npos) {
                inlineValue = name.substr(eq + 1);
                name = name.substr(0, eq);
            }
            if (valueOptions.count(name)) {
                if (inlineValue) {
                    m_values[name] = *inlineValue;
                } else {
                    if (i + 1 >= argv.size())
                        throw optionError("--" + name, "expects a value");
                    m_values[name] = argv[++i];
                }
            } else if (flagOptions.count(name) && !inlineValue) {
                m_flags.insert(name);
            } else {
                throw optionError("--" + name, "unknown option for '" + command + "' (see sparselab-cli help)");
            }
        } else {
            m_positional.push_back(arg);
        }
    }
    // Paths and names given here are recorded in JSON, HDF5 and GGUF, which hold UTF-8 text:
    // a name that is not UTF-8 is refused now, not by a JSON writer after the work.
    const std::string advice = "is not valid UTF-8 (SparseLab records file names and names as UTF-8: rename it)";
    for (const auto& [name, value] : m_values)
        if (!tokenize::unicode::isValidUtf8(value))
            throw optionError("--" + name, advice);
    for (const std::string& arg : m_positional)
        if (!tokenize::unicode::isValidUtf8(arg))
            throw InputError(tokenize::unicode::toValidUtf8(arg) + ": " + advice);
}

std::optional<std::string> Args::value(const std::string& name) const
{
    const auto it = m_values.find(name);
    if (it == m_values.end())
        return std::nullopt;
    return it->second;
}

std::string Args::valueOr(const std::string& name, const std::string& fallback) const
{
    return value(name).value_or(fallback);
}

int64_t Args::intOr(const std::string& name, int64_t fallback, int64_t min, int64_t max) const
{
    const auto text = value(name);
    if (!text)
        return fallback;
    size_t used = 0;
    long long parsed = 0;
    try {
        parsed = std::stoll(*text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text->size())
        throw optionError("--" + name, "expects an integer, got '" + *text + "'");
    if (parsed < min || parsed > max)
        throw optionError("--" + name, "must be between " + std::to_string(min) + " and "
                                           + std::to_string(max) + ", got " + *text);
    return parsed;
}

double Args::doubleOr(const std::string& name, double fallback) const
{
    const auto text = value(name);
    if (!text)
        return fallback;
    size_t used = 0;
    double parsed = 0;
    try {
        parsed = std::stod(*text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text->size())
        throw optionError("--" + name, "expects a number, got '" + *text + "'");
    return parsed;
}

void Args::requirePositional(size_t count, const std::string& usage) const
{
    if (m_positional.size() != count)
        throw InputError("usage: " + usage);
}

CancelToken& interruptToken()
{
    static CancelToken token;
    return token;
}

namespace {
extern "C" void onInterrupt(int)
{
    // Only an atomic store here: async-signal-safe. The worker notices at its next check.
    interruptToken().cancel();
}
} // namespace

void installInterruptHandler()
{
    std::signal(SIGINT, onInterrupt);
    std::signal(SIGTERM, onInterrupt);
}

ProgressCallback stderrProgress(bool quiet)
{
    if (quiet)
        return {};
    const bool tty = ::isatty(STDERR_FILENO) != 0;
    struct State {
        std::mutex mutex;
        std::string lastStage;
        double lastPrinted = -1e9;
    };
    auto state = std::make_shared<State>();
    return [tty, state](const Progress& p) {
        std::lock_guard lock(state->mutex);
        const bool finished = p.total > 0 && p.done >= p.total;
        const bool newStage = p.stage != state->lastStage;
        // On a terminal redraw at most 10×/s; in logs print a line at most every 2 s.
        const double interval = tty ? 0.1 : 2.0;
        if (!finished && !newStage && p.elapsedSeconds - state->lastPrinted < interval)
            return;
        state->lastPrinted = p.elapsedSeconds;
        if (newStage && tty && !state->lastStage.empty())
            std::fputc('\n', stderr);
        state->lastStage = p.stage;
        char eta[64] = "";
        if (p.etaSeconds >= 0 && !finished)
            std::snprintf(eta, sizeof eta, ", ETA %.0f s", p.etaSeconds);
        if (p.total > 0)
            std::fprintf(stderr, "%s%s %lld/%lld (%.0f%%%s) %s%s", tty ? "\r\x1b[2K" : "",
                         p.stage.c_str(), static_cast<long long>(p.done), static_cast<long long>(p.total),
                         100.0 * p.fraction(), eta, p.detail.c_str(), (tty && !finished) ? "" : "\n");
        else
            std::fprintf(stderr, "%s%s %s%s", tty ? "\r\x1b[2K" : "", p.stage.c_str(), p.detail.c_str(),
                         tty ? "" : "\n");
        std::fflush(stderr);
    };
}

std::vector<std::string> splitList(const std::string& text)
{
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, ','))
        if (!part.empty())
            parts.push_back(part);
    return parts;
}

void printJson(const nlohmann::json& object)
{
    // Replace, not throw, on invalid UTF-8: text decoded from a model (a continuation cut
    // inside a multi-byte character) may hold some, and the result is still worth printing.
    std::cout << object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

fs::path bundledResource(const std::string& relative)
{
    std::error_code ec;
    // Installed layout: <prefix>/bin/sparselab-cli and <prefix>/share/sparselab/...
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const fs::path installed = self.parent_path().parent_path() / "share" / "sparselab" / relative;
        if (fs::exists(installed, ec))
            return installed;
    }
    const fs::path configured = fs::path(SPARSELAB_INSTALLED_RESOURCES) / relative;
    if (fs::exists(configured, ec))
        return configured;
    return fs::path(SPARSELAB_SOURCE_RESOURCES) / relative;
}

int exitCodeOf(const std::function<int()>& command)
{
    try {
        return command();
    } catch (const InputError& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    } catch (const CancelledError& e) {
        if (e.kept().empty())
            std::fprintf(stderr, "cancelled: nothing was written\n");
        else
            std::fprintf(stderr, "cancelled: %s\n", e.kept().c_str());
        return 130;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "internal error: %s\n", e.what());
        return 1;
    }
}

} // namespace sparselab::cli
