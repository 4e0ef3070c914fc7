// store/workspace and store/resume: every field survives a save/load round trip, appends keep
// earlier data, masks are bit-packed as documented (bytes derived by hand below), the file is
// readable with h5dump and h5py (skipped when those tools are absent), malformed and foreign
// files give one line naming the file and are never overwritten, resume checkpoints round-trip
// and reject other settings; the evaluator's per-token NLL matches log-softmax computed here.

#include "testsupport.h"

#include "eval/perplexity.h"
#include "model/causal_lm.h"
#include "store/hdf5_handles.h"
#include "store/resume.h"
#include "store/run_records.h"
#include "store/workspace.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

using namespace sparselab;
namespace fs = std::filesystem;

namespace {

QString errorOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const InputError& e) {
        return QString::fromUtf8(e.what());
    }
    return {};
}

std::string fileBytes(const fs::path& file)
{
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool toolAvailable(const QString& program, const QStringList& args)
{
    QProcess p;
    p.start(program, args);
    return p.waitForFinished(60000) && p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

// A Python with h5py and numpy: Debian's (python3-h5py installs for /usr/bin/python3, which a
// pyenv or venv python3 earlier in PATH may not see), else whatever python3 is in PATH.
QString pythonWithH5py()
{
    for (const QString& program : {QStringLiteral("/usr/bin/python3"), QStringLiteral("python3")})
        if (toolAvailable(program, {"-c", "import h5py, numpy"}))
            return program;
    return {};
}

// A run in which every field differs from its default, so a field that is not written or not
// read back makes the comparison fail.
store::RunRecord sampleRun(int variant)
{
    store::RunRecord run;
    run.id = "run_000" + std::to_string(variant);
    run.label = "sparsegpt 50% — run " + std::to_string(variant); // non-ASCII on purpose
    run.kind = "prune";
    run.createdUtc = "2026-12-01T09:0" + std::to_string(variant) + ":00Z";
    run.status = "complete";
    run.recipeJson = R"({"defaults":{"method":"sparsegpt","sparsity":0.5}})";
    run.layerFilter = {"model.layers.0.*", "model.layers.1.mlp.*"};
    run.trueSequential = true;
    run.linearSparsity = 0.4987 + variant;
    run.exportPath = "/tmp/out" + std::to_string(variant);
    run.sizeBytes = 123456 + variant;
    run.calibration = store::CalibrationSettings{"/data/calib.txt", std::string(64, 'a'), 9000, 16, 256, 7};
    run.evaluation = store::EvaluationSettings{"/data/eval.txt", std::string(64, 'b'), 8000, 256, 3};
    for (int i = 0; i < 3; ++i) {
        solve::LayerRecord l;
        l.name = "model.layers.0.mlp.l" + std::to_string(i);
        l.kind = "mlp.l" + std::to_string(i);
        l.block = i;
        l.rows = 3 + i;
        l.cols = 5 + i;
        l.dense = i == 2;
        solve::SolverOptions o;
        o.method = i == 0 ? solve::Method::Wanda : solve::Method::SparseGpt;
        o.sparsity = 0.5 + 0.01 * i;
        o.nmN = i == 1 ? 2 : 0;
        o.nmM = i == 1 ? 4 : 0;
        o.quant.bits = 4 + i;
        o.quant.groupSize = 32 * i;
        o.quant.symmetric = i == 0;
        o.quant.actOrder = i == 1;
        o.quant.staticGroups = i == 1;
        o.quant.fp16Scale = i == 0;
        o.quant.signedScale = i == 0;
        o.blocksize = 64 + i;
        o.damp = 0.02 + i;
        l.options = solve::recordedOptions(o, l.dense);
        l.stats.sparsity = 0.49 + i;
        l.stats.loss = 1.5e-3 * (i + 1);
        l.stats.relOutputError = 0.011 * (i + 1);
        l.stats.dampUsed = 0.1 * (i + 1);
        l.stats.dampRaises = i;
        l.stats.deadInputs = 2 * i;
        l.stats.seconds = 0.25 * (i + 1);
        run.layers.push_back(l);
        std::vector<uint8_t> bits(size_t(l.rows * l.cols));
        for (size_t k = 0; k < bits.size(); ++k)
            bits[k] = uint8_t((k * 7 + size_t(i) + size_t(variant)) % 3 == 0);
        run.masks[l.name] = store::PackedMask::pack(bits.data(), l.rows, l.cols);
    }
    store::PerplexityRecord before{12.5, 8000, 2, 4, 0.75, {2.1, 2.9}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f}};
    store::PerplexityRecord after{13.25, 8000, 2, 4, 0.5, {2.2, 3.0}, {1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f}};
    run.perplexityBefore = before;
    run.perplexityAfter = after;
    run.timings = {1.5, 2.5, 3.5, 7.5};
    run.provenance = store::currentProvenance();
    run.provenance.threads = 3;
    run.provenance.device = "cpu";
    store::ExtraGroup extra;
    extra.path = "sweep/point";
    extra.attributes = {{"shard", int64_t(2)}, {"score", 0.125}, {"note", std::string("x")}};
    extra.datasets.push_back(store::Dataset::float64("table", {1, 2, 3, 4, 5, 6}, {2, 3}));
    run.extras.push_back(extra);
    return run;
}

store::WorkspaceContents sampleContents()
{
    store::WorkspaceContents c;
    c.createdUtc = "2026-12-01T08:00:00Z";
    store::ModelIdentity m;
    m.path = "/models/demo";
    m.architecture = "LlamaForCausalLM";
    m.modelType = "llama";
    m.numBlocks = 5;
    m.hiddenSize = 64;
    m.vocabSize = 512;
    m.parameters = 260000;
    m.dtype = "F32";
    m.fileSha256 = {{"config.json", std::string(64, 'c')}, {"model.safetensors", std::string(64, 'd')}};
    c.model = m;
    c.calibration = store::CalibrationSettings{"/c.txt", std::string(64, 'e'), 100, 8, 32, 3};
    c.evaluation = store::EvaluationSettings{"/e.txt", std::string(64, 'f'), 200, 32, 0};
    c.runs = {sampleRun(1), sampleRun(2)};
    store::ExtraGroup matrix;
    matrix.path = "sensitivity/scan_0001";
    matrix.attributes = {{"levels", std::string("[0.25,0.5]")}, {"count", int64_t(2)}};
    auto heat = store::Dataset::float32("error", {0.5f, 0.25f, 1.f, 2.f}, {2, 2});
    heat.attributes = {{"units", std::string("relative")}};
    matrix.datasets.push_back(heat);
    matrix.datasets.push_back(store::Dataset::int64("bits", {4, 8}));
    matrix.datasets.push_back(store::Dataset::text("layers", {"a", "b"}));
    store::ExtraGroup sweep;
    sweep.path = "sweeps/sweep_0001";
    sweep.attributes = {{"grid", std::string("2x2")}};
    sweep.datasets.push_back(store::Dataset::float64("perplexity", {10.5, 11.5, 12.5, 13.5}, {2, 2}));
    c.groups = {matrix, sweep};
    return c;
}

// `source`'s workspace rewritten with libhdf5 as `version` says, without the layer tables' GPTQ
// flag columns (as format 1 wrote them before they were stored), sealed like any workspace.
void writeWithoutFlagColumns(const fs::path& source, const fs::path& target, int64_t version)
{
    namespace h5 = store::h5;
    const auto lock = h5::hdf5Lock();
    const auto in = h5::openFileReadOnly(source.string());
    const auto inRoot = h5::openGroup(h5::id(in), ".");
    h5::writeSealedFile(target.string(), [&](hid_t out) {
        const auto root = h5::openGroup(out, ".");
        for (const char* text : {"format", "created_utc", "modified_utc", "sparselab_version"})
            h5::writeAttribute(h5::id(root), text, h5::readStringAttribute(h5::id(inRoot), text));
        h5::writeAttribute(h5::id(root), "format_version", version);
        for (const auto& child : h5::children(h5::id(in)))
            h5::copyObject(h5::id(in), child.name, out);
        const auto runs = h5::openGroup(out, "runs");
        for (const auto& run : h5::children(h5::id(runs))) {
            const auto layers = h5::openGroup(h5::id(runs), run.name + "/layers");
            for (const char* column : {"act_order", "static_groups", "fp16_scale", "signed_scale"})
                QVERIFY(H5Ldelete(h5::id(layers), column, H5P_DEFAULT) >= 0);
        }
    });
}

void compareRuns(const store::RunRecord& a, const store::RunRecord& b)
{
    QCOMPARE(a.id, b.id);
    QCOMPARE(a.label, b.label);
    QCOMPARE(a.kind, b.kind);
    QCOMPARE(a.createdUtc, b.createdUtc);
    QCOMPARE(a.status, b.status);
    QCOMPARE(a.recipeJson, b.recipeJson);
    QVERIFY(a.layerFilter == b.layerFilter);
    QCOMPARE(a.trueSequential, b.trueSequential);
    QCOMPARE(a.linearSparsity, b.linearSparsity);
    QCOMPARE(a.exportPath, b.exportPath);
    QCOMPARE(a.sizeBytes, b.sizeBytes);
    QVERIFY(a.calibration == b.calibration);
    QVERIFY(a.evaluation == b.evaluation);
    QCOMPARE(a.layers.size(), b.layers.size());
    for (size_t i = 0; i < a.layers.size(); ++i)
        QVERIFY2(a.layers[i] == b.layers[i], a.layers[i].name.c_str());
    QVERIFY(a.masks == b.masks);
    QVERIFY(a.perplexityBefore == b.perplexityBefore);
    QVERIFY(a.perplexityAfter == b.perplexityAfter);
    QVERIFY(a.timings == b.timings);
    QVERIFY(a.provenance == b.provenance);
    QVERIFY(a.extras == b.extras);
    QVERIFY(a == b);
}

} // namespace

class TestWorkspace : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void roundTripEveryField();
    void layerRecordsAreCanonical();
    void appendKeepsEarlierRuns();
    void formatVersion1IsReadAndUpgraded();
    void packedMaskLayoutByHand();
    void packedMaskRandomRoundTrip();
    void readableWithH5dump();
    void readableWithH5py();
    void malformedFilesOneLine();
    void corruptedWorkspacesAreCleanErrors();
    void foreignFileNeverOverwritten();
    void noTemporariesLeft();
    void resumeStoreRoundTrip();
    void tokenNllMatchesLogSoftmax();
};

void TestWorkspace::roundTripEveryField()
{
    QTemporaryDir dir;
    const fs::path file = fs::path(dir.path().toStdString()) / "w.h5";
    const auto written = sampleContents();
    store::saveWorkspace(file, written);
    QVERIFY(store::isWorkspace(file));
    const auto read = store::loadWorkspace(file);
    QCOMPARE(read.createdUtc, written.createdUtc);
    QVERIFY(!read.modifiedUtc.empty());
    QCOMPARE(read.sparselabVersion, std::string(SPARSELAB_VERSION));
    QVERIFY(read.model == written.model);
    QVERIFY(read.calibration == written.calibration);
    QVERIFY(read.evaluation == written.evaluation);
    QCOMPARE(read.runs.size(), written.runs.size());
    for (size_t i = 0; i < read.runs.size(); ++i)
        compareRuns(read.runs[i], written.runs[i]);
    QCOMPARE(read.groups.size(), written.groups.size());
    for (size_t i = 0; i < read.groups.size(); ++i) {
        auto expected = written.groups[i];
        std::sort(expected.datasets.begin(), expected.datasets.end(),
                  [](const auto& a, const auto& b) { return a.name < b.name; }); // read back in name order
        QVERIFY2(read.groups[i] == expected, read.groups[i].path.c_str());
    }
    QCOMPARE(read.groups[0].dataset("error")->shape, (std::vector<int64_t>{2, 2}));

    // Without arrays: masks and token NLL are skipped, the rest is there.
    const auto light = store::loadWorkspace(file, {false, false});
    QVERIFY(light.runs[0].masks.empty());
    QVERIFY(light.runs[0].perplexityAfter->tokenNll.empty());
    QCOMPARE(light.runs[0].perplexityAfter->windowLoss, written.runs[0].perplexityAfter->windowLoss);

    const auto summaries = store::listRuns(file);
    QCOMPARE(summaries.size(), size_t(2));
    QCOMPARE(summaries[1].id, std::string("run_0002"));
    QCOMPARE(summaries[1].layers, int64_t(3));
    QCOMPARE(*summaries[1].perplexityAfter, 13.25);
}

// A record keeps what was asked in the one form the per-layer table stores without loss: a
// dense layer was asked nothing, an N:M layer's sparsity is N/M. Values derived by hand.
void TestWorkspace::layerRecordsAreCanonical()
{
    solve::SolverOptions asked;
    asked.method = solve::Method::Wanda;
    asked.sparsity = 0.7;
    asked.nmN = 2;
    asked.nmM = 4;
    asked.blocksize = 64;
    asked.damp = 0.05;
    asked.quant.bits = 4;
    asked.quant.groupSize = 32;
    asked.quant.actOrder = true;

    const solve::SolverOptions nm = solve::recordedOptions(asked, false);
    QCOMPARE(nm.sparsity, 0.5);
    QVERIFY(nm.method == solve::Method::Wanda);
    QVERIFY(nm.quant == asked.quant);
    const solve::SolverOptions dense = solve::recordedOptions(asked, true);
    QVERIFY(dense.method == solve::Method::SparseGpt);
    QCOMPARE(dense.sparsity, 0.0);
    QCOMPARE(dense.nmM, 0);
    QVERIFY(dense.quant == solve::QuantOptions{});
    QCOMPARE(dense.blocksize, int64_t(64));
    QCOMPARE(dense.damp, 0.05);

    solve::LayerRecord nmRecord{"model.layers.0.mlp.up_proj", "mlp.up_proj", 0, 8, 16, false, nm, {}};
    solve::LayerRecord denseRecord{"model.layers.0.mlp.down_proj", "mlp.down_proj", 0, 16, 8, true, dense, {}};
    QCOMPARE(nmRecord.methodKey(), std::string("wanda"));
    QCOMPARE(nmRecord.targetSparsity(), 0.5);
    QCOMPARE(nmRecord.bits(), 4);
    QCOMPARE(denseRecord.methodKey(), std::string("dense"));
    QCOMPARE(denseRecord.targetSparsity(), 0.0);
    QCOMPARE(denseRecord.bits(), 16);

    QTemporaryDir dir;
    const fs::path file = fs::path(dir.path().toStdString()) / "w.h5";
    auto contents = sampleContents();
    contents.runs.resize(1);
    contents.runs[0].layers = {nmRecord, denseRecord};
    contents.runs[0].masks.clear();
    store::saveWorkspace(file, contents);
    const auto read = store::loadWorkspace(file).runs.at(0).layers;
    QCOMPARE(read.size(), size_t(2));
    QVERIFY(read[0] == nmRecord);
    QVERIFY(read[1] == denseRecord);
}

void TestWorkspace::appendKeepsEarlierRuns()
{
    QTemporaryDir dir;
    const fs::path file = fs::path(dir.path().toStdString()) / "w.h5";
    const auto contents = sampleContents();
    const std::string first = store::appendRun(file, sampleRun(1), contents.model);
    const std::string second = store::appendRun(file, sampleRun(2));
    QCOMPARE(first, std::string("run_0001"));
    QCOMPARE(second, std::string("run_0002"));
    store::writeGroup(file, contents.groups[0]);
    store::updateWorkspaceSettings(file, std::nullopt, contents.calibration, contents.evaluation);
    // Replacing a group: the new content wins, nothing else changes.
    auto replaced = contents.groups[0];
    replaced.datasets.resize(1);
    replaced.attributes["count"] = int64_t(9);
    store::writeGroup(file, replaced);

    const auto read = store::loadWorkspace(file);
    QVERIFY(read.model == contents.model);
    QVERIFY(read.calibration == contents.calibration);
    QVERIFY(read.evaluation == contents.evaluation);
    QCOMPARE(read.runs.size(), size_t(2));
    auto expected1 = sampleRun(1);
    expected1.id = "run_0001";
    compareRuns(read.runs[0], expected1);
    auto expected2 = sampleRun(2);
    expected2.id = "run_0002";
    compareRuns(read.runs[1], expected2);
    QCOMPARE(read.groups.size(), size_t(1));
    QVERIFY(read.groups[0] == replaced);
    QVERIFY(std::get<std::string>(read.groups[0].attributes.at("levels")) == "[0.25,0.5]");

    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, store::writeGroup(file, store::ExtraGroup{"runs/x", {}, {}}));
}

// Format 2 (this version) always stores the GPTQ flags; format-1 files are still read, a flag
// column they lack reading as false, and appending to one rewrites it as format 2 with those
// columns added; a format-2 file that lacks one is malformed, in one line naming the file.
void TestWorkspace::formatVersion1IsReadAndUpgraded()
{
    QTemporaryDir dir;
    const fs::path root = dir.path().toStdString();
    const auto written = sampleContents();
    store::saveWorkspace(root / "v2.h5", written);
    {
        const auto lock = store::h5::hdf5Lock();
        const auto file = store::h5::openFileReadOnly((root / "v2.h5").string());
        const auto top = store::h5::openGroup(store::h5::id(file), ".");
        QCOMPARE(store::h5::readIntAttribute(store::h5::id(top), "format_version"), int64_t(2));
    }
    writeWithoutFlagColumns(root / "v2.h5", root / "v1.h5", 1);
    writeWithoutFlagColumns(root / "v2.h5", root / "v2-missing.h5", 2);

    // What format 1 meant: the sample runs' layers with every GPTQ flag false.
    std::vector<store::RunRecord> expected = written.runs;
    bool someFlagWasSet = false;
    for (auto& run : expected)
        for (auto& layer : run.layers) {
            auto& q = layer.options.quant;
            someFlagWasSet = someFlagWasSet || q.actOrder || q.staticGroups || q.fp16Scale || q.signedScale;
            q.actOrder = q.staticGroups = q.fp16Scale = q.signedScale = false;
        }
    QVERIFY(someFlagWasSet); // the check below would not see a lost flag otherwise
    const auto v1 = store::loadWorkspace(root / "v1.h5");
    QCOMPARE(v1.runs.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i)
        QVERIFY(v1.runs[i].layers == expected[i].layers);

    const std::string id = store::appendRun(root / "v1.h5", sampleRun(3));
    {
        const auto lock = store::h5::hdf5Lock();
        const auto file = store::h5::openFileReadOnly((root / "v1.h5").string());
        const auto top = store::h5::openGroup(store::h5::id(file), ".");
        QCOMPARE(store::h5::readIntAttribute(store::h5::id(top), "format_version"), int64_t(2));
        QVERIFY(store::h5::exists(store::h5::id(file), "runs/run_0001/layers/signed_scale"));
    }
    const auto upgraded = store::loadWorkspace(root / "v1.h5");
    QCOMPARE(upgraded.runs.size(), expected.size() + 1);
    for (size_t i = 0; i < expected.size(); ++i)
        QVERIFY(upgraded.runs[i].layers == expected[i].layers);
    QVERIFY(upgraded.runs.back().layers == sampleRun(3).layers);
    QCOMPARE(upgraded.runs.back().id, id);

    const QString message = errorOf([&] { (void)store::loadWorkspace(root / "v2-missing.h5"); });
    QVERIFY2(message.startsWith(QString::fromStdString((root / "v2-missing.h5").string()) + ": "), qPrintable(message));
    QVERIFY2(message.contains("act_order"), qPrintable(message));
    QVERIFY(!message.contains('\n'));
}

void TestWorkspace::packedMaskLayoutByHand()
{
    // 3×5 mask, pruned flat indices {0, 3, 8, 9, 14} (row-major: (0,0) (0,3) (1,3) (1,4) (2,4)).
    // LSB-first: byte 0 has bits 0 and 3 → 0b00001001 = 0x09; byte 1 holds indices 8..15:
    // 8 → bit 0, 9 → bit 1, 14 → bit 6 → 0b01000011 = 0x43; 15 bits need 2 bytes.
    std::vector<uint8_t> values(15, 0);
    for (int i : {0, 3, 8, 9, 14})
        values[size_t(i)] = 1;
    const auto mask = store::PackedMask::pack(values.data(), 3, 5);
    QCOMPARE(mask.bytes, (std::vector<uint8_t>{0x09, 0x43}));
    QCOMPARE(mask.countPruned(), int64_t(5));
    QVERIFY(mask.at(1, 3));
    QVERIFY(mask.at(2, 4));
    QVERIFY(!mask.at(2, 3));
    QCOMPARE(mask.unpack(), values);

    // zeroMask on a tensor: exact zeros are the pruned entries.
    const torch::Tensor w = torch::tensor({1.f, 0.f, -0.f, 2.f, 0.f, 3.f}).reshape({2, 3});
    const auto fromTensor = store::zeroMask(w);
    QCOMPARE(fromTensor.unpack(), (std::vector<uint8_t>{0, 1, 1, 0, 1, 0}));
}

void TestWorkspace::packedMaskRandomRoundTrip()
{
    std::mt19937 rng(5);
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {37, 53}, {8, 8}, {0, 4}}) {
        std::vector<uint8_t> values(size_t(rows * cols));
        for (auto& v : values)
            v = uint8_t(rng() % 2);
        const auto mask = store::PackedMask::pack(values.data(), rows, cols);
        QCOMPARE(int64_t(mask.bytes.size()), (rows * cols + 7) / 8);
        QCOMPARE(mask.unpack(), values);
        // Through the file as well.
        QTemporaryDir dir;
        const fs::path file = fs::path(dir.path().toStdString()) / "m.h5";
        store::RunRecord run;
        run.masks["layer"] = mask;
        store::appendRun(file, run);
        QCOMPARE(store::loadWorkspace(file).runs.at(0).masks.at("layer").unpack(), values);
    }
}

void TestWorkspace::readableWithH5dump()
{
    if (!toolAvailable("h5dump", {"--version"}))
        QSKIP("h5dump not installed (Debian package hdf5-tools)");
    QTemporaryDir dir;
    const fs::path file = fs::path(dir.path().toStdString()) / "w.h5";
    store::saveWorkspace(file, sampleContents());
    QProcess p;
    p.start("h5dump", {"-A", QString::fromStdString(file.string())});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 0);
    const QString out = QString::fromUtf8(p.readAllStandardOutput());
    QVERIFY(out.contains("\"sparselab-workspace\""));
    QVERIFY(out.contains("GROUP \"run_0002\""));
    QVERIFY(out.contains("LlamaForCausalLM"));
    p.start("h5dump", {"-d", "/runs/run_0001/layers/bits", QString::fromStdString(file.string())});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 0);
    QVERIFY(QString::fromUtf8(p.readAllStandardOutput()).contains("4, 5, 16")); // the third layer is dense
}

void TestWorkspace::readableWithH5py()
{
    const QString python = pythonWithH5py();
    if (python.isEmpty())
        QSKIP("python3 with h5py and numpy not installed (Debian package python3-h5py)");
    QTemporaryDir dir;
    const fs::path file = fs::path(dir.path().toStdString()) / "w.h5";
    const auto contents = sampleContents();
    store::saveWorkspace(file, contents);
    const auto& run = contents.runs[0];
    const auto& layer = run.layers[1];
    // The script decodes with numpy as the header documents and prints what it read.
    const QString script = QStringLiteral(R"(
import sys, json, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
r = f["runs/run_0001"]
name = sys.argv[2]
m = r["masks"][name]
rows, cols = int(m.attrs["rows"]), int(m.attrs["cols"])
bits = np.unpackbits(m[:], bitorder="little")[: rows * cols].reshape(rows, cols)
out = {
  "format": f.attrs["format"] if isinstance(f.attrs["format"], str) else f.attrs["format"].decode(),
  "loss": r["layers/loss"][:].tolist(),
  "names": [n.decode() if isinstance(n, bytes) else n for n in r["layers/name"][:]],
  "mask": bits.flatten().tolist(),
  "token_nll_shape": list(r["perplexity_after/token_nll"].shape),
  "recipe": r.attrs["recipe"].decode() if isinstance(r.attrs["recipe"], bytes) else r.attrs["recipe"],
  "heat": f["sensitivity/scan_0001/error"][:].tolist(),
}
print(json.dumps(out))
)");
    QProcess p;
    p.start(python, {"-c", script, QString::fromStdString(file.string()), QString::fromStdString(layer.name)});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const auto json = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(json["format"].get<std::string>(), std::string("sparselab-workspace"));
    QCOMPARE(json["loss"].size(), size_t(3));
    QCOMPARE(json["loss"][1].get<double>(), layer.stats.loss);
    QCOMPARE(json["names"][2].get<std::string>(), run.layers[2].name);
    const auto decoded = json["mask"].get<std::vector<int>>();
    const auto expected = run.masks.at(layer.name).unpack();
    QCOMPARE(decoded.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i)
        QCOMPARE(decoded[i], int(expected[i]));
    QCOMPARE(json["token_nll_shape"].get<std::vector<int>>(), (std::vector<int>{2, 3}));
    QCOMPARE(json["recipe"].get<std::string>(), run.recipeJson);
    QCOMPARE(json["heat"][1][1].get<double>(), 2.0);
}

void TestWorkspace::malformedFilesOneLine()
{
    QTemporaryDir dir;
    const fs::path root = dir.path().toStdString();
    const auto expectOneLine = [](const fs::path& file, const QString& problem) {
        const QString message = errorOf([&] { (void)store::loadWorkspace(file); });
        QVERIFY2(message.startsWith(QString::fromStdString(file.string()) + ": "), qPrintable(message));
        QVERIFY2(message.contains(problem), qPrintable(message));
        QVERIFY(!message.contains('\n'));
    };
    expectOneLine(root / "missing.h5", "file not found");

    writeFileAtomically(root / "text.h5", std::string_view("this is not HDF5\n"));
    expectOneLine(root / "text.h5", "not an HDF5 file");

    // Truncated: a real workspace cut to half its size.
    store::saveWorkspace(root / "full.h5", sampleContents());
    const std::string bytes = fileBytes(root / "full.h5");
    writeFileAtomically(root / "cut.h5", std::string_view(bytes.data(), bytes.size() / 2));
    {
        const QString message = errorOf([&] { (void)store::loadWorkspace(root / "cut.h5"); });
        QVERIFY2(message.startsWith(QString::fromStdString((root / "cut.h5").string()) + ": "), qPrintable(message));
        QVERIFY(!message.contains('\n'));
    }

    // Foreign HDF5: a resume checkpoint is HDF5 but not a workspace.
    store::ResumeStore resume(root / "x.h5", "k");
    resume.saveBlock({0, {}, {}});
    const fs::path foreign = resume.blockFile(0);
    expectOneLine(foreign, "not a SparseLab workspace");
    QVERIFY(!store::isWorkspace(foreign));
    QVERIFY(!store::isWorkspace(root / "text.h5"));

    // Malformed inside: h5py removes a required attribute from a valid workspace. Edited in
    // place, the file no longer matches its seal; copied by h5py into a new unsealed file (as
    // a workspace written before seals existed), the reader finds the missing attribute.
    if (const QString python = pythonWithH5py(); !python.isEmpty()) {
        fs::copy_file(root / "full.h5", root / "edited.h5");
        QProcess p;
        p.start(python, {"-c", "import sys,h5py; f=h5py.File(sys.argv[1],'a'); del f['runs/run_0002'].attrs['kind']",
                            QString::fromStdString((root / "edited.h5").string())});
        QVERIFY(p.waitForFinished(60000));
        QCOMPARE(p.exitCode(), 0);
        expectOneLine(root / "edited.h5", "corrupt: its checksum does not match");
        p.start(python, {"-c", "import sys,h5py\n"
                               "src=h5py.File(sys.argv[1],'r'); dst=h5py.File(sys.argv[2],'w')\n"
                               "for k,v in src.attrs.items(): dst.attrs[k]=v\n"
                               "for k in src: src.copy(src[k], dst, name=k)\n"
                               "del dst['runs/run_0002'].attrs['kind']\n",
                            QString::fromStdString((root / "full.h5").string()),
                            QString::fromStdString((root / "unsealed.h5").string())});
        QVERIFY(p.waitForFinished(60000));
        QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
        QVERIFY(fileBytes(root / "unsealed.h5").rfind("\x89HDF", 0) == 0); // signature at offset 0: no seal
        expectOneLine(root / "unsealed.h5", "/runs/run_0002: missing attribute 'kind'");
    }
}

// Every workspace and resume checkpoint is sealed (SHA-256 of the HDF5 bytes in a 512-byte
// user block): 300 seeded random corruptions of 1–4 bytes anywhere in the file — HDF5
// metadata, raw data, the seal itself — are each one clean line, never a crash inside libhdf5
// (before the seal, about 1 in 30 single-byte changes crashed the reader).
void TestWorkspace::corruptedWorkspacesAreCleanErrors()
{
    QTemporaryDir dir;
    const fs::path root = dir.path().toStdString();
    store::saveWorkspace(root / "good.h5", sampleContents());
    const std::string good = fileBytes(root / "good.h5");
    QVERIFY(good.rfind("SparseLab sealed HDF5 v1\nsha256 ", 0) == 0);
    QCOMPARE(good.compare(512, 8, "\x89HDF\r\n\x1a\n"), 0); // HDF5 tools find the file after the seal
    QCOMPARE(store::loadWorkspace(root / "good.h5").runs.size(), size_t(2));

    std::mt19937_64 random(20261204);
    const fs::path bad = root / "bad.h5";
    int checksumRefusals = 0;
    for (int trial = 0; trial < 300; ++trial) {
        std::string bytes = good;
        const int changes = 1 + int(random() % 4);
        for (int c = 0; c < changes; ++c) {
            const size_t at = size_t(random() % bytes.size());
            bytes[at] = char(uint8_t(bytes[at]) ^ uint8_t(1 + random() % 255)); // always a change
        }
        writeFileAtomically(bad, std::string_view(bytes));
        const QString message = errorOf([&] { (void)store::loadWorkspace(bad); });
        QVERIFY2(message.startsWith(QString::fromStdString(bad.string()) + ": "), qPrintable(message));
        QVERIFY2(!message.contains('\n'), qPrintable(message));
        checksumRefusals += message.contains("corrupt:") ? 1 : 0;
        QVERIFY(!store::isWorkspace(bad));
        QVERIFY(errorOf([&] { (void)store::listRuns(bad); }).startsWith(QString::fromStdString(bad.string())));
    }
    QCOMPARE(checksumRefusals, 300);

    // A cut-off or extended file is refused the same way.
    writeFileAtomically(bad, std::string_view(good.data(), good.size() - 1));
    QVERIFY(errorOf([&] { (void)store::loadWorkspace(bad); }).contains("checksum does not match"));
    writeFileAtomically(bad, good + std::string(1, '\0'));
    QVERIFY(errorOf([&] { (void)store::loadWorkspace(bad); }).contains("checksum does not match"));

    // A resume checkpoint that is damaged is not counted as finished and is refused on load.
    store::ResumeStore resume(root / "r.h5", "k");
    resume.saveBlock({0, sampleRun(1).layers, {}});
    QCOMPARE(resume.finishedBlocks(), int64_t(1));
    std::string block = fileBytes(resume.blockFile(0));
    block[block.size() / 2] = char(~block[block.size() / 2]);
    writeFileAtomically(resume.blockFile(0), std::string_view(block));
    QCOMPARE(resume.finishedBlocks(), int64_t(0));
    QVERIFY(errorOf([&] { (void)resume.loadBlock(0); }).contains("checksum does not match"));
}

void TestWorkspace::foreignFileNeverOverwritten()
{
    QTemporaryDir dir;
    const fs::path root = dir.path().toStdString();
    writeFileAtomically(root / "notes.h5", std::string_view("my notes, not a workspace\n"));
    const QString message = errorOf([&] { (void)store::appendRun(root / "notes.h5", sampleRun(1)); });
    QVERIFY2(message.contains("refusing to overwrite"), qPrintable(message));
    QCOMPARE(fileBytes(root / "notes.h5"), std::string("my notes, not a workspace\n"));
}

void TestWorkspace::noTemporariesLeft()
{
    QTemporaryDir dir;
    const fs::path root = dir.path().toStdString();
    store::appendRun(root / "w.h5", sampleRun(1));
    store::appendRun(root / "w.h5", sampleRun(2));
    int entries = 0;
    for (const auto& e : fs::directory_iterator(root)) {
        ++entries;
        QCOMPARE(e.path().filename().string(), std::string("w.h5"));
    }
    QCOMPARE(entries, 1);
}

void TestWorkspace::resumeStoreRoundTrip()
{
    QTemporaryDir dir;
    const fs::path workspace = fs::path(dir.path().toStdString()) / "w.h5";
    store::ResumeStore resume(workspace, store::resumeKey("settings A"));
    QCOMPARE(resume.finishedBlocks(), int64_t(0));
    QVERIFY(!resume.hasCheckpoints());
    store::BlockCheckpoint b0;
    b0.block = 0;
    b0.layers = sampleRun(1).layers;
    b0.weights.push_back({"model.layers.0.mlp.up_proj.weight", 2, 3, {1.f, -2.f, 0.f, 3.5f, 1e-30f, -0.f}});
    store::BlockCheckpoint b1 = b0;
    b1.block = 1;
    b1.weights[0].values[0] = 7.f;
    store::BlockCheckpoint b3 = b0;
    b3.block = 3;
    resume.saveBlock(b0);
    resume.saveBlock(b1);
    resume.saveBlock(b3); // a gap at block 2: only 0 and 1 count
    QCOMPARE(resume.finishedBlocks(), int64_t(2));
    QVERIFY(resume.loadBlock(1) == b1);
    const auto back = resume.loadBlock(0);
    QVERIFY(back == b0);
    QVERIFY(std::signbit(back.weights[0].values[5])); // bit-exact, even −0
    QCOMPARE(resume.folder(), fs::path(workspace.string() + ".resume"));

    store::ResumeStore other(workspace, store::resumeKey("settings B"));
    QVERIFY(other.hasCheckpoints());
    QCOMPARE(other.finishedBlocks(), int64_t(0));
    QVERIFY(errorOf([&] { (void)other.loadBlock(0); }).contains("different settings"));
    resume.clear();
    QVERIFY(!fs::exists(resume.folder()));
}

void TestWorkspace::tokenNllMatchesLogSoftmax()
{
    const auto model = model::CausalLM::load(testing::demoModelDir());
    std::vector<int32_t> ids;
    for (int i = 0; i < 70; ++i)
        ids.push_back(int32_t((i * 37 + 11) % model->config().vocabSize));
    eval::PerplexityParams params;
    params.seqlen = 32;
    const auto result = eval::evaluatePerplexity(*model, ids, params);
    QCOMPARE(result.windows, int64_t(2));
    QCOMPARE(result.tokenNll.size(), size_t(2 * 31));
    // Independent: log_softmax of the full logits of window 1 at each position.
    torch::NoGradGuard noGrad;
    const auto window = torch::from_blob(ids.data() + 32, {1, 32}, torch::kInt).to(torch::kLong);
    const auto logp = torch::log_softmax(model->logits(window), -1); // [1, 32, V]
    double mean = 0;
    for (int t = 0; t < 31; ++t) {
        const double expected = -logp[0][t][ids[size_t(32 + t + 1)]].item<double>();
        QVERIFY2(std::abs(result.tokenNll[size_t(31 + t)] - expected) < 1e-4 * std::max(1.0, expected),
                 qPrintable(QString("token %1: %2 vs %3").arg(t).arg(result.tokenNll[size_t(31 + t)]).arg(expected)));
        mean += result.tokenNll[size_t(31 + t)] / 31.0;
    }
    QVERIFY(std::abs(mean - result.windowLoss[1]) < 1e-5);
    params.keepTokenNll = false;
    QVERIFY(eval::evaluatePerplexity(*model, ids, params).tokenNll.empty());
}

QTEST_GUILESS_MAIN(TestWorkspace)
#include "test_workspace.moc"
