// tokenizer.model: SentencePiece BPE, read and run here rather than through libsentencepiece.
//
// Why not the library: Debian's libsentencepiece carries its own protobuf-lite 3.14 and
// exports those symbols, while LibTorch loads the system libprotobuf 3.21. With both in one
// process the dynamic linker binds one library's protobuf calls to the other's code; as
// soon as libsentencepiece is actually linked, every SparseLab binary crashes in libprotobuf's
// static initialisers (and linking libprotobuf first only moves the ABI mix into
// sentencepiece). The model file is a small protobuf and the BPE encoder is short, so this
// file implements what SentencePieceProcessor::Encode/Decode do for BPE models (0.1.97):
//   normalize (precompiled charsmap = Darts double-array trie of rewrite rules, dummy prefix,
//   whitespace handling, spaces → "▁") → split into characters (user-defined pieces whole)
//   → merge the adjacent pair whose merged piece has the highest score, repeatedly → unknown
//   pieces become <0xXX> byte pieces when byte_fallback is on.
// The tests compare it with SentencePiece's own output (llama.cpp's Llama-2 cases, the
// stories260K ids, and 8,660 TinyStories lines encoded by SentencePiece 0.1.97).

#include "tokenize/tokenizer.h"

#include "tokenize/unicode.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <queue>
#include <stdexcept>
#include <unordered_map>

namespace sparselab::tokenize {

namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81"; // ▁
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- protobuf wire format ---------------------------------------------------------------

struct WireField {
    uint32_t number = 0;
    uint32_t type = 0; // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    uint64_t varint = 0;
    uint32_t fixed32 = 0;
    std::string_view bytes;
};

class WireReader {
public:
    explicit WireReader(std::string_view data) : m_data(data) {}

    // False at the end; throws FormatError on malformed input.
    bool next(WireField& field)
    {
        if (m_pos >= m_data.size())
            return false;
        const uint64_t key = readVarint();
        field = WireField{};
        field.number = static_cast<uint32_t>(key >> 3);
        field.type = static_cast<uint32_t>(key & 7);
        if (field.number == 0)
            throw FormatError("malformed protobuf (field number 0)");
        switch (field.type) {
        case 0:
            field.varint = readVarint();
            break;
        case 1:
            skip(8);
            break;
        case 2: {
            const uint64_t length = readVarint();
            if (length > m_data.size() - m_pos)
                throw FormatError("malformed protobuf (truncated field)");
            field.bytes = m_data.substr(m_pos, static_cast<std::size_t>(length));
            m_pos += static_cast<std::size_t>(length);
            break;
        }
        case 5: {
            if (m_data.size() - m_pos < 4)
                throw FormatError("malformed protobuf (truncated field)");
            uint32_t v = 0;
            for (int i = 3; i >= 0; --i)
                v = (v << 8) | static_cast<uint8_t>(m_data[m_pos + static_cast<std::size_t>(i)]);
            field.fixed32 = v;
            m_pos += 4;
            break;
        }
        default:
            throw FormatError("malformed protobuf (wire type " + std::to_string(field.type) + ")");
        }
        return true;
    }

private:
    uint64_t readVarint()
    {
        uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (m_pos >= m_data.size())
                throw FormatError("malformed protobuf (truncated varint)");
            const auto b = static_cast<uint8_t>(m_data[m_pos++]);
            value |= static_cast<uint64_t>(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
                return value;
        }
        throw FormatError("malformed protobuf (overlong varint)");
    }

    void skip(std::size_t n)
    {
        if (m_data.size() - m_pos < n)
            throw FormatError("malformed protobuf (truncated field)");
        m_pos += n;
    }

    std::string_view m_data;
    std::size_t m_pos = 0;
};

// ---- the model --------------------------------------------------------------------------

enum class PieceType : int { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct Piece {
    std::string text;
    float score = 0.0f;
    PieceType type = PieceType::Normal;
};

struct NormalizerSpec {
    std::string name;
    std::string charsmap;
    bool addDummyPrefix = true;
    bool removeExtraWhitespaces = true;
    bool escapeWhitespaces = true;
};

struct ModelFile {
    std::vector<Piece> pieces;
    int modelType = 1; // 1 unigram, 2 BPE, 3 word, 4 char
    bool byteFallback = false;
    bool treatWhitespaceAsSuffix = false;
    std::string unkPiece = "<unk>";
    std::string bosPiece = "<s>";
    std::string eosPiece = "</s>";
    std::string unkSurface = " \xE2\x81\x87 ";
    NormalizerSpec normalizer;
    std::optional<NormalizerSpec> denormalizer;
};

float floatFromBits(uint32_t bits)
{
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

NormalizerSpec parseNormalizerSpec(std::string_view data)
{
    NormalizerSpec spec;
    WireReader reader(data);
    for (WireField f; reader.next(f);) {
        if (f.number == 1 && f.type == 2)
            spec.name = f.bytes;
        else if (f.number == 2 && f.type == 2)
            spec.charsmap = f.bytes;
        else if (f.number == 3 && f.type == 0)
            spec.addDummyPrefix = f.varint != 0;
        else if (f.number == 4 && f.type == 0)
            spec.removeExtraWhitespaces = f.varint != 0;
        else if (f.number == 5 && f.type == 0)
            spec.escapeWhitespaces = f.varint != 0;
    }
    return spec;
}

ModelFile parseModelFile(std::string_view data)
{
    ModelFile model;
    WireReader reader(data);
    for (WireField f; reader.next(f);) {
        if (f.number == 1 && f.type == 2) { // repeated SentencePiece pieces
            Piece piece;
            WireReader pieceReader(f.bytes);
            for (WireField p; pieceReader.next(p);) {
                if (p.number == 1 && p.type == 2)
                    piece.text = p.bytes;
                else if (p.number == 2 && p.type == 5)
                    piece.score = floatFromBits(p.fixed32);
                else if (p.number == 3 && p.type == 0)
                    piece.type = static_cast<PieceType>(p.varint);
            }
            model.pieces.push_back(std::move(piece));
        } else if (f.number == 2 && f.type == 2) { // TrainerSpec
            WireReader trainer(f.bytes);
            for (WireField t; trainer.next(t);) {
                if (t.number == 3 && t.type == 0)
                    model.modelType = static_cast<int>(t.varint);
                else if (t.number == 35 && t.type == 0)
                    model.byteFallback = t.varint != 0;
                else if (t.number == 24 && t.type == 0)
                    model.treatWhitespaceAsSuffix = t.varint != 0;
                else if (t.number == 44 && t.type == 2)
                    model.unkSurface = t.bytes;
                else if (t.number == 45 && t.type == 2)
                    model.unkPiece = t.bytes;
                else if (t.number == 46 && t.type == 2)
                    model.bosPiece = t.bytes;
                else if (t.number == 47 && t.type == 2)
                    model.eosPiece = t.bytes;
            }
        } else if (f.number == 3 && f.type == 2) {
            model.normalizer = parseNormalizerSpec(f.bytes);
        } else if (f.number == 5 && f.type == 2) {
            model.denormalizer = parseNormalizerSpec(f.bytes);
        }
    }
    return model;
}

// ---- normalizer -------------------------------------------------------------------------

// SentencePiece's UTF-8 character length from the lead byte alone (string_util::OneCharLen).
std::size_t oneCharLength(std::string_view s)
{
    static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return std::min<std::size_t>(s.size(), kLengths[static_cast<uint8_t>(s[0]) >> 4]);
}

// Longest match among a set of strings (user-defined pieces); they are few.
class PrefixMatcher {
public:
    void add(const std::string& s)
    {
        if (!s.empty())
            m_strings.push_back(s);
    }
    [[nodiscard]] bool empty() const { return m_strings.empty(); }
    [[nodiscard]] std::size_t longestMatch(std::string_view text) const
    {
        std::size_t best = 0;
        for (const std::string& s : m_strings)
            if (s.size() > best && text.starts_with(s))
                best = s.size();
        return best;
    }

private:
    std::vector<std::string> m_strings;
};

class Normalizer {
public:
    Normalizer(const NormalizerSpec& spec, bool treatWhitespaceAsSuffix, const PrefixMatcher* userDefined)
        : m_spec(spec), m_treatWhitespaceAsSuffix(treatWhitespaceAsSuffix), m_userDefined(userDefined)
    {
        // precompiled_charsmap: <uint32 trie size><double-array units><NUL-separated outputs>
        const std::string& blob = m_spec.charsmap;
        if (blob.empty())
            return;
        if (blob.size() <= 4)
            throw FormatError("precompiled_charsmap is truncated");
        uint32_t trieSize = 0;
        for (int i = 3; i >= 0; --i)
            trieSize = (trieSize << 8) | static_cast<uint8_t>(blob[static_cast<std::size_t>(i)]);
        if (trieSize > blob.size() - 4 || trieSize % 4 != 0)
            throw FormatError("precompiled_charsmap has a bad trie size");
        m_units.resize(trieSize / 4);
        for (std::size_t u = 0; u < m_units.size(); ++u) {
            uint32_t v = 0;
            for (int i = 3; i >= 0; --i)
                v = (v << 8) | static_cast<uint8_t>(blob[4 + u * 4 + static_cast<std::size_t>(i)]);
            m_units[u] = v;
        }
        m_outputs = blob.substr(4 + trieSize);
    }

    // Normalizer::Normalize: rewrite rules, then whitespace handling.
    [[nodiscard]] std::string normalize(std::string_view input) const
    {
        std::string out;
        if (m_spec.removeExtraWhitespaces) // drop leading spaces
            while (!input.empty()) {
                const auto [text, consumed] = normalizePrefix(input);
                if (text != " ")
                    break;
                input.remove_prefix(consumed);
            }
        if (input.empty())
            return out;
        out.reserve(input.size() * 3 / 2 + 4);
        const auto addSpace = [&] { out += m_spec.escapeWhitespaces ? kSpaceSymbol : std::string_view(" "); };
        if (!m_treatWhitespaceAsSuffix && m_spec.addDummyPrefix)
            addSpace();
        bool previousIsSpace = m_spec.removeExtraWhitespaces;
        while (!input.empty()) {
            auto [text, consumed] = normalizePrefix(input);
            if (previousIsSpace)
                while (text.starts_with(' '))
                    text.remove_prefix(1);
            if (!text.empty()) {
                for (char c : text) {
                    if (c == ' ' && m_spec.escapeWhitespaces)
                        out += kSpaceSymbol;
                    else
                        out += c;
                }
                previousIsSpace = text.ends_with(' ');
            }
            input.remove_prefix(consumed);
            if (!m_spec.removeExtraWhitespaces)
                previousIsSpace = false;
        }
        if (m_spec.removeExtraWhitespaces) {
            const std::string_view space = m_spec.escapeWhitespaces ? kSpaceSymbol : std::string_view(" ");
            while (std::string_view(out).ends_with(space))
                out.resize(out.size() - space.size());
        }
        if (m_treatWhitespaceAsSuffix && m_spec.addDummyPrefix)
            addSpace();
        return out;
    }

private:
    // The normalized text of the longest rule matching a prefix of `input`, and how many
    // input bytes it consumes. Without a rule: one UTF-8 character as is, or one ill-formed
    // byte as U+FFFD (as SentencePiece does).
    [[nodiscard]] std::pair<std::string_view, std::size_t> normalizePrefix(std::string_view input) const
    {
        if (m_userDefined && !m_userDefined->empty())
            if (const std::size_t length = m_userDefined->longestMatch(input))
                return {input.substr(0, length), length};

        std::size_t longestLength = 0;
        uint32_t longestValue = 0;
        if (!m_units.empty()) {
            // darts-clone DoubleArray::commonPrefixSearch.
            const auto unitAt = [&](std::size_t id, uint32_t& unit) {
                if (id >= m_units.size())
                    return false;
                unit = m_units[id];
                return true;
            };
            const auto offset = [](uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); };
            uint32_t unit = 0;
            std::size_t id = 0;
            if (unitAt(0, unit)) {
                id ^= offset(unit);
                for (std::size_t i = 0; i < input.size(); ++i) {
                    const auto label = static_cast<uint8_t>(input[i]);
                    id ^= label;
                    if (!unitAt(id, unit) || (unit & ((1u << 31) | 0xFFu)) != label)
                        break;
                    id ^= offset(unit);
                    if ((unit >> 8) & 1u) { // has a leaf: a rule ends here
                        uint32_t leaf = 0;
                        if (!unitAt(id, leaf))
                            break;
                        longestLength = i + 1;
                        longestValue = leaf & ((1u << 31) - 1);
                    }
                }
            }
        }
        if (longestLength > 0 && longestValue < m_outputs.size()) {
            const std::string_view rest = std::string_view(m_outputs).substr(longestValue);
            return {rest.substr(0, rest.find('\0')), longestLength};
        }
        const unicode::DecodedChar c = unicode::decodeUtf8(input, 0);
        if (!c.valid)
            return {kReplacementChar, 1};
        return {input.substr(0, c.length), c.length};
    }

    NormalizerSpec m_spec;
    bool m_treatWhitespaceAsSuffix = false;
    const PrefixMatcher* m_userDefined = nullptr;
    std::vector<uint32_t> m_units; // the double-array trie
    std::string m_outputs;         // NUL-terminated normalized strings the trie points into
};

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using PieceMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class SentencePieceTokenizer final : public Tokenizer {
public:
    SentencePieceTokenizer(const std::filesystem::path& file, ModelFile model) : m_file(file), m_model(std::move(model))
    {
        if (m_model.pieces.empty())
            throw FormatError("not a SentencePiece model (no pieces)");
        if (m_model.modelType != 2)
            throw FormatError(std::string("unsupported SentencePiece model type ") +
                (m_model.modelType == 1          ? "UNIGRAM"
                        : m_model.modelType == 3 ? "WORD"
                        : m_model.modelType == 4 ? "CHAR"
                                                 : "?") +
                " (only BPE is supported)");
        // ModelInterface::InitializePieces: normal, user-defined and unused pieces take part
        // in merges; control, unknown and byte pieces are only looked up by name.
        for (std::size_t i = 0; i < m_model.pieces.size(); ++i) {
            const Piece& p = m_model.pieces[i];
            if (p.text.empty())
                throw FormatError("piece " + std::to_string(i) + " is empty");
            const bool mergeable =
                p.type == PieceType::Normal || p.type == PieceType::UserDefined || p.type == PieceType::Unused;
            if (!(mergeable ? m_pieces : m_reserved).emplace(p.text, static_cast<int32_t>(i)).second)
                throw FormatError("piece '" + p.text + "' is defined twice");
            if (p.type == PieceType::UserDefined)
                m_userDefined.add(p.text);
            if (p.type == PieceType::Unknown) {
                if (m_unkId >= 0)
                    throw FormatError("more than one unknown piece");
                m_unkId = static_cast<int32_t>(i);
            }
        }
        if (m_unkId < 0)
            throw FormatError("no unknown piece (<unk>)");
        // SentencePiece runs BPE over the whole normalized text. When no piece contains "▁"
        // after another character (true of Llama's and llama2.c's models), no merge can cross
        // the start of a "▁" run, so the text can be cut there into words, encoded once each.
        m_chunkAtSpaces = std::none_of(m_pieces.begin(), m_pieces.end(), [](const auto& entry) {
            const std::string_view piece = entry.first;
            for (std::size_t at = piece.find(kSpaceSymbol, 1); at != std::string_view::npos;
                 at = piece.find(kSpaceSymbol, at + 1))
                if (at < kSpaceSymbol.size() ||
                    piece.substr(at - kSpaceSymbol.size(), kSpaceSymbol.size()) != kSpaceSymbol)
                    return true;
            return false;
        });
        m_normalizer.emplace(m_model.normalizer, m_model.treatWhitespaceAsSuffix, &m_userDefined);
        if (m_model.denormalizer && !m_model.denormalizer->charsmap.empty())
            m_denormalizer.emplace(*m_model.denormalizer, false, nullptr);

        const auto control = [&](const std::string& piece) -> std::optional<int32_t> {
            const auto it = m_reserved.find(piece);
            if (it == m_reserved.end() ||
                m_model.pieces[static_cast<std::size_t>(it->second)].type != PieceType::Control)
                return std::nullopt;
            return it->second;
        };
        // Llama convention: a SentencePiece model adds BOS when it defines one.
        const auto bos = control(m_model.bosPiece);
        setBos(bos, bos.has_value());
        setEos(control(m_model.eosPiece));
    }

    std::vector<int32_t> encode(std::string_view text) const override
    {
        const std::string normalized = m_normalizer->normalize(text);
        std::vector<int32_t> ids;
        ids.reserve(normalized.size() / 3 + 4);
        if (!m_chunkAtSpaces) {
            encodeChunk(normalized, ids);
            return ids;
        }
        // See m_chunkAtSpaces: words are independent, and natural text repeats them.
        std::unordered_map<std::string_view, std::vector<int32_t>> cache;
        const std::string_view all = normalized;
        std::size_t start = 0;
        const auto flush = [&](std::size_t end) {
            pollEncodeCancel();
            const std::string_view chunk = all.substr(start, end - start);
            start = end;
            if (chunk.empty())
                return;
            if (const auto it = cache.find(chunk); it != cache.end()) {
                ids.insert(ids.end(), it->second.begin(), it->second.end());
                return;
            }
            const std::size_t before = ids.size();
            encodeChunk(chunk, ids);
            cache.emplace(chunk, std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(before), ids.end()));
        };
        bool previousIsSpace = false;
        for (std::size_t pos = 0; pos < all.size();) {
            const bool isSpace = all.substr(pos).starts_with(kSpaceSymbol);
            if (isSpace && !previousIsSpace)
                flush(pos);
            previousIsSpace = isSpace;
            pos += isSpace ? kSpaceSymbol.size() : oneCharLength(all.substr(pos));
        }
        flush(all.size());
        return ids;
    }

    // SentencePieceProcessor::Decode: control pieces vanish, <unk> shows as its surface
    // (" ⁇ "), runs of byte pieces become their UTF-8 text (U+FFFD per bad byte), "▁" becomes
    // a space, and the first "▁" of the text (the dummy prefix) is dropped.
    std::string decode(std::span<const int32_t> ids) const override
    {
        std::string text;
        std::string bytes;
        const auto flushBytes = [&] {
            for (std::size_t pos = 0; pos < bytes.size();) {
                const unicode::DecodedChar c = unicode::decodeUtf8(bytes, pos);
                if (c.valid) {
                    text.append(bytes, pos, c.length);
                    pos += c.length;
                } else {
                    text += kReplacementChar;
                    ++pos;
                }
            }
            bytes.clear();
        };
        const bool stripsDummyPrefix = m_model.normalizer.addDummyPrefix || m_model.normalizer.removeExtraWhitespaces;
        bool isBosSpace = true; // the next piece may carry the dummy-prefix "▁"
        bool bosSpaceSeen = false;
        for (int32_t id : ids) {
            checkId(id);
            const Piece& piece = m_model.pieces[static_cast<std::size_t>(id)];
            if (piece.type == PieceType::Byte) {
                bytes.push_back(static_cast<char>(byteOfPiece(piece.text)));
                continue;
            }
            flushBytes();
            if (bosSpaceSeen || !text.empty())
                isBosSpace = false;
            bosSpaceSeen = false;
            if (piece.type == PieceType::Control)
                continue;
            if (piece.type == PieceType::Unknown) {
                text += m_model.unkSurface;
                continue;
            }
            std::string_view surface = piece.text;
            if (isBosSpace && stripsDummyPrefix && surface.starts_with(kSpaceSymbol)) {
                surface.remove_prefix(kSpaceSymbol.size());
                bosSpaceSeen = !m_model.normalizer.removeExtraWhitespaces;
            }
            for (std::size_t pos = 0; pos < surface.size();) {
                if (surface.substr(pos).starts_with(kSpaceSymbol)) {
                    text += ' ';
                    pos += kSpaceSymbol.size();
                } else {
                    text += surface[pos++];
                }
            }
        }
        flushBytes();
        if (m_denormalizer)
            text = m_denormalizer->normalize(text);
        return unicode::toValidUtf8(text);
    }

    std::string tokenText(int32_t id) const override
    {
        checkId(id);
        return m_model.pieces[static_cast<std::size_t>(id)].text;
    }

    std::optional<int32_t> tokenId(std::string_view token) const override
    {
        const int32_t id = pieceToId(token);
        if (m_model.pieces[static_cast<std::size_t>(id)].text != token)
            return std::nullopt;
        return id;
    }

    int32_t vocabSize() const override { return static_cast<int32_t>(m_model.pieces.size()); }

    std::string description() const override
    {
        std::string text = "SentencePiece BPE (" + m_file.filename().string() + ", " +
            std::to_string(m_model.pieces.size()) + " pieces";
        if (m_model.byteFallback)
            text += ", byte fallback";
        return text + ")";
    }

private:
    void checkId(int32_t id) const
    {
        if (id < 0 || id >= vocabSize())
            throw std::out_of_range(
                "token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(vocabSize()));
    }

    void encodeChunk(std::string_view normalized, std::vector<int32_t>& ids) const
    {
        for (std::string_view piece : bpe(normalized)) {
            const int32_t id = pieceToId(piece);
            if (id == m_unkId && m_model.byteFallback) {
                for (char b : piece) {
                    char name[8];
                    std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned>(static_cast<uint8_t>(b)));
                    ids.push_back(pieceToId(name));
                }
            } else {
                ids.push_back(id);
            }
        }
    }

    // ModelInterface::PieceToId: reserved pieces first, then normal ones, else <unk>.
    [[nodiscard]] int32_t pieceToId(std::string_view piece) const
    {
        if (const auto it = m_reserved.find(piece); it != m_reserved.end())
            return it->second;
        if (const auto it = m_pieces.find(piece); it != m_pieces.end())
            return it->second;
        return m_unkId;
    }

    static int byteOfPiece(std::string_view piece)
    {
        // "<0xXX>"
        unsigned value = 0;
        if (piece.size() == 6 && std::sscanf(std::string(piece).c_str(), "<0x%2X>", &value) == 1)
            return static_cast<int>(value & 0xFF);
        return 0;
    }

    // bpe_model.cc Model::SampleEncode without dropout. Symbols start as characters (or whole
    // user-defined pieces, which never merge); the pair whose concatenation is a piece with
    // the highest score merges first, ties to the left. Merged pieces of type UNUSED are
    // split back into the pieces they were made of.
    [[nodiscard]] std::vector<std::string_view> bpe(std::string_view normalized) const
    {
        struct Symbol {
            int prev;
            int next;
            bool frozen;
            std::string_view piece;
        };
        struct Pair {
            int left;
            int right;
            float score;
            std::size_t size;
        };
        const auto lower = [](const Pair& a, const Pair& b) {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        };
        std::priority_queue<Pair, std::vector<Pair>, decltype(lower)> agenda(lower);
        std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> unusedSplits;

        std::vector<Symbol> symbols;
        symbols.reserve(normalized.size());
        for (std::size_t pos = 0; pos < normalized.size();) {
            const std::string_view rest = normalized.substr(pos);
            std::size_t length = m_userDefined.empty() ? 0 : m_userDefined.longestMatch(rest);
            const bool frozen = length > 0;
            if (!frozen)
                length = oneCharLength(rest);
            const int index = static_cast<int>(symbols.size());
            symbols.push_back({index - 1, -1, frozen, rest.substr(0, length)});
            if (index > 0)
                symbols[static_cast<std::size_t>(index - 1)].next = index;
            pos += length;
        }
        if (symbols.empty())
            return {};

        const auto maybeAddPair = [&](int left, int right) {
            if (left < 0 || right < 0)
                return;
            const Symbol& l = symbols[static_cast<std::size_t>(left)];
            const Symbol& r = symbols[static_cast<std::size_t>(right)];
            if (l.frozen || r.frozen)
                return;
            // Adjacent symbols are adjacent in `normalized`, so their concatenation is a view.
            const std::string_view merged(l.piece.data(), l.piece.size() + r.piece.size());
            const auto it = m_pieces.find(merged);
            if (it == m_pieces.end())
                return;
            const Piece& piece = m_model.pieces[static_cast<std::size_t>(it->second)];
            agenda.push({left, right, piece.score, merged.size()});
            if (piece.type == PieceType::Unused)
                unusedSplits[merged] = {l.piece, r.piece};
        };
        for (std::size_t i = 1; i < symbols.size(); ++i)
            maybeAddPair(static_cast<int>(i) - 1, static_cast<int>(i));

        while (!agenda.empty()) {
            pollEncodeCancel(); // a text without spaces is one chunk: merged here at length
            const Pair top = agenda.top();
            agenda.pop();
            Symbol& left = symbols[static_cast<std::size_t>(top.left)];
            Symbol& right = symbols[static_cast<std::size_t>(top.right)];
            if (left.piece.empty() || right.piece.empty() || left.piece.size() + right.piece.size() != top.size)
                continue; // stale
            left.piece = std::string_view(left.piece.data(), left.piece.size() + right.piece.size());
            left.next = right.next;
            if (right.next >= 0)
                symbols[static_cast<std::size_t>(right.next)].prev = top.left;
            right.piece = {};
            maybeAddPair(left.prev, top.left);
            maybeAddPair(top.left, left.next);
        }

        std::vector<std::string_view> out;
        const auto resegment = [&](auto&& self, std::string_view piece) -> void {
            const auto it = m_pieces.find(piece);
            if (it != m_pieces.end() &&
                m_model.pieces[static_cast<std::size_t>(it->second)].type == PieceType::Unused) {
                if (const auto split = unusedSplits.find(piece); split != unusedSplits.end()) {
                    self(self, split->second.first);
                    self(self, split->second.second);
                    return;
                }
            }
            out.push_back(piece);
        };
        for (int index = 0; index >= 0; index = symbols[static_cast<std::size_t>(index)].next)
            resegment(resegment, symbols[static_cast<std::size_t>(index)].piece);
        return out;
    }

    std::filesystem::path m_file;
    ModelFile m_model;
    PieceMap m_pieces;   // mergeable: normal, user-defined, unused
    PieceMap m_reserved; // control, unknown, byte
    int32_t m_unkId = -1;
    bool m_chunkAtSpaces = false;
    PrefixMatcher m_userDefined;
    std::optional<Normalizer> m_normalizer;
    std::optional<Normalizer> m_denormalizer;
};

} // namespace

std::unique_ptr<Tokenizer> loadSentencePieceModel(const std::filesystem::path& modelFile)
{
    const std::string bytes = readTextFile(modelFile);
    try {
        return std::make_unique<SentencePieceTokenizer>(modelFile, parseModelFile(bytes));
    } catch (const FormatError& e) {
        throw inputError(modelFile, std::string("not a usable SentencePiece model: ") + e.what());
    }
}

} // namespace sparselab::tokenize
