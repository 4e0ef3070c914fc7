#pragma once
// Tokenizer metadata in GGUF (tokenizer.ggml.*) ↔ Hugging Face tokenizer files.
// No LibTorch, no Qt. Used by the Llama GGUF writer (gguf_llama.h) and importer (gguf_import.h).
//
// GGUF keys (llama.cpp's names):
//   tokenizer.ggml.model              STRING   "llama" (SentencePiece: merges by score) or "gpt2"
//                                              (byte-level BPE: merges by rank)
//   tokenizer.ggml.pre                STRING   pre-tokenizer: "default" (llama), "gpt-2",
//                                              "llama-bpe" (Llama-3 regex), "qwen2" (and
//                                              llama.cpp's aliases of these three when reading)
//   tokenizer.ggml.tokens             ARRAY[STRING]  the token strings by id ("▁the", "Ġthe", "<0x0A>")
//   tokenizer.ggml.scores             ARRAY[FLOAT32] llama only: merge priority (higher first)
//   tokenizer.ggml.token_type         ARRAY[INT32]   1 normal, 2 unknown, 3 control,
//                                              4 user-defined, 5 unused, 6 byte (SentencePiece's numbering)
//   tokenizer.ggml.merges             ARRAY[STRING]  gpt2 only: "left right", rank order
//   tokenizer.ggml.bos_token_id / eos_token_id / unknown_token_id / padding_token_id   UINT32
//   tokenizer.ggml.add_bos_token / add_eos_token / add_space_prefix                   BOOL
//   tokenizer.ggml.remove_extra_whitespaces  BOOL         llama: SentencePiece's normalizer flag
//   tokenizer.ggml.precompiled_charsmap      ARRAY[UINT8] llama: SentencePiece's normalization rules
//     llama.cpp reads these two only for its T5 (UGM) tokenizer; its SentencePiece-BPE tokenizer
//     neither folds whitespace nor normalizes. SparseLab stores them so that its own round trip
//     tokenizes exactly like the source, and when they are absent (llama.cpp's files) it reads
//     the vocabulary as llama.cpp does: no folding, no rules.
//   tokenizer.huggingface.json               STRING  the source's whole tokenizer.json (GGUF spec
//     key, ignored by llama.cpp). llama.cpp's merge-by-score cannot express everything a
//     tokenizer.json does (e.g. fuse_unk: a run of unknown characters is one <unk> there, one
//     per character in llama.cpp), so SparseLab stores it and, reading, prefers it.
//
// From a model folder (same preference as tokenize::loadTokenizer):
//   tokenizer.json, BPE with byte_fallback or a "▁" normalizer/Metaspace (Llama-2 style) → "llama":
//     vocab + added tokens; scores from the merges: the token made by merge r scores −r
//     (so llama.cpp's highest-score-first bigram merging follows the merge ranks), other
//     tokens −1e9 (byte and control tokens 0); types: added special → control, added
//     non-special → user-defined, <0xXX> → byte, unk_token → unknown.
//   tokenizer.json, byte-level BPE → "gpt2": vocab, merges, added tokens (special → control,
//     otherwise user-defined); the pre-tokenizer must be GPT-2's ByteLevel regex, or a Split
//     with the Llama-3 / Qwen2 regex followed by ByteLevel.
//   tokenizer.model (SentencePiece) → "llama": pieces, scores and types as stored;
//     add_space_prefix, remove_extra_whitespaces and precompiled_charsmap from its normalizer.
//   BOS/EOS ids and add_bos_token come from tokenize::loadTokenizer (so llama.cpp adds the
//   BOS exactly when SparseLab does); unk from the model, pad from tokenizer_config.json's
//   pad_token. Ids missing below the model's vocab_size are filled with "[PAD<id>]" (unused).
//
// To a folder (the importer): tokenizer.huggingface.json when present → tokenizer.json as stored;
//   otherwise "llama" → tokenizer.model (a SentencePiece BPE ModelProto:
//   pieces, scores, types, byte_fallback when byte pieces exist, a normalizer with
//   add_dummy_prefix = add_space_prefix, remove_extra_whitespaces and the charsmap when stored,
//   else none: llama.cpp's behaviour);
//   "gpt2" → tokenizer.json (byte-level BPE with the pre-tokenizer above). Both with
//   tokenizer_config.json (add_bos_token, add_eos_token, bos/eos/unk/pad token strings).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sparselab::io {

class GgufFile;
class GgufWriter;

enum class GgufTokenType : int32_t {
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct GgufVocab {
    std::string model;                // "llama" or "gpt2"
    std::string pre;                  // "default", "gpt-2", "llama-bpe", "qwen2", ...
    std::vector<std::string> tokens;  // by id
    std::vector<float> scores;        // llama: one per token; gpt2: empty
    std::vector<int32_t> tokenTypes;  // one per token (GgufTokenType values)
    std::vector<std::string> merges;  // gpt2: "left right" in rank order
    std::optional<int32_t> bosId, eosId, unkId, padId;
    std::optional<bool> addBos, addEos;
    std::optional<bool> addSpacePrefix; // llama only; llama.cpp's default is true
    std::optional<bool> removeExtraWhitespaces; // llama only; absent = false (llama.cpp)
    std::string precompiledCharsmap;            // llama only; SentencePiece's blob, "" = none
    std::string huggingFaceJson;                // the source tokenizer.json, "" = none
};

// Reads the tokenizer of a Hugging Face model folder (see above), padded to `vocabSize`
// tokens. InputError naming the offending file (or the folder when there is no tokenizer, or
// when it has more tokens than `vocabSize`).
[[nodiscard]] GgufVocab vocabFromModelFolder(const std::filesystem::path& folder, int64_t vocabSize);

// Stores the tokenizer.ggml.* keys.
void addVocabToGguf(GgufWriter& writer, const GgufVocab& vocab);

// Reads the tokenizer.ggml.* keys. InputError naming the file when they are missing, of the
// wrong type, of inconsistent lengths, or name a tokenizer model other than llama/gpt2.
[[nodiscard]] GgufVocab vocabFromGguf(const GgufFile& file);

// Writes the tokenizer files for `vocab` into `folder` (see above); `source` names the GGUF in
// errors (an unsupported pre-tokenizer, ids out of range).
void writeHfTokenizer(const GgufVocab& vocab, const std::filesystem::path& folder,
                      const std::filesystem::path& source);

} // namespace sparselab::io
