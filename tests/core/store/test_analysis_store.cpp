// Sweeps and sensitivity scans stored in a workspace (pipeline/analysis_store.h): hand-built
// results (no model needed) written as workspace groups read back equal to what was written,
// field for field; the h5py-facing datasets hold the same figures in the documented shapes;
// names are numbered and validated; missing or foreign groups are InputErrors naming the file.

#include "store/analysis_store.h"
#include "analysis/sensitivity.h"
#include "analysis/sweep.h"
#include "store/workspace.h"
#include "util/errors.h"

#include <QTemporaryDir>
#include <QTest>

using namespace sparselab;
namespace fs = std::filesystem;

namespace {

analysis::SweepResult handSweep()
{
    analysis::SweepResult r;
    r.grid.sparsities = {0.25, 0.5};
    r.grid.bits = {16, 4};
    r.settings = {{"model", {{"sha256", {{"config.json", "ab"}}}}}, {"true_sequential", false}};
    r.densePerplexity = 12.125;
    r.denseBytes = 520000;
    for (int64_t i : {0, 1, 3}) {
        analysis::SweepPoint p;
        p.spec = analysis::sweepPointSpec(r.grid, i);
        p.perplexity = 13.0 + 0.1 * double(i) + 1.0 / 3.0; // not exactly representable in decimal
        p.linearSparsity = p.spec.sparsity * 0.999;
        p.modelBytes = 400000 - 1000 * i;
        p.pruneSeconds = 0.5;
        p.evalSeconds = 0.25;
        solve::LayerRecord layer;
        layer.name = "model.layers.0.mlp.up_proj";
        layer.rows = 172;
        layer.cols = 64;
        layer.options.sparsity = p.spec.sparsity;
        layer.stats.sparsity = p.spec.sparsity;
        layer.stats.relOutputError = 0.01 * double(i + 1);
        layer.stats.loss = 2.5;
        p.layers = {layer};
        r.points.push_back(p);
    }
    return r;
}

analysis::SensitivityResult handScan()
{
    analysis::SensitivityResult s;
    s.sparsities = {0.0, 0.5};
    s.bits = {16, 4};
    s.fixedParameters = 1234;
    s.seconds = 1.5;
    s.factorizations = 2;
    for (int l = 0; l < 2; ++l) {
        analysis::SensitivityLayer layer;
        layer.name = "model.layers." + std::to_string(l) + ".mlp.down_proj";
        layer.kind = "mlp.down_proj";
        layer.block = l;
        layer.rows = 8;
        layer.cols = 16;
        layer.outputEnergy = 3.0 + l;
        for (double sp : s.sparsities)
            for (int b : s.bits)
                layer.cells.push_back({sp, b, sp, sp * 0.1 + (b == 4 ? 0.01 : 0.0) + l, sp + l * 2.0, 0.001});
        s.layers.push_back(layer);
    }
    return s;
}

} // namespace

class TestAnalysisStore : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sweepRoundTrip()
    {
        QTemporaryDir dir;
        const fs::path ws = dir.filePath("W.h5").toStdString();
        const auto sweep = handSweep();
        store::storeSweep(ws, sweep, "grid");
        const auto back = store::loadSweepFrom(ws, "grid");
        QCOMPARE(back.toJson().dump(), sweep.toJson().dump());
        QCOMPARE(store::loadSweepFrom(ws).toJson().dump(), sweep.toJson().dump()); // the only one

        const auto contents = store::loadWorkspace(ws);
        QCOMPARE(store::storedSweeps(contents), std::vector<std::string>{"grid"});
        const auto* group = &contents.groups.front();
        QCOMPARE(QString::fromStdString(group->path), QString("sweeps/grid"));
        // The table: points 0, 1, 3 → (16 bit, 25 %), (16 bit, 50 %), (4 bit, 50 %).
        QCOMPARE(group->dataset("index")->i64, (std::vector<int64_t>{0, 1, 3}));
        QCOMPARE(group->dataset("bits")->i64, (std::vector<int64_t>{16, 16, 4}));
        QCOMPARE(group->dataset("sparsity")->f64, (std::vector<double>{0.25, 0.5, 0.5}));
        QCOMPARE(group->dataset("perplexity")->f64[2], sweep.points[2].perplexity);
        QCOMPARE(group->dataset("model_bytes")->i64[1], int64_t(399000));
        QCOMPARE(group->dataset("method")->strings[0], std::string("sparsegpt"));
        QCOMPARE(group->dataset("allocation")->strings, (std::vector<std::string>{"uniform", "uniform", "uniform"}));
        QCOMPARE(std::get<int64_t>(group->attributes.at("version")), int64_t(2));
        QCOMPARE(std::get<int64_t>(group->attributes.at("points_total")), int64_t(4));

        // Next free names; a replaced group keeps one copy.
        QCOMPARE(QString::fromStdString(store::nextGroupName({"sweep_0001", "sweep_0003"}, "sweep")),
                 QString("sweep_0002"));
        auto changed = sweep;
        changed.points.pop_back();
        store::storeSweep(ws, changed, "grid");
        QCOMPARE(store::loadSweepFrom(ws, "grid").points.size(), size_t(2));
        QCOMPARE(store::storedSweeps(store::loadWorkspace(ws)).size(), size_t(1));
    }

    void sensitivityRoundTrip()
    {
        QTemporaryDir dir;
        const fs::path ws = dir.filePath("W.h5").toStdString();
        const auto scan = handScan();
        store::storeSensitivity(ws, scan, "scan_0001");
        QCOMPARE(store::loadSensitivityFrom(ws).toJson().dump(), scan.toJson().dump());
        const auto contents = store::loadWorkspace(ws);
        const auto& group = contents.groups.front();
        // rel_error [layers=2, sparsities=2, bits=2], row-major: element (1, 1, 0) is index 6,
        // layer 1 at 50 % and 16 bit: 0.5·0.1 + 0 + 1 = 1.05.
        const auto* rel = group.dataset("rel_error");
        QCOMPARE(rel->shape, (std::vector<int64_t>{2, 2, 2}));
        QCOMPARE(rel->f64[6], 0.5 * 0.1 + 1.0);
        QCOMPARE(group.dataset("layer_names")->strings[1], std::string("model.layers.1.mlp.down_proj"));
    }

    void badCases()
    {
        QTemporaryDir dir;
        const fs::path ws = dir.filePath("W.h5").toStdString();
        QVERIFY_THROWS_EXCEPTION(InputError, store::storeSweep(ws, handSweep(), "a/b"));
        QVERIFY(!fs::exists(ws));
        store::storeSensitivity(ws, handScan(), "s");
        try {
            (void)store::loadSweepFrom(ws);
            QFAIL("no sweep in the workspace");
        } catch (const InputError& e) {
            QVERIFY2(std::string(e.what()).find("W.h5") != std::string::npos, e.what());
            QVERIFY2(std::string(e.what()).find("holds no sweep") != std::string::npos, e.what());
        }
        try {
            (void)store::loadSensitivityFrom(ws, "other");
            QFAIL("no scan named other");
        } catch (const InputError& e) {
            QVERIFY2(std::string(e.what()).find("'other'") != std::string::npos, e.what());
        }
        // A caller group under sweeps/ that is not a sweep.
        store::ExtraGroup foreign;
        foreign.path = "sweeps/foreign";
        foreign.attributes["format"] = std::string("something-else");
        store::writeGroup(ws, foreign);
        try {
            (void)store::loadSweepFrom(ws, "foreign");
            QFAIL("foreign group");
        } catch (const InputError& e) {
            QVERIFY2(std::string(e.what()).find("not a sparselab-sweep group") != std::string::npos, e.what());
        }
    }
};

QTEST_GUILESS_MAIN(TestAnalysisStore)
#include "test_analysis_store.moc"
