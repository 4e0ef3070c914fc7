// Hugging Face BPE. Every step below mirrors the Rust `tokenizers` crate, because the
// reference ids (tiktoken for GPT-2, HF's JS port for TinyStories-656K) come from it; where
// the crate has a quirk that affects ids, the quirk is reproduced and said so.

#include "tokenize/bpe_tokenizer.h"

#include "tokenize/pre_tokenizer.h"
#include "tokenize/unicode.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace sparselab::tokenize {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Thrown while reading tokenizer.json; turned into an InputError naming the file.
struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct NormalizerStep {
    enum class Kind { Prepend, Replace, Nfc, Strip } kind{};
    std::string text{};        // Prepend: the prefix; Replace: the pattern
    std::string replacement{}; // Replace: the content
    bool stripLeft = false;    // Strip
    bool stripRight = false;
};

enum class PrependScheme { Always, First, Never };

struct PreTokenizerStep {
    enum class Kind { ByteLevel, Split, Metaspace } kind{};
    bool addPrefixSpace = false;           // ByteLevel
    std::optional<SplitPattern> pattern{}; // ByteLevel (use_regex) / Split
    std::string replacement{};             // Metaspace
    PrependScheme prependScheme = PrependScheme::Always;
    bool split = true; // Metaspace
};

struct DecoderStep {
    enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace } kind{};
    std::string pattern{};     // Replace
    std::string replacement{}; // Replace; Metaspace: the replacement character
    std::string content{};     // Strip: the character to strip
    std::size_t start = 0;     // Strip
    std::size_t stop = 0;
    PrependScheme prependScheme = PrependScheme::Always; // Metaspace
};

struct AddedToken {
    std::string content;
    int32_t id = 0;
    bool special = false;
    bool normalized = true;
    bool lstrip = false;
    bool rstrip = false;
    bool singleWord = false;
    std::string pattern; // what is matched: the content, normalized when `normalized`
};

// A piece of text on its way through the pipeline. `atStart`: it begins at offset 0 of the
// caller's text (Metaspace's prepend_scheme "first" needs that).
struct Piece {
    std::string text;
    bool atStart = false;
};

// One stretch of the input: text to tokenize, or an added token found in it.
struct Segment {
    std::string_view text;
    int32_t tokenId = -1; // >= 0: an added token
    bool atStart = false;
};

json parseJsonFile(const fs::path& file)
{
    return readJsonFile(file);
}

void replaceAll(std::string& s, std::string_view from, std::string_view to)
{
    if (from.empty())
        return;
    std::string out;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
        out.append(s, pos, hit - pos);
        out.append(to);
    }
    if (pos == 0)
        return;
    out.append(s, pos, std::string::npos);
    s = std::move(out);
}

bool isWordChar(char32_t cp)
{
    const auto cls = unicode::classify(cp);
    return cls == unicode::CharClass::Letter || cls == unicode::CharClass::Number || cp == '_';
}

// The last character of text[0, end), decoded (text must be non-empty before end).
unicode::DecodedChar charBefore(std::string_view text, std::size_t end)
{
    std::size_t start = end - 1;
    while (start > 0 && end - start < 4 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80)
        --start;
    unicode::DecodedChar c = unicode::decodeUtf8(text, start);
    if (start + c.length != end) // not a whole character ending at `end`: treat one byte
        return {unicode::kReplacementChar, 1, false};
    return c;
}

std::string stripWhitespace(std::string_view s, bool left, bool right)
{
    std::size_t begin = 0, end = s.size();
    if (left)
        while (begin < end) {
            const auto c = unicode::decodeUtf8(s, begin);
            if (!c.valid || !unicode::isWhitespace(c.value))
                break;
            begin += c.length;
        }
    if (right)
        while (end > begin) {
            const auto c = charBefore(s, end);
            if (!c.valid || !unicode::isWhitespace(c.value))
                break;
            end -= c.length;
        }
    return std::string(s.substr(begin, end - begin));
}

// Per-call cache of BPE results by pre-token: natural text repeats its words constantly.
using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;
constexpr std::size_t kMaxCachedWordBytes = 128;

} // namespace

struct BpeTokenizer::Impl {
    fs::path file;
    std::string sourceLabel; // "tokenizer.json" or "vocab.json + merges.txt"

    // Model.
    Vocab vocab;
    std::vector<std::string> idToToken; // empty strings for ids the vocabulary skips
    struct MergeEntry {
        int32_t rank;
        int32_t newId;
    };
    std::unordered_map<uint64_t, MergeEntry> merges; // (left id, right id) → rank, result
    std::optional<int32_t> unkId;
    bool fuseUnk = false;
    bool byteFallback = false;
    bool ignoreMerges = false;
    std::string continuingSubwordPrefix;
    std::string endOfWordSuffix;
    std::array<int32_t, 256> byteTokenIds{}; // <0xXX> ids, -1 when absent

    std::vector<NormalizerStep> normalizers;
    std::vector<PreTokenizerStep> preTokenizers;
    bool hasDecoder = false;
    std::vector<DecoderStep> decoders;

    std::vector<AddedToken> addedTokens;
    std::unordered_map<int32_t, std::size_t> addedById;
    // Candidates by first byte of their pattern, longest first (leftmost-longest matching).
    std::array<std::vector<std::size_t>, 256> rawCandidates;
    std::array<std::vector<std::size_t>, 256> normalizedCandidates;

    std::optional<int32_t> templateBos;

    static uint64_t pairKey(int32_t a, int32_t b)
    {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }

    [[nodiscard]] std::optional<int32_t> lookup(std::string_view token) const
    {
        const auto it = vocab.find(token);
        if (it == vocab.end())
            return std::nullopt;
        return it->second;
    }

    // ---- loading --------------------------------------------------------------------------

    void setVocab(const json& v)
    {
        if (!v.is_object())
            throw FormatError("model.vocab must be an object of token → id");
        vocab.reserve(v.size());
        int32_t maxId = -1;
        for (const auto& [token, idJson] : v.items()) {
            if (!idJson.is_number_integer() || idJson.get<int64_t>() < 0 || idJson.get<int64_t>() > INT32_MAX)
                throw FormatError("model.vocab: id of '" + token + "' is not a non-negative integer");
            const auto id = idJson.get<int32_t>();
            vocab.emplace(token, id);
            maxId = std::max(maxId, id);
        }
        idToToken.assign(static_cast<std::size_t>(maxId + 1), std::string());
        for (const auto& [token, id] : vocab)
            idToToken[static_cast<std::size_t>(id)] = token;
        for (int b = 0; b < 256; ++b) {
            char name[8];
            std::snprintf(name, sizeof name, "<0x%02X>", b);
            byteTokenIds[static_cast<std::size_t>(b)] = lookup(name).value_or(-1);
        }
    }

    void addMerge(std::string_view a, std::string_view b, int32_t rank)
    {
        const auto aId = lookup(a);
        const auto bId = lookup(b);
        if (!aId || !bId)
            throw FormatError(
                "merge '" + std::string(a) + " " + std::string(b) + "' uses a token that is not in the vocabulary");
        std::string merged(a);
        // With a continuing-subword prefix ("##"), the right part loses it when merged.
        if (!continuingSubwordPrefix.empty() && b.starts_with(continuingSubwordPrefix))
            merged += b.substr(continuingSubwordPrefix.size());
        else
            merged += b;
        const auto newId = lookup(merged);
        if (!newId)
            throw FormatError("merge '" + std::string(a) + " " + std::string(b) + "' makes '" + merged +
                "', which is not in the vocabulary");
        // Like the Rust crate (a HashMap collected in order), a repeated pair keeps its last rank.
        merges.insert_or_assign(pairKey(*aId, *bId), MergeEntry{rank, *newId});
    }

    void setMerges(const json& m)
    {
        if (m.is_null())
            return;
        if (!m.is_array())
            throw FormatError("model.merges must be an array");
        merges.reserve(m.size());
        int32_t rank = 0;
        for (const auto& entry : m) {
            if (entry.is_string()) {
                const auto& s = entry.get_ref<const std::string&>();
                const auto space = s.find(' ');
                if (space == std::string::npos || space == 0 || space + 1 == s.size())
                    throw FormatError("merge '" + s + "' is not two tokens separated by a space");
                addMerge(std::string_view(s).substr(0, space), std::string_view(s).substr(space + 1), rank);
            } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
                addMerge(entry[0].get_ref<const std::string&>(), entry[1].get_ref<const std::string&>(), rank);
            } else {
                throw FormatError("model.merges entries must be \"a b\" strings or [a, b] pairs");
            }
            ++rank;
        }
    }

    // j[key], or null when absent (without copying the value).
    static const json& member(const json& j, const char* key)
    {
        static const json null;
        const auto it = j.find(key);
        return it == j.end() ? null : *it;
    }

    static std::string optionalString(const json& j, const char* key)
    {
        const auto it = j.find(key);
        if (it == j.end() || it->is_null())
            return {};
        if (!it->is_string())
            throw FormatError(std::string(key) + " must be a string");
        return it->get<std::string>();
    }

    static bool optionalBool(const json& j, const char* key, bool fallback)
    {
        const auto it = j.find(key);
        if (it == j.end() || it->is_null())
            return fallback;
        if (!it->is_boolean())
            throw FormatError(std::string(key) + " must be true or false");
        return it->get<bool>();
    }

    // Replace/Split patterns are {"String": s} or {"Regex": r}.
    static std::pair<std::string, bool> patternOf(const json& step)
    {
        const auto it = step.find("pattern");
        if (it == step.end() || !it->is_object())
            throw FormatError(step.value("type", std::string("?")) + " needs a pattern");
        if (it->contains("String") && (*it)["String"].is_string())
            return {(*it)["String"].get<std::string>(), false};
        if (it->contains("Regex") && (*it)["Regex"].is_string())
            return {(*it)["Regex"].get<std::string>(), true};
        throw FormatError("pattern must be {\"String\": ...} or {\"Regex\": ...}");
    }

    static std::string typeOf(const json& step, const char* what)
    {
        if (!step.is_object() || !step.contains("type") || !step["type"].is_string())
            throw FormatError(std::string(what) + " without a type");
        return step["type"].get<std::string>();
    }

    void addNormalizer(const json& step)
    {
        if (step.is_null())
            return;
        const std::string type = typeOf(step, "normalizer");
        if (type == "Sequence") {
            for (const auto& s : member(step, "normalizers"))
                addNormalizer(s);
        } else if (type == "Prepend") {
            normalizers.push_back({.kind = NormalizerStep::Kind::Prepend, .text = optionalString(step, "prepend")});
        } else if (type == "Replace") {
            auto [pattern, isRegex] = patternOf(step);
            if (isRegex)
                throw FormatError("unsupported normalizer Replace with a Regex pattern");
            normalizers.push_back({.kind = NormalizerStep::Kind::Replace,
                .text = pattern,
                .replacement = optionalString(step, "content")});
        } else if (type == "NFC") {
            normalizers.push_back({.kind = NormalizerStep::Kind::Nfc});
        } else if (type == "Strip") {
            normalizers.push_back({.kind = NormalizerStep::Kind::Strip,
                .stripLeft = optionalBool(step, "strip_left", true),
                .stripRight = optionalBool(step, "strip_right", true)});
        } else {
            throw FormatError("unsupported normalizer type '" + type + "'");
        }
    }

    static PrependScheme prependSchemeOf(const json& step)
    {
        // Older files say add_prefix_space (true = always); newer ones prepend_scheme.
        if (step.contains("prepend_scheme") && step["prepend_scheme"].is_string()) {
            const std::string s = step["prepend_scheme"].get<std::string>();
            if (s == "always")
                return PrependScheme::Always;
            if (s == "first")
                return PrependScheme::First;
            if (s == "never")
                return PrependScheme::Never;
            throw FormatError("unknown Metaspace prepend_scheme '" + s + "'");
        }
        return optionalBool(step, "add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
    }

    void addPreTokenizer(const json& step)
    {
        if (step.is_null())
            return;
        const std::string type = typeOf(step, "pre_tokenizer");
        if (type == "Sequence") {
            for (const auto& s : member(step, "pretokenizers"))
                addPreTokenizer(s);
        } else if (type == "ByteLevel") {
            PreTokenizerStep s{.kind = PreTokenizerStep::Kind::ByteLevel};
            s.addPrefixSpace = optionalBool(step, "add_prefix_space", true);
            if (optionalBool(step, "use_regex", true))
                s.pattern = SplitPattern::Gpt2;
            preTokenizers.push_back(s);
        } else if (type == "Split") {
            auto [pattern, isRegex] = patternOf(step);
            const std::string behavior = step.value("behavior", std::string("Isolated"));
            if (!isRegex)
                throw FormatError("unsupported pre-tokenizer Split with a String pattern");
            PreTokenizerStep s{.kind = PreTokenizerStep::Kind::Split};
            s.pattern = recognizeSplitPattern(pattern);
            if (!s.pattern)
                throw FormatError("unsupported pre-tokenizer Split regex (GPT-2, Llama-3, Qwen2 are built in): " +
                                  pattern);
            if (behavior != "Isolated" || optionalBool(step, "invert", false))
                throw FormatError("unsupported pre-tokenizer Split behavior '" + behavior + "' (only Isolated)");
            preTokenizers.push_back(s);
        } else if (type == "Metaspace") {
            PreTokenizerStep s{.kind = PreTokenizerStep::Kind::Metaspace};
            s.replacement = optionalString(step, "replacement");
            if (s.replacement.empty())
                s.replacement = "\xE2\x96\x81"; // ▁
            s.prependScheme = prependSchemeOf(step);
            s.split = optionalBool(step, "split", true);
            preTokenizers.push_back(s);
        } else {
            throw FormatError("unsupported pre_tokenizer type '" + type + "'");
        }
    }

    void addDecoder(const json& step)
    {
        if (step.is_null())
            return;
        hasDecoder = true;
        const std::string type = typeOf(step, "decoder");
        if (type == "Sequence") {
            for (const auto& s : member(step, "decoders"))
                addDecoder(s);
        } else if (type == "ByteLevel") {
            decoders.push_back({.kind = DecoderStep::Kind::ByteLevel});
        } else if (type == "Replace") {
            auto [pattern, isRegex] = patternOf(step);
            if (isRegex)
                throw FormatError("unsupported decoder Replace with a Regex pattern");
            DecoderStep d{.kind = DecoderStep::Kind::Replace};
            d.pattern = pattern;
            d.replacement = optionalString(step, "content");
            decoders.push_back(d);
        } else if (type == "ByteFallback") {
            decoders.push_back({.kind = DecoderStep::Kind::ByteFallback});
        } else if (type == "Fuse") {
            decoders.push_back({.kind = DecoderStep::Kind::Fuse});
        } else if (type == "Strip") {
            DecoderStep d{.kind = DecoderStep::Kind::Strip};
            d.content = optionalString(step, "content");
            d.start = step.value("start", std::size_t{0});
            d.stop = step.value("stop", std::size_t{0});
            decoders.push_back(d);
        } else if (type == "Metaspace") {
            DecoderStep d{.kind = DecoderStep::Kind::Metaspace};
            d.replacement = optionalString(step, "replacement");
            if (d.replacement.empty())
                d.replacement = "\xE2\x96\x81";
            d.prependScheme = prependSchemeOf(step);
            decoders.push_back(d);
        } else {
            throw FormatError("unsupported decoder type '" + type + "'");
        }
    }

    void addAddedToken(AddedToken token)
    {
        if (token.content.empty() || addedById.contains(token.id))
            return;
        for (const AddedToken& t : addedTokens)
            if (t.content == token.content)
                return;
        // Like the Rust crate, a normalized added token is matched in its normalized form
        // (for Prepend("▁") normalizers that means "▁<tok>"), against normalized text.
        token.pattern = token.normalized ? normalize(token.content) : token.content;
        if (token.pattern.empty())
            return;
        addedById.emplace(token.id, addedTokens.size());
        addedTokens.push_back(std::move(token));
        rebuildCandidates();
    }

    void rebuildCandidates()
    {
        for (auto& v : rawCandidates)
            v.clear();
        for (auto& v : normalizedCandidates)
            v.clear();
        for (std::size_t i = 0; i < addedTokens.size(); ++i) {
            const AddedToken& t = addedTokens[i];
            auto& table = t.normalized ? normalizedCandidates : rawCandidates;
            table[static_cast<uint8_t>(t.pattern[0])].push_back(i);
        }
        for (auto* table : {&rawCandidates, &normalizedCandidates})
            for (auto& v : *table)
                std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t b) {
                    return addedTokens[a].pattern.size() > addedTokens[b].pattern.size();
                });
    }

    void setAddedTokens(const json& list)
    {
        if (list.is_null())
            return;
        if (!list.is_array())
            throw FormatError("added_tokens must be an array");
        for (const auto& e : list) {
            if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || !e.contains("content") ||
                !e["content"].is_string() || e["id"].get<int64_t>() < 0 || e["id"].get<int64_t>() > INT32_MAX)
                throw FormatError("added_tokens entries need an integer id and a string content");
            AddedToken t;
            t.content = e["content"].get<std::string>();
            t.id = e["id"].get<int32_t>();
            t.special = optionalBool(e, "special", false);
            t.normalized = optionalBool(e, "normalized", !t.special);
            t.lstrip = optionalBool(e, "lstrip", false);
            t.rstrip = optionalBool(e, "rstrip", false);
            t.singleWord = optionalBool(e, "single_word", false);
            addAddedToken(std::move(t));
        }
    }

    // TemplateProcessing {"single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": ...}]}:
    // the special token in front is the BOS this tokenizer adds.
    void setPostProcessor(const json& step)
    {
        if (!step.is_object())
            return;
        const std::string type = step.value("type", std::string());
        if (type == "Sequence") {
            for (const auto& s : member(step, "processors"))
                setPostProcessor(s);
            return;
        }
        if (type != "TemplateProcessing")
            return;
        const auto single = step.find("single");
        if (single == step.end() || !single->is_array() || single->empty())
            return;
        const json& first = (*single)[0];
        if (!first.is_object() || !first.contains("SpecialToken"))
            return;
        const std::string name = first["SpecialToken"].value("id", std::string());
        const json specials = step.value("special_tokens", json::object());
        if (specials.contains(name) && specials[name].contains("ids") && specials[name]["ids"].is_array() &&
            specials[name]["ids"].size() == 1 && specials[name]["ids"][0].is_number_integer()) {
            templateBos = specials[name]["ids"][0].get<int32_t>();
            return;
        }
        for (const AddedToken& t : addedTokens)
            if (t.content == name)
                templateBos = t.id;
        if (!templateBos)
            templateBos = lookup(name);
    }

    void loadTokenizerJson(const json& root)
    {
        if (!root.is_object() || !root.contains("model") || !root["model"].is_object())
            throw FormatError("no \"model\" object");
        const json& model = root["model"];
        // Files from before tokenizers 0.10 omit model.type; vocab + merges means BPE.
        const std::string type = model.contains("type") ? model.value("type", std::string())
            : model.contains("merges")                  ? "BPE"
                                                        : "";
        if (type != "BPE")
            throw FormatError("unsupported model type '" + type + "' (only BPE is supported)");
        continuingSubwordPrefix = optionalString(model, "continuing_subword_prefix");
        endOfWordSuffix = optionalString(model, "end_of_word_suffix");
        setVocab(member(model, "vocab"));
        setMerges(member(model, "merges"));
        fuseUnk = optionalBool(model, "fuse_unk", false);
        byteFallback = optionalBool(model, "byte_fallback", false);
        ignoreMerges = optionalBool(model, "ignore_merges", false);
        // An unk_token missing from the vocabulary only matters once a character needs it;
        // then, as without any unk_token, the character is dropped.
        if (const std::string unk = optionalString(model, "unk_token"); !unk.empty())
            unkId = lookup(unk);
        // The normalizer comes first: normalized added tokens are stored normalized.
        addNormalizer(member(root, "normalizer"));
        addPreTokenizer(member(root, "pre_tokenizer"));
        addDecoder(member(root, "decoder"));
        setAddedTokens(member(root, "added_tokens"));
        setPostProcessor(member(root, "post_processor"));
    }

    // ---- encoding -------------------------------------------------------------------------

    [[nodiscard]] std::string normalize(std::string_view text) const
    {
        std::string s(text);
        for (const NormalizerStep& step : normalizers) {
            switch (step.kind) {
            case NormalizerStep::Kind::Prepend:
                if (!s.empty())
                    s.insert(0, step.text);
                break;
            case NormalizerStep::Kind::Replace:
                replaceAll(s, step.text, step.replacement);
                break;
            case NormalizerStep::Kind::Nfc:
                s = unicode::toNfc(s);
                break;
            case NormalizerStep::Kind::Strip:
                s = stripWhitespace(s, step.stripLeft, step.stripRight);
                break;
            }
        }
        return s;
    }

    // Splits `text` around the added tokens of one kind (leftmost-longest, as the Rust
    // crate's Aho-Corasick matcher), honouring lstrip/rstrip/single_word.
    void splitAddedTokens(std::string_view text, bool atStart, bool normalizedKind, std::vector<Segment>& out) const
    {
        const auto& candidates = normalizedKind ? normalizedCandidates : rawCandidates;
        std::size_t segmentStart = 0;
        for (std::size_t pos = 0; pos < text.size();) {
            const AddedToken* match = nullptr;
            for (std::size_t index : candidates[static_cast<uint8_t>(text[pos])]) {
                const AddedToken& t = addedTokens[index];
                if (text.compare(pos, t.pattern.size(), t.pattern) != 0)
                    continue;
                if (t.singleWord) {
                    const bool wordBefore = pos > 0 && isWordChar(charBefore(text, pos).value);
                    const std::size_t end = pos + t.pattern.size();
                    const bool wordAfter = end < text.size() && isWordChar(unicode::decodeUtf8(text, end).value);
                    if (wordBefore || wordAfter)
                        continue;
                }
                match = &t;
                break;
            }
            if (!match) {
                ++pos;
                continue;
            }
            std::size_t start = pos;
            std::size_t end = pos + match->pattern.size();
            if (match->lstrip)
                while (start > segmentStart) {
                    const auto c = charBefore(text, start);
                    if (!c.valid || !unicode::isWhitespace(c.value))
                        break;
                    start -= c.length;
                }
            if (match->rstrip)
                while (end < text.size()) {
                    const auto c = unicode::decodeUtf8(text, end);
                    if (!c.valid || !unicode::isWhitespace(c.value))
                        break;
                    end += c.length;
                }
            if (start > segmentStart)
                out.push_back({text.substr(segmentStart, start - segmentStart), -1, atStart && segmentStart == 0});
            out.push_back({text.substr(start, end - start), match->id, false});
            segmentStart = pos = end;
        }
        if (segmentStart < text.size())
            out.push_back({text.substr(segmentStart), -1, atStart && segmentStart == 0});
    }

    [[nodiscard]] std::vector<Piece> preTokenize(std::string text, bool atStart) const
    {
        std::vector<Piece> pieces;
        pieces.push_back({std::move(text), atStart});
        std::vector<std::string_view> parts;
        for (const PreTokenizerStep& step : preTokenizers) {
            std::vector<Piece> next;
            next.reserve(pieces.size());
            for (Piece& piece : pieces) {
                switch (step.kind) {
                case PreTokenizerStep::Kind::ByteLevel: {
                    if (step.addPrefixSpace && !piece.text.starts_with(' '))
                        piece.text.insert(0, 1, ' ');
                    parts.clear();
                    if (step.pattern)
                        splitPreTokens(*step.pattern, piece.text, parts);
                    else
                        parts.push_back(piece.text);
                    for (std::size_t i = 0; i < parts.size(); ++i) {
                        Piece mapped{{}, piece.atStart && i == 0};
                        appendByteLevel(parts[i], mapped.text);
                        next.push_back(std::move(mapped));
                    }
                    break;
                }
                case PreTokenizerStep::Kind::Split:
                    parts.clear();
                    splitPreTokens(*step.pattern, piece.text, parts);
                    for (std::size_t i = 0; i < parts.size(); ++i)
                        next.push_back({std::string(parts[i]), piece.atStart && i == 0});
                    break;
                case PreTokenizerStep::Kind::Metaspace: {
                    std::string s = piece.text;
                    replaceAll(s, " ", step.replacement);
                    const bool prepend = !s.starts_with(step.replacement) &&
                        (step.prependScheme == PrependScheme::Always ||
                            (step.prependScheme == PrependScheme::First && piece.atStart));
                    if (prepend)
                        s.insert(0, step.replacement);
                    if (!step.split) {
                        next.push_back({std::move(s), piece.atStart});
                        break;
                    }
                    // MergedWithNext: every replacement character starts a new piece.
                    std::size_t begin = 0;
                    for (std::size_t hit = s.find(step.replacement, 1); hit != std::string::npos;
                         hit = s.find(step.replacement, hit + step.replacement.size())) {
                        next.push_back({s.substr(begin, hit - begin), piece.atStart && begin == 0});
                        begin = hit;
                    }
                    next.push_back({s.substr(begin), piece.atStart && begin == 0});
                    break;
                }
                }
            }
            std::erase_if(next, [](const Piece& p) { return p.text.empty(); });
            pieces = std::move(next);
        }
        return pieces;
    }

    struct Symbol {
        int32_t id;
        int32_t prev;
        int32_t next;
        uint32_t length; // bytes; 0 once merged into its left neighbour
    };

    // BPE of one pre-token, appended to `out`. The merge loop is the Rust crate's
    // Word::merge_all: a min-heap of candidate merges ordered by (rank, position), stale
    // entries skipped when popped — O(n log n), so a pre-tokenizer-less SentencePiece-style
    // file can hand the whole text over as one word.
    void bpeWord(std::string_view word, std::vector<int32_t>& out) const
    {
        if (word.empty())
            return;
        if (ignoreMerges)
            if (auto id = lookup(word)) {
                out.push_back(*id);
                return;
            }

        std::vector<Symbol> symbols;
        symbols.reserve(word.size());
        const auto push = [&](int32_t id, uint32_t length) {
            const auto index = static_cast<int32_t>(symbols.size());
            symbols.push_back({id, index - 1, -1, length});
            if (index > 0)
                symbols[static_cast<std::size_t>(index - 1)].next = index;
        };
        std::optional<std::pair<int32_t, uint32_t>> pendingUnk;
        const auto flushUnk = [&] {
            if (pendingUnk)
                push(pendingUnk->first, pendingUnk->second);
            pendingUnk.reset();
        };
        std::string key;
        for (std::size_t pos = 0; pos < word.size();) {
            const uint32_t length = unicode::decodeUtf8(word, pos).length;
            const std::string_view ch = word.substr(pos, length);
            std::optional<int32_t> id;
            if (continuingSubwordPrefix.empty() && endOfWordSuffix.empty()) {
                id = lookup(ch);
            } else {
                key.clear();
                if (pos > 0)
                    key += continuingSubwordPrefix;
                key += ch;
                if (pos + length == word.size())
                    key += endOfWordSuffix;
                id = lookup(key);
            }
            if (id) {
                flushUnk();
                push(*id, length);
            } else if (byteFallback &&
                std::all_of(ch.begin(), ch.end(), [&](char b) { return byteTokenIds[static_cast<uint8_t>(b)] >= 0; })) {
                flushUnk();
                for (char b : ch)
                    push(byteTokenIds[static_cast<uint8_t>(b)], 1);
            } else if (unkId) {
                if (pendingUnk && fuseUnk) {
                    pendingUnk->second += length;
                } else {
                    flushUnk();
                    pendingUnk = std::make_pair(*unkId, length);
                }
            }
            // No unk token: the Rust crate drops the character; so do we.
            pos += length;
        }
        flushUnk();

        struct Candidate {
            int32_t rank;
            int32_t pos;
            int32_t newId;
            bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
        };
        std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
        const auto mergeOf = [&](int32_t left, int32_t right) -> const MergeEntry* {
            const auto it = merges.find(pairKey(left, right));
            return it == merges.end() ? nullptr : &it->second;
        };
        for (std::size_t i = 0; i + 1 < symbols.size(); ++i)
            if (const MergeEntry* m = mergeOf(symbols[i].id, symbols[i + 1].id))
                queue.push({m->rank, static_cast<int32_t>(i), m->newId});

        while (!queue.empty()) {
            const Candidate top = queue.top();
            queue.pop();
            Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
            if (left.length == 0 || left.next < 0)
                continue;
            const Symbol right = symbols[static_cast<std::size_t>(left.next)];
            // Stale entry: the pair at this position changed since it was queued. (The crate
            // compares only the resulting id; so do we.)
            const MergeEntry* current = mergeOf(left.id, right.id);
            if (!current || current->newId != top.newId)
                continue;
            const int32_t rightIndex = left.next;
            left.id = top.newId;
            left.length += right.length;
            left.next = right.next;
            symbols[static_cast<std::size_t>(rightIndex)].length = 0;
            if (right.next >= 0)
                symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
            if (left.prev >= 0)
                if (const MergeEntry* m = mergeOf(symbols[static_cast<std::size_t>(left.prev)].id, left.id))
                    queue.push({m->rank, left.prev, m->newId});
            if (left.next >= 0)
                if (const MergeEntry* m = mergeOf(left.id, symbols[static_cast<std::size_t>(left.next)].id))
                    queue.push({m->rank, top.pos, m->newId});
        }
        for (const Symbol& s : symbols)
            if (s.length != 0)
                out.push_back(s.id);
    }

    void encodePiece(std::string_view piece, std::vector<int32_t>& out, WordCache& cache) const
    {
        if (piece.size() > kMaxCachedWordBytes) {
            bpeWord(piece, out);
            return;
        }
        if (const auto it = cache.find(piece); it != cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
        const std::size_t before = out.size();
        bpeWord(piece, out);
        cache.emplace(
            std::string(piece), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()));
    }

    [[nodiscard]] std::vector<int32_t> encode(std::string_view text) const
    {
        std::vector<int32_t> ids;
        ids.reserve(text.size() / 3 + 8);
        WordCache cache;
        std::vector<Segment> rawSegments;
        splitAddedTokens(text, true, false, rawSegments);
        std::vector<Segment> normalizedSegments;
        for (const Segment& raw : rawSegments) {
            if (raw.tokenId >= 0) {
                ids.push_back(raw.tokenId);
                continue;
            }
            const std::string normalized = normalize(raw.text);
            normalizedSegments.clear();
            splitAddedTokens(normalized, raw.atStart, true, normalizedSegments);
            for (const Segment& segment : normalizedSegments) {
                if (segment.tokenId >= 0) {
                    ids.push_back(segment.tokenId);
                    continue;
                }
                for (const Piece& piece : preTokenize(std::string(segment.text), segment.atStart)) {
                    pollEncodeCancel();
                    encodePiece(piece.text, ids, cache);
                }
            }
        }
        return ids;
    }

    // ---- decoding -------------------------------------------------------------------------

    static void decodeByteLevel(std::vector<std::string>& tokens)
    {
        std::string bytes;
        for (const std::string& token : tokens) {
            // A token with a character outside the byte alphabet is kept as it is (the crate does).
            std::string mapped;
            bool ok = true;
            for (std::size_t pos = 0; pos < token.size() && ok;) {
                const auto c = unicode::decodeUtf8(token, pos);
                const auto b = c.valid ? byteLevelByte(c.value) : std::nullopt;
                if (b)
                    mapped.push_back(static_cast<char>(*b));
                else
                    ok = false;
                pos += c.length;
            }
            bytes += ok ? mapped : token;
        }
        tokens.assign(1, unicode::toValidUtf8(bytes));
    }

    static std::optional<uint8_t> byteToken(std::string_view token)
    {
        if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>')
            return std::nullopt;
        const auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9')
                return c - '0';
            if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
            if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
            return -1;
        };
        const int hi = hex(token[3]), lo = hex(token[4]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        return static_cast<uint8_t>(hi * 16 + lo);
    }

    // Runs of <0xXX> tokens become their bytes when those are valid UTF-8, else one U+FFFD
    // per byte (the crate's ByteFallback decoder).
    static void decodeByteFallback(std::vector<std::string>& tokens)
    {
        std::vector<std::string> out;
        std::string pending;
        const auto flush = [&] {
            if (pending.empty())
                return;
            if (unicode::isValidUtf8(pending))
                out.push_back(pending);
            else
                for (std::size_t i = 0; i < pending.size(); ++i)
                    out.emplace_back("\xEF\xBF\xBD");
            pending.clear();
        };
        for (std::string& token : tokens) {
            if (auto b = byteToken(token)) {
                pending.push_back(static_cast<char>(*b));
                continue;
            }
            flush();
            out.push_back(std::move(token));
        }
        flush();
        tokens = std::move(out);
    }

    static void decodeStrip(std::vector<std::string>& tokens, const DecoderStep& step)
    {
        if (step.content.empty())
            return;
        for (std::string& token : tokens) {
            std::size_t begin = 0, end = token.size();
            for (std::size_t i = 0; i < step.start && token.compare(begin, step.content.size(), step.content) == 0; ++i)
                begin += step.content.size();
            for (std::size_t i = 0; i < step.stop && end >= begin + step.content.size() &&
                 token.compare(end - step.content.size(), step.content.size(), step.content) == 0;
                 ++i)
                end -= step.content.size();
            token = token.substr(begin, end - begin);
        }
    }

    // The crate's Metaspace decoder turns every replacement character into a space, except
    // in the first token, where (unless prepend_scheme is "never") they are all dropped.
    static void decodeMetaspace(std::vector<std::string>& tokens, const DecoderStep& step)
    {
        for (std::size_t i = 0; i < tokens.size(); ++i)
            replaceAll(tokens[i], step.replacement, i == 0 && step.prependScheme != PrependScheme::Never ? "" : " ");
    }

    [[nodiscard]] std::string decode(std::span<const int32_t> ids) const
    {
        std::vector<std::string> tokens;
        tokens.reserve(ids.size());
        for (int32_t id : ids) {
            if (const auto it = addedById.find(id); it != addedById.end()) {
                if (!addedTokens[it->second].special)
                    tokens.push_back(addedTokens[it->second].content);
                continue;
            }
            tokens.push_back(tokenText(id));
        }
        if (!hasDecoder) {
            // No decoder: the crate joins tokens with spaces.
            std::string text;
            for (std::size_t i = 0; i < tokens.size(); ++i)
                text += (i ? " " : "") + tokens[i];
            return unicode::toValidUtf8(text);
        }
        for (const DecoderStep& step : decoders) {
            switch (step.kind) {
            case DecoderStep::Kind::ByteLevel:
                decodeByteLevel(tokens);
                break;
            case DecoderStep::Kind::Replace:
                for (std::string& token : tokens)
                    replaceAll(token, step.pattern, step.replacement);
                break;
            case DecoderStep::Kind::ByteFallback:
                decodeByteFallback(tokens);
                break;
            case DecoderStep::Kind::Fuse: {
                std::string fused;
                for (const std::string& token : tokens)
                    fused += token;
                tokens.assign(1, std::move(fused));
                break;
            }
            case DecoderStep::Kind::Strip:
                decodeStrip(tokens, step);
                break;
            case DecoderStep::Kind::Metaspace:
                decodeMetaspace(tokens, step);
                break;
            }
        }
        std::string text;
        for (const std::string& token : tokens)
            text += token;
        return unicode::toValidUtf8(text);
    }

    [[nodiscard]] int32_t vocabSize() const
    {
        auto size = static_cast<int32_t>(idToToken.size());
        for (const AddedToken& t : addedTokens)
            size = std::max(size, t.id + 1);
        return size;
    }

    [[nodiscard]] std::string tokenText(int32_t id) const
    {
        if (id < 0 || id >= vocabSize())
            throw std::out_of_range(
                "token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(vocabSize()));
        if (const auto it = addedById.find(id); it != addedById.end())
            return addedTokens[it->second].content;
        return static_cast<std::size_t>(id) < idToToken.size() ? idToToken[static_cast<std::size_t>(id)]
                                                               : std::string();
    }
};

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl))
{
    setBos(m_impl->templateBos, m_impl->templateBos.has_value());
}

BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::fromTokenizerJson(const fs::path& file)
{
    const json root = parseJsonFile(file);
    auto impl = std::make_unique<Impl>();
    impl->file = file;
    impl->sourceLabel = file.filename().string();
    try {
        impl->loadTokenizerJson(root);
    } catch (const FormatError& e) {
        throw inputError(file, e.what());
    } catch (const json::exception& e) {
        throw inputError(file, std::string("unexpected structure: ") + e.what());
    }
    return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::fromVocabMerges(const fs::path& vocabJson, const fs::path& mergesTxt)
{
    auto impl = std::make_unique<Impl>();
    impl->file = vocabJson;
    impl->sourceLabel = vocabJson.filename().string() + " + " + mergesTxt.filename().string();
    try {
        impl->setVocab(parseJsonFile(vocabJson));
    } catch (const FormatError& e) {
        throw inputError(vocabJson, e.what());
    } catch (const json::exception& e) {
        throw inputError(vocabJson, std::string("unexpected structure: ") + e.what());
    }
    std::istringstream lines(readTextFile(mergesTxt));
    std::string line;
    int32_t rank = 0;
    int lineNumber = 0;
    try {
        while (std::getline(lines, line)) {
            ++lineNumber;
            if (!line.empty() && line.back() == '\r')
                line.pop_back();
            if (line.empty() || (lineNumber == 1 && line.starts_with("#version")))
                continue;
            const auto space = line.find(' ');
            if (space == std::string::npos || space == 0 || space + 1 == line.size())
                throw FormatError("line " + std::to_string(lineNumber) + " is not two tokens separated by a space");
            impl->addMerge(std::string_view(line).substr(0, space), std::string_view(line).substr(space + 1), rank++);
        }
    } catch (const FormatError& e) {
        throw inputError(mergesTxt, e.what());
    }
    PreTokenizerStep byteLevel{.kind = PreTokenizerStep::Kind::ByteLevel};
    byteLevel.pattern = SplitPattern::Gpt2;
    impl->preTokenizers.push_back(byteLevel);
    impl->hasDecoder = true;
    impl->decoders.push_back({.kind = DecoderStep::Kind::ByteLevel});
    return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const { return m_impl->encode(text); }

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const { return m_impl->decode(ids); }

std::string BpeTokenizer::tokenText(int32_t id) const { return m_impl->tokenText(id); }

int32_t BpeTokenizer::vocabSize() const { return m_impl->vocabSize(); }

std::optional<int32_t> BpeTokenizer::tokenId(std::string_view token) const
{
    for (const AddedToken& t : m_impl->addedTokens)
        if (t.content == token)
            return t.id;
    return m_impl->lookup(token);
}

std::string BpeTokenizer::description() const
{
    const Impl& impl = *m_impl;
    const bool byteLevel = std::any_of(impl.preTokenizers.begin(), impl.preTokenizers.end(),
        [](const auto& s) { return s.kind == PreTokenizerStep::Kind::ByteLevel; });
    const bool sentencePieceStyle = impl.byteFallback ||
        std::any_of(impl.preTokenizers.begin(), impl.preTokenizers.end(),
            [](const auto& s) { return s.kind == PreTokenizerStep::Kind::Metaspace; }) ||
        std::any_of(impl.normalizers.begin(), impl.normalizers.end(),
            [](const auto& s) { return s.kind == NormalizerStep::Kind::Prepend; });
    std::string kind = byteLevel ? "Byte-level BPE" : sentencePieceStyle ? "SentencePiece-style BPE" : "BPE";
    std::string text = kind + " (" + impl.sourceLabel + ", " + std::to_string(vocabSize()) + " tokens";
    if (impl.byteFallback)
        text += ", byte fallback";
    return text + ")";
}

void BpeTokenizer::addSpecialToken(std::string_view content)
{
    const auto id = m_impl->lookup(content);
    if (!id)
        return;
    AddedToken t;
    t.content = std::string(content);
    t.id = *id;
    t.special = true;
    t.normalized = false;
    m_impl->addAddedToken(std::move(t));
}

} // namespace sparselab::tokenize
