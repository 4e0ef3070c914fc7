#include "tokenize/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <vector>

namespace sparselab::tokenize::unicode {

namespace {

struct ClassRange {
    char32_t first;
    char32_t last;
    uint8_t cls; // 1 letter, 2 number
};
struct CombiningRange {
    char32_t first;
    char32_t last;
    uint8_t ccc;
};
struct Decomposition {
    char32_t cp;
    uint16_t offset;
    uint8_t length;
};
struct Composition {
    char32_t first;
    char32_t second;
    char32_t composite;
};

#include "tokenize/unicode_tables.inc"

// The White_Space property (PropList.txt); stable since Unicode 6.3.
bool isWhiteSpaceProperty(char32_t cp)
{
    if (cp <= 0x20)
        return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

// ASCII is by far the common case: classify it from a table built once.
const std::array<CharClass, 128>& asciiClasses()
{
    static const std::array<CharClass, 128> table = [] {
        std::array<CharClass, 128> t{};
        for (char32_t c = 0; c < 128; ++c) {
            if (isWhiteSpaceProperty(c))
                t[c] = CharClass::Whitespace;
            else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                t[c] = CharClass::Letter;
            else if (c >= '0' && c <= '9')
                t[c] = CharClass::Number;
            else
                t[c] = CharClass::Other;
        }
        return t;
    }();
    return table;
}

// Hangul syllables decompose and compose algorithmically (Unicode §3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t combiningClass(char32_t cp)
{
    if (cp < 0x300)
        return 0;
    auto it = std::upper_bound(std::begin(kCombiningRanges), std::end(kCombiningRanges), cp,
        [](char32_t c, const CombiningRange& r) { return c < r.first; });
    if (it == std::begin(kCombiningRanges))
        return 0;
    --it;
    return cp <= it->last ? it->ccc : 0;
}

void decomposeInto(char32_t cp, std::vector<char32_t>& out)
{
    if (cp >= kSBase && cp < kSBase + kSCount) {
        const char32_t s = cp - kSBase;
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount != 0)
            out.push_back(kTBase + s % kTCount);
        return;
    }
    auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
        [](const Decomposition& d, char32_t c) { return d.cp < c; });
    if (it != std::end(kDecompositions) && it->cp == cp) {
        out.insert(out.end(), kDecompositionData + it->offset, kDecompositionData + it->offset + it->length);
        return;
    }
    out.push_back(cp);
}

// 0 when the pair does not compose.
char32_t compose(char32_t first, char32_t second)
{
    if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount)
        return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
    if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
        second < kTBase + kTCount)
        return first + (second - kTBase);
    auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), first,
        [](const Composition& c, char32_t f) { return c.first < f; });
    for (; it != std::end(kCompositions) && it->first == first; ++it)
        if (it->second == second)
            return it->composite;
    return 0;
}

// Ill-formed bytes are carried through NFC as private values above the code space.
constexpr char32_t kRawByteBase = 0x110000;

} // namespace

DecodedChar decodeUtf8(std::string_view text, std::size_t pos)
{
    const auto byte = [&](std::size_t i) { return static_cast<uint8_t>(text[i]); };
    const uint8_t b0 = byte(pos);
    if (b0 < 0x80)
        return {b0, 1, true};

    // Expected continuation count and the allowed range of the first continuation byte
    // (Unicode Table 3-7); later continuation bytes are always 80..BF.
    int count = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    char32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        count = 1;
        cp = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        count = 2;
        cp = b0 & 0x0Fu;
        if (b0 == 0xE0)
            lo = 0xA0;
        else if (b0 == 0xED)
            hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        count = 3;
        cp = b0 & 0x07u;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F;
    } else {
        return {kReplacementChar, 1, false};
    }
    uint32_t length = 1;
    for (int k = 0; k < count; ++k) {
        const std::size_t i = pos + length;
        if (i >= text.size() || byte(i) < lo || byte(i) > hi)
            return {kReplacementChar, length, false};
        cp = (cp << 6) | (byte(i) & 0x3Fu);
        ++length;
        lo = 0x80;
        hi = 0xBF;
    }
    return {cp, length, true};
}

void appendUtf8(std::string& out, char32_t cp)
{
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool isValidUtf8(std::string_view bytes)
{
    for (std::size_t pos = 0; pos < bytes.size();) {
        const DecodedChar c = decodeUtf8(bytes, pos);
        if (!c.valid)
            return false;
        pos += c.length;
    }
    return true;
}

std::string toValidUtf8(std::string_view bytes)
{
    if (isValidUtf8(bytes))
        return std::string(bytes);
    std::string out;
    out.reserve(bytes.size() + 8);
    for (std::size_t pos = 0; pos < bytes.size();) {
        const DecodedChar c = decodeUtf8(bytes, pos);
        if (c.valid)
            out.append(bytes.substr(pos, c.length));
        else
            appendUtf8(out, kReplacementChar);
        pos += c.length;
    }
    return out;
}

CharClass classify(char32_t cp)
{
    if (cp < 128)
        return asciiClasses()[cp];
    if (isWhiteSpaceProperty(cp))
        return CharClass::Whitespace;
    auto it = std::upper_bound(std::begin(kClassRanges), std::end(kClassRanges), cp,
        [](char32_t c, const ClassRange& r) { return c < r.first; });
    if (it == std::begin(kClassRanges))
        return CharClass::Other;
    --it;
    if (cp > it->last)
        return CharClass::Other;
    return it->cls == 1 ? CharClass::Letter : CharClass::Number;
}

std::string toNfc(std::string_view text)
{
    // Pure ASCII is already NFC, and it is most of what a tokenizer sees.
    if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; }))
        return std::string(text);

    // 1. Full canonical decomposition.
    std::vector<char32_t> buf;
    buf.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        const DecodedChar c = decodeUtf8(text, pos);
        if (c.valid) {
            decomposeInto(c.value, buf);
        } else {
            for (uint32_t k = 0; k < c.length; ++k)
                buf.push_back(kRawByteBase + static_cast<uint8_t>(text[pos + k]));
        }
        pos += c.length;
    }
    const auto cccOf = [](char32_t cp) { return cp >= kRawByteBase ? uint8_t{0} : combiningClass(cp); };

    // 2. Canonical ordering: stable sort of each run of non-starters by combining class.
    for (std::size_t i = 0; i < buf.size();) {
        if (cccOf(buf[i]) == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < buf.size() && cccOf(buf[j]) != 0)
            ++j;
        std::stable_sort(buf.begin() + static_cast<std::ptrdiff_t>(i), buf.begin() + static_cast<std::ptrdiff_t>(j),
            [&](char32_t a, char32_t b) { return cccOf(a) < cccOf(b); });
        i = j;
    }

    // 3. Canonical composition: a character joins the last starter unless something between
    // them blocks it (a starter, or a mark of equal or higher class).
    std::vector<char32_t> out;
    out.reserve(buf.size());
    std::ptrdiff_t starter = -1;
    uint8_t lastCcc = 0;
    for (char32_t cp : buf) {
        const uint8_t ccc = cccOf(cp);
        if (starter >= 0 && cp < kRawByteBase && out[static_cast<std::size_t>(starter)] < kRawByteBase) {
            const bool adjacent = static_cast<std::size_t>(starter) + 1 == out.size();
            if (adjacent || (lastCcc != 0 && lastCcc < ccc)) {
                if (char32_t composite = compose(out[static_cast<std::size_t>(starter)], cp)) {
                    out[static_cast<std::size_t>(starter)] = composite;
                    continue;
                }
            }
        }
        if (ccc == 0)
            starter = static_cast<std::ptrdiff_t>(out.size());
        out.push_back(cp);
        lastCcc = ccc;
    }

    std::string result;
    result.reserve(text.size());
    for (char32_t cp : out) {
        if (cp >= kRawByteBase)
            result.push_back(static_cast<char>(cp - kRawByteBase));
        else
            appendUtf8(result, cp);
    }
    return result;
}

} // namespace sparselab::tokenize::unicode
