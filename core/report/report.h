#pragma once
// The hand-over report of one compression run: what was done, with what data, at what cost.
//
// Inputs: the dense model folder, the compressed folder written by `prune` (its
// sparselab.json provenance holds the recipe, calibration settings and hashes, per-layer
// statistics), the evaluation text, and optionally a sweep results file and a sensitivity
// scan (JSON, pipeline/sweep.h and pipeline/sensitivity.h) for the trade-off plots.
// buildReport() loads both models and measures, on the same evaluation windows, both
// perplexities and the KL divergence of the compressed model's next-token distribution from
// the dense one (eval/model_comparison.h), and greedy continuations of a few prompts.
// renderHtml() gives one self-contained HTML file (inline CSS and SVG; no scripts, no
// external references); renderPdf() a PDF of the same content (report/pdf_writer.h).
//
// Sections (both formats): 1 Summary, 2 Provenance, 3 Per-layer results, 4 Plots,
// 5 Next-token distribution (KL), 6 Greedy continuations, and 7 Workspace (when built from one).

#include "analysis/sensitivity.h"
#include "analysis/sweep.h"
#include "report/drawing.h"
#include "eval/model_comparison.h"
#include "util/progress.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sparselab::report {

// The workspace a report was built from (report/workspace_report.h): shown as section 7.
struct WorkspaceSection {
    std::string file;                            // absolute path of the .h5
    std::string runId;                           // the run the report is about
    std::string modelCheck;                      // e.g. "6 files match the recorded SHA-256 hashes"
    std::vector<std::vector<std::string>> runs;  // rows: id, label, kind, sparsity, ppl before, ppl after, size, export
    std::vector<std::string> sweeps, sensitivities; // stored group names
};

struct ReportParams {
    std::filesystem::path denseFolder;
    std::filesystem::path compressedFolder;      // with sparselab.json
    std::filesystem::path evalFile;              // empty = the one named in the provenance
    int64_t seqlen = 0;                          // 0 = the provenance's evaluation/calibration seqlen
    int64_t maxWindows = 0;                      // 0 = all windows
    std::vector<std::string> prompts{"Once upon a time", "The little dog", "Lily and her mom went to the park"};
    int64_t newTokens = 40;                      // greedy tokens per prompt
    std::optional<std::filesystem::path> sweepFile;
    std::optional<std::filesystem::path> sensitivityFile;
    std::optional<analysis::SweepResult> sweep;             // already loaded (used when sweepFile is unset)
    std::optional<analysis::SensitivityResult> sensitivity; // already loaded (used when sensitivityFile is unset)
    std::optional<WorkspaceSection> workspace;
};

struct Continuation {
    std::string prompt, dense, compressed;
};

struct ReportData {
    nlohmann::json provenance;                   // the compressed folder's sparselab.json
    std::string denseFolder, compressedFolder, evalFile, evalSha256;
    nlohmann::json denseHashes, compressedHashes;
    std::string architecture;
    int64_t parameters = 0;
    eval::DistributionComparison comparison;           // perplexities and KL on the evaluation windows
    int64_t denseBytes = 0, compressedBytes = 0; // size model (pipeline/size_model.h)
    int64_t denseDiskBytes = 0, compressedDiskBytes = 0; // files on disk
    double linearSparsity = 0.0;
    std::vector<Continuation> continuations;
    int64_t newTokens = 0;
    std::optional<analysis::SweepResult> sweep;
    std::optional<analysis::SensitivityResult> sensitivity;
    std::optional<WorkspaceSection> workspace;
    nlohmann::json machine;                      // host, os, cpus, versions
    std::string createdUtc;
};

// InputError naming the file on a missing/malformed folder or provenance.
[[nodiscard]] ReportData buildReport(const ReportParams& params, const ProgressCallback& progress = {},
                                     const CancelToken* cancel = nullptr);

// The plots of the report, in order (each has its title).
[[nodiscard]] std::vector<Drawing> reportPlots(const ReportData& data);

[[nodiscard]] std::string renderHtml(const ReportData& data);
[[nodiscard]] std::string renderPdf(const ReportData& data);

// Sweep plots, shared with front ends: perplexity vs sparsity (one series per method/group/
// bits), and size vs perplexity with the Pareto frontier highlighted.
[[nodiscard]] Drawing sweepPerplexityPlot(const analysis::SweepResult& sweep);
[[nodiscard]] Drawing sweepParetoPlot(const analysis::SweepResult& sweep);
// Sensitivity heat-map (layers × levels, relative error, log colour scale).
[[nodiscard]] Drawing sensitivityHeatMap(const analysis::SensitivityResult& scan);

} // namespace sparselab::report
