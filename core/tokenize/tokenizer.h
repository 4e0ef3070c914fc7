#pragma once
// Tokenizers for Hugging Face model folders (no LibTorch, no Qt).
//
// loadTokenizer(folder) picks, in order:
//   1. tokenizer.json with model.type "BPE": byte-level (GPT-2/OPT/Llama-3/Qwen2: ByteLevel
//      pre-tokenizer/decoder, Split regexes of Llama-3/Qwen2) or SentencePiece-style
//      (Llama-2/TinyStories-656K: Prepend "▁" + Replace " "→"▁" normalizer or Metaspace,
//      byte_fallback). added_tokens are matched verbatim first.
//   2. tokenizer.model: a SentencePiece BPE model, run by our own reader and encoder (same
//      ids as libsentencepiece 0.1.97's plain Encode, normalizer included; the library
//      itself cannot share a process with LibTorch's libprotobuf, see
//      sentencepiece_tokenizer.cpp). Unigram models are refused.
//   3. vocab.json + merges.txt (GPT-2/OPT original files): byte-level BPE, GPT-2 regex.
// BOS: tokenizer_config.json `add_bos_token` (and `bos_token`, a string or {"content"}),
// else special_tokens_map.json's `bos_token`, else the tokenizer's own convention
// (SentencePiece: add bos_id(); tokenizer.json: add the special token its TemplateProcessing
// post-processor puts first; byte-level GPT-2: none). OPT-style configs that name "</s>" as
// bos_token get it prepended when add_bos_token is true. EOS likewise from `eos_token`.
// All errors are InputError naming the offending file (or folder).
//
// Example:
//   auto tok = sparselab::tokenize::loadTokenizer("resources/models/stories260K-hf");
//   std::vector<int32_t> ids = tok->encodeForModel("Once upon a time");  // [1, 403, 407, 261, 378]
//   std::string text = tok->decode(tok->encode("Once upon a time"));    // "Once upon a time"
//
// Thread-safety: a loaded Tokenizer is immutable; all const members may be called from
// several threads at once. setBos/setEos are for set-up before sharing.

#include "util/progress.h"

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
    // Token ids of `text` (UTF-8; ill-formed bytes are kept, as byte tokens where the
    // vocabulary has them), never with BOS (see encodeForModel).
    [[nodiscard]] virtual std::vector<int32_t> encode(std::string_view text) const = 0;
    // The text of `ids` as valid UTF-8 (ill-formed byte sequences become U+FFFD). Special
    // tokens (BOS/EOS/pad, SentencePiece control pieces) decode to nothing, so
    // decode(encodeForModel(t)) == decode(encode(t)). Throws std::out_of_range for an id
    // outside [0, vocabSize()).
    [[nodiscard]] virtual std::string decode(std::span<const int32_t> ids) const = 0;
    // The string of a single token as stored in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>").
    // Throws std::out_of_range for an id outside [0, vocabSize()).
    [[nodiscard]] virtual std::string tokenText(int32_t id) const = 0;
    // The id of a vocabulary string (the inverse of tokenText), if there is one. The default
    // scans the vocabulary; the tokenizers here override it with a lookup.
    [[nodiscard]] virtual std::optional<int32_t> tokenId(std::string_view token) const;
    [[nodiscard]] virtual int32_t vocabSize() const = 0;
    // Human description, e.g. "SentencePiece BPE (tokenizer.model, 32000 pieces, byte fallback)".
    [[nodiscard]] virtual std::string description() const = 0;

    [[nodiscard]] std::optional<int32_t> bosId() const { return m_bosId; }
    [[nodiscard]] std::optional<int32_t> eosId() const { return m_eosId; }
    [[nodiscard]] bool addsBos() const { return m_addBos && m_bosId.has_value(); }
    void setBos(std::optional<int32_t> id, bool add) { m_bosId = id; m_addBos = add; }
    void setEos(std::optional<int32_t> id) { m_eosId = id; }

    // BOS (when the model's tokenizer adds one) followed by encode(text). With `cancel`, a
    // long text stops with CancelledError soon after the token is cancelled (Ctrl-C, Cancel):
    // the encoders poll it between words (see pollEncodeCancel); a 50 MB text took ~95 s.
    [[nodiscard]] std::vector<int32_t> encodeForModel(std::string_view text,
                                                      const CancelToken* cancel = nullptr) const;

private:
    std::optional<int32_t> m_bosId;
    std::optional<int32_t> m_eosId;
    bool m_addBos = false;
};

// Loads the tokenizer of a Hugging Face model folder (see above), with BOS/EOS from its
// tokenizer_config.json / special_tokens_map.json.
[[nodiscard]] std::unique_ptr<Tokenizer> loadTokenizer(const std::filesystem::path& modelFolder);

// Direct constructors (tests, tools). They read only the named file(s); BOS/EOS follow the
// file's own convention (see above).
[[nodiscard]] std::unique_ptr<Tokenizer> loadSentencePieceModel(const std::filesystem::path& modelFile);
[[nodiscard]] std::unique_ptr<Tokenizer> loadTokenizerJson(const std::filesystem::path& tokenizerJson);
[[nodiscard]] std::unique_ptr<Tokenizer> loadBpeVocabMerges(const std::filesystem::path& vocabJson,
                                                            const std::filesystem::path& mergesTxt);

// tokenizer.model through libsentencepiece itself (the reference implementation), loaded in
// isolation through libsparselab_spm.so — Debian's libsentencepiece embeds a protobuf that
// clashes with LibTorch's, so it cannot be linked directly. The engine's own SentencePiece BPE
// (loadSentencePieceModel) is checked equal to it by the tests and is ~15x faster; setting
// SPARSELAB_SENTENCEPIECE=library makes loadTokenizer use this one instead.
[[nodiscard]] std::unique_ptr<Tokenizer> loadSentencePieceModelWithLibrary(const std::filesystem::path& modelFile);
// False when the bridge library is missing (a build without libsentencepiece).
[[nodiscard]] bool libSentencePieceAvailable();

// The cancel token the encoders on this thread poll while the scope lives (encode() is a
// virtual of every tokenizer: a thread-local keeps cancellation out of its signature).
// encodeForModel opens one; scopes nest, restoring the previous token when they end.
class EncodeCancelScope {
public:
    explicit EncodeCancelScope(const CancelToken* cancel);
    ~EncodeCancelScope();
    EncodeCancelScope(const EncodeCancelScope&) = delete;
    EncodeCancelScope& operator=(const EncodeCancelScope&) = delete;

private:
    const CancelToken* m_previous;
};

// For the encoders: throws CancelledError when the token of this thread's EncodeCancelScope is
// cancelled. Cheap enough to call once per word (the token is read every 256th call).
void pollEncodeCancel();

} // namespace sparselab::tokenize
