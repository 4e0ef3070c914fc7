#include "io/gguf_vocab.h"

#include "io/gguf.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <unordered_map>

namespace sparselab::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The pre-tokenizer regexes llama.cpp knows by name (as Hugging Face's tokenizer.json spells them).
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81"; // "▁"
constexpr float kUnmergedScore = -1e9f;

int32_t typeValue(GgufTokenType t) { return static_cast<int32_t>(t); }

// The split regex of a byte-level pre-tokenizer named as llama.cpp names them (llama-vocab.cpp):
// "" for GPT-2's own (ByteLevel with its built-in regex). InputError naming `file` otherwise:
// llama.cpp's "default" for a BPE vocabulary is a regex set no tokenizer.json spells.
std::string_view byteLevelRegex(const std::string& pre, const fs::path& file)
{
    for (const char* name : {"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de",
                             "jina-v2-code", "roberta-bpe"})
        if (pre == name)
            return "";
    for (const char* name : {"llama-bpe", "llama3", "llama-v3", "falcon3"})
        if (pre == name)
            return kLlama3Regex;
    for (const char* name : {"qwen2", "deepseek-r1-qwen"})
        if (pre == name)
            return kQwen2Regex;
    throw inputError(file, "byte-level pre-tokenizer '" + pre
                               + "' is not supported (GPT-2, Llama-3 and Qwen2 ones are: gpt-2, llama-bpe, qwen2)");
}

bool isByteToken(const std::string& s)
{
    auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
    return s.size() == 6 && s.starts_with("<0x") && s[5] == '>' && hex(s[3]) && hex(s[4]);
}

// ---- protobuf (the subset SentencePiece's ModelProto needs) --------------------------------

class ProtoReader {
public:
    ProtoReader(std::string_view data, const fs::path& file) : m_data(data), m_file(file) {}

    struct Field {
        uint32_t number = 0;
        uint32_t wire = 0;
        uint64_t varint = 0;
        uint32_t fixed32 = 0;
        std::string_view bytes;
    };

    bool next(Field& f)
    {
        if (m_pos >= m_data.size())
            return false;
        const uint64_t key = varint();
        f = Field{};
        f.number = uint32_t(key >> 3);
        f.wire = uint32_t(key & 7);
        switch (f.wire) {
        case 0: f.varint = varint(); break;
        case 1: skip(8); break;
        case 2: {
            const uint64_t n = varint();
            if (n > m_data.size() - m_pos)
                fail();
            f.bytes = m_data.substr(m_pos, size_t(n));
            m_pos += size_t(n);
            break;
        }
        case 5:
            if (m_data.size() - m_pos < 4)
                fail();
            std::memcpy(&f.fixed32, m_data.data() + m_pos, 4);
            m_pos += 4;
            break;
        default: fail();
        }
        return true;
    }

private:
    uint64_t varint()
    {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (m_pos >= m_data.size())
                fail();
            const auto b = uint8_t(m_data[m_pos++]);
            v |= uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80))
                return v;
        }
        fail();
    }
    void skip(size_t n)
    {
        if (m_data.size() - m_pos < n)
            fail();
        m_pos += n;
    }
    [[noreturn]] void fail() const { throw inputError(m_file, "malformed SentencePiece model (bad protobuf)"); }

    std::string_view m_data;
    const fs::path& m_file;
    size_t m_pos = 0;
};

class ProtoWriter {
public:
    void varintField(uint32_t number, uint64_t v)
    {
        key(number, 0);
        varint(v);
    }
    void fixed32Field(uint32_t number, float v)
    {
        key(number, 5);
        char b[4];
        std::memcpy(b, &v, 4);
        m_out.append(b, 4);
    }
    void bytesField(uint32_t number, std::string_view bytes)
    {
        key(number, 2);
        varint(bytes.size());
        m_out.append(bytes);
    }
    [[nodiscard]] const std::string& bytes() const { return m_out; }

private:
    void key(uint32_t number, uint32_t wire) { varint((uint64_t(number) << 3) | wire); }
    void varint(uint64_t v)
    {
        while (v >= 0x80) {
            m_out.push_back(char(uint8_t(v) | 0x80));
            v >>= 7;
        }
        m_out.push_back(char(v));
    }
    std::string m_out;
};

// ---- reading a model folder ----------------------------------------------------------------

json readJson(const fs::path& file)
{
    return readJsonFile(file);
}

std::optional<std::string> tokenString(const json& j, const char* key)
{
    const auto it = j.find(key);
    if (it == j.end())
        return std::nullopt;
    if (it->is_string())
        return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
        return (*it)["content"].get<std::string>();
    return std::nullopt;
}

bool containsType(const json& node, std::string_view type)
{
    if (!node.is_object())
        return false;
    if (node.value("type", "") == type)
        return true;
    for (const char* list : {"normalizers", "pretokenizers", "decoders"})
        if (node.contains(list) && node[list].is_array())
            for (const json& child : node[list])
                if (containsType(child, type))
                    return true;
    return false;
}

// add_space_prefix for a SentencePiece-style tokenizer.json: a Prepend("▁") normalizer or a
// Metaspace pre-tokenizer that prepends.
bool spmAddsSpacePrefix(const json& root)
{
    std::function<bool(const json&)> visit = [&](const json& n) -> bool {
        if (!n.is_object())
            return false;
        const std::string type = n.value("type", "");
        if (type == "Prepend" && n.value("prepend", "") == kSpaceSymbol)
            return true;
        if (type == "Metaspace") {
            if (n.contains("prepend_scheme") && n["prepend_scheme"].is_string())
                return n["prepend_scheme"].get<std::string>() != "never";
            return n.value("add_prefix_space", true);
        }
        for (const char* list : {"normalizers", "pretokenizers"})
            if (n.contains(list) && n[list].is_array())
                for (const json& child : n[list])
                    if (visit(child))
                        return true;
        return false;
    };
    return visit(root.value("normalizer", json())) || visit(root.value("pre_tokenizer", json()));
}

std::string byteLevelPre(const json& pre, const fs::path& file)
{
    if (pre.is_object() && pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true))
        return "gpt-2";
    if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers")
        && pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2) {
        const json& split = pre["pretokenizers"][0];
        const json& bytes = pre["pretokenizers"][1];
        if (split.value("type", "") == "Split" && bytes.value("type", "") == "ByteLevel"
            && !bytes.value("use_regex", true) && split.contains("pattern") && split["pattern"].is_object()
            && split["pattern"].contains("Regex") && split["pattern"]["Regex"].is_string()) {
            const std::string regex = split["pattern"]["Regex"].get<std::string>();
            if (regex == kLlama3Regex)
                return "llama-bpe";
            if (regex == kQwen2Regex)
                return "qwen2";
        }
    }
    throw inputError(file, "byte-level pre-tokenizer is not one llama.cpp knows (GPT-2, Llama-3 or Qwen2 "
                           "regex); it cannot be stored in GGUF");
}

void vocabFromTokenizerJson(const fs::path& file, GgufVocab& v)
{
    const json root = readJson(file);
    if (!root.is_object() || !root.contains("model") || !root["model"].is_object())
        throw inputError(file, "no \"model\" object");
    const json& model = root["model"];
    if (model.value("type", "") != "BPE")
        throw inputError(file, "only BPE tokenizers can be stored in GGUF (model.type is '"
                                   + model.value("type", std::string("?")) + "')");
    if (!model.contains("vocab") || !model["vocab"].is_object())
        throw inputError(file, "model.vocab must be an object");

    std::map<int64_t, std::string> byId;
    for (const auto& [token, id] : model["vocab"].items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0)
            throw inputError(file, "model.vocab: id of '" + token + "' is not a non-negative integer");
        byId[id.get<int64_t>()] = token;
    }
    struct Added {
        std::string content;
        bool special = false;
    };
    std::map<int64_t, Added> added;
    if (root.contains("added_tokens") && root["added_tokens"].is_array())
        for (const json& a : root["added_tokens"]) {
            if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0
                || !a.contains("content") || !a["content"].is_string())
                throw inputError(file, "added_tokens entries need a non-negative id and a string content");
            added[a["id"].get<int64_t>()] = Added{a["content"].get<std::string>(), a.value("special", false)};
            byId[a["id"].get<int64_t>()] = a["content"].get<std::string>();
        }
    const int64_t count = byId.empty() ? 0 : byId.rbegin()->first + 1;
    v.tokens.assign(size_t(count), {});
    v.tokenTypes.assign(size_t(count), typeValue(GgufTokenType::Unused));
    std::vector<bool> present(size_t(count), false);
    for (const auto& [id, token] : byId) {
        v.tokens[size_t(id)] = token;
        present[size_t(id)] = true;
        v.tokenTypes[size_t(id)] = typeValue(GgufTokenType::Normal);
    }
    for (int64_t id = 0; id < count; ++id)
        if (!present[size_t(id)])
            v.tokens[size_t(id)] = "[PAD" + std::to_string(id) + "]";

    std::vector<std::pair<std::string, std::string>> merges;
    if (model.contains("merges") && model["merges"].is_array())
        for (const json& m : model["merges"]) {
            if (m.is_string()) {
                const std::string s = m.get<std::string>();
                const size_t space = s.find(' ');
                if (space == std::string::npos)
                    throw inputError(file, "merge '" + s + "' has no space");
                merges.emplace_back(s.substr(0, space), s.substr(space + 1));
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
            } else {
                throw inputError(file, "merges must be \"a b\" strings or [a, b] pairs");
            }
        }

    const json& pre = root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json();
    const bool byteLevel = containsType(pre, "ByteLevel") || containsType(root.value("decoder", json()), "ByteLevel");
    if (byteLevel) {
        v.model = "gpt2";
        v.pre = byteLevelPre(pre, file);
        for (const auto& [left, right] : merges) {
            if (left.find(' ') != std::string::npos || right.find(' ') != std::string::npos)
                throw inputError(file, "a merge contains a space; GGUF stores merges as \"a b\"");
            v.merges.push_back(left + " " + right);
        }
    } else {
        const bool spm = model.value("byte_fallback", false) || containsType(pre, "Metaspace")
                         || spmAddsSpacePrefix(root);
        if (!spm)
            throw inputError(file, "BPE tokenizer is neither byte-level nor SentencePiece-style; it cannot be "
                                   "stored in GGUF");
        v.model = "llama";
        v.pre = "default";
        v.addSpacePrefix = spmAddsSpacePrefix(root);
        v.removeExtraWhitespaces = false;
        std::unordered_map<std::string, int64_t> ids;
        for (int64_t id = 0; id < count; ++id)
            if (present[size_t(id)])
                ids.emplace(v.tokens[size_t(id)], id);
        v.scores.assign(size_t(count), kUnmergedScore);
        std::vector<bool> scored(size_t(count), false);
        for (size_t r = 0; r < merges.size(); ++r) {
            const auto it = ids.find(merges[r].first + merges[r].second);
            if (it != ids.end() && !scored[size_t(it->second)]) {
                v.scores[size_t(it->second)] = -float(r);
                scored[size_t(it->second)] = true;
            }
        }
        for (int64_t id = 0; id < count; ++id)
            if (present[size_t(id)] && isByteToken(v.tokens[size_t(id)])) {
                v.tokenTypes[size_t(id)] = typeValue(GgufTokenType::Byte);
                v.scores[size_t(id)] = 0.0f;
            }
        if (const auto unk = model.find("unk_token"); unk != model.end() && unk->is_string())
            if (const auto it = ids.find(unk->get<std::string>()); it != ids.end()) {
                v.tokenTypes[size_t(it->second)] = typeValue(GgufTokenType::Unknown);
                v.unkId = int32_t(it->second);
            }
    }
    for (const auto& [id, a] : added) {
        if (v.unkId && *v.unkId == id)
            continue;
        v.tokenTypes[size_t(id)] = typeValue(a.special ? GgufTokenType::Control : GgufTokenType::UserDefined);
        if (!v.scores.empty())
            v.scores[size_t(id)] = 0.0f;
    }
}

void vocabFromSentencePiece(const fs::path& file, GgufVocab& v)
{
    const std::string data = readTextFile(file);
    v.model = "llama";
    v.pre = "default";
    bool addDummyPrefix = true;
    bool removeExtraWhitespaces = true; // the proto default
    ProtoReader reader(data, file);
    for (ProtoReader::Field f; reader.next(f);) {
        if (f.number == 1 && f.wire == 2) { // repeated SentencePiece pieces = 1
            std::string piece;
            float score = 0.0f;
            int32_t type = typeValue(GgufTokenType::Normal);
            ProtoReader p(f.bytes, file);
            for (ProtoReader::Field g; p.next(g);) {
                if (g.number == 1 && g.wire == 2)
                    piece = std::string(g.bytes);
                else if (g.number == 2 && g.wire == 5)
                    std::memcpy(&score, &g.fixed32, 4);
                else if (g.number == 3 && g.wire == 0)
                    type = int32_t(g.varint);
            }
            if (type < 1 || type > 6)
                throw inputError(file, "piece '" + piece + "' has unknown type " + std::to_string(type));
            if (type == typeValue(GgufTokenType::Unknown))
                v.unkId = int32_t(v.tokens.size());
            v.tokens.push_back(std::move(piece));
            v.scores.push_back(score);
            v.tokenTypes.push_back(type);
        } else if (f.number == 3 && f.wire == 2) { // NormalizerSpec normalizer_spec = 3
            ProtoReader n(f.bytes, file);
            for (ProtoReader::Field g; n.next(g);) {
                if (g.number == 2 && g.wire == 2) // precompiled_charsmap
                    v.precompiledCharsmap = std::string(g.bytes);
                else if (g.number == 3 && g.wire == 0) // add_dummy_prefix
                    addDummyPrefix = g.varint != 0;
                else if (g.number == 4 && g.wire == 0) // remove_extra_whitespaces
                    removeExtraWhitespaces = g.varint != 0;
            }
        }
    }
    if (v.tokens.empty())
        throw inputError(file, "SentencePiece model has no pieces");
    v.addSpacePrefix = addDummyPrefix;
    v.removeExtraWhitespaces = removeExtraWhitespaces;
}

std::optional<int32_t> findToken(const GgufVocab& v, const std::string& text)
{
    for (size_t i = 0; i < v.tokens.size(); ++i)
        if (v.tokens[i] == text)
            return int32_t(i);
    return std::nullopt;
}

} // namespace

GgufVocab vocabFromModelFolder(const fs::path& folder, int64_t vocabSize)
{
    GgufVocab v;
    const fs::path tokenizerJson = folder / "tokenizer.json";
    const fs::path spmModel = folder / "tokenizer.model";
    fs::path used;
    if (fs::exists(tokenizerJson)) {
        used = tokenizerJson;
        vocabFromTokenizerJson(tokenizerJson, v);
        v.huggingFaceJson = readTextFile(tokenizerJson, kMaxJsonFileBytes);
    } else if (fs::exists(spmModel)) {
        used = spmModel;
        vocabFromSentencePiece(spmModel, v);
    } else {
        throw inputError(folder, "no tokenizer.json or tokenizer.model to store in the GGUF file");
    }
    if (int64_t(v.tokens.size()) > vocabSize)
        throw inputError(used, "has " + std::to_string(v.tokens.size()) + " tokens but the model's vocab_size is "
                                   + std::to_string(vocabSize));
    // The embedding has vocabSize rows and llama.cpp requires one token per row.
    for (int64_t id = int64_t(v.tokens.size()); id < vocabSize; ++id) {
        v.tokens.push_back("[PAD" + std::to_string(id) + "]");
        v.tokenTypes.push_back(typeValue(GgufTokenType::Unused));
        if (v.model == "llama")
            v.scores.push_back(-1000.0f);
    }

    // BOS/EOS exactly as SparseLab's own tokenizer resolves them.
    const auto tokenizer = tokenize::loadTokenizer(folder);
    v.bosId = tokenizer->bosId();
    v.eosId = tokenizer->eosId();
    v.addBos = tokenizer->addsBos();
    v.addEos = false;
    const fs::path configFile = folder / "tokenizer_config.json";
    if (fs::exists(configFile)) {
        const json config = readJson(configFile);
        if (config.is_object()) {
            if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
                v.addEos = config["add_eos_token"].get<bool>();
            if (const auto pad = tokenString(config, "pad_token"))
                v.padId = findToken(v, *pad);
            if (!v.unkId)
                if (const auto unk = tokenString(config, "unk_token"))
                    v.unkId = findToken(v, *unk);
        }
    }
    return v;
}

void addVocabToGguf(GgufWriter& w, const GgufVocab& v)
{
    w.set("tokenizer.ggml.model", GgufValue::string(v.model));
    w.set("tokenizer.ggml.pre", GgufValue::string(v.pre));
    w.set("tokenizer.ggml.tokens", GgufValue::stringArray(v.tokens));
    if (!v.scores.empty())
        w.set("tokenizer.ggml.scores",
              GgufValue::realArray(GgufValueType::Float32, std::vector<double>(v.scores.begin(), v.scores.end())));
    w.set("tokenizer.ggml.token_type",
          GgufValue::intArray(GgufValueType::Int32, std::vector<int64_t>(v.tokenTypes.begin(), v.tokenTypes.end())));
    if (!v.merges.empty())
        w.set("tokenizer.ggml.merges", GgufValue::stringArray(v.merges));
    const auto id = [&](const char* key, const std::optional<int32_t>& value) {
        if (value)
            w.set(key, GgufValue::u32(uint32_t(*value)));
    };
    id("tokenizer.ggml.bos_token_id", v.bosId);
    id("tokenizer.ggml.eos_token_id", v.eosId);
    id("tokenizer.ggml.unknown_token_id", v.unkId);
    id("tokenizer.ggml.padding_token_id", v.padId);
    if (v.addBos)
        w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(*v.addBos));
    if (v.addEos)
        w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(*v.addEos));
    if (v.addSpacePrefix)
        w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(*v.addSpacePrefix));
    if (v.removeExtraWhitespaces)
        w.set("tokenizer.ggml.remove_extra_whitespaces", GgufValue::boolean(*v.removeExtraWhitespaces));
    if (!v.huggingFaceJson.empty())
        w.set("tokenizer.huggingface.json", GgufValue::string(v.huggingFaceJson));
    if (!v.precompiledCharsmap.empty())
        w.set("tokenizer.ggml.precompiled_charsmap",
              GgufValue::intArray(GgufValueType::UInt8, std::vector<int64_t>(v.precompiledCharsmap.begin(),
                                                                              v.precompiledCharsmap.end())));
}

GgufVocab vocabFromGguf(const GgufFile& f)
{
    const fs::path& path = f.path();
    const auto need = [&](const char* key) -> const GgufValue& {
        const GgufValue* value = f.find(key);
        if (!value)
            throw inputError(path, std::string("missing key '") + key + "'");
        return *value;
    };
    GgufVocab v;
    const GgufValue& model = need("tokenizer.ggml.model");
    if (!model.asString())
        throw inputError(path, "tokenizer.ggml.model must be a STRING, found " + model.describe());
    v.model = *model.asString();
    if (v.model != "llama" && v.model != "gpt2")
        throw inputError(path, "tokenizer model '" + v.model + "' is not supported (llama and gpt2 are)");
    if (const GgufValue* pre = f.find("tokenizer.ggml.pre"); pre && pre->asString())
        v.pre = *pre->asString();
    else
        v.pre = v.model == "llama" ? "default" : "gpt-2"; // old files: GPT-2's vocabulary

    const GgufValue& tokens = need("tokenizer.ggml.tokens");
    if (!tokens.isArray() || tokens.elementType() != GgufValueType::String)
        throw inputError(path, "tokenizer.ggml.tokens must be an ARRAY of STRING, found " + tokens.describe());
    v.tokens = tokens.strings();
    const size_t n = v.tokens.size();
    if (n == 0 || n > size_t(std::numeric_limits<int32_t>::max()))
        throw inputError(path, "tokenizer.ggml.tokens has " + std::to_string(n) + " tokens");

    if (const GgufValue* types = f.find("tokenizer.ggml.token_type")) {
        const GgufValueType t = types->elementType();
        if (!types->isArray() || t == GgufValueType::String || t == GgufValueType::Float32
            || t == GgufValueType::Float64 || types->size() != n)
            throw inputError(path, "tokenizer.ggml.token_type must be an integer ARRAY with one entry per token, found "
                                       + types->describe());
        for (int64_t t : types->ints()) {
            if (t < 0 || t > 6)
                throw inputError(path, "tokenizer.ggml.token_type holds unknown type " + std::to_string(t));
            v.tokenTypes.push_back(int32_t(t));
        }
    } else {
        v.tokenTypes.assign(n, typeValue(GgufTokenType::Normal));
    }
    if (const GgufValue* scores = f.find("tokenizer.ggml.scores")) {
        const GgufValueType t = scores->elementType();
        if (!scores->isArray() || (t != GgufValueType::Float32 && t != GgufValueType::Float64) || scores->size() != n)
            throw inputError(path, "tokenizer.ggml.scores must be a float ARRAY with one entry per token, found "
                                       + scores->describe());
        v.scores.assign(scores->reals().begin(), scores->reals().end());
    } else if (v.model == "llama") {
        throw inputError(path, "missing key 'tokenizer.ggml.scores' (needed by a llama tokenizer)");
    }
    if (const GgufValue* merges = f.find("tokenizer.ggml.merges")) {
        if (!merges->isArray() || merges->elementType() != GgufValueType::String)
            throw inputError(path, "tokenizer.ggml.merges must be an ARRAY of STRING");
        v.merges = merges->strings();
    } else if (v.model == "gpt2") {
        throw inputError(path, "missing key 'tokenizer.ggml.merges' (needed by a gpt2 tokenizer)");
    }
    const auto id = [&](const char* key) -> std::optional<int32_t> {
        const GgufValue* value = f.find(key);
        if (!value)
            return std::nullopt;
        const auto x = value->asInt();
        if (!x)
            throw inputError(path, std::string(key) + " must be an integer, found " + value->describe());
        // llama.cpp writes -1 (as UINT32 0xFFFFFFFF in some files) for "none".
        if (*x < 0 || *x == 0xFFFFFFFFll)
            return std::nullopt;
        if (*x >= int64_t(n))
            throw inputError(path, std::string(key) + " = " + std::to_string(*x) + " is outside the "
                                       + std::to_string(n) + " tokens");
        return int32_t(*x);
    };
    v.bosId = id("tokenizer.ggml.bos_token_id");
    v.eosId = id("tokenizer.ggml.eos_token_id");
    v.unkId = id("tokenizer.ggml.unknown_token_id");
    v.padId = id("tokenizer.ggml.padding_token_id");
    const auto flag = [&](const char* key) -> std::optional<bool> {
        const GgufValue* value = f.find(key);
        if (!value)
            return std::nullopt;
        if (!value->asBool())
            throw inputError(path, std::string(key) + " must be a BOOL, found " + value->describe());
        return value->asBool();
    };
    v.addBos = flag("tokenizer.ggml.add_bos_token");
    v.addEos = flag("tokenizer.ggml.add_eos_token");
    v.addSpacePrefix = flag("tokenizer.ggml.add_space_prefix");
    v.removeExtraWhitespaces = flag("tokenizer.ggml.remove_extra_whitespaces");
    if (const GgufValue* charsmap = f.find("tokenizer.ggml.precompiled_charsmap")) {
        const GgufValueType t = charsmap->elementType();
        if (!charsmap->isArray() || (t != GgufValueType::UInt8 && t != GgufValueType::Int8))
            throw inputError(path, "tokenizer.ggml.precompiled_charsmap must be an ARRAY of UINT8, found "
                                       + charsmap->describe());
        for (int64_t b : charsmap->ints())
            v.precompiledCharsmap.push_back(char(uint8_t(b)));
    }
    if (const GgufValue* hf = f.find("tokenizer.huggingface.json")) {
        if (!hf->asString())
            throw inputError(path, "tokenizer.huggingface.json must be a STRING, found " + hf->describe());
        v.huggingFaceJson = *hf->asString();
    }
    return v;
}

void writeHfTokenizer(const GgufVocab& v, const fs::path& folder, const fs::path& source)
{
    json config = json::object();
    // llama.cpp's defaults when the keys are absent: SentencePiece adds BOS, BPE does not.
    config["add_bos_token"] = v.addBos.value_or(v.model == "llama");
    config["add_eos_token"] = v.addEos.value_or(false);
    const auto name = [&](const char* key, const std::optional<int32_t>& id) {
        if (id)
            config[key] = v.tokens.at(size_t(*id));
    };
    name("bos_token", v.bosId);
    name("eos_token", v.eosId);
    name("unk_token", v.unkId);
    name("pad_token", v.padId);

    if (!v.huggingFaceJson.empty()) {
        requireJsonDepth(v.huggingFaceJson, source, "tokenizer.huggingface.json");
        if (!json::accept(v.huggingFaceJson))
            throw inputError(source, "tokenizer.huggingface.json is not valid JSON");
        writeFileAtomically(folder / "tokenizer.json", v.huggingFaceJson);
    } else if (v.model == "llama") {
        ProtoWriter model;
        bool hasBytes = false;
        for (size_t i = 0; i < v.tokens.size(); ++i) {
            ProtoWriter piece;
            piece.bytesField(1, v.tokens[i]);
            piece.fixed32Field(2, v.scores.at(i));
            int32_t type = v.tokenTypes.at(i);
            if (type == typeValue(GgufTokenType::Undefined))
                type = typeValue(GgufTokenType::Normal);
            hasBytes = hasBytes || type == typeValue(GgufTokenType::Byte);
            if (type != typeValue(GgufTokenType::Normal)) // NORMAL is the proto default
                piece.varintField(3, uint64_t(type));
            model.bytesField(1, piece.bytes());
        }
        ProtoWriter trainer;
        trainer.varintField(3, 2); // model_type = BPE: llama.cpp merges by score, as SentencePiece BPE does
        trainer.varintField(4, v.tokens.size()); // vocab_size
        if (hasBytes)
            trainer.varintField(35, 1); // byte_fallback
        const auto pieceId = [&](uint32_t idField, uint32_t pieceField, const std::optional<int32_t>& id) {
            // -1 (no such piece) is a negative int32: 10-byte varint in protobuf.
            trainer.varintField(idField, id ? uint64_t(*id) : uint64_t(int64_t(-1)));
            if (id)
                trainer.bytesField(pieceField, v.tokens[size_t(*id)]);
        };
        pieceId(40, 45, v.unkId);
        pieceId(41, 46, v.bosId);
        pieceId(42, 47, v.eosId);
        pieceId(43, 48, v.padId);
        model.bytesField(2, trainer.bytes());
        ProtoWriter normalizer;
        normalizer.bytesField(1, v.precompiledCharsmap.empty() ? "identity" : "precompiled");
        if (!v.precompiledCharsmap.empty())
            normalizer.bytesField(2, v.precompiledCharsmap);
        normalizer.varintField(3, v.addSpacePrefix.value_or(true) ? 1 : 0);                 // add_dummy_prefix
        normalizer.varintField(4, v.removeExtraWhitespaces.value_or(false) ? 1 : 0);        // remove_extra_whitespaces
        normalizer.varintField(5, 1);                                                        // escape_whitespaces
        model.bytesField(3, normalizer.bytes());
        writeFileAtomically(folder / "tokenizer.model", model.bytes());
    } else {
        json pre;
        const std::string_view regex = byteLevelRegex(v.pre, source);
        if (regex.empty()) {
            pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
        } else {
            pre = {{"type", "Sequence"},
                   {"pretokenizers",
                    {{{"type", "Split"},
                      {"pattern", {{"Regex", std::string(regex)}}},
                      {"behavior", "Isolated"},
                      {"invert", false}},
                     {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
        }
        json vocab = json::object();
        json added = json::array();
        for (size_t i = 0; i < v.tokens.size(); ++i) {
            vocab[v.tokens[i]] = i;
            const int32_t type = v.tokenTypes.at(i);
            if (type == typeValue(GgufTokenType::Control) || type == typeValue(GgufTokenType::UserDefined))
                added.push_back({{"id", i},
                                 {"content", v.tokens[i]},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", type == typeValue(GgufTokenType::Control)}});
        }
        json merges = json::array();
        for (const std::string& m : v.merges)
            merges.push_back(m);
        const json tokenizer = {
            {"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", pre},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"ignore_merges", regex == kLlama3Regex},
              {"vocab", vocab},
              {"merges", merges}}}};
        // Invalid UTF-8 in a token would make dump() throw: replace it (tokens are UTF-8 in
        // byte-level vocabularies, so this only guards against a corrupt file).
        writeFileAtomically(folder / "tokenizer.json", tokenizer.dump(-1, ' ', false, json::error_handler_t::replace));
    }
    writeFileAtomically(folder / "tokenizer_config.json", config.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

} // namespace sparselab::io
