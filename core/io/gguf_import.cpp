#include "io/gguf_import.h"

#include "io/gguf.h"
#include "io/gguf_llama.h"
#include "io/gguf_vocab.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>

#include <unistd.h>

namespace sparselab::io {

namespace fs = std::filesystem;
using nlohmann::json;

bool isGgufFile(const fs::path& path)
{
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        return false;
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

namespace {

json configJson(const LlamaGguf& m)
{
    const model::ModelConfig& c = m.config;
    json j = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", c.hiddenSize},
              {"intermediate_size", c.intermediateSize},
              {"num_hidden_layers", c.numLayers},
              {"num_attention_heads", c.numHeads},
              {"num_key_value_heads", c.numKvHeads},
              {"vocab_size", c.vocabSize},
              {"max_position_embeddings", c.maxPositions},
              {"rms_norm_eps", c.normEps},
              {"rope_theta", c.ropeTheta},
              {"hidden_act", "silu"},
              {"tie_word_embeddings", c.tieWordEmbeddings},
              {"attention_bias", c.attentionBias},
              {"mlp_bias", c.mlpBias},
              {"torch_dtype", "float32"}};
    if (c.headDim * c.numHeads != c.hiddenSize)
        j["head_dim"] = c.headDim;
    if (m.bosId)
        j["bos_token_id"] = *m.bosId;
    if (m.eosId)
        j["eos_token_id"] = *m.eosId;
    return j;
}

// The safetensors dtype a GGUF tensor becomes: F16/BF16 stay, everything else is float32.
const char* safetensorsDtype(GgmlType t)
{
    return t == GgmlType::F16 ? "F16" : t == GgmlType::BF16 ? "BF16" : "F32";
}

uint64_t safetensorsBytes(const LlamaTensorEntry& e)
{
    uint64_t n = 1;
    for (int64_t d : e.hfShape)
        n *= uint64_t(d);
    return n * (e.type == GgmlType::F16 || e.type == GgmlType::BF16 ? 2 : 4);
}

// Streams the tensors into a safetensors file (8-byte header length, JSON header padded with
// spaces to a multiple of 8, data in header order), one tensor in memory at a time.
void writeSafetensorsStreaming(const GgufFile& f, const LlamaGguf& m, const fs::path& out,
                               const ProgressCallback& progress, const CancelToken* cancel)
{
    json header = json::object();
    uint64_t offset = 0;
    for (const LlamaTensorEntry& e : m.tensors) {
        const uint64_t n = safetensorsBytes(e);
        header[e.hfName] = {{"dtype", safetensorsDtype(e.type)}, {"shape", e.hfShape}, {"data_offsets", {offset, offset + n}}};
        offset += n;
    }
    header["__metadata__"] = {{"format", "pt"}, {"source", "gguf"}};
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');

    std::ofstream os(out, std::ios::binary | std::ios::trunc);
    if (!os)
        throw inputError(out, std::string("cannot create file: ") + std::strerror(errno));
    const uint64_t length = text.size();
    os.write(reinterpret_cast<const char*>(&length), 8);
    os.write(text.data(), std::streamsize(text.size()));

    ProgressReporter reporter(progress, "gguf import", int64_t(m.tensors.size()));
    for (size_t i = 0; i < m.tensors.size(); ++i) {
        throwIfCancelled(cancel);
        reporter.report(int64_t(i), m.tensors[i].hfName);
        const LlamaTensorEntry& e = m.tensors[i];
        if (e.type == GgmlType::F16 || e.type == GgmlType::BF16) {
            const GgufTensorInfo* info = f.findTensor(e.ggufName);
            const std::span<const std::byte> raw = f.tensorData(*info);
            std::vector<std::byte> bytes(raw.begin(), raw.end());
            if (e.ropeHeads > 0)
                permuteRopeRows(bytes, e.hfShape[0], bytes.size() / size_t(e.hfShape[0]), e.ropeHeads, false);
            os.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        } else {
            const std::vector<float> values = readLlamaTensor(f, e);
            os.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
        }
        if (!os)
            throw inputError(out, "write failed (disk full?)");
    }
    reporter.report(int64_t(m.tensors.size()));
    os.flush();
    if (!os)
        throw inputError(out, "write failed (disk full?)");
}

} // namespace

void importGgufAsHfFolder(const fs::path& gguf, const fs::path& outFolder, const ProgressCallback& progress,
                          const CancelToken* cancel)
{
    const GgufFile file = GgufFile::open(gguf);
    const LlamaGguf model = describeLlamaGguf(file);
    std::error_code ec;
    if (fs::exists(outFolder, ec))
        throw inputError(outFolder, "already exists; the GGUF import writes a new folder");

    const fs::path temp = temporarySibling(outFolder);
    try {
        fs::create_directories(temp);
        writeFileAtomically(temp / "config.json", configJson(model).dump(2) + "\n");
        writeSafetensorsStreaming(file, model, temp / "model.safetensors", progress, cancel);
        if (model.vocab)
            writeHfTokenizer(*model.vocab, temp, gguf);
        const json source = {{"gguf", fs::absolute(gguf).string()}, {"name", model.name}};
        writeFileAtomically(temp / "sparselab_source.json", source.dump(2) + "\n");
        fs::rename(temp, outFolder);
    } catch (const fs::filesystem_error& e) {
        fs::remove_all(temp, ec);
        throw inputError(outFolder, std::string("cannot write the imported model: ") + e.code().message());
    } catch (...) {
        fs::remove_all(temp, ec);
        throw;
    }
}

namespace {

// Folders converted in this process, removed at exit (static destruction).
class ImportCache {
public:
    ~ImportCache()
    {
        std::error_code ec;
        for (const auto& [key, folder] : m_folders)
            fs::remove_all(folder.parent_path(), ec);
    }

    fs::path folderFor(const fs::path& gguf)
    {
        const fs::path canonical = fs::canonical(gguf);
        const auto key = std::make_tuple(canonical.string(), fs::file_size(canonical),
                                         fs::last_write_time(canonical).time_since_epoch().count());
        const std::lock_guard lock(m_mutex);
        if (const auto it = m_folders.find(key); it != m_folders.end())
            return it->second;
        const fs::path root = scratchFolder()
                              / ("sparselab-gguf-" + std::to_string(::getpid()) + "-" + std::to_string(m_next++));
        std::error_code ec;
        fs::remove_all(root, ec);
        if (fs::create_directories(root, ec); ec)
            throw inputError(root, "cannot create the folder for the GGUF import: " + ec.message());
        const fs::path folder = root / canonical.stem();
        try {
            importGgufAsHfFolder(canonical, folder);
            // The import's config.json is read back now, so that anything it refuses is
            // reported naming the GGUF file, not a temporary file that is gone by then.
            (void)model::ModelConfig::load(folder);
        } catch (const InputError& e) {
            fs::remove_all(root, ec);
            std::string message = e.what();
            for (size_t at = message.find(folder.string()); at != std::string::npos;
                 at = message.find(folder.string(), at))
                message.replace(at, folder.string().size(), canonical.string() + " (imported)");
            throw InputError(message);
        } catch (...) {
            fs::remove_all(root, ec);
            throw;
        }
        m_folders.emplace(key, folder);
        return folder;
    }

private:
    std::mutex m_mutex;
    std::map<std::tuple<std::string, uintmax_t, int64_t>, fs::path> m_folders;
    int m_next = 0;
};

ImportCache& importCache()
{
    static ImportCache cache;
    return cache;
}

} // namespace

fs::path resolveModelPath(const fs::path& model)
{
    if (!isGgufFile(model))
        return model;
    return importCache().folderFor(model);
}

} // namespace sparselab::io
