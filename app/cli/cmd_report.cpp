// `report`: the hand-over report (HTML and/or PDF) of a compression run. Thin: options →
// report::buildReport → renderHtml/renderPdf → atomic writes.

#include "commands_analysis.h"
#include "engine_options.h"

#include "report/report.h"
#include "report/workspace_report.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <cstdio>
#include <sstream>

namespace sparselab::cli {

namespace fs = std::filesystem;

namespace {

// The output must not be an input and its folder must exist.
void checkOutput(const fs::path& out, const std::string& option, const std::string& extension,
                 const std::vector<fs::path>& inputs)
{
    if (out.extension() != extension)
        throw optionError("--" + option, "expects a " + extension + " file, got '" + out.string() + "'");
    std::error_code ec;
    if (out.has_parent_path() && !fs::is_directory(out.parent_path(), ec))
        throw inputError(out, "its folder does not exist");
    for (const auto& input : inputs)
        if (fs::exists(out, ec) && fs::exists(input, ec) && fs::equivalent(out, input, ec))
            throw optionError("--" + option, "'" + out.string() + "' is one of the inputs; refusing to overwrite it");
}

} // namespace

int cmdReport(const Args& args)
{
    const std::string usage = "sparselab-cli report (W.h5 [--run ID] | --dense MODEL --compressed DIR) "
                              "[--html OUT.html] [--pdf OUT.pdf] [options]";
    report::ReportParams params;
    std::vector<fs::path> inputs;
    if (args.positional().size() > 1)
        throw InputError("usage: " + usage);
    if (!args.positional().empty()) {
        // From a workspace: the dense model, the run's export and evaluation text as recorded.
        const fs::path workspace = args.positional().front();
        if (workspace.extension() != ".h5")
            throw InputError("usage: " + usage);
        if (args.value("dense"))
            throw optionError("--dense", "is taken from the workspace; do not give it with W.h5");
        if (args.value("sweep") || args.value("sensitivity"))
            throw optionError(args.value("sweep") ? "--sweep" : "--sensitivity",
                              "is taken from the workspace (--sweep-name/--scan-name pick one); do not give it with W.h5");
        if (!args.value("html") && !args.value("pdf"))
            throw optionError("--html", "give --html OUT.html and/or --pdf OUT.pdf");
        report::WorkspaceReportOptions options;
        options.runId = args.valueOr("run", "");
        if (const auto compressed = args.value("compressed"))
            options.compressedOverride = fs::path(*compressed);
        if (const auto eval = args.value("eval"))
            options.evalOverride = fs::path(*eval);
        options.sweepName = args.valueOr("sweep-name", "");
        options.sensitivityName = args.valueOr("scan-name", "");
        params = report::workspaceReportParams(workspace, options);
        inputs.push_back(workspace);
    } else {
        if (args.value("run") || args.value("sweep-name") || args.value("scan-name"))
            throw optionError(args.value("run") ? "--run" : args.value("sweep-name") ? "--sweep-name" : "--scan-name",
                              "needs a workspace (sparselab-cli report W.h5 …)");
        if (!args.value("dense") || !args.value("compressed"))
            throw optionError(args.value("dense") ? "--compressed" : "--dense", "is required (usage: " + usage + ")");
        params.denseFolder = *args.value("dense");
        params.compressedFolder = *args.value("compressed");
        if (const auto eval = args.value("eval"))
            params.evalFile = *eval;
    }
    if (!args.value("html") && !args.value("pdf"))
        throw optionError("--html", "give --html OUT.html and/or --pdf OUT.pdf");
    applyThreadsOption(args);

    if (args.value("seqlen"))
        params.seqlen = args.intOr("seqlen", 0, 0, 1 << 20);
    if (args.value("max-windows"))
        params.maxWindows = args.intOr("max-windows", 0, 0, int64_t(1) << 40);
    params.newTokens = args.intOr("new-tokens", params.newTokens, 1, 4096);
    if (const auto prompts = args.value("prompts")) {
        // One prompt per line; blank lines are skipped.
        params.prompts.clear();
        std::istringstream lines(readTextFile(*prompts));
        std::string line;
        while (std::getline(lines, line))
            if (line.find_first_not_of(" \t\r") != std::string::npos)
                params.prompts.push_back(line);
        if (params.prompts.empty())
            throw inputError(*prompts, "holds no prompt (one per line)");
        inputs.push_back(*prompts);
    }
    if (const auto sweep = args.value("sweep"))
        params.sweepFile = fs::path(*sweep);
    if (const auto sensitivity = args.value("sensitivity"))
        params.sensitivityFile = fs::path(*sensitivity);

    inputs.push_back(params.denseFolder);
    inputs.push_back(params.compressedFolder);
    if (!params.evalFile.empty())
        inputs.push_back(params.evalFile);
    if (params.sweepFile)
        inputs.push_back(*params.sweepFile);
    if (params.sensitivityFile)
        inputs.push_back(*params.sensitivityFile);
    if (const auto html = args.value("html"))
        checkOutput(*html, "html", ".html", inputs);
    if (const auto pdf = args.value("pdf"))
        checkOutput(*pdf, "pdf", ".pdf", inputs);

    const auto data = report::buildReport(params, stderrProgress(args.flag("quiet")), &interruptToken());
    // Render both before writing either, so a failure leaves no half-written pair.
    std::string html, pdf;
    if (args.value("html"))
        html = report::renderHtml(data);
    if (args.value("pdf"))
        pdf = report::renderPdf(data);
    if (args.value("html"))
        writeFileAtomically(*args.value("html"), html);
    if (args.value("pdf"))
        writeFileAtomically(*args.value("pdf"), pdf);

    const auto& c = data.comparison;
    if (args.flag("json")) {
        nlohmann::json out = {{"dense_perplexity", c.referencePerplexity},
                              {"compressed_perplexity", c.otherPerplexity},
                              {"mean_kl", c.meanKl},
                              {"top1_agreement", c.top1Agreement},
                              {"windows", c.windows},
                              {"seqlen", c.seqlen},
                              {"dense_bytes", data.denseBytes},
                              {"compressed_bytes", data.compressedBytes}};
        if (args.value("html"))
            out["html"] = fs::absolute(*args.value("html")).string();
        if (args.value("pdf"))
            out["pdf"] = fs::absolute(*args.value("pdf")).string();
        printJson(out);
        return 0;
    }
    std::printf("perplexity %.4f -> %.4f, mean KL %.5f nats, top-1 agreement %.4f (%lld windows of %lld)\n",
                c.referencePerplexity, c.otherPerplexity, c.meanKl, c.top1Agreement, (long long)c.windows,
                (long long)c.seqlen);
    if (args.value("html"))
        std::printf("wrote %s\n", args.value("html")->c_str());
    if (args.value("pdf"))
        std::printf("wrote %s\n", args.value("pdf")->c_str());
    return 0;
}

} // namespace sparselab::cli
