#pragma once
// The one way SparseLab reads JSON, from a file or from text held elsewhere (a safetensors
// header, a workspace attribute, a GUI buffer): bounded in size and in nesting depth, with
// InputError naming the source when it is too large, nested too deep ("nested deeper than
// 256 levels") or does not parse ("not valid JSON: …"). Shape checks stay with the caller,
// who knows what it expects.
//
// The depth limit is checked on the bytes before parsing (brackets outside strings), so a
// document nested 100,000 levels deep is refused without building, walking or destroying
// anything that deep.

#include "util/errors.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace sparselab {

inline constexpr int kMaxJsonDepth = 256;
inline constexpr std::uintmax_t kMaxJsonFileBytes = std::uintmax_t(256) << 20; // 256 MiB

// Whether `text` opens more than `limit` arrays/objects inside one another. Exact for valid
// JSON; for invalid JSON any answer is fine, the parser refuses it anyway.
[[nodiscard]] bool jsonNestedDeeperThan(std::string_view text, int limit = kMaxJsonDepth);

// InputError naming `source` when `text` is nested deeper than kMaxJsonDepth. `what` names
// the part of `source` the text is ("header", "group /x: 'json'"), empty for all of it.
void requireJsonDepth(std::string_view text, const std::filesystem::path& source, const std::string& what = {});

// requireJsonDepth, then parse; InputError naming `source` when it does not parse.
[[nodiscard]] nlohmann::json parseJsonText(std::string_view text, const std::filesystem::path& source,
                                           const std::string& what = {});

// A whole JSON file (a regular file of at most kMaxJsonFileBytes), parsed.
[[nodiscard]] nlohmann::json readJsonFile(const std::filesystem::path& file);

// object[key] as a T; InputError "SOURCE: missing or malformed field 'KEY'" when it is absent
// or of another type.
template <typename T>
[[nodiscard]] T requiredField(const nlohmann::json& object, const char* key, const std::string& source)
{
    try {
        return object.at(key).get<T>();
    } catch (const nlohmann::json::exception&) {
        throw InputError(source + ": missing or malformed field '" + key + "'");
    }
}

} // namespace sparselab
