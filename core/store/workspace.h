#pragma once
// Workspace files: one HDF5 file (`.h5`) that keeps everything a user did with one model —
// the model's identity, the calibration and evaluation settings, and every run with its
// results — so results can be reopened, compared, merged and reported. No LibTorch, no Qt.
//
// ## File layout (format "sparselab-workspace", format_version 2)
// Strings are variable-length UTF-8; scalars are attributes; arrays are datasets.
//
//   /                                 attrs: format = "sparselab-workspace", format_version (i64),
//                                            created_utc, modified_utc, sparselab_version
//   /model                            attrs: path, architecture ("LlamaForCausalLM", ...),
//                                            model_type, num_blocks, hidden_size, vocab_size,
//                                            parameters, dtype
//   /model/file_names    [F] string   files of the model folder (sorted)
//   /model/file_sha256   [F] string   hex SHA-256 of each, same order
//   /calibration                      attrs: file, sha256 (of the text), tokens, nsamples,
//                                            seqlen, seed                    (optional group)
//   /evaluation                       attrs: file, sha256, tokens, seqlen, max_windows (optional)
//   /runs/<id>                        one group per run, id "run_0001", "run_0002", ... (creation
//                                     order); attrs: id, label, kind ("prune", "eval", ...),
//                                     created_utc, status ("complete"), recipe (JSON text),
//                                     layer_filter (JSON array text), true_sequential (i64 0/1),
//                                     linear_sparsity, export_path, size_bytes (i64, -1 unknown)
//   /runs/<id>/calibration            same attrs as /calibration (what this run used)
//   /runs/<id>/evaluation             same attrs as /evaluation (optional)
//   /runs/<id>/timings                attrs: prune_seconds, eval_seconds, export_seconds,
//                                            total_seconds
//   /runs/<id>/provenance             attrs: sparselab_version, torch_version, hdf5_version,
//                                            compiler, os, host, cpu, cpu_count, threads, device,
//                                            cpu_kernels (e.g. "OpenBLAS SkylakeX, ATen avx512";
//                                            absent in files written before it, read as "")
//   /runs/<id>/layers/<column> [L]    the per-layer table (solve::LayerRecord), one 1-D dataset
//                                     per column, rows in pipeline order: name, kind, method
//                                     ("dense" for untouched layers) (string); block, rows,
//                                     cols, nm_n, nm_m, bits, group_size, blocksize,
//                                     damp_raises, dead_inputs (i64); dense, symmetric,
//                                     act_order, static_groups, fp16_scale, signed_scale (u8);
//                                     target_sparsity (N/M for N:M, 0 when dense), damp,
//                                     sparsity, loss, rel_output_error, damp_used, seconds (f64)
//   /runs/<id>/masks/<layer name> [ceil(rows·cols/8)] u8
//                                     bit-packed mask, 1 = pruned, row-major flat index i in
//                                     byte i/8 at bit i%8 (LSB first: numpy
//                                     `np.unpackbits(a, bitorder="little")[:rows*cols]`);
//                                     attrs rows, cols, bitorder = "little"
//   /runs/<id>/perplexity_before, /runs/<id>/perplexity_after   (optional groups)
//                                     attrs: perplexity, tokens, windows, seqlen, seconds
//     .../window_loss  [W] f64        mean NLL (nats) per window
//     .../token_nll    [W, seqlen-1] f32   NLL (nats) of each predicted token, window-major
//   /runs/<id>/extra/<path>           caller-defined groups (ExtraGroup) belonging to the run
//   /<other>/...                      caller-defined workspace-level groups (ExtraGroup), e.g.
//                                     /sweeps/sweep_0001, /sensitivity/scan_0001. The names
//                                     model, calibration, evaluation and runs are reserved.
//
// h5py:  f = h5py.File("W.h5"); f["runs/run_0001/layers/loss"][:];
//        f["runs/run_0001"].attrs["recipe"]
//
// ## Writing
// Every write is atomic: the new file is produced at a temporary sibling (the existing
// groups are copied over by HDF5's H5Ocopy, then the change is written), fsync'ed and renamed
// over the target. A crash or kill -9 leaves either the old or the new file, never a torn one.
// A write never modifies the source file in place. Writes cost one copy of the file.
//
// ## Errors
// Opening a file that is missing, not HDF5, or HDF5 without the workspace marker/version,
// or malformed inside (missing or mistyped field): InputError with one line
// "<file>: <problem>". HDF5's own error stack printing is switched off.
//
// Thread-safety: the HDF5 library (Debian, serial build) is not thread-safe; every function
// here takes one process-wide lock, so calls from several threads are serialised.

#include "solve/layer_record.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace sparselab::store {

// Version 2 (the one-record redesign): the per-layer table is one solve::LayerRecord per row in
// canonical form (solve::recordedOptions) and always has the four GPTQ flag columns
// (act_order, static_groups, fp16_scale, signed_scale); a version-2 file without one is
// malformed. Version 1 files are still read: a flag column they lack reads as false (what
// version 1 wrote when it did not store them), and their options are brought to canonical form.
// Files are written in version 2.
inline constexpr int64_t kFormatVersion = 2;
inline constexpr int64_t kOldestReadableFormatVersion = 1;
inline constexpr const char* kFormatName = "sparselab-workspace";

struct ModelIdentity {
    std::string path;                              // absolute model folder (or file)
    std::string architecture;                      // e.g. "LlamaForCausalLM"
    std::string modelType;                         // config's model_type, e.g. "llama"
    int64_t numBlocks = 0;
    int64_t hiddenSize = 0;
    int64_t vocabSize = 0;
    int64_t parameters = 0;                        // 0 = unknown
    std::string dtype;                             // on-disk dtype, e.g. "F32"
    std::map<std::string, std::string> fileSha256; // file name in the folder → hex SHA-256
    bool operator==(const ModelIdentity&) const = default;
};

struct CalibrationSettings {
    std::string file;                              // absolute path of the text
    std::string sha256;                            // hex SHA-256 of the text's bytes
    int64_t tokens = 0;                            // tokens in the whole text
    int64_t nsamples = 0;
    int64_t seqlen = 0;
    uint64_t seed = 0;
    bool operator==(const CalibrationSettings&) const = default;
};

struct EvaluationSettings {
    std::string file;
    std::string sha256;
    int64_t tokens = 0;
    int64_t seqlen = 0;
    int64_t maxWindows = 0;                        // 0 = all windows
    bool operator==(const EvaluationSettings&) const = default;
};

// A bit-packed boolean matrix (true = pruned). Byte layout as documented above.
struct PackedMask {
    int64_t rows = 0, cols = 0;
    std::vector<uint8_t> bytes;                    // ceil(rows·cols / 8) bytes

    // From a row-major [rows, cols] array of 0/1 bytes (any nonzero = pruned).
    static PackedMask pack(const uint8_t* values, int64_t rows, int64_t cols);
    [[nodiscard]] std::vector<uint8_t> unpack() const; // row-major 0/1, rows·cols bytes
    [[nodiscard]] bool at(int64_t row, int64_t col) const;
    [[nodiscard]] int64_t countPruned() const;
    bool operator==(const PackedMask&) const = default;
};


struct PerplexityRecord {
    double perplexity = 0.0;
    int64_t tokens = 0;
    int64_t windows = 0;
    int64_t seqlen = 0;
    double seconds = 0.0;
    std::vector<double> windowLoss;  // [windows] mean NLL (nats)
    std::vector<float> tokenNll;     // [windows·(seqlen−1)] window-major; may be empty
    bool operator==(const PerplexityRecord&) const = default;
};

struct Timings {
    double pruneSeconds = 0.0;
    double evalSeconds = 0.0;
    double exportSeconds = 0.0;
    double totalSeconds = 0.0;
    bool operator==(const Timings&) const = default;
};

// Where and with what a run was made. `currentProvenance()` fills everything but device.
struct Provenance {
    std::string sparselabVersion;
    std::string torchVersion;
    std::string hdf5Version;
    std::string compiler;
    std::string os;                  // uname sysname + release
    std::string host;
    std::string cpu;                 // model name from /proc/cpuinfo, if known
    int64_t cpuCount = 0;
    int64_t threads = 0;             // torch intra-op threads used
    int64_t kernelThreads = 0;       // SparseLab's own kernels' threads (util/engine_threads.h; 0 unknown)
    std::string device;              // "cpu", "cuda:0", ...
    std::string cpuKernels;          // "OpenBLAS SkylakeX, ATen avx512": the CPU arithmetic's kernels ("" unknown)
    bool operator==(const Provenance&) const = default;
};

// ---- caller-defined data (sweep tables, sensitivity matrices, ...) -----------------------

using AttributeValue = std::variant<int64_t, double, std::string>;
using Attributes = std::map<std::string, AttributeValue>;

// An n-dimensional array; exactly one of the value vectors is used, per `type`, holding
// product(shape) elements in row-major order.
struct Dataset {
    enum class Type { Float64, Float32, Int64, String };
    std::string name;                // dataset name inside its group (no '/')
    Type type = Type::Float64;
    std::vector<int64_t> shape;      // e.g. {layers, levels}; {} is read back as {n}
    std::vector<double> f64;
    std::vector<float> f32;
    std::vector<int64_t> i64;
    std::vector<std::string> strings;
    Attributes attributes;

    static Dataset float64(std::string name, std::vector<double> values, std::vector<int64_t> shape = {});
    static Dataset float32(std::string name, std::vector<float> values, std::vector<int64_t> shape = {});
    static Dataset int64(std::string name, std::vector<int64_t> values, std::vector<int64_t> shape = {});
    static Dataset text(std::string name, std::vector<std::string> values, std::vector<int64_t> shape = {});
    [[nodiscard]] int64_t size() const;   // elements of the used vector
    bool operator==(const Dataset&) const = default;
};

// A group of attributes and datasets at `path` ("sweeps/sweep_0001": '/'-separated,
// relative to the workspace root or to a run's "extra" group). Sub-groups are separate
// ExtraGroups with longer paths. Reading returns every group that has attributes or
// datasets, sorted by path, each with its datasets in name order.
struct ExtraGroup {
    std::string path;
    Attributes attributes;
    std::vector<Dataset> datasets;
    [[nodiscard]] const Dataset* dataset(const std::string& name) const; // nullptr if absent
    bool operator==(const ExtraGroup&) const = default;
};

// ---- runs and whole workspaces -----------------------------------------------------------

struct RunRecord {
    std::string id;                  // "run_0001"; assigned by appendRun (input value ignored)
    std::string label;               // free text shown in lists, e.g. "sparsegpt 50%"
    std::string kind = "prune";      // "prune", "eval", "sweep", ... (free text)
    std::string createdUtc;          // ISO 8601 "2026-12-01T09:00:00Z"; appendRun fills if empty
    std::string status = "complete";
    std::string recipeJson;          // pipeline::Recipe::toJson().dump()
    std::vector<std::string> layerFilter;
    bool trueSequential = false;
    double linearSparsity = 0.0;     // zeros / weights over all linear layers
    std::string exportPath;          // where the compressed model was written ("" = none)
    int64_t sizeBytes = -1;          // size of the compressed model, -1 = unknown
    std::optional<CalibrationSettings> calibration;
    std::optional<EvaluationSettings> evaluation;
    std::vector<solve::LayerRecord> layers; // the per-layer table, pipeline order
    std::map<std::string, PackedMask> masks;       // layer name → mask (may be empty)
    std::optional<PerplexityRecord> perplexityBefore;
    std::optional<PerplexityRecord> perplexityAfter;
    Timings timings;
    Provenance provenance;
    std::vector<ExtraGroup> extras;  // under /runs/<id>/extra/
    bool operator==(const RunRecord&) const = default;
};

struct WorkspaceContents {
    std::string createdUtc;
    std::string modifiedUtc;
    std::string sparselabVersion;    // of the last writer
    std::optional<ModelIdentity> model;
    std::optional<CalibrationSettings> calibration;
    std::optional<EvaluationSettings> evaluation;
    std::vector<RunRecord> runs;     // in id order
    std::vector<ExtraGroup> groups;  // workspace-level caller groups, sorted by path
    [[nodiscard]] const RunRecord* run(const std::string& id) const; // nullptr if absent
};

struct LoadOptions {
    bool masks = true;               // read /runs/*/masks
    bool tokenNll = true;            // read token_nll arrays
};

// Reads the whole workspace. InputError "<file>: <problem>" on a missing, foreign or
// malformed file.
[[nodiscard]] WorkspaceContents loadWorkspace(const std::filesystem::path& file, const LoadOptions& options = {});

// Writes `contents` as the complete new file (atomic). Run ids are kept as given (they must
// be unique and non-empty: std::invalid_argument otherwise). Sets modified_utc; keeps
// createdUtc when set. InputError naming the file when it cannot be written.
void saveWorkspace(const std::filesystem::path& file, const WorkspaceContents& contents);

// Creates the workspace if absent. If it exists it must be a valid workspace (InputError
// otherwise; the file is left untouched). Sets /model, /calibration, /evaluation to the given
// values where they are given (nullopt = keep what is there), keeps everything else.
void updateWorkspaceSettings(const std::filesystem::path& file, const std::optional<ModelIdentity>& model,
                             const std::optional<CalibrationSettings>& calibration = std::nullopt,
                             const std::optional<EvaluationSettings>& evaluation = std::nullopt);

// Appends `run` (creating the workspace if absent; setting /model when the file has none and
// `model` is given). Returns the new run's id. Existing data is copied unchanged (atomic).
std::string appendRun(const std::filesystem::path& file, RunRecord run,
                      const std::optional<ModelIdentity>& model = std::nullopt);

// Writes (or replaces, if one exists at the same path) a workspace-level group; creates the
// workspace if absent. Reserved first path components: model, calibration, evaluation, runs.
void writeGroup(const std::filesystem::path& file, const ExtraGroup& group);

// Ids and labels of the runs without reading their arrays (cheap listing).
struct RunSummary {
    std::string id, label, kind, createdUtc;
    double linearSparsity = 0.0;
    std::optional<double> perplexityBefore, perplexityAfter;
    int64_t layers = 0;
};
[[nodiscard]] std::vector<RunSummary> listRuns(const std::filesystem::path& file);

// True when `file` starts with the HDF5 signature and carries the workspace marker.
[[nodiscard]] bool isWorkspace(const std::filesystem::path& file);

// ---- helpers ------------------------------------------------------------------------------

// This process's provenance (versions, compiler, os, host, cpu); `device` and `threads` are
// left for the caller.
[[nodiscard]] Provenance currentProvenance();
// The HDF5 library version, e.g. "1.10.8".
[[nodiscard]] std::string hdf5Version();

} // namespace sparselab::store
