#include "io/checkpoint.h"

#include "util/errors.h"
#include "util/json_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace sparselab::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// A shard name from the index must name a file inside the model folder. Checked lexically
// first (absolute paths, "..", empty), then after resolving symlinks, so a link planted in
// the folder cannot point the loader elsewhere either.
void checkShardName(const fs::path& folder, const fs::path& indexFile, const std::string& shard)
{
    const fs::path p(shard);
    if (isPickleWeightsName(p))
        throw inputError(indexFile, "shard '" + shard + "' is a PyTorch pickle file: " + pickleRefusal());
    bool bad = shard.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory();
    for (const fs::path& part : p)
        bad = bad || part == "..";
    if (!bad) {
        std::error_code ec;
        const fs::path base = fs::weakly_canonical(folder, ec);
        const fs::path resolved = fs::weakly_canonical(folder / p, ec);
        if (!ec) {
            const auto rel = resolved.lexically_relative(base);
            bad = rel.empty() || *rel.begin() == "..";
        }
    }
    if (bad)
        throw inputError(indexFile, "shard '" + shard + "' lies outside the model folder");
    if (p.extension() != ".safetensors")
        throw inputError(indexFile, "shard '" + shard + "' is not a .safetensors file");
}

} // namespace

bool isPickleWeightsName(const fs::path& file)
{
    std::string ext = file.extension().string();
    for (char& c : ext)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    return ext == ".bin" || ext == ".pt" || ext == ".pth" || ext == ".ckpt" || ext == ".pkl" || ext == ".pickle";
}

std::string pickleRefusal()
{
    return "SparseLab never loads pickle weights (unpickling can run arbitrary code); "
           "convert the model to safetensors first";
}

Checkpoint Checkpoint::open(const fs::path& folder)
{
    std::error_code ec;
    if (!fs::is_directory(folder, ec))
        throw inputError(folder, "not a model folder (expected a folder with model.safetensors)");

    Checkpoint ckpt;
    ckpt.m_folder = folder;
    const fs::path indexFile = folder / kIndexFile;
    const fs::path singleFile = folder / kSingleFile;

    // Which tensor each index entry claims to be in: checked against the shards below.
    std::vector<std::pair<std::string, std::string>> claimed;
    if (fs::exists(indexFile, ec)) {
        ckpt.m_sharded = true;
        nlohmann::json index = readJsonFile(indexFile);
        if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
            throw inputError(indexFile, "missing object 'weight_map'");
        std::vector<std::string> shards;
        for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
            if (!it.value().is_string())
                throw inputError(indexFile, "weight_map entry '" + it.key() + "' is not a file name");
            const std::string raw = it.value().get<std::string>();
            checkShardName(folder, indexFile, raw);
            // "./a.safetensors" and "a.safetensors" are one shard, opened once.
            const std::string shard = fs::path(raw).lexically_normal().string();
            claimed.emplace_back(it.key(), shard);
            if (std::find(shards.begin(), shards.end(), shard) == shards.end())
                shards.push_back(shard);
        }
        if (shards.empty())
            throw inputError(indexFile, "weight_map is empty");
        std::sort(shards.begin(), shards.end()); // shard by shard: model-00001-of-… first
        for (const std::string& shard : shards) {
            if (!fs::exists(folder / shard, ec))
                throw inputError(indexFile, "shard '" + shard + "' does not exist");
            ckpt.m_files.push_back(SafetensorsFile::open(folder / shard));
        }
    } else if (fs::exists(singleFile, ec)) {
        ckpt.m_files.push_back(SafetensorsFile::open(singleFile));
    } else {
        for (const char* pickled : {"pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth"})
            if (fs::exists(folder / pickled, ec))
                throw inputError(folder / pickled, std::string("PyTorch pickle weights and no model.safetensors: ")
                                                       + pickleRefusal());
        throw inputError(folder, "no model.safetensors or model.safetensors.index.json in this folder");
    }

    for (size_t f = 0; f < ckpt.m_files.size(); ++f) {
        const auto& tensors = ckpt.m_files[f].tensors();
        for (size_t t = 0; t < tensors.size(); ++t) {
            if (!ckpt.m_where.emplace(tensors[t].name, std::make_pair(f, t)).second)
                throw inputError(ckpt.m_files[f].path(), "tensor '" + tensors[t].name
                                                             + "' is also stored in another shard");
        }
    }
    for (const auto& [name, shard] : claimed) {
        const auto it = ckpt.m_where.find(name);
        if (it == ckpt.m_where.end() || ckpt.m_files[it->second.first].path() != folder / shard)
            throw inputError(indexFile, "tensor '" + name + "' is listed in shard '" + shard + "' but not stored there");
    }

    // safetensors drops tensors that share storage and records "dropped name → kept name"
    // in __metadata__. Other metadata ("format": "pt") never names a stored tensor.
    for (const SafetensorsFile& file : ckpt.m_files) {
        for (const auto& [key, value] : file.metadata()) {
            if (!ckpt.m_where.contains(key) && ckpt.m_where.contains(value))
                ckpt.m_aliases.emplace(key, value);
        }
    }
    return ckpt;
}

bool Checkpoint::contains(std::string_view name) const
{
    return m_where.contains(name) || m_aliases.contains(name);
}

const std::pair<size_t, size_t>& Checkpoint::locate(std::string_view name) const
{
    auto it = m_where.find(name);
    if (it == m_where.end()) {
        const auto alias = m_aliases.find(name);
        if (alias != m_aliases.end())
            it = m_where.find(alias->second);
    }
    if (it == m_where.end())
        throw inputError(m_folder, "tensor '" + std::string(name) + "' is missing");
    return it->second;
}

const TensorInfo& Checkpoint::info(std::string_view name) const
{
    const auto& [file, tensor] = locate(name);
    return m_files[file].tensors()[tensor];
}

TensorView Checkpoint::view(std::string_view name) const
{
    const auto& [file, tensor] = locate(name);
    return m_files[file].view(m_files[file].tensors()[tensor]);
}

const SafetensorsFile& Checkpoint::fileOf(std::string_view name) const
{
    return m_files[locate(name).first];
}

std::vector<std::string> Checkpoint::names() const
{
    std::vector<std::string> out;
    out.reserve(m_where.size() + m_aliases.size());
    for (const auto& [name, where] : m_where)
        out.push_back(name);
    for (const auto& [name, target] : m_aliases)
        out.push_back(name);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> Checkpoint::storedNames() const
{
    std::vector<std::string> out;
    for (const SafetensorsFile& file : m_files)
        for (const TensorInfo& t : file.tensors())
            out.push_back(t.name);
    return out;
}

} // namespace sparselab::io
