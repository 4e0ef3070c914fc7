// Sweeps, sensitivity scan, allocator, KL/continuations and the report (PDF + HTML).
// Bundled data only (the demo model stories260K-hf and its texts); tiny calibration so the
// suite stays quick. pdftotext (poppler-utils) is needed for the PDF checks (QSKIP without).

#include "testsupport.h"

#include "allocation/owl.h"
#include "allocation/search.h"
#include "allocation/sweep_allocator.h"
#include "data/calibration.h"
#include "eval/perplexity.h"
#include "export/hf_export.h"
#include "model/causal_lm.h"
#include "analysis/allocator.h"
#include "pipeline/prune_pipeline.h"
#include "analysis/sensitivity.h"
#include "analysis/size_model.h"
#include "analysis/sweep.h"
#include "report/drawing.h"
#include "eval/model_comparison.h"
#include "report/pdf_writer.h"
#include "report/report.h"
#include "solve/hessian_factor.h"
#include "solve/layer_record.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <torch/types.h>

#include <QProcess>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <set>

using namespace sparselab;
namespace fs = std::filesystem;

namespace {

struct Fixture {
    std::unique_ptr<tokenize::Tokenizer> tokenizer;
    std::unique_ptr<model::CausalLM> model;
    data::CalibrationWindows windows; // 8 windows of 64 tokens
    std::vector<int32_t> evalIds;
};

const Fixture& fixture()
{
    static const Fixture f = [] {
        Fixture x;
        x.tokenizer = tokenize::loadTokenizer(testing::demoModelDir());
        x.model = model::CausalLM::load(testing::demoModelDir());
        data::CalibrationParams params;
        params.nsamples = 8;
        params.seqlen = 64;
        x.windows = data::sampleCalibrationWindows(x.tokenizer->encodeForModel(readTextFile(testing::demoCalibText())),
                                                   params, testing::demoCalibText());
        x.evalIds = x.tokenizer->encodeForModel(readTextFile(testing::demoEvalText()));
        return x;
    }();
    return f;
}

eval::PerplexityParams smallEval()
{
    eval::PerplexityParams p;
    p.seqlen = 64;
    p.maxWindows = 8;
    return p;
}

// A hand-made scan: layers of rows×cols with the given errors per level (bits 16 only).
analysis::SensitivityResult handScan(const std::vector<double>& levels, const std::vector<std::vector<double>>& errors,
                                     int64_t rows = 10, int64_t cols = 10)
{
    analysis::SensitivityResult scan;
    scan.sparsities = levels;
    scan.bits = {16};
    for (size_t l = 0; l < errors.size(); ++l) {
        analysis::SensitivityLayer layer;
        layer.name = "layer" + std::to_string(l);
        layer.kind = "kind" + std::to_string(l);
        layer.rows = rows;
        layer.cols = cols;
        layer.outputEnergy = 1.0;
        for (size_t i = 0; i < levels.size(); ++i)
            layer.cells.push_back({levels[i], 16, levels[i], errors[l][i], errors[l][i], 0.0});
        scan.layers.push_back(layer);
    }
    return scan;
}

analysis::SweepPoint handPoint(int64_t bytes, double perplexity)
{
    analysis::SweepPoint p;
    p.modelBytes = bytes;
    p.perplexity = perplexity;
    return p;
}

// Sweep JSON without the timings (the only fields allowed to differ between runs).
nlohmann::json withoutTimings(nlohmann::json j)
{
    for (auto& p : j["points"]) {
        p.erase("allocation_seconds");
        p.erase("prune_seconds");
        p.erase("eval_seconds");
        for (auto& layer : p["layers"])
            layer.erase("seconds"); // each layer's solve time
    }
    return j;
}

std::string runPdfToText(const fs::path& pdf)
{
    QProcess process;
    process.start("pdftotext", {"-layout", QString::fromStdString(pdf.string()), "-"});
    if (!process.waitForFinished(60000) || process.exitCode() != 0)
        return {};
    return process.readAllStandardOutput().toStdString();
}

} // namespace

class TestTradeoffs : public QObject {
    Q_OBJECT
private Q_SLOTS:
    // ---- shared Hessian factor ------------------------------------------------------------
    void sharedFactorGivesTheSameSolveAsSolveLayer()
    {
        torch::manual_seed(3);
        const auto x = torch::randn({512, 96});
        solve::HessianAccumulator acc(96, torch::kCPU);
        acc.add(x.reshape({8, 64, 96}));
        const auto& h = acc.hessian();
        const auto dense = torch::randn({40, 96});
        const auto factor = solve::factorHessian(h, 0.01);
        QCOMPARE(factor.deadInputs, int64_t(0));
        for (double s : {0.0, 0.3, 0.5, 0.8})
            for (int bits : {16, 4}) {
                if (s == 0.0 && bits == 16)
                    continue;
                solve::SolverOptions options;
                options.sparsity = s;
                options.quant.bits = bits;
                options.blocksize = 32;
                torch::Tensor a = dense.clone(), b = dense.clone();
                const auto ra = solve::solveLayer(a, h, options);
                const auto rb = solve::solveLayerWithFactor(b, h, factor, options);
                QVERIFY2(torch::equal(a, b), "weights differ between the shared-factor and the plain solve");
                QVERIFY(torch::equal(ra.mask, rb.mask));
                QCOMPARE(ra.stats.loss, rb.stats.loss);
                QCOMPARE(ra.stats.relOutputError, rb.stats.relOutputError);
            }
        // A factor made with another damping is refused.
        solve::SolverOptions other;
        other.damp = 0.1;
        torch::Tensor w = dense.clone();
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, (void)solve::solveLayerWithFactor(w, h, factor, other));
    }

    // ---- size model -------------------------------------------------------------------------
    void sizeModelHandValues()
    {
        // 10×10 layer, n = 100. Dense fp16: 100·16/8 = 200 bytes.
        QCOMPARE(analysis::linearLayerBytes(10, 10, 0.0, 16), int64_t(200));
        // 50 % pruned fp16: 50 kept ·2 = 100, mask ceil(100/8) = 13 → 113.
        QCOMPARE(analysis::linearLayerBytes(10, 10, 0.5, 16), int64_t(113));
        // dense 4-bit: 100·4/8 = 50, grid 4 bytes × 10 rows = 40 → 90.
        QCOMPARE(analysis::linearLayerBytes(10, 10, 0.0, 4), int64_t(90));
        // 50 % + 4-bit: 25 + 13 + 40 = 78; with groups of 4 columns: 3 groups/row → 25 + 13 + 120 = 158.
        QCOMPARE(analysis::linearLayerBytes(10, 10, 0.5, 4), int64_t(78));
        QCOMPARE(analysis::linearLayerBytes(10, 10, 0.5, 4, 4), int64_t(158));
    }

    // ---- sensitivity scan ---------------------------------------------------------------------
    void scanMatchesThePipelineOnBlockZero()
    {
        // Block 0 sees the embeddings in both the scan and the sequential pipeline, so the scan's
        // 50 % cell of each block-0 layer must equal the pipeline's own statistics for it.
        const auto& f = fixture();
        analysis::SensitivityParams params;
        params.sparsities = {0.0, 0.5, 0.7};
        params.bits = {16, 4};
        const auto scan = analysis::scanSensitivity(*f.model, f.windows, params);
        QCOMPARE(int64_t(scan.layers.size()), f.model->numBlocks() * 7);
        QCOMPARE(scan.factorizations, int64_t(scan.layers.size())); // one per layer, shared by its 5 solved levels

        model::CausalLM copy(*f.model);
        for (auto* layer : copy.allLinears())
            layer->weight = layer->weight.clone();
        pipeline::PruneParams prune;
        prune.recipe.defaults.options.sparsity = 0.5;
        const auto result = pipeline::pruneModel(copy, f.windows, prune);
        for (size_t l = 0; l < 7; ++l) {
            QCOMPARE(scan.layers[l].name, result.layers[l].name);
            const auto& cell = scan.cell(l, 1, 0); // 50 %, 16 bits
            // The same solve; the denominator tr(W H Wᵀ) comes from H in the scan and from the
            // collecting pass's outputs in the pipeline (the last linear's from H there too):
            // the same quantity, rounded differently.
            const double pipelineError = result.layers[l].stats.relOutputError;
            QVERIFY2(std::abs(cell.relError - pipelineError) <= 1e-6 * pipelineError,
                     qPrintable(QStringLiteral("%1 vs %2").arg(cell.relError, 0, 'g', 12).arg(pipelineError, 0, 'g', 12)));
            QCOMPARE(cell.achievedSparsity, result.layers[l].stats.sparsity);
        }
        for (size_t l = 0; l < scan.layers.size(); ++l) {
            QCOMPARE(scan.cell(l, 0, 0).relError, 0.0);                   // dense
            QVERIFY(scan.cell(l, 0, 1).relError > 0.0);                   // 4-bit
            QVERIFY(scan.cell(l, 2, 0).relError > scan.cell(l, 1, 0).relError); // 70 % worse than 50 %
            QVERIFY(std::abs(scan.cell(l, 1, 0).absError
                             - scan.cell(l, 1, 0).relError * scan.layers[l].outputEnergy)
                    <= 1e-9 * scan.cell(l, 1, 0).absError);
        }
        // JSON round trip.
        QTemporaryDir dir;
        const fs::path file = fs::path(dir.path().toStdString()) / "s.json";
        scan.save(file);
        const auto back = analysis::SensitivityResult::load(file);
        QCOMPARE(back.toJson().dump(), scan.toJson().dump());
        // A truncated file is one clear InputError naming it.
        writeFileAtomically(file, "{\"format\": \"sparselab-sensitivity\", \"version\": 1}");
        try {
            (void)analysis::SensitivityResult::load(file);
            QFAIL("no error");
        } catch (const InputError& e) {
            QVERIFY(std::string(e.what()).find(file.string()) != std::string::npos);
        }
    }

    // ---- allocator --------------------------------------------------------------------------
    void allocatorFindsTheHandOptimum()
    {
        // Two 10×10 layers, levels 0/0.25/0.5/0.75. Average sparsity 0.5 needs ≥ 100 pruned weights:
        //   (0.25, 0.75): 1 + 5.5 = 6.5   (0.5, 0.5): 2 + 5 = 7   (0.75, 0.25): 10 + 0.1 = 10.1
        // (every other feasible pair costs more), so the optimum is A 0.25, B 0.75; uniform is 7.
        const auto scan = handScan({0.0, 0.25, 0.5, 0.75}, {{0, 1, 2, 10}, {0, 0.1, 5, 5.5}});
        analysis::AllocatorParams params;
        params.averageSparsity = 0.5;
        const auto result = analysis::allocate(scan, params);
        QCOMPARE(result.allocated.layers[0].sparsity, 0.25);
        QCOMPARE(result.allocated.layers[1].sparsity, 0.75);
        QCOMPARE(result.allocated.predictedError, 6.5);
        QCOMPARE(result.allocated.averageSparsity, 0.5);
        QCOMPARE(result.uniform.predictedError, 7.0);
        QVERIFY(!result.uniformInterpolated);
        // The recipe names each layer exactly.
        const auto recipe = analysis::allocationRecipe(result.allocated, scan.base);
        QCOMPARE(recipe.planFor("layer0").options.sparsity, 0.25);
        QCOMPARE(recipe.planFor("layer1").options.sparsity, 0.75);
        QVERIFY(recipe.planFor("other").dense);
        // Uniform between levels is interpolated: 0.375 → A 1.5, B 2.55 → 4.05.
        params.averageSparsity = 0.375;
        const auto mid = analysis::allocate(scan, params);
        QVERIFY(mid.uniformInterpolated);
        QVERIFY(std::abs(mid.uniform.predictedError - 4.05) < 1e-12);
        // An impossible budget is an InputError.
        params.averageSparsity = 0.8;
        QVERIFY_THROWS_EXCEPTION(InputError, (void)analysis::allocate(scan, params));
    }

    void allocatorBytesBudget()
    {
        // Bytes: 10×10 layers, fixed parameters 0. Levels (s, bits) with bits {16, 4}:
        //   (0,16) 200, (0.5,16) 113, (0,4) 90, (0.5,4) 78 bytes (sizeModelHandValues).
        analysis::SensitivityResult scan;
        scan.sparsities = {0.0, 0.5};
        scan.bits = {16, 4};
        const std::vector<std::vector<double>> errors = {{0, 3, 5, 9}, {0, 1, 2, 4}}; // per layer: (0,16) (0,4) (.5,16) (.5,4)
        for (size_t l = 0; l < 2; ++l) {
            analysis::SensitivityLayer layer;
            layer.name = "layer" + std::to_string(l);
            layer.kind = "k";
            layer.rows = layer.cols = 10;
            for (size_t k = 0; k < 4; ++k)
                layer.cells.push_back({k < 2 ? 0.0 : 0.5, k % 2 == 0 ? 16 : 4, 0, errors[l][k], errors[l][k], 0});
            scan.layers.push_back(layer);
        }
        // Budget 203 bytes. Feasible pairs (A, B): (200 no), (90+113=203: 3+2=5), (113+90=203: 5+1=6),
        // (90+90=180: 3+1=4), (78+113 ...). Best: both 4-bit dense, error 4, 180 bytes.
        analysis::AllocatorParams params;
        params.kind = analysis::BudgetKind::ModelBytes;
        params.modelBytes = 203;
        auto result = analysis::allocate(scan, params);
        QCOMPARE(result.allocated.predictedError, 4.0);
        QCOMPARE(result.allocated.modelBytes, int64_t(180));
        // Budget 170: (90, 78) = 168: 3 + 4 = 7; (78, 90) = 168: 9 + 1 = 10; (78, 78): 13 → 7.
        params.modelBytes = 170;
        result = analysis::allocate(scan, params);
        QCOMPARE(result.allocated.predictedError, 7.0);
        QCOMPARE(result.allocated.layers[0].bits, 4);
        QCOMPARE(result.allocated.layers[0].sparsity, 0.0);
        QCOMPARE(result.allocated.layers[1].sparsity, 0.5);
        // Uniform: the best single level that fits is (0.5, 4) for both: 156 bytes, error 13.
        QCOMPARE(result.uniform.predictedError, 13.0);
        QCOMPARE(result.uniform.modelBytes, int64_t(156));
    }

    // ---- sweeps -----------------------------------------------------------------------------
    void paretoFrontierByHand()
    {
        // (size, ppl): a(10, 9) b(20, 5) c(20, 7) d(30, 6) e(40, 4) → frontier a, b, e.
        const std::vector<analysis::SweepPoint> points = {handPoint(10, 9), handPoint(20, 5), handPoint(20, 7),
                                                          handPoint(30, 6), handPoint(40, 4)};
        QCOMPARE(analysis::paretoFrontier(points), (std::vector<size_t>{0, 1, 4}));
    }

    void gridIndexOrderAndShards()
    {
        analysis::SweepGrid grid;
        grid.sparsities = {0.3, 0.6};
        grid.bits = {16, 4};
        grid.groups = {"all", "mlp"};
        QCOMPARE(grid.size(), int64_t(8));
        const auto spec = analysis::sweepPointSpec(grid, 5); // g=1 (mlp), b=0 (16), s=1 (0.6)
        QCOMPARE(spec.group, std::string("mlp"));
        QCOMPARE(spec.bits, 16);
        QCOMPARE(spec.sparsity, 0.6);
        QCOMPARE(analysis::shardIndices(grid, 1, 3), (std::vector<int64_t>{1, 4, 7}));
        QVERIFY_THROWS_EXCEPTION(InputError, (void)analysis::shardIndices(grid, 3, 3));
        const auto mlp = analysis::groupLayers(*fixture().model, "mlp");
        QCOMPARE(mlp.size(), size_t(3 * fixture().model->numBlocks()));
        QVERIFY(mlp.front().find("mlp.gate_proj") != std::string::npos);
    }

    void shardsMergedEqualTheWholeSweep()
    {
        const auto& f = fixture();
        analysis::SweepGrid grid;
        grid.sparsities = {0.3, 0.6};
        grid.bits = {16, 4};
        grid.groups = {"all", "attention"};
        const solve::SolverOptions base;
        const auto evalParams = smallEval();
        auto run = [&](const std::vector<int64_t>& indices) {
            analysis::SweepResult r;
            r.grid = grid;
            r.settings = {{"test", 1}, {"paths", {{"model", "anywhere"}}}};
            r.densePerplexity = 1.0;
            r.points = analysis::runSweepPoints(*f.model, f.windows, f.evalIds, {grid, indices, base, false, evalParams, {}});
            return r;
        };
        std::vector<int64_t> all(size_t(grid.size()));
        for (int64_t i = 0; i < grid.size(); ++i)
            all[size_t(i)] = i;
        const auto whole = run(all);
        auto shard0 = run(analysis::shardIndices(grid, 0, 2));
        const auto shard1 = run(analysis::shardIndices(grid, 1, 2));
        QCOMPARE(shard0.points.size(), size_t(4));
        QCOMPARE(shard0.missing(), (std::vector<int64_t>{1, 3, 5, 7}));
        shard0.settings["paths"]["model"] = "elsewhere"; // paths may differ between nodes
        const auto merged = analysis::mergeSweeps({shard1, shard0}, {"b.json", "a.json"});
        QVERIFY(merged.missing().empty());
        QCOMPARE(withoutTimings(merged.toJson())["points"].dump(), withoutTimings(whole.toJson())["points"].dump());

        // A point equals an independent prune of the same plan.
        model::CausalLM copy(*f.model);
        for (auto* layer : copy.allLinears())
            layer->weight = layer->weight.clone();
        pipeline::PruneParams prune;
        prune.recipe.defaults.options.sparsity = 0.6;
        prune.recipe.defaults.options.quant.bits = 4;
        (void)pipeline::pruneModel(copy, f.windows, prune);
        const double expected = eval::evaluatePerplexity(copy, f.evalIds, evalParams).perplexity;
        const auto& point = whole.points[3]; // all, 4 bit, 0.6
        QCOMPARE(point.spec.group, std::string("all"));
        QCOMPARE(point.spec.bits, 4);
        QCOMPARE(point.perplexity, expected);
        // Attention-only points leave the MLP dense.
        const auto& attention = whole.points[4]; // attention, 16 bit, 0.3
        QCOMPARE(attention.spec.group, std::string("attention"));
        for (const auto& layer : attention.layers)
            if (layer.name.find("mlp") != std::string::npos)
                QCOMPARE(layer.stats.sparsity, 0.0);
        QVERIFY(attention.linearSparsity < 0.3);

        // Shards of different sweeps do not merge; a disagreeing point is named.
        auto other = shard1;
        other.settings["test"] = 2;
        QVERIFY_THROWS_EXCEPTION(InputError, (void)analysis::mergeSweeps({shard0, other}, {"a.json", "c.json"}));
        auto tampered = whole;
        tampered.points[1].perplexity += 1.0;
        try {
            (void)analysis::mergeSweeps({shard1, tampered}, {"b.json", "t.json"});
            QFAIL("no error");
        } catch (const InputError& e) {
            QVERIFY(std::string(e.what()).find("point 1") != std::string::npos);
        }
        // JSON round trip.
        QTemporaryDir dir;
        const fs::path file = fs::path(dir.path().toStdString()) / "m.json";
        merged.save(file);
        QCOMPARE(analysis::SweepResult::load(file).toJson().dump(), merged.toJson().dump());
    }

    void gridAllocationAxisIndexAndVersionOne()
    {
        analysis::SweepGrid grid;
        grid.allocations = {"uniform", "owl"};
        grid.methods = {solve::Method::SparseGpt, solve::Method::Wanda};
        grid.sparsities = {0.3, 0.6};
        QCOMPARE(grid.size(), int64_t(8));
        // index = ((a·|methods| + m)·|groups| + g)·|bits| + b)·|sparsities| + s = 4a + 2m + s.
        const auto spec = analysis::sweepPointSpec(grid, 5);
        QCOMPARE(spec.allocation, std::string("owl"));
        QCOMPARE(spec.method, solve::Method::SparseGpt);
        QCOMPARE(spec.sparsity, 0.6);
        QCOMPARE(analysis::sweepPointSpec(grid, 2).allocation, std::string("uniform"));
        QCOMPARE(analysis::sweepPointSpec(grid, 2).method, solve::Method::Wanda);

        // A version-1 file (written before the axis) reads as uniform, with the same indices.
        analysis::SweepResult v2;
        v2.grid.sparsities = {0.3, 0.6};
        v2.grid.bits = {16, 4};
        v2.densePerplexity = 7.0;
        for (int64_t i : {1, 2}) {
            analysis::SweepPoint p = handPoint(1000 - i, 8.0 + double(i));
            p.spec = analysis::sweepPointSpec(v2.grid, i);
            v2.points.push_back(p);
        }
        auto v1 = v2.toJson();
        QCOMPARE(v1["version"].get<int>(), 3);
        v1["version"] = 1;
        v1["grid"].erase("allocations");
        for (auto& p : v1["points"]) {
            p.erase("allocation");
            p.erase("allocation_seconds");
        }
        const auto read = analysis::SweepResult::fromJson(v1, "old.json");
        QCOMPARE(read.grid.allocations, std::vector<std::string>{"uniform"});
        QCOMPARE(read.toJson().dump(), v2.toJson().dump());
        auto v4 = v2.toJson();
        v4["version"] = 4;
        QVERIFY_THROWS_EXCEPTION(InputError, (void)analysis::SweepResult::fromJson(v4, "new.json"));
        auto mislabelled = v2.toJson();
        mislabelled["points"][0]["allocation"] = "owl";
        QVERIFY_THROWS_EXCEPTION(InputError, (void)analysis::SweepResult::fromJson(mislabelled, "m.json"));

        // Combinations an allocation cannot take are refused before any work, naming the option.
        const auto refused = [](const analysis::SweepGrid& g) {
            try {
                g.validate();
            } catch (const InputError& e) {
                return std::string(e.what()).find("--allocations") != std::string::npos;
            }
            return false;
        };
        auto unknown = grid;
        unknown.allocations = {"dp"};
        QVERIFY(refused(unknown));
        auto rtn = grid;
        rtn.methods = {solve::Method::Rtn};
        QVERIFY(refused(rtn));
        rtn.allocations = {"uniform"};
        rtn.validate(); // rtn alone sweeps as before
        auto searchMlp = grid;
        searchMlp.allocations = {"search"};
        searchMlp.groups = {"all", "mlp"};
        QVERIFY(refused(searchMlp));
        auto owlMlp = grid;
        owlMlp.groups = {"mlp"};
        owlMlp.validate(); // OWL spreads over the group's layers, block by block
        auto zero = grid;
        zero.sparsities = {0.0, 0.5};
        QVERIFY(refused(zero));

        // OWL's band must fit at every point's sparsity; the point is named.
        allocation::SweepAllocationParams params;
        params.owl.lambda = 0.16; // S − 2λ < 0 at S = 0.3
        try {
            allocation::validateSweepAllocations(grid, {0, 4, 5}, params);
            QFAIL("no error");
        } catch (const InputError& e) {
            QVERIFY2(std::string(e.what()).find("sweep point 4 (owl at sparsity 0.3): --sparsities") == 0, e.what());
        }
        allocation::validateSweepAllocations(grid, {0, 1, 5}, params); // 0.6 ± 0.32 fits
    }

    // A sweep point keeps the prune's per-layer records (solve::LayerRecord) in sparselab.json's
    // row form; reading the file back gives the same records. Version-2 rows (statistics only)
    // still read.
    void sweepPointLayersAreTheRunRecords()
    {
        solve::LayerRecord dense;
        dense.name = "model.layers.0.self_attn.q_proj";
        dense.block = 0;
        dense.rows = 64;
        dense.cols = 64;
        dense.dense = true;
        dense.options = solve::recordedOptions(solve::SolverOptions{}, true);
        dense.stats.seconds = 0.25;
        solve::LayerRecord quantized = dense;
        quantized.name = "model.layers.1.mlp.down_proj";
        quantized.block = 1;
        quantized.rows = 64;
        quantized.cols = 172;
        quantized.dense = false;
        solve::SolverOptions o;
        o.nmN = 2;
        o.nmM = 4;
        o.quant.bits = 4;
        o.quant.groupSize = 32;
        o.quant.symmetric = true;
        o.quant.actOrder = true;
        o.quant.fp16Scale = true;
        quantized.options = solve::recordedOptions(o, false);
        quantized.stats = {0.5, 1.25, 0.0625, 0.01, 1, 3, 0.5};
        solve::LayerRecord wanda = quantized;
        wanda.name = "model.layers.1.mlp.up_proj";
        solve::SolverOptions w;
        w.method = solve::Method::Wanda;
        w.sparsity = 0.7;
        wanda.options = solve::recordedOptions(w, false);

        analysis::SweepResult sweep;
        sweep.densePerplexity = 7.0;
        analysis::SweepPoint point = handPoint(1000, 9.0);
        point.spec = analysis::sweepPointSpec(sweep.grid, 0);
        point.layers = {dense, quantized, wanda};
        sweep.points = {point};
        const auto json = sweep.toJson();
        const auto& rows = json["points"][0]["layers"];
        QCOMPARE(rows[1]["nm"].get<std::string>(), std::string("2:4"));
        QCOMPARE(rows[1]["quant"]["group"].get<int>(), 32);
        QCOMPARE(rows[2]["method"].get<std::string>(), std::string("wanda"));
        const auto read = analysis::SweepResult::fromJson(json, "sweep.json");
        QCOMPARE(read.points.size(), size_t(1));
        QCOMPARE(read.points[0].layers.size(), size_t(3));
        // What a row does not hold reads back as the defaults: the kind, blocksize and damping.
        for (size_t l = 0; l < 3; ++l)
            QVERIFY2(read.points[0].layers[l] == point.layers[l], point.layers[l].name.c_str());

        auto v2 = json;
        v2["version"] = 2;
        v2["points"][0]["layers"] = nlohmann::json::array(
            {{{"name", "model.layers.0.mlp.gate_proj"}, {"sparsity", 0.5}, {"rel_output_error", 0.125}, {"loss", 2.5}}});
        const auto old = analysis::SweepResult::fromJson(v2, "v2.json");
        QCOMPARE(old.points[0].layers.size(), size_t(1));
        const solve::LayerRecord& row = old.points[0].layers[0];
        QCOMPARE(row.name, std::string("model.layers.0.mlp.gate_proj"));
        QCOMPARE(row.stats.sparsity, 0.5);
        QCOMPARE(row.stats.relOutputError, 0.125);
        QCOMPARE(row.stats.loss, 2.5);

        auto unknownMethod = json;
        unknownMethod["points"][0]["layers"][1]["method"] = "obc";
        QVERIFY_THROWS_EXCEPTION(InputError, (void)analysis::SweepResult::fromJson(unknownMethod, "m.json"));
    }

    void allocationPointsEqualTheirRecipesPrunedAlone()
    {
        const auto& f = fixture();
        analysis::SweepGrid grid;
        grid.allocations = {"owl", "search"};
        grid.methods = {solve::Method::SparseGpt, solve::Method::Magnitude};
        grid.sparsities = {0.6};
        allocation::SweepAllocationParams params;
        params.search.generations = 3;
        params.search.fitnessWindows = 4;
        params.search.seed = 7;
        const auto evalParams = smallEval();
        const solve::SolverOptions base;
        analysis::SweepRunParams run{grid, {0, 1, 2, 3}, base, false, evalParams, {}};
        QVERIFY_THROWS_EXCEPTION(std::logic_error, (void)analysis::runSweepPoints(*f.model, f.windows, f.evalIds, run));
        run.allocator = allocation::sweepAllocator(*f.model, f.windows, params);
        std::set<std::string> searchedIn; // sweep points whose progress shows the search's database
        analysis::SweepObserver observer;
        observer.progress = [&](const Progress& p) {
            const auto colon = p.stage.find(": ");
            if (colon != std::string::npos && p.stage.substr(colon + 2) == "variants")
                searchedIn.insert(p.stage.substr(0, colon));
        };
        const auto points = analysis::runSweepPoints(*f.model, f.windows, f.evalIds, run, observer);
        QCOMPARE(points.size(), size_t(4));
        // One search for the sparsity level, reused by the magnitude point.
        QCOMPARE(searchedIn, (std::set<std::string>{"sweep 3/4"}));

        const auto prunedAlone = [&](const pipeline::Recipe& recipe) {
            model::CausalLM copy(*f.model);
            for (auto* layer : copy.allLinears())
                layer->weight = layer->weight.clone();
            pipeline::PruneParams prune;
            prune.recipe = recipe;
            (void)pipeline::pruneModel(copy, f.windows, prune);
            return eval::evaluatePerplexity(copy, f.evalIds, evalParams).perplexity;
        };
        // OWL, as `allocate --method owl` makes it.
        allocation::OwlParams owl;
        owl.targetSparsity = 0.6;
        const auto owlResult = allocation::owlAllocation(*f.model, f.windows, owl);
        solve::SolverOptions owlBase = base;
        owlBase.sparsity = 0.6;
        QCOMPARE(points[0].spec.allocation, std::string("owl"));
        QCOMPARE(points[0].perplexity, prunedAlone(allocation::owlRecipe(owlResult, *f.model, owlBase)));
        // The search, as `allocate --method search` makes it (same seed, same windows).
        allocation::SearchParams search = params.search;
        search.targetSparsity = 0.6;
        search.base.sparsity = 0.6;
        const auto searched = allocation::searchAllocation(*f.model, f.windows, search);
        QCOMPARE(points[2].spec.allocation, std::string("search"));
        QCOMPARE(points[2].perplexity, prunedAlone(allocation::searchRecipe(searched, search.base)));
        solve::SolverOptions magnitude = search.base;
        magnitude.method = solve::Method::Magnitude;
        QCOMPARE(points[3].spec.method, solve::Method::Magnitude);
        QCOMPARE(points[3].perplexity, prunedAlone(allocation::searchRecipe(searched, magnitude)));
        // The average is the budget at every point; OWL's per-layer sparsities are not uniform.
        for (const auto& p : points)
            QVERIFY2(std::abs(p.linearSparsity - 0.6) < 2e-3, std::to_string(p.linearSparsity).c_str());
        double lo = 1.0, hi = 0.0;
        for (const auto& layer : points[0].layers) {
            lo = std::min(lo, layer.stats.sparsity);
            hi = std::max(hi, layer.stats.sparsity);
        }
        QVERIFY(hi - lo > 0.02);
    }

    // ---- KL and continuations -------------------------------------------------------------------
    void klHandCase()
    {
        // V = 2: P = softmax(0, 0) = (1/2, 1/2), Q = softmax(ln 3, 0) = (3/4, 1/4):
        // KL = ½ ln((1/2)/(3/4)) + ½ ln((1/2)/(1/4)) = ½ ln(2/3 · 2) = ½ ln(4/3).
        const auto p = torch::tensor({0.0, 0.0, 1.0, -2.0}, torch::kDouble).reshape({2, 2});
        const auto q = torch::tensor({std::log(3.0), 0.0, 1.0, -2.0}, torch::kDouble).reshape({2, 2});
        const auto kl = eval::tokenKl(p, q);
        QVERIFY(std::abs(kl[0].item<double>() - 0.5 * std::log(4.0 / 3.0)) < 1e-12);
        QCOMPARE(kl[1].item<double>(), 0.0);
    }

    void klOfAModelAgainstItselfIsZero()
    {
        const auto& f = fixture();
        const auto c = eval::compareDistributions(*f.model, *f.model, f.evalIds, 64, 6);
        QCOMPARE(c.meanKl, 0.0);
        QCOMPARE(c.maxKl, 0.0);
        QCOMPARE(c.top1Agreement, 1.0);
        QCOMPARE(c.positions, int64_t(6 * 64));
        // Its perplexity is the evaluator's.
        eval::PerplexityParams params;
        params.seqlen = 64;
        params.maxWindows = 6;
        const double ppl = eval::evaluatePerplexity(*f.model, f.evalIds, params).perplexity;
        QVERIFY(std::abs(c.referencePerplexity - ppl) < 1e-5 * ppl);
        QCOMPARE(c.otherPerplexity, c.referencePerplexity);
        // Greedy continuation is deterministic and starts a story.
        const auto prompt = f.tokenizer->encodeForModel("Once upon a time");
        const auto a = eval::greedyContinuation(*f.model, prompt, 12);
        QCOMPARE(a.size(), size_t(12));
        QCOMPARE(eval::greedyContinuation(*f.model, prompt, 12), a);
    }

    // ---- report -------------------------------------------------------------------------------
    void reportPdfAndHtml()
    {
        const auto& f = fixture();
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        // A compressed folder as `prune` writes it: the model with the provenance.
        model::CausalLM copy(*f.model);
        for (auto* layer : copy.allLinears())
            layer->weight = layer->weight.clone();
        pipeline::PruneParams prune;
        prune.recipe.defaults.options.sparsity = 0.5;
        const auto result = pipeline::pruneModel(copy, f.windows, prune);
        nlohmann::json layers = nlohmann::json::array();
        for (const auto& r : result.layers)
            layers.push_back({{"name", r.name}, {"rows", r.rows}, {"cols", r.cols}, {"method", "sparsegpt"},
                              {"target_sparsity", 0.5}, {"bits", 16}, {"sparsity", r.stats.sparsity},
                              {"loss", r.stats.loss}, {"rel_output_error", r.stats.relOutputError},
                              {"seconds", r.stats.seconds}});
        const nlohmann::json provenance = {
            {"sparselab_version", SPARSELAB_VERSION},
            {"calibration", {{"file", testing::demoCalibText().string()}, {"nsamples", 8}, {"seqlen", 64}, {"seed", 0}}},
            {"recipe", prune.recipe.toJson()},
            {"linear_sparsity", result.linearSparsity()},
            {"layers", layers},
            {"evaluation", {{"file", testing::demoEvalText().string()}, {"seqlen", 64}}}};
        const fs::path out = root / "s50";
        (void)exporting::exportHuggingFaceFolder(copy, out, provenance);

        report::ReportParams params;
        params.denseFolder = testing::demoModelDir();
        params.compressedFolder = out;
        params.maxWindows = 4;
        params.newTokens = 10;
        params.prompts = {"Once upon a time", "The cat"};
        const auto data = report::buildReport(params);
        QVERIFY(data.comparison.meanKl > 0.0);
        QVERIFY(data.comparison.otherPerplexity > data.comparison.referencePerplexity);
        QVERIFY(data.compressedBytes < data.denseBytes);
        QCOMPARE(data.continuations.size(), size_t(2));

        const std::string html = report::renderHtml(data);
        for (const char* external : {"http:", "https:", "src=", "href=", "<link", "<script", "url(", "@import"})
            QVERIFY2(html.find(external) == std::string::npos, external);
        QVERIFY(html.find("<svg") != std::string::npos);
        QVERIFY(html.find("<style>") != std::string::npos);
        QVERIFY(html.find("model.layers.4.mlp.down_proj") != std::string::npos);
        QVERIFY(html.find("3b. Per-layer allocation") == std::string::npos); // uniform: no profile

        const fs::path pdf = root / "r.pdf";
        writeFileAtomically(pdf, report::renderPdf(data));
        if (QStandardPaths::findExecutable("pdftotext").isEmpty())
            QSKIP("pdftotext (poppler-utils) is not installed; the PDF was written but not read back");
        const std::string text = runPdfToText(pdf);
        QVERIFY2(!text.empty(), "pdftotext could not read the PDF");
        for (const char* expected : {"SparseLab compression report", "1. Summary", "2. Provenance", "3. Per-layer results",
                                     "4. Plots", "5. Next-token distribution", "6. Greedy continuations",
                                     "model.layers.0.self_attn.q_proj", "model.layers.4.mlp.down_proj", "Once upon a time",
                                     "Per-layer relative output error", "perplexity"})
            QVERIFY2(text.find(expected) != std::string::npos, expected);
        // The perplexities appear as computed (4 decimals).
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.4f", data.comparison.otherPerplexity);
        QVERIFY(text.find(buffer) != std::string::npos);
        // Pages: pdftotext separates them with form feeds; each carries its footer.
        const auto pages = std::count(text.begin(), text.end(), '\f');
        QVERIFY2(pages >= 3, "expected at least three pages");
        QVERIFY(text.find("page " + std::to_string(pages)) != std::string::npos);
    }

    void reportShowsAnAllocationProfile()
    {
        // A compressed folder whose layers got different levels: blocks 0–1 at 30 %, the
        // attention of blocks 2–4 at 80 %, their MLPs at 60 %. The report's section 3b gives
        // the range and the size-weighted average, computed here by hand from the shapes.
        const auto& f = fixture();
        QTemporaryDir dir;
        const fs::path root = dir.path().toStdString();
        model::CausalLM copy(*f.model);
        for (auto* layer : copy.allLinears())
            layer->weight = layer->weight.clone();
        const auto target = [](const std::string& name) {
            const bool early = name.find("layers.0.") != std::string::npos || name.find("layers.1.") != std::string::npos;
            return early ? 0.3 : name.find("self_attn") != std::string::npos ? 0.8 : 0.6;
        };
        nlohmann::json layers = nlohmann::json::array();
        double weighted = 0, weights = 0;
        for (int64_t b = 0; b < copy.numBlocks(); ++b)
            for (const auto& layer : copy.linears(b)) {
                const std::string name = pipeline::moduleName(layer.name);
                const double w = double(layer.weight.numel());
                weighted += w * target(name);
                weights += w;
                layers.push_back({{"name", name}, {"block", b}, {"rows", layer.weight.size(0)},
                                  {"cols", layer.weight.size(1)}, {"method", "sparsegpt"},
                                  {"target_sparsity", target(name)}, {"bits", 16}, {"sparsity", target(name)},
                                  {"loss", 0.0}, {"rel_output_error", 0.0}, {"seconds", 0.0}});
            }
        const nlohmann::json provenance = {
            {"sparselab_version", SPARSELAB_VERSION},
            {"calibration", {{"file", testing::demoCalibText().string()}, {"nsamples", 8}, {"seqlen", 64}, {"seed", 0}}},
            {"layers", layers},
            {"evaluation", {{"file", testing::demoEvalText().string()}, {"seqlen", 64}}}};
        const fs::path out = root / "allocated";
        (void)exporting::exportHuggingFaceFolder(copy, out, provenance);
        report::ReportParams params;
        params.denseFolder = testing::demoModelDir();
        params.compressedFolder = out;
        params.maxWindows = 2;
        params.newTokens = 4;
        params.prompts = {"Once"};
        // A sweep with an allocation axis: section 3c puts its allocations side by side.
        analysis::SweepResult sweep;
        sweep.grid.allocations = {"uniform", "owl", "search"};
        sweep.grid.sparsities = {0.6};
        sweep.densePerplexity = 5.85;
        const double perplexity[] = {57.93, 50.4, 38.17};
        for (int64_t i = 0; i < 3; ++i) {
            analysis::SweepPoint p = handPoint(276000, perplexity[i]);
            p.spec = analysis::sweepPointSpec(sweep.grid, i);
            sweep.points.push_back(p);
        }
        params.sweep = sweep;
        const std::string html = report::renderHtml(report::buildReport(params));
        QVERIFY(html.find("3c. Allocations compared (sweep)") != std::string::npos);
        for (const char* cell : {"uniform perplexity", "search perplexity", "60.0 %", "57.93", "50.40", "38.17 (best)", "(dense 5.85)"})
            QVERIFY2(html.find(cell) != std::string::npos, cell);
        QVERIFY(html.find("57.93 (best)") == std::string::npos);
        QVERIFY(html.find("3b. Per-layer allocation") != std::string::npos);
        QVERIFY(html.find("ranges from 30.0 % to 80.0 %") != std::string::npos);
        char average[64];
        std::snprintf(average, sizeof average, "average is %.2f %%", 100 * weighted / weights);
        QVERIFY2(html.find(average) != std::string::npos, average);
        QVERIFY(html.find("Allocation profile: target sparsity by block and layer kind") != std::string::npos);
        for (const char* kind : {"q_proj", "down_proj", "average (uniform)"})
            QVERIFY2(html.find(kind) != std::string::npos, kind);
    }
};

QTEST_GUILESS_MAIN(TestTradeoffs)
#include "test_tradeoffs.moc"
