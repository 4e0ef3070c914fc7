#include "cli_workspace.h"

#include "pipeline/recipe.h"
#include "util/errors.h"

#include <cstdio>
#include <sstream>

namespace sparselab::cli {

namespace fs = std::filesystem;
using nlohmann::json;

int cmdWorkspace(const Args& args)
{
    args.requirePositional(1, "sparselab-cli workspace W.h5 [--json]");
    const fs::path file = args.positional().front();
    const auto contents = store::loadWorkspace(file, {false, false});
    if (args.flag("json")) {
        json runs = json::array();
        for (const auto& run : contents.runs) {
            json r = {{"id", run.id},
                      {"label", run.label},
                      {"kind", run.kind},
                      {"created_utc", run.createdUtc},
                      {"linear_sparsity", run.linearSparsity},
                      {"layers", run.layers.size()},
                      {"export_path", run.exportPath}};
            if (run.perplexityBefore)
                r["perplexity_before"] = run.perplexityBefore->perplexity;
            if (run.perplexityAfter)
                r["perplexity_after"] = run.perplexityAfter->perplexity;
            runs.push_back(r);
        }
        json groups = json::array();
        for (const auto& g : contents.groups)
            groups.push_back(g.path);
        json out = {{"file", fs::absolute(file).string()},
                    {"created_utc", contents.createdUtc},
                    {"modified_utc", contents.modifiedUtc},
                    {"runs", runs},
                    {"groups", groups}};
        if (contents.model)
            out["model"] = {{"path", contents.model->path}, {"architecture", contents.model->architecture},
                            {"parameters", contents.model->parameters}};
        printJson(out);
        return 0;
    }
    std::printf("workspace %s (created %s, modified %s)\n", file.c_str(), contents.createdUtc.c_str(),
                contents.modifiedUtc.c_str());
    if (contents.model)
        std::printf("model     %s (%s, %lld parameters, %zu files hashed)\n", contents.model->path.c_str(),
                    contents.model->architecture.c_str(), (long long)contents.model->parameters,
                    contents.model->fileSha256.size());
    if (contents.calibration)
        std::printf("calib     %s (sha256 %.12s…, %lld × %lld tokens, seed %llu)\n",
                    contents.calibration->file.c_str(), contents.calibration->sha256.c_str(),
                    (long long)contents.calibration->nsamples, (long long)contents.calibration->seqlen,
                    (unsigned long long)contents.calibration->seed);
    if (contents.evaluation)
        std::printf("eval      %s (sha256 %.12s…, seqlen %lld)\n", contents.evaluation->file.c_str(),
                    contents.evaluation->sha256.c_str(), (long long)contents.evaluation->seqlen);
    std::printf("%zu run(s)\n", contents.runs.size());
    for (const auto& run : contents.runs) {
        std::printf("  %s  %-6s %-28s sparsity %.4f", run.id.c_str(), run.kind.c_str(), run.label.c_str(),
                    run.linearSparsity);
        if (run.perplexityBefore && run.perplexityAfter)
            std::printf("  ppl %.4f -> %.4f", run.perplexityBefore->perplexity, run.perplexityAfter->perplexity);
        else if (run.perplexityAfter)
            std::printf("  ppl %.4f", run.perplexityAfter->perplexity);
        std::printf("  %s\n", run.createdUtc.c_str());
    }
    for (const auto& g : contents.groups)
        std::printf("group     /%s\n", g.path.c_str());
    return 0;
}

} // namespace sparselab::cli
