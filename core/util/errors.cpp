#include "util/errors.h"

#include <algorithm>

namespace sparselab {

namespace {
std::string oneLine(std::string text)
{
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
