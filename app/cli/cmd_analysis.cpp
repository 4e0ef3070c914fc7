// `sensitivity`, `allocate`, `sweep` and `merge`: explore sparsity/bit-width trade-offs.
// Thin: parse options, load inputs, call core/pipeline, write the result files atomically.

#include "cli_workspace.h"
#include "commands_analysis.h"
#include "engine_options.h"

#include "allocation/owl.h"
#include "allocation/search.h"
#include "allocation/sweep_allocator.h"
#include "data/calibration.h"
#include "eval/perplexity.h"
#include "export/hf_export.h"
#include "io/gguf_import.h"
#include "model/causal_lm.h"
#include "analysis/allocator.h"
#include "store/analysis_store.h"
#include "analysis/sensitivity.h"
#include "analysis/size_model.h"
#include "analysis/sweep.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "store/run_records.h"
#include "util/sha256.h"
#include "workflow/compression_run.h"

#include <torch/types.h>

#include <cmath>
#include <functional>
#include <optional>
#include <cstdio>
#include <sstream>

namespace sparselab::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<double> doubleList(const Args& args, const std::string& name, std::vector<double> fallback)
{
    const auto value = args.value(name);
    if (!value)
        return fallback;
    std::vector<double> out;
    for (const auto& part : splitList(*value)) {
        size_t used = 0;
        double v = 0;
        try {
            v = std::stod(part, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != part.size() || !std::isfinite(v))
            throw optionError("--" + name, "expects a comma-separated list of numbers, got '" + *value + "'");
        out.push_back(v);
    }
    if (out.empty())
        throw optionError("--" + name, "expects at least one number");
    return out;
}

std::vector<int> intList(const Args& args, const std::string& name, std::vector<int> fallback)
{
    std::vector<int> out;
    for (double v : doubleList(args, name, std::vector<double>(fallback.begin(), fallback.end()))) {
        if (v != std::floor(v) || std::abs(v) > 1e6)
            throw optionError("--" + name, "expects whole numbers");
        out.push_back(int(v));
    }
    return out;
}

// An output path that is not one of the inputs and has the expected extension.
fs::path outputPath(const Args& args, const std::vector<fs::path>& inputs, const std::string& extension)
{
    const auto out = args.value("out");
    if (!out)
        throw optionError("--out", "is required");
    const fs::path path = *out;
    if (path.extension() != extension)
        throw optionError("--out", "expects a " + extension + " file, got '" + path.string() + "'");
    std::error_code ec;
    for (const auto& input : inputs)
        if (fs::exists(input, ec) && fs::exists(path, ec) && fs::equivalent(input, path, ec))
            throw optionError("--out", "'" + path.string() + "' is one of the inputs; refusing to overwrite it");
    if (path.has_parent_path() && !fs::is_directory(path.parent_path(), ec))
        throw inputError(path, "its folder does not exist");
    return path;
}

// Where a sweep or scan goes: a JSON results file (--out X.json) and/or a workspace
// (--out W.h5 or --workspace W.h5), with the group name (--name, default the next free one).
// Checked up front: a workspace that exists must be a readable workspace.
struct ResultOutputs {
    std::optional<fs::path> json, workspace;
    std::string groupName;
};

ResultOutputs resultOutputs(const Args& args, const std::vector<fs::path>& inputs, const std::string& prefix,
                            const std::function<std::vector<std::string>(const store::WorkspaceContents&)>& taken)
{
    ResultOutputs o;
    const auto out = args.value("out");
    if (out && fs::path(*out).extension() == ".h5")
        o.workspace = *out;
    else if (out)
        o.json = outputPath(args, inputs, ".json");
    if (const auto ws = args.value("workspace")) {
        if (o.workspace && !fs::path(*ws).empty() && fs::path(*ws) != *o.workspace)
            throw optionError("--workspace", "names a different workspace than --out");
        o.workspace = *ws;
    }
    if (!o.json && !o.workspace)
        throw optionError("--out", "is required (a .json results file or a .h5 workspace)");
    if (o.workspace) {
        if (o.workspace->extension() != ".h5")
            throw optionError("--workspace", "expects a .h5 file, got '" + o.workspace->string() + "'");
        std::error_code ec;
        if (o.workspace->has_parent_path() && !fs::is_directory(o.workspace->parent_path(), ec))
            throw inputError(*o.workspace, "its folder does not exist");
        for (const auto& input : inputs)
            if (fs::exists(input, ec) && fs::exists(*o.workspace, ec) && fs::equivalent(input, *o.workspace, ec))
                throw optionError("--out", "'" + o.workspace->string() + "' is one of the inputs; refusing to overwrite it");
        std::vector<std::string> names;
        if (fs::exists(*o.workspace, ec))
            names = taken(store::loadWorkspace(*o.workspace, {false, false})); // InputError on a bad file
        if (const auto name = args.value("name")) {
            store::validateGroupName(*name, "--name");
            o.groupName = *name;
        } else {
            o.groupName = store::nextGroupName(names, prefix);
        }
    } else if (args.value("name")) {
        throw optionError("--name", "names a group in a workspace; give --out W.h5 or --workspace W.h5");
    }
    return o;
}

// The model's identity when results go to a workspace, checked against the model recorded
// there before any slow step (one workspace per model).
std::optional<store::ModelIdentity> workspaceModel(const ResultOutputs& outputs, const model::CausalLM& model)
{
    if (!outputs.workspace)
        return std::nullopt;
    auto identity = store::modelIdentity(model, &interruptToken());
    workflow::checkWorkspaceFor(*outputs.workspace, identity);
    return identity;
}

std::string readNonEmpty(const fs::path& file)
{
    const std::string text = readTextFile(file);
    if (text.empty())
        throw inputError(file, "the text is empty");
    return text;
}

// Everything a command needs to prune and evaluate one model on calibration and evaluation
// texts, loaded and validated up front.
struct Session {
    fs::path folder, calibFile, evalFile;
    std::unique_ptr<model::CausalLM> model;
    std::unique_ptr<tokenize::Tokenizer> tokenizer;
    data::CalibrationParams calib;
    data::CalibrationWindows windows;
    std::string calibText, evalText;
    std::vector<int32_t> evalIds;
    eval::PerplexityParams evalParams;
};

Session openSession(const Args& args, const fs::path& folder, bool needEval)
{
    Session s;
    s.folder = folder;
    if (!args.value("calib"))
        throw optionError("--calib", "is required (the calibration text file)");
    s.calibFile = *args.value("calib");
    if (needEval) {
        if (!args.value("eval"))
            throw optionError("--eval", "is required (the evaluation text file)");
        s.evalFile = *args.value("eval");
    }
    const auto config = model::ModelConfig::load(folder);
    s.calib = calibrationFromArgs(args, config);
    s.calibText = readNonEmpty(s.calibFile);
    if (needEval)
        s.evalText = readNonEmpty(s.evalFile);
    s.tokenizer = tokenize::loadTokenizer(folder);
    // --stream (sensitivity): one decoder block resident at a time.
    s.model = model::CausalLM::load(folder, deviceOption(args), args.flag("stream"));
    applyDefaultThreads(args, *s.model);
    s.calib.vocabSize = s.model->config().vocabSize;
    s.windows = data::sampleCalibrationWindows(s.tokenizer->encodeForModel(s.calibText, &interruptToken()), s.calib, s.calibFile);
    s.evalParams.seqlen = s.calib.seqlen;
    s.evalParams.maxWindows = args.intOr("max-windows", 0, 0, int64_t(1) << 40);
    if (needEval) {
        s.evalIds = s.tokenizer->encodeForModel(s.evalText, &interruptToken());
        if (int64_t(s.evalIds.size()) < s.calib.seqlen)
            throw inputError(s.evalFile, "has " + std::to_string(s.evalIds.size()) + " tokens, fewer than one window of "
                                             + std::to_string(s.calib.seqlen));
    }
    return s;
}

json calibrationJson(const Session& s)
{
    return {{"sha256", sha256Hex(s.calibText)},
            {"nsamples", s.calib.nsamples},
            {"seqlen", s.calib.seqlen},
            {"seed", s.calib.seed}};
}

json baseJson(const solve::SolverOptions& base)
{
    return {{"damp", base.damp}, {"blocksize", base.blocksize}, {"group", base.quant.groupSize}, {"sym", base.quant.symmetric}};
}

// Base solver options (damp, blocksize, group, sym) from the command line.
solve::SolverOptions baseOptions(const Args& args)
{
    solve::SolverOptions base;
    base.quant.groupSize = args.intOr("group", 0, 0, int64_t(1) << 40);
    base.quant.symmetric = args.flag("sym");
    base.blocksize = args.intOr("blocksize", 128, 1, int64_t(1) << 40);
    base.damp = args.doubleOr("damp", 0.01);
    if (!(std::isfinite(base.damp) && base.damp >= 0))
        throw optionError("--damp", "must be a finite number >= 0");
    return base;
}

std::string percent(double fraction)
{
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.0f%%", fraction * 100.0);
    return buffer;
}

} // namespace

// ---- sensitivity -------------------------------------------------------------------------------

int cmdSensitivity(const Args& args)
{
    const std::string usage = "sparselab-cli sensitivity MODEL --calib FILE --out S.json [options]";
    args.requirePositional(1, usage);
    const fs::path folder = args.positional().front();
    const auto outputs = resultOutputs(args, {folder, args.valueOr("calib", "")}, "scan", store::storedSensitivities);
    applyThreadsOption(args);
    const bool quiet = args.flag("quiet");

    analysis::SensitivityParams params;
    params.sparsities = doubleList(args, "sparsities", params.sparsities);
    params.bits = intList(args, "bits", params.bits);
    params.base = baseOptions(args);
    if (const auto method = args.value("method"))
        params.base.method = solve::parseMethod(*method);
    if (const auto layers = args.value("layers"))
        params.layerFilter = splitList(*layers);

    torch::NoGradGuard noGrad;
    Session s = openSession(args, folder, false);
    analysis::validateSensitivityParams(*s.model, params);
    const auto identity = workspaceModel(outputs, *s.model);
    auto result = analysis::scanSensitivity(*s.model, s.windows, params, {stderrProgress(quiet), &interruptToken()});
    result.provenance["model"] = {{"folder", fs::absolute(folder).string()}, {"sha256", exporting::hashModelFolder(folder, &interruptToken())}};
    json calibration = calibrationJson(s);
    calibration["file"] = fs::absolute(s.calibFile).string();
    result.provenance["calibration"] = calibration;
    if (outputs.workspace)
        store::updateWorkspaceSettings(*outputs.workspace, identity);
    if (outputs.json)
        result.save(*outputs.json);
    if (outputs.workspace)
        store::storeSensitivity(*outputs.workspace, result, outputs.groupName);
    const std::string written = outputs.json ? outputs.json->string() : "";
    const std::string stored =
        outputs.workspace ? outputs.workspace->string() + ": /sensitivity/" + outputs.groupName : "";

    if (args.flag("json")) {
        json reply = {{"layers", result.layers.size()},
                   {"levels", result.sparsities.size() * result.bits.size()},
                   {"factorizations", result.factorizations},
                   {"seconds", result.seconds}};
        if (outputs.json)
            reply["out"] = fs::absolute(*outputs.json).string();
        if (outputs.workspace) {
            reply["workspace"] = fs::absolute(*outputs.workspace).string();
            reply["group"] = "sensitivity/" + outputs.groupName;
        }
        printJson(reply);
        return 0;
    }
    // A text heat-map: relative error per layer (rows) and level (columns).
    std::printf("%-44s", "relative output error");
    for (double sp : result.sparsities)
        for (int b : result.bits)
            std::printf(" %9s", (percent(sp) + "/" + std::to_string(b)).c_str());
    std::printf("\n");
    for (size_t l = 0; l < result.layers.size(); ++l) {
        std::printf("%-44s", result.layers[l].name.c_str());
        for (size_t i = 0; i < result.sparsities.size(); ++i)
            for (size_t j = 0; j < result.bits.size(); ++j)
                std::printf(" %9.3g", result.cell(l, i, j).relError);
        std::printf("\n");
    }
    std::printf("scanned %zu layers x %zu levels in %.1f s (%lld Hessian factorisations); wrote %s%s%s\n",
                result.layers.size(), result.sparsities.size() * result.bits.size(), result.seconds,
                (long long)result.factorizations, written.c_str(), !written.empty() && !stored.empty() ? ", " : "",
                stored.c_str());
    return 0;
}

// ---- allocate ----------------------------------------------------------------------------------

namespace {

// Prunes a fresh copy per recipe with the session's windows and measures each on its evaluation
// text (analysis::evaluateRecipe), with the dense perplexity first: the "measured" object of
// `allocate`'s report. `recipes`: (name, recipe) in the order they are reported.
json measureRecipes(Session& s, const std::vector<std::pair<std::string, const pipeline::Recipe*>>& recipes,
                    const ProgressCallback& progress)
{
    const auto dense = eval::evaluatePerplexity(*s.model, s.evalIds, s.evalParams, progress, &interruptToken());
    json measured = {{"dense_perplexity", dense.perplexity}, {"windows", dense.windows}, {"seqlen", dense.seqlen}};
    for (const auto& [name, recipe] : recipes) {
        pipeline::PruneParams prune;
        prune.recipe = *recipe;
        prune.recipeSource = name + " recipe";
        const auto outcome =
            analysis::evaluateRecipe(*s.model, s.windows, s.evalIds, prune, s.evalParams, progress, &interruptToken());
        measured[name] = {{"perplexity", outcome.perplexity.perplexity},
                          {"linear_sparsity", outcome.prune.linearSparsity()},
                          {"model_bytes", outcome.modelBytes}};
    }
    return measured;
}

// allocate --method owl: OWL's per-block sparsities (allocation/owl.h) from the model and its
// calibration windows, as a recipe of SparseGPT rules; uniform is the defaults alone.
int allocateOwl(const Args& args, const fs::path& modelPath, const fs::path& out)
{
    if (!args.value("budget-sparsity"))
        throw optionError("--budget-sparsity", "is required with --method owl (the average sparsity S)");
    if (args.value("budget-bytes"))
        throw optionError("--budget-bytes", "OWL allocates sparsity: give --budget-sparsity");
    for (const char* searchOnly : {"generations", "offspring", "survivors", "max-mutations", "fitness-windows",
                                   "level-step", "levels", "time-limit", "search-seed"})
        if (args.value(searchOnly))
            throw optionError(std::string("--") + searchOnly, "applies to --method search only");
    allocation::OwlParams owl;
    owl.targetSparsity = args.doubleOr("budget-sparsity", 0.5);
    owl.lambda = args.doubleOr("owl-lambda", owl.lambda);
    owl.outlierMultiple = args.doubleOr("owl-m", owl.outlierMultiple);
    owl.validate();
    applyThreadsOption(args);
    torch::NoGradGuard noGrad;
    const bool quiet = args.flag("quiet");
    const bool compare = args.value("eval").has_value();
    Session s = openSession(args, io::resolveModelPath(modelPath), compare);
    const auto progress = stderrProgress(quiet);
    const auto result = allocation::owlAllocation(*s.model, s.windows, owl, progress, &interruptToken());
    solve::SolverOptions base;
    base.sparsity = owl.targetSparsity;
    const auto recipe = allocation::owlRecipe(result, *s.model, base);
    pipeline::Recipe uniform;
    uniform.defaults.options = base;

    json blocks = json::array();
    for (size_t b = 0; b < result.blockSparsity.size(); ++b)
        blocks.push_back({{"block", b}, {"outlier_ratio", result.outlierRatio[b]}, {"sparsity", result.blockSparsity[b]}});
    json report = {{"method", "owl"},
                   {"budget_sparsity", owl.targetSparsity},
                   {"lambda", owl.lambda},
                   {"outlier_multiple", owl.outlierMultiple},
                   {"average_sparsity", result.averageSparsity},
                   {"blocks", blocks}};
    if (compare)
        report["measured"] = measureRecipes(s, {{"uniform", &uniform}, {"owl", &recipe}}, progress);
    recipe.save(out);
    report["out"] = fs::absolute(out).string();
    if (args.flag("json")) {
        printJson(report);
        return 0;
    }
    std::printf("OWL: average sparsity %.4f (lambda %.3g, M %.3g)\n", result.averageSparsity, owl.lambda,
                owl.outlierMultiple);
    std::printf("%6s %14s %9s\n", "block", "outlier ratio", "sparsity");
    for (size_t b = 0; b < result.blockSparsity.size(); ++b)
        std::printf("%6zu %14.5f %9.4f\n", b, result.outlierRatio[b], result.blockSparsity[b]);
    if (report.contains("measured"))
        std::printf("perplexity: dense %.4f, uniform %.4f, OWL %.4f\n",
                    report["measured"]["dense_perplexity"].get<double>(),
                    report["measured"]["uniform"]["perplexity"].get<double>(),
                    report["measured"]["owl"]["perplexity"].get<double>());
    std::printf("wrote %s\n", out.c_str());
    return 0;
}

// The search's own options (--level-step --levels --max-sparsity --generations --offspring
// --survivors --max-mutations --fitness-windows --time-limit --search-seed, the last defaulting
// to --seed), for `allocate --method search` and a sweep's search allocations.
void searchOptionsFromArgs(const Args& args, allocation::SearchParams& search)
{
    search.levelStep = args.doubleOr("level-step", search.levelStep);
    search.levelsEachSide = int(args.intOr("levels", search.levelsEachSide, 1, 50));
    search.maxSparsity = args.doubleOr("max-sparsity", search.maxSparsity);
    search.generations = args.intOr("generations", search.generations, 0, 1000000);
    search.offspring = args.intOr("offspring", search.offspring, 1, 4096);
    search.survivors = args.intOr("survivors", std::min(search.survivors, search.offspring), 1, 4096);
    search.maxMutations = args.intOr("max-mutations", search.maxMutations, 1, 1000);
    search.fitnessWindows = args.intOr("fitness-windows", search.fitnessWindows, 1, 1 << 20);
    search.timeLimitSeconds = args.doubleOr("time-limit", 0.0);
    search.seed = uint64_t(args.intOr("search-seed", args.intOr("seed", 0, 0, std::numeric_limits<int64_t>::max()), 0,
                                      std::numeric_limits<int64_t>::max()));
}

// allocate --method search: per-layer levels from the end-to-end search (allocation/search.h)
// over a database of SparseGPT variants made from the model and its calibration windows.
int allocateSearch(const Args& args, const fs::path& modelPath, const fs::path& out)
{
    if (args.value("budget-sparsity") && args.value("budget-bytes"))
        throw optionError("--budget-bytes", "give either --budget-sparsity or --budget-bytes, not both");
    if (!args.value("budget-sparsity") && !args.value("budget-bytes"))
        throw optionError("--budget-sparsity", "a budget is required (--budget-sparsity S or --budget-bytes B)");
    allocation::SearchParams search;
    const bool bytesBudget = args.value("budget-bytes").has_value();
    if (bytesBudget) {
        // Sparsity and bits together: levels 0, 0.1, … × 16, 8, 4 bits by default.
        search = allocation::SearchParams::forBudgetBytes(
            args.intOr("budget-bytes", 0, 1, std::numeric_limits<int64_t>::max()));
        search.bits = intList(args, "bits", search.bits);
    } else {
        search.targetSparsity = args.doubleOr("budget-sparsity", 0.5);
        if (args.value("bits"))
            throw optionError("--bits", "bit-widths are searched with a bytes budget (--budget-bytes) only");
        search.base.sparsity = search.targetSparsity;
    }
    searchOptionsFromArgs(args, search);
    search.validate();
    applyThreadsOption(args);
    torch::NoGradGuard noGrad;
    const bool quiet = args.flag("quiet");
    const bool compare = args.value("eval").has_value();
    Session s = openSession(args, io::resolveModelPath(modelPath), compare);
    if (search.fitnessWindows > s.calib.nsamples) {
        if (args.value("fitness-windows"))
            throw optionError("--fitness-windows", "must not exceed --nsamples (" + std::to_string(s.calib.nsamples) + ")");
        search.fitnessWindows = s.calib.nsamples; // the default (32) with fewer calibration windows
    }
    const auto progress = stderrProgress(quiet);
    allocation::SearchObserver observer;
    observer.progress = progress;
    observer.cancel = &interruptToken();
    const auto result = allocation::searchAllocation(*s.model, s.windows, search, observer);
    const auto recipe = allocation::searchRecipe(result, search.base);

    json layers = json::array();
    for (size_t l = 0; l < result.layers.size(); ++l)
        layers.push_back({{"name", result.layers[l].name}, {"kind", result.layers[l].kind},
                          {"block", result.layers[l].block}, {"weights", result.layers[l].weights},
                          {"sparsity", result.sparsity[l]}, {"bits", result.bits[l]}});
    json history = json::array();
    for (const auto& g : result.history)
        history.push_back({{"generation", g.generation}, {"kl", g.bestFitness}, {"evaluations", g.evaluations},
                           {"seconds", g.seconds}});
    json levels = json::array();
    for (size_t v = 0; v < result.levelSparsity.size(); ++v)
        levels.push_back({{"sparsity", result.levelSparsity[v]}, {"bits", result.levelBits[v]}});
    json report = {{"method", "search"},
                   {"average_sparsity", result.averageSparsity},
                   {"model_bytes", result.modelBytes},
                   {"uniform", {{"sparsity", result.levelSparsity[size_t(result.uniformLevel)]},
                                {"bits", result.levelBits[size_t(result.uniformLevel)]},
                                {"model_bytes", result.uniformBytes}}},
                   {"levels", levels},
                   {"seed", search.seed},
                   {"generations", result.generationsRun},
                   {"stopped_by", result.stoppedBy},
                   {"fitness_windows", std::min<int64_t>(search.fitnessWindows, s.calib.nsamples)},
                   {"uniform_kl", result.uniformFitness},
                   {"search_kl", result.bestFitness},
                   {"database_bytes", result.databaseBytes},
                   {"database_seconds", result.databaseSeconds},
                   {"search_seconds", result.searchSeconds},
                   {"layers", layers},
                   {"history", history}};
    if (bytesBudget)
        report["budget_bytes"] = search.budgetBytes;
    else
        report["budget_sparsity"] = search.targetSparsity;
    if (compare && bytesBudget) {
        // The best uniform level that fits (the search's start) and the DP allocator over the
        // same scan (the database's errors) at the same bytes, beside the search.
        pipeline::Recipe uniform;
        uniform.defaults.options = search.base;
        uniform.defaults.options.sparsity = result.levelSparsity[size_t(result.uniformLevel)];
        uniform.defaults.options.quant.bits = result.levelBits[size_t(result.uniformLevel)];
        analysis::AllocatorParams dp;
        dp.kind = analysis::BudgetKind::ModelBytes;
        dp.modelBytes = search.budgetBytes;
        const auto allocated = analysis::allocate(result.scan, dp);
        const auto dpRecipe = analysis::allocationRecipe(allocated.allocated, search.base, true);
        report["dp"] = allocated.allocated.toJson();
        report["measured"] = measureRecipes(s, {{"uniform", &uniform}, {"dp", &dpRecipe}, {"search", &recipe}}, progress);
    } else if (compare) {
        // OWL beside it, with its published defaults, for the comparison.
        allocation::OwlParams owl;
        owl.targetSparsity = search.targetSparsity;
        owl.lambda = args.doubleOr("owl-lambda", owl.lambda);
        owl.outlierMultiple = args.doubleOr("owl-m", owl.outlierMultiple);
        pipeline::Recipe owlRecipe;
        const bool owlFits = owl.targetSparsity - 2 * owl.lambda >= 0 && owl.targetSparsity + 2 * owl.lambda < 1;
        if (owlFits)
            owlRecipe = allocation::owlRecipe(allocation::owlAllocation(*s.model, s.windows, owl, progress,
                                                                        &interruptToken()),
                                              *s.model, search.base);
        pipeline::Recipe uniform;
        uniform.defaults.options = search.base;
        std::vector<std::pair<std::string, const pipeline::Recipe*>> recipes = {{"uniform", &uniform}};
        if (owlFits)
            recipes.emplace_back("owl", &owlRecipe);
        recipes.emplace_back("search", &recipe);
        report["measured"] = measureRecipes(s, recipes, progress);
    }
    recipe.save(out);
    report["out"] = fs::absolute(out).string();
    if (args.flag("json")) {
        printJson(report);
        return 0;
    }
    std::printf("search: average sparsity %.4f, %lld bytes; KL on %lld calibration windows: uniform %.5f, found "
                "%.5f (%lld generations, %s; database %.1f s, search %.1f s)\n",
                result.averageSparsity, (long long)result.modelBytes, (long long)report["fitness_windows"].get<int64_t>(),
                result.uniformFitness, result.bestFitness, (long long)result.generationsRun, result.stoppedBy.c_str(),
                result.databaseSeconds, result.searchSeconds);
    std::printf("%-44s %9s %5s\n", "layer", "sparsity", "bits");
    for (size_t l = 0; l < result.layers.size(); ++l)
        std::printf("%-44s %9.3f %5d\n", result.layers[l].name.c_str(), result.sparsity[l], result.bits[l]);
    if (report.contains("measured")) {
        const auto& m = report["measured"];
        std::printf("perplexity: dense %.4f, uniform %.4f", m["dense_perplexity"].get<double>(),
                    m["uniform"]["perplexity"].get<double>());
        if (m.contains("owl"))
            std::printf(", OWL %.4f", m["owl"]["perplexity"].get<double>());
        if (m.contains("dp"))
            std::printf(", DP %.4f", m["dp"]["perplexity"].get<double>());
        std::printf(", search %.4f\n", m["search"]["perplexity"].get<double>());
    }
    std::printf("wrote %s\n", out.c_str());
    return 0;
}

} // namespace

int cmdAllocate(const Args& args)
{
    const std::string usage = "sparselab-cli allocate (S.json | MODEL --calib FILE --method owl|search) "
                              "(--budget-sparsity S | --budget-bytes B) --out RECIPE.json [options]";
    args.requirePositional(1, usage);
    const std::string method = args.valueOr("method", "dp");
    if (method != "dp" && method != "owl" && method != "search")
        throw optionError("--method", "expects dp, owl or search, got '" + method + "'");
    const fs::path scanFile = args.positional().front();
    const fs::path out = outputPath(args, {scanFile}, ".json");
    if (method == "owl")
        return allocateOwl(args, scanFile, out);
    if (method == "search")
        return allocateSearch(args, scanFile, out);
    for (const char* owlOnly : {"owl-lambda", "owl-m"})
        if (args.value(owlOnly))
            throw optionError(std::string("--") + owlOnly, "applies to --method owl only");
    for (const char* searchOnly : {"generations", "offspring", "survivors", "max-mutations", "fitness-windows",
                                   "level-step", "levels", "time-limit", "search-seed"})
        if (args.value(searchOnly))
            throw optionError(std::string("--") + searchOnly, "applies to --method search only");
    const bool quiet = args.flag("quiet");

    analysis::AllocatorParams params;
    if (args.value("budget-sparsity") && args.value("budget-bytes"))
        throw optionError("--budget-bytes", "give either --budget-sparsity or --budget-bytes, not both");
    if (args.value("budget-sparsity")) {
        params.kind = analysis::BudgetKind::AverageSparsity;
        params.averageSparsity = args.doubleOr("budget-sparsity", 0.5);
    } else if (args.value("budget-bytes")) {
        params.kind = analysis::BudgetKind::ModelBytes;
        params.modelBytes = args.intOr("budget-bytes", 0, 1, std::numeric_limits<int64_t>::max());
    } else {
        throw optionError("--budget-sparsity", "a budget is required (--budget-sparsity S or --budget-bytes B)");
    }
    params.bits = int(args.intOr("bits", 0, 0, 16));
    params.maxSparsity = args.doubleOr("max-sparsity", 1.0);
    params.resolution = args.intOr("resolution", params.resolution, 10, 1000000);
    const std::string metric = args.valueOr("metric", "relative");
    if (metric == "relative")
        params.metric = analysis::ErrorMetric::Relative;
    else if (metric == "absolute")
        params.metric = analysis::ErrorMetric::Absolute;
    else if (metric == "kind-normalized")
        params.metric = analysis::ErrorMetric::KindNormalized;
    else
        throw optionError("--metric", "expects relative, absolute or kind-normalized, got '" + metric + "'");

    const auto scan = store::loadSensitivityFrom(scanFile, args.valueOr("name", ""));
    const auto allocation = analysis::allocate(scan, params);
    const auto recipe = analysis::allocationRecipe(allocation.allocated, scan.base, true);
    const auto uniformRecipe = analysis::allocationRecipe(allocation.uniform, scan.base, true);

    json report = {{"budget", allocation.budgetText},
                   {"metric", metric},
                   {"allocated", allocation.allocated.toJson()},
                   {"uniform", allocation.uniform.toJson()},
                   {"uniform_interpolated", allocation.uniformInterpolated}};

    // Optional: prune with both recipes and compare perplexity.
    if (const auto compare = args.value("compare")) {
        applyThreadsOption(args);
        torch::NoGradGuard noGrad;
        Session s = openSession(args, *compare, true);
        report["measured"] =
            measureRecipes(s, {{"uniform", &uniformRecipe}, {"allocated", &recipe}}, stderrProgress(quiet));
    }

    recipe.save(out);
    if (args.flag("json")) {
        report["out"] = fs::absolute(out).string();
        printJson(report);
        return 0;
    }
    std::printf("budget: %s; metric: %s error\n", allocation.budgetText.c_str(), metric.c_str());
    std::printf("%-44s %9s %5s %12s %12s\n", "layer", "sparsity", "bits", "pred. error", "uniform err");
    for (size_t l = 0; l < allocation.allocated.layers.size(); ++l) {
        const auto& a = allocation.allocated.layers[l];
        std::printf("%-44s %9.2f %5d %12.4g %12.4g\n", a.name.c_str(), a.sparsity, a.bits, a.predictedError,
                    allocation.uniform.layers[l].predictedError);
    }
    std::printf("allocated: predicted error %.4g, average sparsity %.4f, %lld bytes\n",
                allocation.allocated.predictedError, allocation.allocated.averageSparsity,
                (long long)allocation.allocated.modelBytes);
    std::printf("uniform:   predicted error %.4g, average sparsity %.4f, %lld bytes%s\n",
                allocation.uniform.predictedError, allocation.uniform.averageSparsity,
                (long long)allocation.uniform.modelBytes, allocation.uniformInterpolated ? " (interpolated)" : "");
    if (report.contains("measured")) {
        const auto& m = report["measured"];
        std::printf("perplexity: dense %.4f, uniform %.4f, allocated %.4f\n", m["dense_perplexity"].get<double>(),
                    m["uniform"]["perplexity"].get<double>(), m["allocated"]["perplexity"].get<double>());
    }
    std::printf("wrote %s\n", out.c_str());
    return 0;
}

// ---- sweep -------------------------------------------------------------------------------------

int cmdSweep(const Args& args)
{
    const std::string usage = "sparselab-cli sweep MODEL --calib FILE --eval FILE --out R.json [options]";
    args.requirePositional(1, usage);
    const fs::path folder = args.positional().front();
    const auto outputs = resultOutputs(args, {folder, args.valueOr("calib", ""), args.valueOr("eval", "")}, "sweep",
                                       store::storedSweeps);
    applyThreadsOption(args);
    const bool quiet = args.flag("quiet");

    analysis::SweepGrid grid;
    grid.sparsities = doubleList(args, "sparsities", grid.sparsities);
    grid.bits = intList(args, "bits", grid.bits);
    if (const auto methods = args.value("methods")) {
        grid.methods.clear();
        for (const auto& name : splitList(*methods))
            grid.methods.push_back(solve::parseMethod(name));
    }
    if (const auto groups = args.value("groups"))
        grid.groups = splitList(*groups);
    if (const auto allocations = args.value("allocations"))
        grid.allocations = splitList(*allocations);
    grid.validate();
    // OWL's and the search's options, as `allocate` takes them; refused where the grid has no use.
    allocation::SweepAllocationParams allocationParams;
    allocationParams.owl.lambda = args.doubleOr("owl-lambda", allocationParams.owl.lambda);
    allocationParams.owl.outlierMultiple = args.doubleOr("owl-m", allocationParams.owl.outlierMultiple);
    auto& search = allocationParams.search;
    searchOptionsFromArgs(args, search);
    const auto usesAllocation = [&](const char* name) {
        return std::find(grid.allocations.begin(), grid.allocations.end(), name) != grid.allocations.end();
    };
    for (const char* owlOnly : {"owl-lambda", "owl-m"})
        if (args.value(owlOnly) && !usesAllocation("owl"))
            throw optionError(std::string("--") + owlOnly, "applies to --allocations owl only");
    for (const char* searchOnly : {"generations", "offspring", "survivors", "max-mutations", "fitness-windows",
                                   "level-step", "levels", "max-sparsity", "time-limit", "search-seed"})
        if (args.value(searchOnly) && !usesAllocation("search"))
            throw optionError(std::string("--") + searchOnly, "applies to --allocations search only");
    int64_t shard = 0, shards = 1;
    if (const auto spec = args.value("shard")) {
        const auto slash = spec->find('/');
        try {
            size_t usedA = 0, usedB = 0;
            if (slash == std::string::npos)
                throw std::invalid_argument("no slash");
            shard = std::stoll(spec->substr(0, slash), &usedA);
            shards = std::stoll(spec->substr(slash + 1), &usedB);
            if (usedA != slash || usedB != spec->size() - slash - 1)
                throw std::invalid_argument("trailing");
        } catch (const std::exception&) {
            throw optionError("--shard", "expects i/N (0 <= i < N), got '" + *spec + "'");
        }
    }
    const auto indices = analysis::shardIndices(grid, shard, shards);
    allocation::validateSweepAllocations(grid, indices, allocationParams);
    const solve::SolverOptions base = baseOptions(args);
    const bool trueSequential = args.flag("true-sequential");

    torch::NoGradGuard noGrad;
    Session s = openSession(args, folder, true);
    const auto identity = workspaceModel(outputs, *s.model);
    // Every point's plan against the model before any slow step.
    for (int64_t i : indices) {
        const auto params = analysis::sweepPointParams(*s.model, analysis::sweepPointSpec(grid, i), base, trueSequential);
        pipeline::validatePlan(*s.model, params);
    }
    const auto progress = stderrProgress(quiet);
    const auto dense = eval::evaluatePerplexity(*s.model, s.evalIds, s.evalParams, progress, &interruptToken());

    analysis::SweepResult result;
    result.grid = grid;
    result.densePerplexity = dense.perplexity;
    result.denseBytes = analysis::fixedParameterBytes(s.model->parameterCount());
    result.settings = {{"model", {{"sha256", exporting::hashModelFolder(folder, &interruptToken())}}},
                       {"calibration", calibrationJson(s)},
                       {"evaluation",
                        {{"sha256", sha256Hex(s.evalText)}, {"seqlen", s.evalParams.seqlen}, {"max_windows", s.evalParams.maxWindows}}},
                       {"base", baseJson(base)},
                       {"true_sequential", trueSequential},
                       {"paths",
                        {{"model", fs::absolute(folder).string()},
                         {"calibration", fs::absolute(s.calibFile).string()},
                         {"evaluation", fs::absolute(s.evalFile).string()}}}};
    if (grid.allocatesPerLayer())
        result.settings["allocation"] = allocationParams.toJson(grid);
    analysis::SweepRunParams run{grid, indices, base, trueSequential, s.evalParams, {}};
    if (grid.allocatesPerLayer())
        run.allocator = allocation::sweepAllocator(*s.model, s.windows, allocationParams);
    analysis::SweepObserver observer;
    observer.progress = progress;
    observer.cancel = &interruptToken();
    result.points = analysis::runSweepPoints(*s.model, s.windows, s.evalIds, run, observer);
    if (outputs.workspace)
        store::updateWorkspaceSettings(*outputs.workspace, identity);
    if (outputs.json)
        result.save(*outputs.json);
    if (outputs.workspace)
        store::storeSweep(*outputs.workspace, result, outputs.groupName);
    const std::string out = outputs.json ? outputs.json->string()
                                         : outputs.workspace->string() + ": /sweeps/" + outputs.groupName;

    if (args.flag("json")) {
        json reply = {{"points", result.points.size()}, {"points_total", grid.size()}, {"dense_perplexity", dense.perplexity}};
        if (outputs.json)
            reply["out"] = fs::absolute(*outputs.json).string();
        if (outputs.workspace) {
            reply["workspace"] = fs::absolute(*outputs.workspace).string();
            reply["group"] = "sweeps/" + outputs.groupName;
        }
        printJson(reply);
        return 0;
    }
    std::printf("dense perplexity %.4f, %lld bytes (fp16)\n", dense.perplexity, (long long)result.denseBytes);
    std::printf("%6s %-10s %-10s %-9s %5s %9s %12s %12s\n", "point", "allocation", "method", "group", "bits",
                "sparsity", "perplexity", "bytes");
    for (const auto& p : result.points)
        std::printf("%6lld %-10s %-10s %-9s %5d %9.3f %12.4f %12lld\n", (long long)p.spec.index,
                    p.spec.allocation.c_str(), solve::methodName(p.spec.method).c_str(), p.spec.group.c_str(),
                    p.spec.bits, p.spec.sparsity, p.perplexity, (long long)p.modelBytes);
    std::printf("wrote %s (%zu of %lld points)\n", out.c_str(), result.points.size(), (long long)grid.size());
    return 0;
}

int cmdMerge(const Args& args)
{
    if (args.positional().empty())
        throw InputError("usage: sparselab-cli merge A.json|A.h5 B.json|B.h5 … --out M.json|M.h5");
    std::vector<fs::path> inputs;
    std::vector<std::string> sources;
    std::vector<analysis::SweepResult> parts;
    for (const auto& p : args.positional()) {
        inputs.emplace_back(p);
        sources.push_back(p);
        // A workspace input contributes its sweep named --from (default: its last one).
        parts.push_back(store::loadSweepFrom(p, args.valueOr("from", "")));
    }
    const auto outputs = resultOutputs(args, inputs, "sweep", store::storedSweeps);
    const auto merged = analysis::mergeSweeps(parts, sources);
    if (outputs.workspace && fs::exists(*outputs.workspace)) {
        // One workspace per model: the sweep's model must be the one recorded there.
        const auto contents = store::loadWorkspace(*outputs.workspace, {false, false});
        const json hashes = merged.settings.value("model", json::object()).value("sha256", json::object());
        if (contents.model && json(contents.model->fileSha256) != hashes)
            throw inputError(*outputs.workspace, "records model " + contents.model->path
                                                     + " whose files differ from the sweep's model; use another workspace file");
    }
    if (outputs.json)
        merged.save(*outputs.json);
    if (outputs.workspace)
        store::storeSweep(*outputs.workspace, merged, outputs.groupName);
    const std::string out = outputs.json ? outputs.json->string()
                                         : outputs.workspace->string() + ": /sweeps/" + outputs.groupName;
    const auto missing = merged.missing();
    if (args.flag("json")) {
        json reply = {{"points", merged.points.size()}, {"points_total", merged.grid.size()}, {"missing", missing}};
        if (outputs.json)
            reply["out"] = fs::absolute(*outputs.json).string();
        if (outputs.workspace) {
            reply["workspace"] = fs::absolute(*outputs.workspace).string();
            reply["group"] = "sweeps/" + outputs.groupName;
        }
        printJson(reply);
        return 0;
    }
    std::printf("merged %zu files: %zu of %lld points", parts.size(), merged.points.size(), (long long)merged.grid.size());
    if (!missing.empty())
        std::printf(" (%zu missing)", missing.size());
    std::printf("; wrote %s\n", out.c_str());
    return 0;
}

} // namespace sparselab::cli
