#include "report/workspace_report.h"

#include "store/analysis_store.h"
#include "store/workspace.h"
#include "util/errors.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

#include <cstdio>

namespace sparselab::report {

namespace fs = std::filesystem;

namespace {

std::string number(double value, int digits)
{
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
    return buffer;
}

std::string sizeText(int64_t bytes)
{
    if (bytes < 0)
        return "unknown";
    char buffer[64];
    if (bytes >= (int64_t(1) << 20))
        std::snprintf(buffer, sizeof buffer, "%.2f MiB", double(bytes) / double(1 << 20));
    else
        std::snprintf(buffer, sizeof buffer, "%.1f KiB", double(bytes) / 1024.0);
    return buffer;
}

// Every recorded model file must exist with the recorded hash.
std::string verifyModel(const fs::path& workspace, const store::ModelIdentity& model)
{
    const fs::path folder = model.path;
    std::error_code ec;
    if (!fs::exists(folder, ec))
        throw inputError(workspace, "the recorded model " + model.path + " is missing");
    if (model.fileSha256.empty())
        throw inputError(workspace, "records no file hashes for the model " + model.path);
    for (const auto& [name, hash] : model.fileSha256) {
        const fs::path file = fs::is_directory(folder, ec) ? folder / name : folder;
        if (!fs::is_regular_file(file, ec))
            throw inputError(workspace, "model file " + name + " in " + model.path + " is missing");
        if (sha256File(file) != hash)
            throw inputError(workspace, "model file " + name + " in " + model.path
                                            + " no longer matches the SHA-256 recorded in the workspace");
    }
    return model.path + ", " + std::to_string(model.fileSha256.size())
           + " files match the SHA-256 hashes recorded in the workspace";
}

} // namespace

ReportParams workspaceReportParams(const fs::path& workspace, const WorkspaceReportOptions& options)
{
    const auto contents = store::loadWorkspace(workspace, {false, false});
    if (!contents.model)
        throw inputError(workspace, "records no model (write runs to it with 'sparselab-cli prune --workspace')");
    const store::RunRecord* run = nullptr;
    if (!options.runId.empty()) {
        run = contents.run(options.runId);
        if (!run)
            throw inputError(workspace, "holds no run '" + options.runId + "'");
    } else {
        for (const auto& r : contents.runs)
            if (!r.exportPath.empty())
                run = &r;
        if (!run)
            throw inputError(workspace, "holds no run with an exported model (give --compressed DIR and --run ID)");
    }

    ReportParams params;
    WorkspaceSection section;
    section.file = fs::absolute(workspace).string();
    section.runId = run->id;
    section.modelCheck = verifyModel(workspace, *contents.model);
    params.denseFolder = contents.model->path;

    std::error_code ec;
    if (options.compressedOverride) {
        params.compressedFolder = *options.compressedOverride;
    } else {
        if (run->exportPath.empty())
            throw inputError(workspace, "run " + run->id + " recorded no export folder; give --compressed DIR");
        if (!fs::is_directory(run->exportPath, ec))
            throw inputError(workspace, "run " + run->id + "'s export folder " + run->exportPath
                                            + " is gone; give --compressed DIR");
        params.compressedFolder = run->exportPath;
    }

    if (options.evalOverride) {
        params.evalFile = *options.evalOverride;
    } else {
        const auto& evaluation = run->evaluation ? run->evaluation : contents.evaluation;
        if (!evaluation || evaluation->file.empty())
            throw inputError(workspace, "run " + run->id + " recorded no evaluation text; give --eval FILE");
        if (!fs::is_regular_file(evaluation->file, ec))
            throw inputError(workspace, "the evaluation text " + evaluation->file + " is missing; give --eval FILE");
        if (!evaluation->sha256.empty() && sha256Hex(readTextFile(evaluation->file)) != evaluation->sha256)
            throw inputError(workspace, "the evaluation text " + evaluation->file
                                            + " no longer matches the SHA-256 recorded in the workspace");
        params.evalFile = evaluation->file;
        params.seqlen = evaluation->seqlen;
        params.maxWindows = evaluation->maxWindows;
    }

    section.sweeps = store::storedSweeps(contents);
    section.sensitivities = store::storedSensitivities(contents);
    if (!section.sweeps.empty() || !options.sweepName.empty())
        params.sweep = store::loadSweepFrom(workspace, options.sweepName);
    if (!section.sensitivities.empty() || !options.sensitivityName.empty())
        params.sensitivity = store::loadSensitivityFrom(workspace, options.sensitivityName);

    for (const auto& r : contents.runs)
        section.runs.push_back({r.id, r.label, r.kind, number(r.linearSparsity, 4),
                                r.perplexityBefore ? number(r.perplexityBefore->perplexity, 4) : "-",
                                r.perplexityAfter ? number(r.perplexityAfter->perplexity, 4) : "-",
                                sizeText(r.sizeBytes), r.exportPath.empty() ? "-" : r.exportPath});
    params.workspace = section;
    return params;
}

} // namespace sparselab::report
