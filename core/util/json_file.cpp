#include "util/json_file.h"

#include "util/atomic_file.h"
#include "util/errors.h"

namespace sparselab {

bool jsonNestedDeeperThan(std::string_view text, int limit)
{
    int depth = 0;
    bool inString = false;
    bool escaped = false;
    for (const char c : text) {
        if (inString) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                inString = false;
            continue;
        }
        switch (c) {
        case '"':
            inString = true;
            break;
        case '[':
        case '{':
            if (++depth > limit)
                return true;
            break;
        case ']':
        case '}':
            if (depth > 0)
                --depth;
            break;
        default:
            break;
        }
    }
    return false;
}

void requireJsonDepth(std::string_view text, const std::filesystem::path& source, const std::string& what)
{
    if (jsonNestedDeeperThan(text, kMaxJsonDepth))
        throw inputError(source, (what.empty() ? std::string() : what + " is ") + "nested deeper than "
                                     + std::to_string(kMaxJsonDepth) + " levels");
}

nlohmann::json parseJsonText(std::string_view text, const std::filesystem::path& source, const std::string& what)
{
    requireJsonDepth(text, source, what);
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw inputError(source, (what.empty() ? std::string() : what + " is ") + "not valid JSON: " + e.what());
    }
}

nlohmann::json readJsonFile(const std::filesystem::path& file)
{
    return parseJsonText(readTextFile(file, kMaxJsonFileBytes), file);
}

} // namespace sparselab
