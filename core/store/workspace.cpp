#include "store/workspace.h"

#include "store/hdf5_handles.h"
#include "util/atomic_file.h"
#include "util/cpu_kernels.h"
#include "util/errors.h"
#include "util/json_file.h"
#include "util/utc_time.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <stdexcept>
#include <thread>

#include <sys/utsname.h>
#include <unistd.h>

#include <torch/version.h> // macros only

namespace sparselab::store {

namespace fs = std::filesystem;
using h5::id;

namespace {

const std::set<std::string> kReserved = {"model", "calibration", "evaluation", "runs"};

// ---- writing ------------------------------------------------------------------------------

void writeCalibration(hid_t loc, const std::string& name, const CalibrationSettings& c)
{
    const auto g = h5::createGroup(loc, name);
    h5::writeAttribute(id(g), "file", c.file);
    h5::writeAttribute(id(g), "sha256", c.sha256);
    h5::writeAttribute(id(g), "tokens", c.tokens);
    h5::writeAttribute(id(g), "nsamples", c.nsamples);
    h5::writeAttribute(id(g), "seqlen", c.seqlen);
    h5::writeAttribute(id(g), "seed", int64_t(c.seed));
}

void writeEvaluation(hid_t loc, const std::string& name, const EvaluationSettings& e)
{
    const auto g = h5::createGroup(loc, name);
    h5::writeAttribute(id(g), "file", e.file);
    h5::writeAttribute(id(g), "sha256", e.sha256);
    h5::writeAttribute(id(g), "tokens", e.tokens);
    h5::writeAttribute(id(g), "seqlen", e.seqlen);
    h5::writeAttribute(id(g), "max_windows", e.maxWindows);
}

void writeModel(hid_t loc, const ModelIdentity& m)
{
    const auto g = h5::createGroup(loc, "model");
    h5::writeAttribute(id(g), "path", m.path);
    h5::writeAttribute(id(g), "architecture", m.architecture);
    h5::writeAttribute(id(g), "model_type", m.modelType);
    h5::writeAttribute(id(g), "num_blocks", m.numBlocks);
    h5::writeAttribute(id(g), "hidden_size", m.hiddenSize);
    h5::writeAttribute(id(g), "vocab_size", m.vocabSize);
    h5::writeAttribute(id(g), "parameters", m.parameters);
    h5::writeAttribute(id(g), "dtype", m.dtype);
    std::vector<std::string> names, hashes;
    for (const auto& [name, hash] : m.fileSha256) {
        names.push_back(name);
        hashes.push_back(hash);
    }
    h5::writeStrings(id(g), "file_names", names);
    h5::writeStrings(id(g), "file_sha256", hashes);
}

void writeAttributes(hid_t obj, const Attributes& attributes)
{
    for (const auto& attribute : attributes) // (clang 14 cannot capture a structured binding)
        std::visit([&](const auto& v) { h5::writeAttribute(obj, attribute.first, v); }, attribute.second);
}

void writeDataset(hid_t loc, const Dataset& d)
{
    if (d.name.empty() || d.name.find('/') != std::string::npos)
        throw h5::Hdf5Failure("dataset name '" + d.name + "' must be non-empty and without '/'");
    switch (d.type) {
    case Dataset::Type::Float64: h5::writeDoubles(loc, d.name, d.f64, d.shape); break;
    case Dataset::Type::Float32: h5::writeFloats(loc, d.name, d.f32, d.shape); break;
    case Dataset::Type::Int64: h5::writeInts(loc, d.name, d.i64, d.shape); break;
    case Dataset::Type::String: h5::writeStrings(loc, d.name, d.strings, d.shape); break;
    }
    if (!d.attributes.empty()) {
        const auto set = h5::DataSet(H5Dopen2(loc, d.name.c_str(), H5P_DEFAULT));
        writeAttributes(id(set), d.attributes);
    }
}

void checkGroupPath(const std::string& path)
{
    if (path.empty() || path.front() == '/' || path.back() == '/' || path.find("//") != std::string::npos)
        throw std::invalid_argument("workspace group path '" + path + "' must be relative, like \"sweeps/sweep_0001\"");
}

void writeExtra(hid_t loc, const ExtraGroup& group)
{
    checkGroupPath(group.path);
    const auto g = h5::createGroup(loc, group.path);
    writeAttributes(id(g), group.attributes);
    for (const auto& d : group.datasets)
        writeDataset(id(g), d);
}

void writePerplexity(hid_t loc, const std::string& name, const PerplexityRecord& p)
{
    const auto g = h5::createGroup(loc, name);
    h5::writeAttribute(id(g), "perplexity", p.perplexity);
    h5::writeAttribute(id(g), "tokens", p.tokens);
    h5::writeAttribute(id(g), "windows", p.windows);
    h5::writeAttribute(id(g), "seqlen", p.seqlen);
    h5::writeAttribute(id(g), "seconds", p.seconds);
    h5::writeDoubles(id(g), "window_loss", p.windowLoss);
    if (!p.tokenNll.empty()) {
        std::vector<int64_t> shape = {int64_t(p.tokenNll.size())};
        if (p.windows > 0 && p.seqlen > 1 && int64_t(p.tokenNll.size()) == p.windows * (p.seqlen - 1))
            shape = {p.windows, p.seqlen - 1};
        h5::writeFloats(id(g), "token_nll", p.tokenNll, shape);
    }
}

} // namespace

template <typename T, typename Get>
std::vector<T> column(const std::vector<solve::LayerRecord>& layers, Get get)
{
    std::vector<T> out;
    out.reserve(layers.size());
    for (const auto& l : layers)
        out.push_back(T(get(l)));
    return out;
}

// The columns hold the record's canonical options (solve::recordedOptions) without loss:
// readLayers rebuilds the same record.
void detail::writeLayers(hid_t run, const std::vector<solve::LayerRecord>& layers)
{
    const auto g = h5::createGroup(run, "layers");
    const hid_t t = id(g);
    using L = solve::LayerRecord;
    h5::writeStrings(t, "name", column<std::string>(layers, [](const L& l) { return l.name; }));
    h5::writeStrings(t, "kind", column<std::string>(layers, [](const L& l) { return l.kind; }));
    h5::writeStrings(t, "method", column<std::string>(layers, [](const L& l) { return l.methodKey(); }));
    h5::writeInts(t, "block", column<int64_t>(layers, [](const L& l) { return l.block; }));
    h5::writeInts(t, "rows", column<int64_t>(layers, [](const L& l) { return l.rows; }));
    h5::writeInts(t, "cols", column<int64_t>(layers, [](const L& l) { return l.cols; }));
    h5::writeInts(t, "nm_n", column<int64_t>(layers, [](const L& l) { return l.options.nmN; }));
    h5::writeInts(t, "nm_m", column<int64_t>(layers, [](const L& l) { return l.options.nmM; }));
    h5::writeInts(t, "bits", column<int64_t>(layers, [](const L& l) { return l.bits(); }));
    h5::writeInts(t, "group_size", column<int64_t>(layers, [](const L& l) { return l.options.quant.groupSize; }));
    h5::writeInts(t, "blocksize", column<int64_t>(layers, [](const L& l) { return l.options.blocksize; }));
    h5::writeInts(t, "damp_raises", column<int64_t>(layers, [](const L& l) { return l.stats.dampRaises; }));
    h5::writeInts(t, "dead_inputs", column<int64_t>(layers, [](const L& l) { return l.stats.deadInputs; }));
    const auto flag = [&](const char* name, bool (*get)(const L&)) {
        h5::writeBytes(t, name, column<uint8_t>(layers, [get](const L& l) { return get(l) ? 1 : 0; }));
    };
    flag("dense", [](const L& l) { return l.dense; });
    flag("symmetric", [](const L& l) { return l.options.quant.symmetric; });
    flag("act_order", [](const L& l) { return l.options.quant.actOrder; });
    flag("static_groups", [](const L& l) { return l.options.quant.staticGroups; });
    flag("fp16_scale", [](const L& l) { return l.options.quant.fp16Scale; });
    flag("signed_scale", [](const L& l) { return l.options.quant.signedScale; });
    h5::writeDoubles(t, "target_sparsity", column<double>(layers, [](const L& l) { return l.targetSparsity(); }));
    h5::writeDoubles(t, "damp", column<double>(layers, [](const L& l) { return l.options.damp; }));
    h5::writeDoubles(t, "sparsity", column<double>(layers, [](const L& l) { return l.stats.sparsity; }));
    h5::writeDoubles(t, "loss", column<double>(layers, [](const L& l) { return l.stats.loss; }));
    h5::writeDoubles(t, "rel_output_error", column<double>(layers, [](const L& l) { return l.stats.relOutputError; }));
    h5::writeDoubles(t, "damp_used", column<double>(layers, [](const L& l) { return l.stats.dampUsed; }));
    h5::writeDoubles(t, "seconds", column<double>(layers, [](const L& l) { return l.stats.seconds; }));
}

namespace {

void writeRun(hid_t runs, const RunRecord& run)
{
    if (run.id.empty() || run.id.find('/') != std::string::npos)
        throw std::invalid_argument("run id '" + run.id + "' must be non-empty and without '/'");
    const auto g = h5::createGroup(runs, run.id);
    const hid_t r = id(g);
    h5::writeAttribute(r, "id", run.id);
    h5::writeAttribute(r, "label", run.label);
    h5::writeAttribute(r, "kind", run.kind);
    h5::writeAttribute(r, "created_utc", run.createdUtc);
    h5::writeAttribute(r, "status", run.status);
    h5::writeAttribute(r, "recipe", run.recipeJson);
    h5::writeAttribute(r, "layer_filter", nlohmann::json(run.layerFilter).dump());
    h5::writeAttribute(r, "true_sequential", int64_t(run.trueSequential ? 1 : 0));
    h5::writeAttribute(r, "linear_sparsity", run.linearSparsity);
    h5::writeAttribute(r, "export_path", run.exportPath);
    h5::writeAttribute(r, "size_bytes", run.sizeBytes);
    if (run.calibration)
        writeCalibration(r, "calibration", *run.calibration);
    if (run.evaluation)
        writeEvaluation(r, "evaluation", *run.evaluation);
    {
        const auto t = h5::createGroup(r, "timings");
        h5::writeAttribute(id(t), "prune_seconds", run.timings.pruneSeconds);
        h5::writeAttribute(id(t), "eval_seconds", run.timings.evalSeconds);
        h5::writeAttribute(id(t), "export_seconds", run.timings.exportSeconds);
        h5::writeAttribute(id(t), "total_seconds", run.timings.totalSeconds);
    }
    {
        const auto p = h5::createGroup(r, "provenance");
        const Provenance& v = run.provenance;
        h5::writeAttribute(id(p), "sparselab_version", v.sparselabVersion);
        h5::writeAttribute(id(p), "torch_version", v.torchVersion);
        h5::writeAttribute(id(p), "hdf5_version", v.hdf5Version);
        h5::writeAttribute(id(p), "compiler", v.compiler);
        h5::writeAttribute(id(p), "os", v.os);
        h5::writeAttribute(id(p), "host", v.host);
        h5::writeAttribute(id(p), "cpu", v.cpu);
        h5::writeAttribute(id(p), "cpu_count", v.cpuCount);
        h5::writeAttribute(id(p), "threads", v.threads);
        h5::writeAttribute(id(p), "kernel_threads", v.kernelThreads);
        h5::writeAttribute(id(p), "device", v.device);
        h5::writeAttribute(id(p), "cpu_kernels", v.cpuKernels);
    }
    detail::writeLayers(r, run.layers);
    {
        const auto m = h5::createGroup(r, "masks");
        for (const auto& [name, mask] : run.masks) {
            if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
                throw std::invalid_argument("mask name '" + name + "' must be non-empty and without '/'");
            if (int64_t(mask.bytes.size()) != (mask.rows * mask.cols + 7) / 8)
                throw std::invalid_argument("mask '" + name + "': byte count does not match rows × cols");
            h5::writeBytes(id(m), name, mask.bytes);
            const auto set = h5::DataSet(H5Dopen2(id(m), name.c_str(), H5P_DEFAULT));
            h5::writeAttribute(id(set), "rows", mask.rows);
            h5::writeAttribute(id(set), "cols", mask.cols);
            h5::writeAttribute(id(set), "bitorder", "little");
        }
    }
    if (run.perplexityBefore)
        writePerplexity(r, "perplexity_before", *run.perplexityBefore);
    if (run.perplexityAfter)
        writePerplexity(r, "perplexity_after", *run.perplexityAfter);
    if (!run.extras.empty()) {
        const auto e = h5::createGroup(r, "extra");
        for (const auto& extra : run.extras)
            writeExtra(id(e), extra);
    }
}

void writeRootAttributes(hid_t file, const std::string& createdUtc)
{
    const auto root = h5::openGroup(file, ".");
    h5::writeAttribute(id(root), "format", kFormatName);
    h5::writeAttribute(id(root), "format_version", kFormatVersion);
    h5::writeAttribute(id(root), "created_utc", createdUtc.empty() ? utcNow() : createdUtc);
    h5::writeAttribute(id(root), "modified_utc", utcNow());
    h5::writeAttribute(id(root), "sparselab_version", SPARSELAB_VERSION);
}

// ---- reading ------------------------------------------------------------------------------

CalibrationSettings readCalibration(hid_t loc, const std::string& name)
{
    const auto g = h5::openGroup(loc, name);
    CalibrationSettings c;
    c.file = h5::readStringAttribute(id(g), "file");
    c.sha256 = h5::readStringAttribute(id(g), "sha256");
    c.tokens = h5::readIntAttribute(id(g), "tokens");
    c.nsamples = h5::readIntAttribute(id(g), "nsamples");
    c.seqlen = h5::readIntAttribute(id(g), "seqlen");
    c.seed = uint64_t(h5::readIntAttribute(id(g), "seed"));
    return c;
}

EvaluationSettings readEvaluation(hid_t loc, const std::string& name)
{
    const auto g = h5::openGroup(loc, name);
    EvaluationSettings e;
    e.file = h5::readStringAttribute(id(g), "file");
    e.sha256 = h5::readStringAttribute(id(g), "sha256");
    e.tokens = h5::readIntAttribute(id(g), "tokens");
    e.seqlen = h5::readIntAttribute(id(g), "seqlen");
    e.maxWindows = h5::readIntAttribute(id(g), "max_windows");
    return e;
}

ModelIdentity readModel(hid_t file)
{
    const auto g = h5::openGroup(file, "model");
    ModelIdentity m;
    m.path = h5::readStringAttribute(id(g), "path");
    m.architecture = h5::readStringAttribute(id(g), "architecture");
    m.modelType = h5::readStringAttribute(id(g), "model_type");
    m.numBlocks = h5::readIntAttribute(id(g), "num_blocks");
    m.hiddenSize = h5::readIntAttribute(id(g), "hidden_size");
    m.vocabSize = h5::readIntAttribute(id(g), "vocab_size");
    m.parameters = h5::readIntAttribute(id(g), "parameters");
    m.dtype = h5::readStringAttribute(id(g), "dtype");
    const auto names = h5::readStrings(id(g), "file_names");
    const auto hashes = h5::readStrings(id(g), "file_sha256");
    if (names.size() != hashes.size())
        throw h5::Hdf5Failure("/model: file_names and file_sha256 differ in length");
    for (size_t i = 0; i < names.size(); ++i)
        m.fileSha256[names[i]] = hashes[i];
    return m;
}

Attributes readAttributes(hid_t obj)
{
    Attributes out;
    for (const auto& name : h5::attributeNames(obj)) {
        switch (h5::attributeClass(obj, name)) {
        case h5::ValueClass::Integer: out[name] = h5::readIntAttribute(obj, name); break;
        case h5::ValueClass::Float: out[name] = h5::readDoubleAttribute(obj, name); break;
        case h5::ValueClass::String: out[name] = h5::readStringAttribute(obj, name); break;
        case h5::ValueClass::Other: break; // foreign attribute types are skipped
        }
    }
    return out;
}

std::optional<Dataset> readDataset(hid_t loc, const std::string& name)
{
    Dataset d;
    d.name = name;
    d.shape = h5::datasetShape(loc, name);
    size_t elementSize = 0;
    switch (h5::datasetClass(loc, name, &elementSize)) {
    case h5::ValueClass::Float:
        if (elementSize == 4) {
            d.type = Dataset::Type::Float32;
            d.f32 = h5::readFloats(loc, name);
        } else {
            d.type = Dataset::Type::Float64;
            d.f64 = h5::readDoubles(loc, name);
        }
        break;
    case h5::ValueClass::Integer:
        d.type = Dataset::Type::Int64;
        d.i64 = h5::readInts(loc, name);
        break;
    case h5::ValueClass::String:
        d.type = Dataset::Type::String;
        d.strings = h5::readStrings(loc, name);
        break;
    case h5::ValueClass::Other: return std::nullopt;
    }
    const auto set = h5::DataSet(H5Dopen2(loc, name.c_str(), H5P_DEFAULT));
    d.attributes = readAttributes(id(set));
    return d;
}

// Every group below `group` (itself included as `path`) that has attributes or datasets.
void readExtras(hid_t group, const std::string& path, std::vector<ExtraGroup>& out)
{
    ExtraGroup extra;
    extra.path = path;
    if (!path.empty())
        extra.attributes = readAttributes(group);
    std::vector<std::string> subgroups;
    for (const auto& child : h5::children(group)) {
        if (child.kind == h5::ChildKind::Dataset && !path.empty()) {
            if (auto d = readDataset(group, child.name))
                extra.datasets.push_back(std::move(*d));
        } else if (child.kind == h5::ChildKind::Group) {
            subgroups.push_back(child.name);
        }
    }
    if (!path.empty() && (!extra.attributes.empty() || !extra.datasets.empty()))
        out.push_back(std::move(extra));
    for (const auto& name : subgroups) {
        if (path.empty() && kReserved.count(name))
            continue;
        const auto sub = h5::openGroup(group, name);
        readExtras(id(sub), path.empty() ? name : path + "/" + name, out);
    }
}

PerplexityRecord readPerplexity(hid_t loc, const std::string& name, const LoadOptions& options)
{
    const auto g = h5::openGroup(loc, name);
    PerplexityRecord p;
    p.perplexity = h5::readDoubleAttribute(id(g), "perplexity");
    p.tokens = h5::readIntAttribute(id(g), "tokens");
    p.windows = h5::readIntAttribute(id(g), "windows");
    p.seqlen = h5::readIntAttribute(id(g), "seqlen");
    p.seconds = h5::readDoubleAttribute(id(g), "seconds");
    p.windowLoss = h5::readDoubles(id(g), "window_loss");
    if (options.tokenNll && h5::exists(id(g), "token_nll"))
        p.tokenNll = h5::readFloats(id(g), "token_nll");
    return p;
}

} // namespace

std::vector<solve::LayerRecord> detail::readLayers(hid_t run, bool quantFlagColumnsRequired)
{
    const auto g = h5::openGroup(run, "layers");
    const hid_t t = id(g);
    const auto names = h5::readStrings(t, "name");
    const size_t n = names.size();
    const auto strings = [&](const char* c) {
        auto v = h5::readStrings(t, c);
        if (v.size() != n)
            throw h5::Hdf5Failure(std::string("layers/") + c + ": length differs from layers/name");
        return v;
    };
    const auto ints = [&](const char* c) {
        auto v = h5::readInts(t, c);
        if (v.size() != n)
            throw h5::Hdf5Failure(std::string("layers/") + c + ": length differs from layers/name");
        return v;
    };
    const auto doubles = [&](const char* c) {
        auto v = h5::readDoubles(t, c);
        if (v.size() != n)
            throw h5::Hdf5Failure(std::string("layers/") + c + ": length differs from layers/name");
        return v;
    };
    const auto kind = strings("kind"), method = strings("method");
    const auto block = ints("block"), rows = ints("rows"), cols = ints("cols"), nmN = ints("nm_n"),
               nmM = ints("nm_m"), bits = ints("bits"), groupSize = ints("group_size"), blocksize = ints("blocksize"),
               dampRaises = ints("damp_raises"), deadInputs = ints("dead_inputs"), dense = ints("dense"),
               symmetric = ints("symmetric");
    // Columns added in format 2: absent in some format-1 files, where they were false.
    const auto flags = [&](const char* c) {
        return h5::exists(t, c) || quantFlagColumnsRequired ? ints(c) : std::vector<int64_t>(n, 0);
    };
    const auto actOrder = flags("act_order"), staticGroups = flags("static_groups"), fp16Scale = flags("fp16_scale"),
               signedScale = flags("signed_scale");
    const auto target = doubles("target_sparsity"), damp = doubles("damp"), sparsity = doubles("sparsity"),
               loss = doubles("loss"), relErr = doubles("rel_output_error"), dampUsed = doubles("damp_used"),
               seconds = doubles("seconds");
    std::vector<solve::LayerRecord> out(n);
    for (size_t i = 0; i < n; ++i) {
        solve::LayerRecord& l = out[i];
        l.name = names[i];
        l.kind = kind[i];
        l.block = block[i];
        l.rows = rows[i];
        l.cols = cols[i];
        l.dense = dense[i] != 0;
        solve::SolverOptions& o = l.options;
        if (!l.dense) {
            try {
                o.method = solve::parseMethod(method[i]);
            } catch (const InputError&) {
                throw h5::Hdf5Failure("layers/method: unknown method '" + method[i] + "' for " + names[i]);
            }
        }
        o.nmN = int(nmN[i]);
        o.nmM = int(nmM[i]);
        o.sparsity = target[i];
        o.blocksize = blocksize[i];
        o.damp = damp[i];
        o.quant.bits = int(bits[i]);
        o.quant.groupSize = groupSize[i];
        o.quant.symmetric = symmetric[i] != 0;
        o.quant.actOrder = actOrder[i] != 0;
        o.quant.staticGroups = staticGroups[i] != 0;
        o.quant.fp16Scale = fp16Scale[i] != 0;
        o.quant.signedScale = signedScale[i] != 0;
        l.options = solve::recordedOptions(o, l.dense);
        l.stats.sparsity = sparsity[i];
        l.stats.loss = loss[i];
        l.stats.relOutputError = relErr[i];
        l.stats.dampUsed = dampUsed[i];
        l.stats.dampRaises = int(dampRaises[i]);
        l.stats.deadInputs = deadInputs[i];
        l.stats.seconds = seconds[i];
    }
    return out;
}

namespace {

RunRecord readRun(hid_t runs, const std::string& runId, const LoadOptions& options, int64_t formatVersion)
{
    const auto g = h5::openGroup(runs, runId);
    const hid_t r = id(g);
    RunRecord run;
    run.id = runId;
    run.label = h5::readStringAttribute(r, "label");
    run.kind = h5::readStringAttribute(r, "kind");
    run.createdUtc = h5::readStringAttribute(r, "created_utc");
    run.status = h5::readStringAttribute(r, "status");
    run.recipeJson = h5::readStringAttribute(r, "recipe");
    const std::string filterText = h5::readStringAttribute(r, "layer_filter");
    if (jsonNestedDeeperThan(filterText))
        throw h5::Hdf5Failure("attribute 'layer_filter' is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    const auto filter = nlohmann::json::parse(filterText, nullptr, false);
    if (!filter.is_array())
        throw h5::Hdf5Failure("attribute 'layer_filter' is not a JSON array");
    for (const auto& f : filter) {
        if (!f.is_string())
            throw h5::Hdf5Failure("attribute 'layer_filter' is not a JSON array of strings");
        run.layerFilter.push_back(f.get<std::string>());
    }
    run.trueSequential = h5::readIntAttribute(r, "true_sequential") != 0;
    run.linearSparsity = h5::readDoubleAttribute(r, "linear_sparsity");
    run.exportPath = h5::readStringAttribute(r, "export_path");
    run.sizeBytes = h5::readIntAttribute(r, "size_bytes");
    if (h5::exists(r, "calibration"))
        run.calibration = readCalibration(r, "calibration");
    if (h5::exists(r, "evaluation"))
        run.evaluation = readEvaluation(r, "evaluation");
    {
        const auto t = h5::openGroup(r, "timings");
        run.timings.pruneSeconds = h5::readDoubleAttribute(id(t), "prune_seconds");
        run.timings.evalSeconds = h5::readDoubleAttribute(id(t), "eval_seconds");
        run.timings.exportSeconds = h5::readDoubleAttribute(id(t), "export_seconds");
        run.timings.totalSeconds = h5::readDoubleAttribute(id(t), "total_seconds");
    }
    {
        const auto p = h5::openGroup(r, "provenance");
        Provenance& v = run.provenance;
        v.sparselabVersion = h5::readStringAttribute(id(p), "sparselab_version");
        v.torchVersion = h5::readStringAttribute(id(p), "torch_version");
        v.hdf5Version = h5::readStringAttribute(id(p), "hdf5_version");
        v.compiler = h5::readStringAttribute(id(p), "compiler");
        v.os = h5::readStringAttribute(id(p), "os");
        v.host = h5::readStringAttribute(id(p), "host");
        v.cpu = h5::readStringAttribute(id(p), "cpu");
        v.cpuCount = h5::readIntAttribute(id(p), "cpu_count");
        v.threads = h5::readIntAttribute(id(p), "threads");
        if (h5::hasAttribute(id(p), "kernel_threads")) // written since 2026-12
            v.kernelThreads = h5::readIntAttribute(id(p), "kernel_threads");
        v.device = h5::readStringAttribute(id(p), "device");
        if (h5::hasAttribute(id(p), "cpu_kernels"))
            v.cpuKernels = h5::readStringAttribute(id(p), "cpu_kernels");
    }
    run.layers = detail::readLayers(r, /*quantFlagColumnsRequired=*/formatVersion >= 2);
    if (options.masks && h5::exists(r, "masks")) {
        const auto m = h5::openGroup(r, "masks");
        for (const auto& child : h5::children(id(m))) {
            if (child.kind != h5::ChildKind::Dataset)
                continue;
            const auto set = h5::DataSet(H5Dopen2(id(m), child.name.c_str(), H5P_DEFAULT));
            PackedMask mask;
            mask.rows = h5::readIntAttribute(id(set), "rows");
            mask.cols = h5::readIntAttribute(id(set), "cols");
            mask.bytes = h5::readBytes(id(m), child.name);
            if (mask.rows < 0 || mask.cols < 0 || int64_t(mask.bytes.size()) != (mask.rows * mask.cols + 7) / 8)
                throw h5::Hdf5Failure("mask '" + child.name + "': byte count does not match rows × cols");
            run.masks.emplace(child.name, std::move(mask));
        }
    }
    if (h5::exists(r, "perplexity_before"))
        run.perplexityBefore = readPerplexity(r, "perplexity_before", options);
    if (h5::exists(r, "perplexity_after"))
        run.perplexityAfter = readPerplexity(r, "perplexity_after", options);
    if (h5::exists(r, "extra")) {
        const auto e = h5::openGroup(r, "extra");
        std::vector<ExtraGroup> extras;
        for (const auto& child : h5::children(id(e)))
            if (child.kind == h5::ChildKind::Group) {
                const auto sub = h5::openGroup(id(e), child.name);
                readExtras(id(sub), child.name, extras);
            }
        run.extras = std::move(extras);
    }
    return run;
}

// Opens and validates the marker and version. Hdf5Failure on any problem.
h5::File openWorkspace(const fs::path& file)
{
    std::error_code ec;
    if (!fs::exists(file, ec))
        throw h5::Hdf5Failure("file not found");
    if (fs::is_directory(file, ec))
        throw h5::Hdf5Failure("is a folder, expected a workspace file");
    auto handle = h5::openFileReadOnly(file.string());
    const auto root = h5::openGroup(id(handle), ".");
    if (!h5::hasAttribute(id(root), "format")
        || h5::attributeClass(id(root), "format") != h5::ValueClass::String
        || h5::readStringAttribute(id(root), "format") != kFormatName)
        throw h5::Hdf5Failure("an HDF5 file but not a SparseLab workspace (no format = \"sparselab-workspace\")");
    const int64_t version = h5::readIntAttribute(id(root), "format_version");
    if (version > kFormatVersion)
        throw h5::Hdf5Failure("workspace format version " + std::to_string(version)
                              + " is newer than this SparseLab reads (" + std::to_string(kFormatVersion) + ")");
    if (version < kOldestReadableFormatVersion)
        throw h5::Hdf5Failure("invalid workspace format version " + std::to_string(version));
    return handle;
}

// Runs `body` translating internal failures into one-line InputErrors naming the file.
template <typename Body>
auto guarded(const fs::path& file, Body body)
{
    const auto lock = h5::hdf5Lock();
    try {
        return body();
    } catch (const h5::Hdf5Failure& e) {
        throw inputError(file, e.what());
    } catch (const nlohmann::json::exception& e) {
        throw inputError(file, std::string("malformed JSON inside the workspace: ") + e.what());
    }
}

// A format-1 file rewritten as format 2: the GPTQ flag columns its runs' layer tables lack are
// added, holding what format 1 meant by their absence (false).
void upgradeLayerTablesToFormat2(hid_t file)
{
    if (!h5::exists(file, "runs"))
        return;
    const auto runs = h5::openGroup(file, "runs");
    for (const auto& child : h5::children(id(runs))) {
        if (child.kind != h5::ChildKind::Group)
            continue;
        const auto run = h5::openGroup(id(runs), child.name);
        if (!h5::exists(id(run), "layers"))
            continue;
        const auto layers = h5::openGroup(id(run), "layers");
        const size_t rows = h5::readStrings(id(layers), "name").size();
        for (const char* column : {"act_order", "static_groups", "fp16_scale", "signed_scale"})
            if (!h5::exists(id(layers), column))
                h5::writeBytes(id(layers), column, std::vector<uint8_t>(rows, 0));
    }
}

// Copy-on-write edit: a new file at a temporary sibling gets the root attributes, every
// top-level object of the existing file (if any) except `replaced` (brought up to the current
// format), then `edit(newFile)`; it is closed, fsync'ed and renamed over `file`.
void rewrite(const fs::path& file, const std::set<std::string>& replaced, const std::function<void(hid_t)>& edit)
{
    guarded(file, [&] {
        std::error_code ec;
        h5::File old;
        std::string createdUtc;
        int64_t oldVersion = kFormatVersion;
        if (fs::exists(file, ec)) {
            try {
                old = openWorkspace(file);
            } catch (const h5::Hdf5Failure& e) {
                throw h5::Hdf5Failure(std::string(e.what()) + "; refusing to overwrite it");
            }
            const auto root = h5::openGroup(id(old), ".");
            if (h5::hasAttribute(id(root), "created_utc"))
                createdUtc = h5::readStringAttribute(id(root), "created_utc");
            oldVersion = h5::readIntAttribute(id(root), "format_version");
        }
        writeFileAtomically(file, [&](const fs::path& temp) {
            h5::writeSealedFile(temp.string(), [&](hid_t out) {
                writeRootAttributes(out, createdUtc);
                if (old)
                    for (const auto& child : h5::children(id(old)))
                        if (!replaced.count(child.name))
                            h5::copyObject(id(old), child.name, out);
                if (oldVersion < 2)
                    upgradeLayerTablesToFormat2(out);
                edit(out);
            });
        });
    });
}

std::string nextRunId(hid_t runs)
{
    int64_t highest = 0;
    for (const auto& child : h5::children(runs))
        if (child.name.rfind("run_", 0) == 0) {
            try {
                highest = std::max<int64_t>(highest, std::stoll(child.name.substr(4)));
            } catch (const std::exception&) {
            }
        }
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "run_%04lld", (long long)(highest + 1));
    return buffer;
}

std::string firstLineOf(const fs::path& file, const std::string& key)
{
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                auto value = line.substr(colon + 1);
                value.erase(0, value.find_first_not_of(" \t"));
                return value;
            }
        }
    return {};
}

} // namespace

// ---- PackedMask / Dataset / ExtraGroup ------------------------------------------------------

PackedMask PackedMask::pack(const uint8_t* values, int64_t rows, int64_t cols)
{
    PackedMask mask;
    mask.rows = rows;
    mask.cols = cols;
    const int64_t n = rows * cols;
    mask.bytes.assign(size_t((n + 7) / 8), 0);
    for (int64_t i = 0; i < n; ++i)
        if (values[i])
            mask.bytes[size_t(i / 8)] |= uint8_t(1u << (i % 8));
    return mask;
}

std::vector<uint8_t> PackedMask::unpack() const
{
    const int64_t n = rows * cols;
    std::vector<uint8_t> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        out[size_t(i)] = (bytes[size_t(i / 8)] >> (i % 8)) & 1u;
    return out;
}

bool PackedMask::at(int64_t row, int64_t col) const
{
    const int64_t i = row * cols + col;
    return (bytes.at(size_t(i / 8)) >> (i % 8)) & 1u;
}

int64_t PackedMask::countPruned() const
{
    int64_t count = 0;
    for (uint8_t b : bytes)
        count += __builtin_popcount(b);
    return count; // padding bits are never set by pack()
}

namespace {

// The four factories differ only in the type tag and the vector that holds the values.
template <typename T>
Dataset makeDataset(std::string name, Dataset::Type type, std::vector<T> values, std::vector<int64_t> shape,
                    std::vector<T> Dataset::*field)
{
    Dataset d;
    d.name = std::move(name);
    d.type = type;
    d.shape = shape.empty() ? std::vector<int64_t>{int64_t(values.size())} : std::move(shape);
    d.*field = std::move(values);
    return d;
}

} // namespace

Dataset Dataset::float64(std::string name, std::vector<double> values, std::vector<int64_t> shape)
{
    return makeDataset(std::move(name), Type::Float64, std::move(values), std::move(shape), &Dataset::f64);
}

Dataset Dataset::float32(std::string name, std::vector<float> values, std::vector<int64_t> shape)
{
    return makeDataset(std::move(name), Type::Float32, std::move(values), std::move(shape), &Dataset::f32);
}

Dataset Dataset::int64(std::string name, std::vector<int64_t> values, std::vector<int64_t> shape)
{
    return makeDataset(std::move(name), Type::Int64, std::move(values), std::move(shape), &Dataset::i64);
}

Dataset Dataset::text(std::string name, std::vector<std::string> values, std::vector<int64_t> shape)
{
    return makeDataset(std::move(name), Type::String, std::move(values), std::move(shape), &Dataset::strings);
}

int64_t Dataset::size() const
{
    switch (type) {
    case Type::Float64: return int64_t(f64.size());
    case Type::Float32: return int64_t(f32.size());
    case Type::Int64: return int64_t(i64.size());
    case Type::String: return int64_t(strings.size());
    }
    return 0;
}

const Dataset* ExtraGroup::dataset(const std::string& name) const
{
    for (const auto& d : datasets)
        if (d.name == name)
            return &d;
    return nullptr;
}

const RunRecord* WorkspaceContents::run(const std::string& runId) const
{
    for (const auto& r : runs)
        if (r.id == runId)
            return &r;
    return nullptr;
}

// ---- public API -----------------------------------------------------------------------------

WorkspaceContents loadWorkspace(const fs::path& file, const LoadOptions& options)
{
    return guarded(file, [&] {
        const auto handle = openWorkspace(file);
        const hid_t f = id(handle);
        WorkspaceContents contents;
        const auto root = h5::openGroup(f, ".");
        contents.createdUtc = h5::readStringAttribute(id(root), "created_utc");
        contents.modifiedUtc = h5::readStringAttribute(id(root), "modified_utc");
        contents.sparselabVersion = h5::readStringAttribute(id(root), "sparselab_version");
        const int64_t formatVersion = h5::readIntAttribute(id(root), "format_version");
        if (h5::exists(f, "model"))
            contents.model = readModel(f);
        if (h5::exists(f, "calibration"))
            contents.calibration = readCalibration(f, "calibration");
        if (h5::exists(f, "evaluation"))
            contents.evaluation = readEvaluation(f, "evaluation");
        if (h5::exists(f, "runs")) {
            const auto runs = h5::openGroup(f, "runs");
            for (const auto& child : h5::children(id(runs))) {
                if (child.kind != h5::ChildKind::Group)
                    continue;
                try {
                    contents.runs.push_back(readRun(id(runs), child.name, options, formatVersion));
                } catch (const h5::Hdf5Failure& e) {
                    throw h5::Hdf5Failure("/runs/" + child.name + ": " + e.what());
                }
            }
        }
        readExtras(f, "", contents.groups);
        std::sort(contents.groups.begin(), contents.groups.end(),
                  [](const ExtraGroup& a, const ExtraGroup& b) { return a.path < b.path; });
        return contents;
    });
}

void saveWorkspace(const fs::path& file, const WorkspaceContents& contents)
{
    std::set<std::string> ids;
    for (const auto& run : contents.runs)
        if (run.id.empty() || !ids.insert(run.id).second)
            throw std::invalid_argument("saveWorkspace: run ids must be unique and non-empty");
    for (const auto& group : contents.groups) {
        checkGroupPath(group.path);
        if (kReserved.count(group.path.substr(0, group.path.find('/'))))
            throw std::invalid_argument("saveWorkspace: group path '" + group.path + "' uses a reserved name");
    }
    guarded(file, [&] {
        writeFileAtomically(file, [&](const fs::path& temp) {
            h5::writeSealedFile(temp.string(), [&](hid_t f) {
                writeRootAttributes(f, contents.createdUtc);
                if (contents.model)
                    writeModel(f, *contents.model);
                if (contents.calibration)
                    writeCalibration(f, "calibration", *contents.calibration);
                if (contents.evaluation)
                    writeEvaluation(f, "evaluation", *contents.evaluation);
                const auto runs = h5::createGroup(f, "runs");
                for (const auto& run : contents.runs)
                    writeRun(id(runs), run);
                for (const auto& group : contents.groups)
                    writeExtra(f, group);
            });
        });
    });
}

void updateWorkspaceSettings(const fs::path& file, const std::optional<ModelIdentity>& model,
                             const std::optional<CalibrationSettings>& calibration,
                             const std::optional<EvaluationSettings>& evaluation)
{
    std::set<std::string> replaced;
    if (model)
        replaced.insert("model");
    if (calibration)
        replaced.insert("calibration");
    if (evaluation)
        replaced.insert("evaluation");
    rewrite(file, replaced, [&](hid_t f) {
        if (model)
            writeModel(f, *model);
        if (calibration)
            writeCalibration(f, "calibration", *calibration);
        if (evaluation)
            writeEvaluation(f, "evaluation", *evaluation);
        if (!h5::exists(f, "runs"))
            (void)h5::createGroup(f, "runs");
    });
}

std::string appendRun(const fs::path& file, RunRecord run, const std::optional<ModelIdentity>& model)
{
    std::string runId;
    rewrite(file, {}, [&](hid_t f) {
        if (model && !h5::exists(f, "model"))
            writeModel(f, *model);
        const auto runs = h5::createGroup(f, "runs");
        run.id = nextRunId(id(runs));
        if (run.createdUtc.empty())
            run.createdUtc = utcNow();
        writeRun(id(runs), run);
        runId = run.id;
    });
    return runId;
}

void writeGroup(const fs::path& file, const ExtraGroup& group)
{
    checkGroupPath(group.path);
    const std::string top = group.path.substr(0, group.path.find('/'));
    if (kReserved.count(top))
        throw std::invalid_argument("writeGroup: '" + group.path + "' starts with a reserved name");
    // Replace exactly this group (and its sub-groups): copy the top-level object, then
    // delete the old link inside the new file before writing.
    std::set<std::string> replaced;
    if (group.path == top)
        replaced.insert(top); // a whole top-level group: do not copy it at all
    rewrite(file, replaced, [&](hid_t f) {
        if (h5::exists(f, group.path) && H5Ldelete(f, group.path.c_str(), H5P_DEFAULT) < 0)
            throw h5::Hdf5Failure("cannot replace group '" + group.path + "'");
        writeExtra(f, group);
        if (!h5::exists(f, "runs"))
            (void)h5::createGroup(f, "runs");
    });
}

std::vector<RunSummary> listRuns(const fs::path& file)
{
    return guarded(file, [&] {
        const auto handle = openWorkspace(file);
        std::vector<RunSummary> out;
        if (!h5::exists(id(handle), "runs"))
            return out;
        const auto runs = h5::openGroup(id(handle), "runs");
        for (const auto& child : h5::children(id(runs))) {
            if (child.kind != h5::ChildKind::Group)
                continue;
            try {
                const auto g = h5::openGroup(id(runs), child.name);
                RunSummary s;
                s.id = child.name;
                s.label = h5::readStringAttribute(id(g), "label");
                s.kind = h5::readStringAttribute(id(g), "kind");
                s.createdUtc = h5::readStringAttribute(id(g), "created_utc");
                s.linearSparsity = h5::readDoubleAttribute(id(g), "linear_sparsity");
                if (h5::exists(id(g), "perplexity_before")) {
                    const auto p = h5::openGroup(id(g), "perplexity_before");
                    s.perplexityBefore = h5::readDoubleAttribute(id(p), "perplexity");
                }
                if (h5::exists(id(g), "perplexity_after")) {
                    const auto p = h5::openGroup(id(g), "perplexity_after");
                    s.perplexityAfter = h5::readDoubleAttribute(id(p), "perplexity");
                }
                s.layers = h5::datasetShape(id(g), "layers/name").at(0);
                out.push_back(std::move(s));
            } catch (const h5::Hdf5Failure& e) {
                throw h5::Hdf5Failure("/runs/" + child.name + ": " + e.what());
            }
        }
        return out;
    });
}

bool isWorkspace(const fs::path& file)
{
    if (!h5::hasHdf5Signature(file.string()))
        return false;
    const auto lock = h5::hdf5Lock();
    try {
        (void)openWorkspace(file);
        return true;
    } catch (const h5::Hdf5Failure&) {
        return false;
    }
}

std::string hdf5Version()
{
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

Provenance currentProvenance()
{
    Provenance p;
    p.sparselabVersion = SPARSELAB_VERSION;
#ifdef TORCH_VERSION
    p.torchVersion = TORCH_VERSION;
#endif
    p.hdf5Version = hdf5Version();
    p.cpuKernels = util::cpuKernelsProvenance();
#if defined(__clang__)
    p.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
    p.compiler = "gcc " __VERSION__;
#endif
    utsname name{};
    if (uname(&name) == 0) {
        p.os = std::string(name.sysname) + " " + name.release + " " + name.machine;
        p.host = name.nodename;
    }
    p.cpu = firstLineOf("/proc/cpuinfo", "model name");
    p.cpuCount = int64_t(std::thread::hardware_concurrency());
    return p;
}

} // namespace sparselab::store
