#include "util/errors.h"

#include <algorithm>

namespace sparselab {

namespace {
std::string oneLine(std::string text)
{
    // nlohmann::json prefixes its messages with "[json.exception.parse_error.101] ": noise to a user.
    for (size_t at = text.find("[json.exception."); at != std::string::npos; at = text.find("[json.exception.")) {
        const size_t close = text.find("] ", at);
        if (close == std::string::npos)
            break;
        text.erase(at, close + 2 - at);
    }
    std::replace(text.begin(), text.end(), '\n', ' ');
    std::replace(text.begin(), text.end(), '\r', ' ');
    return text;
}
} // namespace

InputError inputError(const std::filesystem::path& file, const std::string& problem)
{
    return InputError(oneLine(file.string() + ": " + problem));
}

InputError optionError(const std::string& option, const std::string& problem)
{
    return InputError(oneLine(option + ": " + problem));
}

} // namespace sparselab
