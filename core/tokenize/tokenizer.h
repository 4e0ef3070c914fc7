#pragma once
// Tokenizers for Hugging Face model folders (no LibTorch, no Qt).
//
// loadTokenizer(folder) picks, in order:
//   1. tokenizer.json with model.type "BPE": byte-level (GPT-2/OPT/Llama-3/Qwen2: ByteLevel
//      pre-tokenizer/decoder) or SentencePiece-style (Llama-2/TinyStories-656K: Prepend "▁" +
//      Replace " "→"▁" normalizer, byte_fallback). added_tokens are matched verbatim first.
//   2. tokenizer.model through libsentencepiece.
// BOS: tokenizer_config.json `add_bos_token` (and `bos_token`), else the tokenizer's own
// convention (SentencePiece Llama: add BOS; byte-level GPT-2: none). OPT-style configs that
// name "</s>" as bos_token get it prepended when add_bos_token is true.
// All errors are InputError naming the offending file.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sparselab::tokenize {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Token ids of `text`, never with BOS (see encodeForModel).
    [[nodiscard]] virtual std::vector<int32_t> encode(std::string_view text) const = 0;
    [[nodiscard]] virtual std::string decode(std::span<const int32_t> ids) const = 0;
    // The string of a single token as stored in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>").
    [[nodiscard]] virtual std::string tokenText(int32_t id) const = 0;
    [[nodiscard]] virtual int32_t vocabSize() const = 0;
    // Human description, e.g. "SentencePiece BPE (tokenizer.model, 512 pieces)".
    [[nodiscard]] virtual std::string description() const = 0;

    [[nodiscard]] std::optional<int32_t> bosId() const { return m_bosId; }
    [[nodiscard]] std::optional<int32_t> eosId() const { return m_eosId; }
    [[nodiscard]] bool addsBos() const { return m_addBos && m_bosId.has_value(); }
    void setBos(std::optional<int32_t> id, bool add) { m_bosId = id; m_addBos = add; }
    void setEos(std::optional<int32_t> id) { m_eosId = id; }

    // BOS (when the model's tokenizer adds one) followed by encode(text).
    [[nodiscard]] std::vector<int32_t> encodeForModel(std::string_view text) const;

private:
    std::optional<int32_t> m_bosId;
    std::optional<int32_t> m_eosId;
    bool m_addBos = false;
};

// Loads the tokenizer of a Hugging Face model folder (see above).
[[nodiscard]] std::unique_ptr<Tokenizer> loadTokenizer(const std::filesystem::path& modelFolder);

// Direct constructors (tests, tools):
[[nodiscard]] std::unique_ptr<Tokenizer> loadSentencePieceModel(const std::filesystem::path& modelFile);
[[nodiscard]] std::unique_ptr<Tokenizer> loadTokenizerJson(const std::filesystem::path& tokenizerJson);

} // namespace sparselab::tokenize
