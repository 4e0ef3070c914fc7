#pragma once
// A Hugging Face checkpoint folder's weights: `model.safetensors`, or shards listed by
// `model.safetensors.index.json` ({"weight_map": {tensor name: shard file}}).
//
// Aliases: a file's `__metadata__` may map a tensor name to another stored tensor name
// (TinyStories-656K stores only `lm_head.weight` and maps `model.embed_tokens.weight` to it);
// such names resolve to the stored tensor. Shard names that are absolute, contain "..",
// or otherwise resolve outside the folder are rejected (InputError naming the index file).
// A folder with neither file gives InputError naming the folder.
//
// Model files are data, never code: PyTorch pickle weights (pytorch_model.bin, *.pt, *.pth,
// *.ckpt, *.pkl) are never opened — unpickling runs arbitrary code. A folder that has only
// those, or an index naming such a shard, is an InputError saying so. Shard names must end
// in ".safetensors".

#include "io/safetensors.h"

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sparselab::io {

// True for file names whose extension marks PyTorch pickle weights (.bin .pt .pth .ckpt
// .pkl .pickle, any case).
[[nodiscard]] bool isPickleWeightsName(const std::filesystem::path& file);
// The one-line reason pickle files are refused, for InputErrors about them.
[[nodiscard]] std::string pickleRefusal();

class Checkpoint {
public:
    static Checkpoint open(const std::filesystem::path& folder);

    [[nodiscard]] const std::filesystem::path& folder() const { return m_folder; }
    [[nodiscard]] bool contains(std::string_view name) const;
    // InputError "<folder>: tensor '<name>' is missing" when absent.
    [[nodiscard]] TensorView view(std::string_view name) const;
    [[nodiscard]] const TensorInfo& info(std::string_view name) const;
    // Every stored tensor name plus alias names, sorted.
    [[nodiscard]] std::vector<std::string> names() const;
    // Stored tensor names only (no aliases), in file order, shard by shard.
    [[nodiscard]] std::vector<std::string> storedNames() const;
    // The safetensors file holding `name` (after alias resolution).
    [[nodiscard]] const SafetensorsFile& fileOf(std::string_view name) const;
    [[nodiscard]] const std::vector<SafetensorsFile>& files() const { return m_files; }
    // Alias name -> stored name.
    [[nodiscard]] const std::map<std::string, std::string, std::less<>>& aliases() const { return m_aliases; }
    // True when loaded from a model.safetensors.index.json.
    [[nodiscard]] bool sharded() const { return m_sharded; }

private:
    // (file, tensor) of a stored name or alias; InputError naming the folder when absent.
    [[nodiscard]] const std::pair<size_t, size_t>& locate(std::string_view name) const;

    std::filesystem::path m_folder;
    std::vector<SafetensorsFile> m_files;
    std::map<std::string, std::pair<size_t, size_t>, std::less<>> m_where; // name -> (file, tensor)
    std::map<std::string, std::string, std::less<>> m_aliases;
    bool m_sharded = false;
};

} // namespace sparselab::io
