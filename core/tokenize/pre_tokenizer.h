#pragma once
// Pre-tokenizer building blocks for byte-level BPE: the split regexes of GPT-2, Llama-3 and
// Qwen2 written out by hand (no regex engine; same matches as Oniguruma/Rust regex on these
// patterns), and GPT-2's byte↔unicode alphabet. Internal to core/tokenize.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sparselab::tokenize {

enum class SplitPattern {
    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    Gpt2,
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    // ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    Llama3,
    // As Llama3 with \p{N} (single digits) instead of \p{N}{1,3}.
    Qwen2,
};

// The pattern whose regex source is exactly `regex` (as stored in tokenizer.json), if any.
[[nodiscard]] std::optional<SplitPattern> recognizeSplitPattern(std::string_view regex);

// Splits `text` into consecutive matches of the pattern (every character belongs to one
// match, so the pieces concatenate back to `text`). Appends views into `text` to `out`.
void splitPreTokens(SplitPattern pattern, std::string_view text, std::vector<std::string_view>& out);

// GPT-2's bytes_to_unicode(): each byte as a printable character, UTF-8 encoded and appended.
void appendByteLevel(std::string_view bytes, std::string& out);
// The byte a byte-level character stands for, or nothing for characters outside the alphabet.
[[nodiscard]] std::optional<uint8_t> byteLevelByte(char32_t cp);

} // namespace sparselab::tokenize
