#pragma once
// The report of a workspace run (`sparselab-cli report W.h5`): which inputs a report needs,
// taken from a workspace (store/workspace.h) and checked before anything slow runs.
//
// - dense model: the workspace's /model path; every recorded file's SHA-256 must still match
//   (InputError "<W.h5>: model file F in FOLDER no longer matches the recorded SHA-256" / "is
//   missing" otherwise).
// - compressed model: the run's export_path (the folder `prune --workspace` wrote), or
//   `compressedOverride`; InputError when it is gone. (The masks alone cannot rebuild it: the
//   solver also updates the kept weights.)
// - evaluation text: the run's evaluation file, when its SHA-256 still matches (else
//   InputError), or `evalOverride`.
// - sweeps and sensitivity scans stored in the workspace (pipeline/analysis_store.h): the last
//   of each, or those named.
// - section 7 of the report: every run's recipe label, sparsity, perplexities, size, export.

#include "report/report.h"

#include <filesystem>
#include <optional>
#include <string>

namespace sparselab::report {

struct WorkspaceReportOptions {
    std::string runId;                                   // empty = the last run with an export
    std::optional<std::filesystem::path> compressedOverride;
    std::optional<std::filesystem::path> evalOverride;
    std::string sweepName, sensitivityName;              // empty = the last stored one (if any)
};

// Fills a ReportParams from `workspace` (prompts, newTokens, seqlen, maxWindows are left at
// their defaults for the caller). InputError "<file>: <problem>" on every bad case.
[[nodiscard]] ReportParams workspaceReportParams(const std::filesystem::path& workspace,
                                                 const WorkspaceReportOptions& options);

} // namespace sparselab::report
