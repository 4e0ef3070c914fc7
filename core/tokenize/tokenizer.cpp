#include "tokenize/tokenizer.h"

#include "tokenize/bpe_tokenizer.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <cstdlib>

namespace sparselab::tokenize {

namespace fs = std::filesystem;

std::optional<int32_t> Tokenizer::tokenId(std::string_view token) const
{
    for (int32_t id = 0, n = vocabSize(); id < n; ++id)
        if (tokenText(id) == token)
            return id;
    return std::nullopt;
}

namespace {
thread_local const CancelToken* t_encodeCancel = nullptr;
thread_local uint32_t t_encodePolls = 0;
} // namespace

EncodeCancelScope::EncodeCancelScope(const CancelToken* cancel) : m_previous(t_encodeCancel)
{
    t_encodeCancel = cancel;
}

EncodeCancelScope::~EncodeCancelScope() { t_encodeCancel = m_previous; }

void pollEncodeCancel()
{
    if (t_encodeCancel && (++t_encodePolls & 255u) == 0)
        throwIfCancelled(t_encodeCancel);
}

std::vector<int32_t> Tokenizer::encodeForModel(std::string_view text, const CancelToken* cancel) const
{
    const EncodeCancelScope scope(cancel);
    throwIfCancelled(cancel);
    std::vector<int32_t> ids = encode(text);
    throwIfCancelled(cancel);
    if (addsBos())
        ids.insert(ids.begin(), *m_bosId);
    return ids;
}

namespace {

// The folder's optional JSON side files; absent files read as null.
nlohmann::json readOptionalJson(const fs::path& file)
{
    std::error_code ec;
    if (!fs::exists(file, ec))
        return nullptr;
    nlohmann::json j = readJsonFile(file);
    if (!j.is_object())
        throw inputError(file, "expected a JSON object");
    return j;
}

// A special-token entry: "text", {"content": "text", ...}, or null/absent.
std::optional<std::string> specialTokenName(const nlohmann::json& config, const char* key)
{
    if (!config.is_object())
        return std::nullopt;
    const auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return std::nullopt;
    if (it->is_string())
        return it->get<std::string>();
    if (it->is_object()) {
        const auto content = it->find("content");
        if (content != it->end() && content->is_string())
            return content->get<std::string>();
    }
    return std::nullopt;
}

// Names of every special token the side files mention (for vocab.json folders, whose
// specials live only there).
std::vector<std::string> allSpecialTokenNames(const nlohmann::json& config, const nlohmann::json& map)
{
    std::vector<std::string> names;
    for (const nlohmann::json* j : {&config, &map}) {
        if (!j->is_object())
            continue;
        for (const char* key :
            {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"})
            if (auto name = specialTokenName(*j, key))
                names.push_back(*name);
        if (const auto extra = j->find("additional_special_tokens"); extra != j->end() && extra->is_array())
            for (const auto& e : *extra) {
                if (e.is_string())
                    names.push_back(e.get<std::string>());
                else if (e.is_object() && e.contains("content") && e["content"].is_string())
                    names.push_back(e["content"].get<std::string>());
            }
        if (const auto decoder = j->find("added_tokens_decoder"); decoder != j->end() && decoder->is_object())
            for (const auto& [id, e] : decoder->items())
                if (e.is_object() && e.value("special", false) && e.contains("content") && e["content"].is_string())
                    names.push_back(e["content"].get<std::string>());
    }
    return names;
}

// Applies tokenizer_config.json / special_tokens_map.json on top of the tokenizer's own BOS
// convention. tokenizer_config.json wins because that is what transformers reads.
void applySpecialTokenConfig(Tokenizer& tokenizer, const fs::path& folder)
{
    const fs::path configFile = folder / "tokenizer_config.json";
    const fs::path mapFile = folder / "special_tokens_map.json";
    const nlohmann::json config = readOptionalJson(configFile);
    const nlohmann::json map = readOptionalJson(mapFile);

    if (auto* bpe = dynamic_cast<BpeTokenizer*>(&tokenizer))
        for (const std::string& name : allSpecialTokenNames(config, map))
            bpe->addSpecialToken(name);

    bool addBos = tokenizer.addsBos();
    fs::path addBosSource = configFile;
    if (config.is_object() && config.contains("add_bos_token")) {
        if (!config["add_bos_token"].is_boolean())
            throw inputError(configFile, "add_bos_token must be true or false");
        addBos = config["add_bos_token"].get<bool>();
    }

    std::optional<int32_t> bosId = tokenizer.bosId();
    fs::path bosSource = configFile;
    std::optional<std::string> bosName = specialTokenName(config, "bos_token");
    if (!bosName) {
        bosName = specialTokenName(map, "bos_token");
        bosSource = mapFile;
    }
    if (bosName) {
        if (auto id = tokenizer.tokenId(*bosName))
            bosId = id;
        else if (addBos)
            throw inputError(bosSource, "bos_token '" + *bosName + "' is not in the vocabulary");
    }
    if (addBos && !bosId)
        throw inputError(addBosSource, "add_bos_token is true but no BOS token is named");
    tokenizer.setBos(bosId, addBos);

    std::optional<std::string> eosName = specialTokenName(config, "eos_token");
    if (!eosName)
        eosName = specialTokenName(map, "eos_token");
    if (eosName)
        if (auto id = tokenizer.tokenId(*eosName))
            tokenizer.setEos(id);
}

} // namespace

std::unique_ptr<Tokenizer> loadTokenizerJson(const fs::path& tokenizerJson)
{
    return BpeTokenizer::fromTokenizerJson(tokenizerJson);
}

std::unique_ptr<Tokenizer> loadBpeVocabMerges(const fs::path& vocabJson, const fs::path& mergesTxt)
{
    return BpeTokenizer::fromVocabMerges(vocabJson, mergesTxt);
}

std::unique_ptr<Tokenizer> loadTokenizer(const fs::path& modelFolder)
{
    std::error_code ec;
    if (!fs::is_directory(modelFolder, ec))
        throw inputError(modelFolder, "not a folder");
    std::unique_ptr<Tokenizer> tokenizer;
    if (fs::exists(modelFolder / "tokenizer.json", ec))
        tokenizer = loadTokenizerJson(modelFolder / "tokenizer.json");
    else if (fs::exists(modelFolder / "tokenizer.model", ec)) {
        const char* backend = std::getenv("SPARSELAB_SENTENCEPIECE");
        tokenizer = backend && std::string_view(backend) == "library"
                        ? loadSentencePieceModelWithLibrary(modelFolder / "tokenizer.model")
                        : loadSentencePieceModel(modelFolder / "tokenizer.model");
    }
    else if (fs::exists(modelFolder / "vocab.json", ec) && fs::exists(modelFolder / "merges.txt", ec))
        tokenizer = loadBpeVocabMerges(modelFolder / "vocab.json", modelFolder / "merges.txt");
    else
        throw inputError(modelFolder,
            "no tokenizer found (tokenizer.json, tokenizer.model or "
            "vocab.json + merges.txt)");
    applySpecialTokenConfig(*tokenizer, modelFolder);
    return tokenizer;
}

} // namespace sparselab::tokenize
