// Streaming (CausalLM::load with streamBlocks): the pipeline pages each block in, writes it
// back when finished and frees it; the exported model must be byte-identical to the one the
// in-memory pipeline exports (the same float32 arithmetic on the same weights; the spill holds
// the stored dtype, which is also what the exporter converts to). Cases: the demo model (Llama,
// F32), tiny-gpt2-f16 (GPT-2 Conv1D stored transposed, F16 on disk) and tiny-opt (biases).
// Also: weights of blocks not in use are shape-only (meta) tensors, and a streamed model that
// was never pruned exports its input weights unchanged.

#include "testsupport.h"

#include "data/calibration.h"
#include "export/hf_export.h"
#include "model/causal_lm.h"
#include "pipeline/prune_pipeline.h"
#include "analysis/sensitivity.h"
#include "util/atomic_file.h"

#include <torch/types.h>

#include <QTemporaryDir>
#include <QTest>

#include <random>

using namespace sparselab;
namespace fs = std::filesystem;

namespace {

data::CalibrationWindows randomWindows(int64_t vocab, int64_t nsamples, int64_t seqlen)
{
    data::CalibrationWindows w;
    w.nsamples = nsamples;
    w.seqlen = seqlen;
    std::mt19937_64 rng(11);
    std::uniform_int_distribution<int64_t> token(0, vocab - 1);
    for (int64_t k = 0; k < nsamples * seqlen; ++k)
        w.ids.push_back(token(rng));
    for (int64_t s = 0; s < nsamples; ++s)
        w.offsets.push_back(s * seqlen);
    return w;
}

// Bytes of every *.safetensors file in a folder, by name.
std::map<std::string, std::string> weightFiles(const fs::path& folder)
{
    std::map<std::string, std::string> files;
    for (const auto& entry : fs::directory_iterator(folder))
        if (entry.path().extension() == ".safetensors")
            files[entry.path().filename().string()] = readTextFile(entry.path());
    return files;
}

} // namespace

class TestStreaming : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void exportMatchesInMemory_data()
    {
        QTest::addColumn<QString>("folder");
        QTest::addColumn<QString>("nm");
        QTest::newRow("demo llama 50%") << QString::fromStdString(testing::demoModelDir().string()) << "";
        QTest::newRow("tiny-gpt2-f16 2:4")
            << QString::fromStdString((testing::testDataDir() / "models" / "tiny-gpt2-f16").string()) << "2:4";
        QTest::newRow("tiny-opt 50%")
            << QString::fromStdString((testing::testDataDir() / "models" / "tiny-opt").string()) << "";
    }

    void exportMatchesInMemory()
    {
        QFETCH(QString, folder);
        QFETCH(QString, nm);
        torch::NoGradGuard noGrad;
        const fs::path source = folder.toStdString();
        auto inMemory = model::CausalLM::load(source);
        auto streamed = model::CausalLM::load(source, torch::kCPU, /*streamBlocks=*/true);
        QVERIFY(!inMemory->streamed());
        QVERIFY(streamed->streamed());
        // Not in use: shape only, same shapes as the loaded ones.
        for (int64_t b = 0; b < streamed->numBlocks(); ++b)
            for (size_t i = 0; i < streamed->linears(b).size(); ++i) {
                QVERIFY(streamed->linears(b)[i].weight.is_meta());
                QCOMPARE(streamed->linears(b)[i].weight.sizes(), inMemory->linears(b)[i].weight.sizes());
            }

        const auto windows = randomWindows(inMemory->config().vocabSize, 8, 32);
        pipeline::PruneParams params;
        if (nm == "2:4") {
            params.recipe.defaults.options.nmN = 2;
            params.recipe.defaults.options.nmM = 4;
        }
        const auto a = pipeline::pruneModel(*inMemory, windows, params);
        const auto b = pipeline::pruneModel(*streamed, windows, params);
        QCOMPARE(b.layers.size(), a.layers.size());
        for (size_t i = 0; i < a.layers.size(); ++i) {
            QCOMPARE(b.layers[i].stats.sparsity, a.layers[i].stats.sparsity);
            QCOMPARE(b.layers[i].stats.loss, a.layers[i].stats.loss);
        }
        // After the run every block is written back and freed.
        for (int64_t blk = 0; blk < streamed->numBlocks(); ++blk)
            for (const auto& layer : streamed->linears(blk)) {
                QVERIFY(layer.weight.is_meta());
                QVERIFY(streamed->finishedWeight(layer.name).has_value());
            }

        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const fs::path outA = fs::path(dir.path().toStdString()) / "in-memory";
        const fs::path outB = fs::path(dir.path().toStdString()) / "streamed";
        (void)exporting::exportHuggingFaceFolder(*inMemory, outA, {{"run", "test"}});
        const auto summary = exporting::exportHuggingFaceFolder(*streamed, outB, {{"run", "test"}});
        QCOMPARE(summary.tensorsReplaced, int64_t(a.layers.size()));
        const auto filesA = weightFiles(outA);
        const auto filesB = weightFiles(outB);
        QCOMPARE(filesB.size(), filesA.size());
        for (const auto& [name, bytes] : filesA) {
            QVERIFY2(filesB.count(name), name.c_str());
            QVERIFY2(filesB.at(name) == bytes, ("streamed export differs in " + name).c_str());
        }
    }

    // The sensitivity scan pages a streamed model's blocks in and out (BlockWalker leaves paging
    // to its caller): every cell equals the in-memory scan's, and no block stays resident.
    void sensitivityScanMatchesInMemory()
    {
        torch::NoGradGuard noGrad;
        auto inMemory = model::CausalLM::load(testing::demoModelDir());
        auto streamed = model::CausalLM::load(testing::demoModelDir(), torch::kCPU, /*streamBlocks=*/true);
        const auto windows = randomWindows(inMemory->config().vocabSize, 8, 32);
        analysis::SensitivityParams params;
        params.sparsities = {0.0, 0.5, 0.7};
        params.bits = {16, 4};
        const auto a = analysis::scanSensitivity(*inMemory, windows, params);
        const auto b = analysis::scanSensitivity(*streamed, windows, params);
        QCOMPARE(b.layers.size(), a.layers.size());
        QCOMPARE(a.layers.size(), size_t(35));
        for (size_t l = 0; l < a.layers.size(); ++l)
            for (size_t i = 0; i < params.sparsities.size(); ++i)
                for (size_t j = 0; j < params.bits.size(); ++j) {
                    QCOMPARE(b.cell(l, i, j).relError, a.cell(l, i, j).relError);
                    QCOMPARE(b.cell(l, i, j).achievedSparsity, a.cell(l, i, j).achievedSparsity);
                }
        for (int64_t blk = 0; blk < streamed->numBlocks(); ++blk)
            for (const auto& layer : streamed->linears(blk))
                QVERIFY2(layer.weight.is_meta(), layer.name.c_str());
        // The const overload refuses a streamed model instead of reading meta tensors.
        const model::CausalLM& readOnly = *streamed;
        QVERIFY_THROWS_EXCEPTION(std::invalid_argument, (void)analysis::scanSensitivity(readOnly, windows, params));
    }

    void unprunedStreamedModelExportsItsInput()
    {
        torch::NoGradGuard noGrad;
        const fs::path source = testing::testDataDir() / "models" / "tiny-opt";
        auto streamed = model::CausalLM::load(source, torch::kCPU, true);
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "copy";
        const auto summary = exporting::exportHuggingFaceFolder(*streamed, out, {{"run", "test"}});
        QCOMPARE(summary.tensorsReplaced, int64_t(0));
        QCOMPARE(weightFiles(out), weightFiles(source));
    }

    void materializeAndFinishRoundTrip()
    {
        // F32 on disk: materialize → finish → materialize gives the same values back.
        torch::NoGradGuard noGrad;
        const fs::path source = testing::testDataDir() / "models" / "tiny-opt";
        auto reference = model::CausalLM::load(source);
        auto streamed = model::CausalLM::load(source, torch::kCPU, true);
        streamed->materializeBlock(1);
        QVERIFY(!streamed->linears(1)[0].weight.is_meta());
        QVERIFY(streamed->linears(0)[0].weight.is_meta());
        streamed->linears(1)[0].weight.mul_(2.0);
        streamed->finishBlock(1);
        QVERIFY(streamed->linears(1)[0].weight.is_meta());
        streamed->materializeBlock(1);
        QVERIFY(torch::equal(streamed->linears(1)[0].weight, reference->linears(1)[0].weight * 2.0));
        QVERIFY(torch::equal(streamed->linears(1)[1].weight, reference->linears(1)[1].weight));
    }
};

QTEST_GUILESS_MAIN(TestStreaming)
#include "test_streaming.moc"
