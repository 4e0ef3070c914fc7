#pragma once
// Reads a whole JSON file: InputError naming the file when it cannot be read or does not
// parse ("not valid JSON: …"). Shape checks stay with the caller, who knows what it expects.

#include "util/atomic_file.h"
#include "util/errors.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace sparselab {

[[nodiscard]] inline nlohmann::json readJsonFile(const std::filesystem::path& file)
{
    const std::string text = readTextFile(file);
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw inputError(file, std::string("not valid JSON: ") + e.what());
    }
}

} // namespace sparselab
