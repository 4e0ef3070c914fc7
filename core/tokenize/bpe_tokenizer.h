#pragma once
// Hugging Face `tokenizers` BPE, read from tokenizer.json (or GPT-2's vocab.json + merges.txt).
// Internal to core/tokenize; use loadTokenizer()/loadTokenizerJson() from tokenizer.h.
//
// The encode pipeline follows the Rust library step by step:
//   added tokens (non-normalized ones on the raw text) → normalizer → added tokens
//   (normalized ones, matched against their normalized form) → pre-tokenizer → BPE model.
// Supported pieces of tokenizer.json (anything else is an InputError naming the file):
//   normalizer:    null, Sequence, Prepend, Replace (String pattern), NFC, Strip
//   pre_tokenizer: null, Sequence, ByteLevel, Split (Regex of GPT-2/Llama-3/Qwen2,
//                  behavior Isolated), Metaspace
//   model:         BPE (vocab, merges as "a b" or ["a", "b"], unk_token, fuse_unk,
//                  byte_fallback, ignore_merges, continuing_subword_prefix,
//                  end_of_word_suffix; dropout is ignored: encoding is deterministic)
//   decoder:       null, Sequence, ByteLevel, Replace (String), ByteFallback, Fuse, Strip,
//                  Metaspace
//   post_processor: only read for its BOS (TemplateProcessing whose "single" starts with a
//                  special token); the BOS itself is added by encodeForModel.

#include "tokenize/tokenizer.h"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sparselab::tokenize {

class BpeTokenizer final : public Tokenizer {
public:
    // Throws InputError naming `file` for unreadable, malformed or unsupported files.
    [[nodiscard]] static std::unique_ptr<BpeTokenizer> fromTokenizerJson(const std::filesystem::path& file);
    // GPT-2's original files: byte-level BPE with the GPT-2 split regex, no BOS.
    [[nodiscard]] static std::unique_ptr<BpeTokenizer> fromVocabMerges(
        const std::filesystem::path& vocabJson, const std::filesystem::path& mergesTxt);

    ~BpeTokenizer() override;

    [[nodiscard]] std::vector<int32_t> encode(std::string_view text) const override;
    [[nodiscard]] std::string decode(std::span<const int32_t> ids) const override;
    [[nodiscard]] std::string tokenText(int32_t id) const override;
    [[nodiscard]] int32_t vocabSize() const override;
    [[nodiscard]] std::string description() const override;
    [[nodiscard]] std::optional<int32_t> tokenId(std::string_view token) const override;

    // Registers `content` as a special added token (split out verbatim, skipped by decode)
    // when it is in the vocabulary; used for vocab.json folders whose specials are only
    // named in tokenizer_config.json / special_tokens_map.json.
    void addSpecialToken(std::string_view content);

    struct Impl;

private:
    explicit BpeTokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

} // namespace sparselab::tokenize
