#pragma once
// Sweep tables and sensitivity scans inside a workspace (store/workspace.h), as workspace-level
// groups next to the runs (kept in store/, so that pipeline/ does not depend on the store):
//
//   /sweeps/<name>                    attrs: format = "sparselab-sweep", version (i64, 2; 1 was
//                                            written before the allocation axis),
//                                            json (the complete SweepResult JSON of
//                                            pipeline/sweep.h — authoritative; reading uses it),
//                                            points_total (i64), dense_perplexity (f64),
//                                            dense_bytes (i64)
//     index, bits, model_bytes [P] i64; allocation (version 2), method, group [P] string;
//     sparsity, perplexity, linear_sparsity [P] f64   the table, one row per point (index order),
//                                                     copies of the JSON for h5py / h5dump
//   /sensitivity/<name>               attrs: format = "sparselab-sensitivity", version (i64),
//                                            json (the complete SensitivityResult JSON)
//     layer_names [L] string; sparsities [S] f64; bits [B] i64
//     rel_error, abs_error [L, S, B] f64              copies of the scan's cells
//
// h5py: f["sweeps/sweep_0001/perplexity"][:]; json.loads(f["sweeps/sweep_0001"].attrs["json"])
//
// Names are [A-Za-z0-9_.-]+. Reading a group back gives exactly the result that was written
// (the JSON text round-trips; the datasets are for other readers). Errors: InputError
// "<file>: <problem>" (missing group, malformed JSON, bad name).

#include "store/workspace.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sparselab::analysis {
struct SweepResult;
struct SensitivityResult;
} // namespace sparselab::analysis

namespace sparselab::store {

using analysis::SensitivityResult;
using analysis::SweepResult;

[[nodiscard]] ExtraGroup sweepGroup(const SweepResult& sweep, const std::string& name);
[[nodiscard]] ExtraGroup sensitivityGroup(const SensitivityResult& scan, const std::string& name);

// From a group written by sweepGroup / sensitivityGroup; `source` names the file in errors.
[[nodiscard]] SweepResult sweepFromGroup(const ExtraGroup& group, const std::string& source);
[[nodiscard]] SensitivityResult sensitivityFromGroup(const ExtraGroup& group, const std::string& source);

// Names of the sweeps / scans stored in `contents` (sorted).
[[nodiscard]] std::vector<std::string> storedSweeps(const WorkspaceContents& contents);
[[nodiscard]] std::vector<std::string> storedSensitivities(const WorkspaceContents& contents);

// The next free name "sweep_0001", "sweep_0002", … (prefix "scan" for scans).
[[nodiscard]] std::string nextGroupName(const std::vector<std::string>& taken, const std::string& prefix);

// Loads a sweep from a workspace (`name` empty = the only/last one; InputError when there is
// none or the name is absent) or from a JSON results file, by the file's extension (.h5).
[[nodiscard]] SweepResult loadSweepFrom(const std::filesystem::path& file, const std::string& name = {});
[[nodiscard]] SensitivityResult loadSensitivityFrom(const std::filesystem::path& file, const std::string& name = {});

// The last sweep / scan stored in already-loaded `contents` of `file` (nullopt when there is
// none), for readers that load the workspace once for several things.
[[nodiscard]] std::optional<SweepResult> lastStoredSweep(const WorkspaceContents& contents,
                                                         const std::filesystem::path& file);
[[nodiscard]] std::optional<SensitivityResult> lastStoredSensitivity(const WorkspaceContents& contents,
                                                                     const std::filesystem::path& file);

// Stores into a workspace (creates it if absent; replaces a group of the same name).
void storeSweep(const std::filesystem::path& workspace, const SweepResult& sweep, const std::string& name);
void storeSensitivity(const std::filesystem::path& workspace, const SensitivityResult& scan, const std::string& name);

// InputError("<option>: ...") unless `name` is a valid group name.
void validateGroupName(const std::string& name, const std::string& option);

} // namespace sparselab::store
