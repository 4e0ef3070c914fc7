#include "store/analysis_store.h"

#include "analysis/sensitivity.h"
#include "analysis/sweep.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <algorithm>

namespace sparselab::store {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSweepPrefix = "sweeps/";
constexpr const char* kScanPrefix = "sensitivity/";

std::vector<std::string> namesUnder(const WorkspaceContents& contents, const std::string& prefix)
{
    std::vector<std::string> names;
    for (const auto& g : contents.groups)
        if (g.path.rfind(prefix, 0) == 0 && g.path.find('/', prefix.size()) == std::string::npos)
            names.push_back(g.path.substr(prefix.size()));
    std::sort(names.begin(), names.end());
    return names;
}

json groupJson(const ExtraGroup& group, const std::string& format, const std::string& source)
{
    const auto fmt = group.attributes.find("format");
    if (fmt == group.attributes.end() || !std::holds_alternative<std::string>(fmt->second)
        || std::get<std::string>(fmt->second) != format)
        throw inputError(source, "group /" + group.path + " is not a " + format + " group");
    const auto text = group.attributes.find("json");
    if (text == group.attributes.end() || !std::holds_alternative<std::string>(text->second))
        throw inputError(source, "group /" + group.path + " has no 'json' attribute");
    return parseJsonText(std::get<std::string>(text->second), source, "group /" + group.path + ": 'json'");
}

const ExtraGroup& findGroup(const WorkspaceContents& contents, const fs::path& file,
                                   const std::string& prefix, const std::vector<std::string>& names,
                                   const std::string& name, const std::string& what)
{
    std::string chosen = name;
    if (chosen.empty()) {
        if (names.empty())
            throw inputError(file, "holds no " + what);
        chosen = names.back();
    }
    for (const auto& g : contents.groups)
        if (g.path == prefix + chosen)
            return g;
    throw inputError(file, "holds no " + what + " named '" + chosen + "'");
}

} // namespace

void validateGroupName(const std::string& name, const std::string& option)
{
    const bool ok = !name.empty() && name.size() <= 128 && name != "." && name != ".."
                    && std::all_of(name.begin(), name.end(), [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
                                  || c == '-' || c == '.';
                       });
    if (!ok)
        throw optionError(option, "expects a name of letters, digits, '_', '-' or '.', got '" + name + "'");
}

ExtraGroup sweepGroup(const SweepResult& sweep, const std::string& name)
{
    validateGroupName(name, "--name");
    ExtraGroup g;
    g.path = kSweepPrefix + name;
    g.attributes["format"] = std::string("sparselab-sweep");
    g.attributes["version"] = int64_t(2);
    g.attributes["json"] = sweep.toJson().dump();
    g.attributes["points_total"] = sweep.grid.size();
    g.attributes["dense_perplexity"] = sweep.densePerplexity;
    g.attributes["dense_bytes"] = sweep.denseBytes;
    std::vector<int64_t> index, bits, bytes;
    std::vector<std::string> allocation, method, group;
    std::vector<double> sparsity, perplexity, linear;
    for (const auto& p : sweep.points) {
        index.push_back(p.spec.index);
        allocation.push_back(p.spec.allocation);
        bits.push_back(p.spec.bits);
        bytes.push_back(p.modelBytes);
        method.push_back(solve::methodName(p.spec.method));
        group.push_back(p.spec.group);
        sparsity.push_back(p.spec.sparsity);
        perplexity.push_back(p.perplexity);
        linear.push_back(p.linearSparsity);
    }
    g.datasets = {Dataset::text("allocation", allocation),
                  Dataset::int64("bits", bits),
                  Dataset::text("group", group),
                  Dataset::int64("index", index),
                  Dataset::float64("linear_sparsity", linear),
                  Dataset::text("method", method),
                  Dataset::int64("model_bytes", bytes),
                  Dataset::float64("perplexity", perplexity),
                  Dataset::float64("sparsity", sparsity)};
    return g;
}

ExtraGroup sensitivityGroup(const SensitivityResult& scan, const std::string& name)
{
    validateGroupName(name, "--name");
    ExtraGroup g;
    g.path = kScanPrefix + name;
    g.attributes["format"] = std::string("sparselab-sensitivity");
    g.attributes["version"] = int64_t(1);
    g.attributes["json"] = scan.toJson().dump();
    std::vector<std::string> names;
    std::vector<double> rel, abs;
    for (size_t l = 0; l < scan.layers.size(); ++l) {
        names.push_back(scan.layers[l].name);
        for (size_t i = 0; i < scan.sparsities.size(); ++i)
            for (size_t j = 0; j < scan.bits.size(); ++j) {
                rel.push_back(scan.cell(l, i, j).relError);
                abs.push_back(scan.cell(l, i, j).absError);
            }
    }
    const std::vector<int64_t> shape = {int64_t(scan.layers.size()), int64_t(scan.sparsities.size()),
                                        int64_t(scan.bits.size())};
    g.datasets = {Dataset::float64("abs_error", abs, shape),
                  Dataset::int64("bits", std::vector<int64_t>(scan.bits.begin(), scan.bits.end())),
                  Dataset::text("layer_names", names),
                  Dataset::float64("rel_error", rel, shape),
                  Dataset::float64("sparsities", scan.sparsities)};
    return g;
}

SweepResult sweepFromGroup(const ExtraGroup& group, const std::string& source)
{
    return SweepResult::fromJson(groupJson(group, "sparselab-sweep", source), source + ": /" + group.path);
}

SensitivityResult sensitivityFromGroup(const ExtraGroup& group, const std::string& source)
{
    return SensitivityResult::fromJson(groupJson(group, "sparselab-sensitivity", source), source + ": /" + group.path);
}

std::vector<std::string> storedSweeps(const WorkspaceContents& contents)
{
    return namesUnder(contents, kSweepPrefix);
}

std::vector<std::string> storedSensitivities(const WorkspaceContents& contents)
{
    return namesUnder(contents, kScanPrefix);
}

std::string nextGroupName(const std::vector<std::string>& taken, const std::string& prefix)
{
    for (int i = 1;; ++i) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%s_%04d", prefix.c_str(), i);
        if (std::find(taken.begin(), taken.end(), buffer) == taken.end())
            return buffer;
    }
}

SweepResult loadSweepFrom(const fs::path& file, const std::string& name)
{
    if (file.extension() != ".h5")
        return SweepResult::load(file);
    const auto contents = loadWorkspace(file, {false, false});
    const auto names = storedSweeps(contents);
    return sweepFromGroup(findGroup(contents, file, kSweepPrefix, names, name, "sweep"), file.string());
}

SensitivityResult loadSensitivityFrom(const fs::path& file, const std::string& name)
{
    if (file.extension() != ".h5")
        return SensitivityResult::load(file);
    const auto contents = loadWorkspace(file, {false, false});
    const auto names = storedSensitivities(contents);
    return sensitivityFromGroup(findGroup(contents, file, kScanPrefix, names, name, "sensitivity scan"), file.string());
}

std::optional<SweepResult> lastStoredSweep(const WorkspaceContents& contents, const fs::path& file)
{
    const auto names = storedSweeps(contents);
    if (names.empty())
        return std::nullopt;
    return sweepFromGroup(findGroup(contents, file, kSweepPrefix, names, {}, "sweep"), file.string());
}

std::optional<SensitivityResult> lastStoredSensitivity(const WorkspaceContents& contents, const fs::path& file)
{
    const auto names = storedSensitivities(contents);
    if (names.empty())
        return std::nullopt;
    return sensitivityFromGroup(findGroup(contents, file, kScanPrefix, names, {}, "sensitivity scan"), file.string());
}

void storeSweep(const fs::path& workspace, const SweepResult& sweep, const std::string& name)
{
    writeGroup(workspace, sweepGroup(sweep, name));
}

void storeSensitivity(const fs::path& workspace, const SensitivityResult& scan, const std::string& name)
{
    writeGroup(workspace, sensitivityGroup(scan, name));
}

} // namespace sparselab::store
