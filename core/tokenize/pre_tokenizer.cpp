#include "tokenize/pre_tokenizer.h"

#include "tokenize/unicode.h"

#include <array>

namespace sparselab::tokenize {

namespace {

using unicode::CharClass;

constexpr std::string_view kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Char {
    char32_t cp;
    CharClass cls;
    uint32_t length;
};

// Each alternative below is a function from a start position to the end of its match (or
// npos). They mirror a backtracking regex engine: alternatives are tried in order and the
// first that matches wins (leftmost-first, not longest), quantifiers are greedy.
class Matcher {
public:
    explicit Matcher(std::string_view text) : m_text(text) {}

    static constexpr std::size_t npos = std::string_view::npos;

    [[nodiscard]] std::size_t size() const { return m_text.size(); }

    [[nodiscard]] Char at(std::size_t pos) const
    {
        const auto b = static_cast<uint8_t>(m_text[pos]);
        if (b < 0x80)
            return {b, unicode::classify(b), 1};
        const unicode::DecodedChar d = unicode::decodeUtf8(m_text, pos);
        // Ill-formed bytes are neither letters, numbers nor spaces: they join [^\s\p{L}\p{N}]+.
        return {d.value, d.valid ? unicode::classify(d.value) : CharClass::Other, d.length};
    }

    [[nodiscard]] bool isByte(std::size_t pos, char c) const { return pos < size() && m_text[pos] == c; }

    // End of the run of characters of class `cls` starting at pos (pos itself when none).
    [[nodiscard]] std::size_t runOf(std::size_t pos, CharClass cls, std::size_t maxChars = npos) const
    {
        std::size_t count = 0;
        while (pos < size() && count < maxChars) {
            const Char c = at(pos);
            if (c.cls != cls)
                break;
            pos += c.length;
            ++count;
        }
        return pos;
    }

    // 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII-case-insensitive (then 's also matches the
    // long s U+017F, which simple case folding maps to s).
    [[nodiscard]] std::size_t contraction(std::size_t pos, bool ignoreCase) const
    {
        if (!isByte(pos, '\''))
            return npos;
        const auto lower = [&](std::size_t i) -> char {
            if (i >= size())
                return '\0';
            const char c = m_text[i];
            return ignoreCase && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
        };
        const char a = lower(pos + 1);
        const char b = lower(pos + 2);
        if (a == 's' || a == 't')
            return pos + 2;
        if (ignoreCase && m_text.substr(pos + 1, 2) == "\xC5\xBF") // ſ
            return pos + 3;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e'))
            return pos + 3;
        if (a == 'm')
            return pos + 2;
        if (a == 'l' && b == 'l')
            return pos + 3;
        if (a == 'd')
            return pos + 2;
        return npos;
    }

    // ` ?X+` for a class X that excludes the space.
    [[nodiscard]] std::size_t optionalSpaceThenRun(std::size_t pos, CharClass cls) const
    {
        std::size_t p = pos;
        if (isByte(p, ' '))
            ++p;
        if (p >= size() || at(p).cls != cls)
            return npos;
        return runOf(p, cls);
    }

    // \s+(?!\S) and, failing that, \s+ — together: a whitespace run, leaving its last
    // character for the next token when a non-space follows (so " world" keeps its space).
    [[nodiscard]] std::size_t whitespace(std::size_t pos) const
    {
        std::size_t p = pos;
        std::size_t lastStart = pos;
        while (p < size()) {
            const Char c = at(p);
            if (c.cls != CharClass::Whitespace)
                break;
            lastStart = p;
            p += c.length;
        }
        if (p == pos)
            return npos;
        if (p == size() || lastStart == pos)
            return p; // run reaches the end, or one character (only \s+ matches)
        return lastStart;
    }

    // \s*[\r\n]+ : the whitespace run up to and including its last line break.
    [[nodiscard]] std::size_t whitespaceToNewline(std::size_t pos) const
    {
        std::size_t p = pos;
        std::size_t afterNewline = npos;
        while (p < size()) {
            const Char c = at(p);
            if (c.cls != CharClass::Whitespace)
                break;
            p += c.length;
            if (c.cp == '\r' || c.cp == '\n')
                afterNewline = p;
        }
        return afterNewline;
    }

    [[nodiscard]] std::size_t matchGpt2(std::size_t pos) const
    {
        std::size_t end = contraction(pos, false);
        if (end == npos)
            end = optionalSpaceThenRun(pos, CharClass::Letter);
        if (end == npos)
            end = optionalSpaceThenRun(pos, CharClass::Number);
        if (end == npos)
            end = optionalSpaceThenRun(pos, CharClass::Other);
        if (end == npos)
            end = whitespace(pos);
        return end;
    }

    [[nodiscard]] std::size_t matchLlama3(std::size_t pos, std::size_t maxDigits) const
    {
        std::size_t end = contraction(pos, true);
        if (end != npos)
            return end;
        // [^\r\n\p{L}\p{N}]?\p{L}+
        const Char c = at(pos);
        if (c.cls == CharClass::Letter)
            return runOf(pos, CharClass::Letter);
        if (c.cls != CharClass::Number && c.cp != '\r' && c.cp != '\n') {
            const std::size_t p = pos + c.length;
            if (p < size() && at(p).cls == CharClass::Letter)
                return runOf(p, CharClass::Letter);
        }
        // \p{N}{1,maxDigits}
        if (c.cls == CharClass::Number)
            return runOf(pos, CharClass::Number, maxDigits);
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        end = optionalSpaceThenRun(pos, CharClass::Other);
        if (end != npos) {
            while (end < size() && (m_text[end] == '\r' || m_text[end] == '\n'))
                ++end;
            return end;
        }
        end = whitespaceToNewline(pos);
        if (end == npos)
            end = whitespace(pos);
        return end;
    }

private:
    std::string_view m_text;
};

struct ByteLevelTables {
    std::array<std::string, 256> byteToText;
    std::array<int16_t, 324> cpToByte; // -1 outside the alphabet (it ends at U+0143)
};

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68
// bytes are shifted to U+0100.. in byte order.
const ByteLevelTables& byteLevelTables()
{
    static const ByteLevelTables tables = [] {
        ByteLevelTables t;
        t.cpToByte.fill(-1);
        char32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
            unicode::appendUtf8(t.byteToText[static_cast<std::size_t>(b)], cp);
            t.cpToByte[cp] = static_cast<int16_t>(b);
        }
        return t;
    }();
    return tables;
}

} // namespace

std::optional<SplitPattern> recognizeSplitPattern(std::string_view regex)
{
    if (regex == kGpt2Regex)
        return SplitPattern::Gpt2;
    if (regex == kLlama3Regex)
        return SplitPattern::Llama3;
    if (regex == kQwen2Regex)
        return SplitPattern::Qwen2;
    return std::nullopt;
}

void splitPreTokens(SplitPattern pattern, std::string_view text, std::vector<std::string_view>& out)
{
    const Matcher matcher(text);
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = Matcher::npos;
        switch (pattern) {
        case SplitPattern::Gpt2:
            end = matcher.matchGpt2(pos);
            break;
        case SplitPattern::Llama3:
            end = matcher.matchLlama3(pos, 3);
            break;
        case SplitPattern::Qwen2:
            end = matcher.matchLlama3(pos, 1);
            break;
        }
        // Every character is a letter, number, space or "other", so some alternative always
        // matches; keep one character as a piece should that ever not hold.
        if (end == Matcher::npos || end <= pos)
            end = pos + matcher.at(pos).length;
        out.push_back(text.substr(pos, end - pos));
        pos = end;
    }
}

void appendByteLevel(std::string_view bytes, std::string& out)
{
    const auto& table = byteLevelTables().byteToText;
    for (char c : bytes)
        out += table[static_cast<uint8_t>(c)];
}

std::optional<uint8_t> byteLevelByte(char32_t cp)
{
    const auto& table = byteLevelTables().cpToByte;
    if (cp >= table.size() || table[cp] < 0)
        return std::nullopt;
    return static_cast<uint8_t>(table[cp]);
}

} // namespace sparselab::tokenize
