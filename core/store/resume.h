#pragma once
// Resume checkpoints for a prune run (no LibTorch, no Qt).
//
// While `prune --workspace W.h5` runs, every finished decoder block is checkpointed into the
// folder "W.h5.resume/" beside the workspace (the workbench's runs use a folder of their own
// in the user's cache; workflow/compression_run.h), one HDF5 file per block, each written
// atomically (temporary name, fsync, rename), so a kill -9 at any moment leaves only whole
// checkpoints. A restart with the same key (a hash of everything that determines the result:
// model file hashes, calibration text hash and settings, recipe, layer filter, true-sequential,
// device, thread count, SparseLab version) loads blocks 0..k−1, the pipeline recomputes the
// inputs of block k through them and carries on; the export is then bit for bit the one an
// uninterrupted run writes. When the run has been recorded in the workspace the folder is
// removed. Checkpoints with a different key are stale: the run starts over and replaces them.
//
// ## Block file "block_00003.h5"
//   /                    attrs: format = "sparselab-resume", format_version = 1, key, block
//   /layers/<column>     the block's per-layer table, as /runs/<id>/layers in workspace.h
//   /weights/<name> [rows, cols] f32   compressed weight of each linear layer of the block,
//                        <name> the checkpoint tensor name ("model.layers.3.mlp.up_proj.weight"),
//                        [out, in] as the engine holds it
//
// Thread-safety: as workspace.h (one process-wide HDF5 lock).

#include "store/workspace.h"

#include <filesystem>
#include <string>
#include <vector>

namespace sparselab::store {

struct BlockCheckpoint {
    struct Weight {
        std::string name;             // checkpoint tensor name
        int64_t rows = 0, cols = 0;
        std::vector<float> values;    // [rows, cols] row-major
        bool operator==(const Weight&) const = default;
    };
    int64_t block = 0;
    std::vector<solve::LayerRecord> layers;  // the block's records, pipeline order
    std::vector<Weight> weights;
    bool operator==(const BlockCheckpoint&) const = default;
};

class ResumeStore {
public:
    // Checkpoints of `workspace` under `key` (see resumeKey), in checkpointFolder(workspace).
    ResumeStore(const std::filesystem::path& workspace, std::string key);
    // Checkpoints in `folder` itself (the workbench's runs, which have no workspace file).
    [[nodiscard]] static ResumeStore inFolder(const std::filesystem::path& folder, std::string key);
    // "W.h5.resume" beside workspace "W.h5".
    [[nodiscard]] static std::filesystem::path checkpointFolder(const std::filesystem::path& workspace);

    [[nodiscard]] const std::filesystem::path& folder() const { return m_folder; }
    [[nodiscard]] const std::string& key() const { return m_key; }

    // k such that blocks 0..k−1 all have a readable checkpoint carrying this key (0 if none).
    [[nodiscard]] int64_t finishedBlocks() const;
    // True when the folder holds checkpoints (of any key).
    [[nodiscard]] bool hasCheckpoints() const;
    // Writes the block's checkpoint atomically (creates the folder). InputError naming the
    // file when it cannot be written.
    void saveBlock(const BlockCheckpoint& checkpoint) const;
    // Reads it back; InputError naming the block file when missing, foreign or malformed.
    [[nodiscard]] BlockCheckpoint loadBlock(int64_t block) const;
    // Removes the whole folder (no error if absent).
    void clear() const;

    [[nodiscard]] std::filesystem::path blockFile(int64_t block) const;

private:
    struct InFolder {};
    ResumeStore(InFolder, std::filesystem::path folder, std::string key);
    std::filesystem::path m_folder;
    std::string m_key;
};

// Hex SHA-256 of `canonicalSettings` (callers pass a JSON dump with sorted keys).
[[nodiscard]] std::string resumeKey(const std::string& canonicalSettings);

} // namespace sparselab::store
