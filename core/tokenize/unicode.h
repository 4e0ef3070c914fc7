#pragma once
// Minimal Unicode support for the tokenizers (no ICU): UTF-8 decoding that tolerates
// invalid bytes, the character classes the pre-tokenizer regexes need (\p{L}, \p{N}, \s),
// and NFC normalization. Tables come from scripts/gen_unicode_tables.py (Unicode 14.0).
// All functions are pure and thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sparselab::tokenize::unicode {

inline constexpr char32_t kReplacementChar = 0xFFFD;

struct DecodedChar {
    char32_t value = 0;  // the code point; kReplacementChar when !valid
    uint32_t length = 0; // bytes consumed, >= 1
    bool valid = false;  // false: an ill-formed sequence (its maximal subpart, per Unicode §3.9)
};

// Decodes the character starting at text[pos] (pos < text.size()). Never throws: an
// ill-formed sequence is returned as one invalid "character" covering its maximal subpart,
// which is how Rust's from_utf8_lossy (and so Hugging Face tokenizers) splits them.
[[nodiscard]] DecodedChar decodeUtf8(std::string_view text, std::size_t pos);

void appendUtf8(std::string& out, char32_t cp);

// Lossy copy: every ill-formed sequence becomes U+FFFD.
[[nodiscard]] std::string toValidUtf8(std::string_view bytes);
[[nodiscard]] bool isValidUtf8(std::string_view bytes);

enum class CharClass : uint8_t { Other, Letter, Number, Whitespace };

// Letter: general category L*; Number: N*; Whitespace: the White_Space property (what \s
// means in Oniguruma, Rust regex and tiktoken). Everything else, including U+FFFD, is Other.
[[nodiscard]] CharClass classify(char32_t cp);
[[nodiscard]] inline bool isLetter(char32_t cp) { return classify(cp) == CharClass::Letter; }
[[nodiscard]] inline bool isNumber(char32_t cp) { return classify(cp) == CharClass::Number; }
[[nodiscard]] inline bool isWhitespace(char32_t cp) { return classify(cp) == CharClass::Whitespace; }

// Canonical composition (NFC). Ill-formed byte sequences pass through unchanged and act as
// starters that compose with nothing.
[[nodiscard]] std::string toNfc(std::string_view text);

} // namespace sparselab::tokenize::unicode
