// GPT-2 and OPT forward passes against golden logits from independent implementations.
//
// The checkpoints in tests/data/models/tiny-{gpt2,gpt2-f16,opt,opt-postln} are random
// (scripts/make_tiny_checkpoints.py); their golden_logits.safetensors hold `ids` (I64 [2, 16])
// and `logits` (F32 [2, 16, vocab]) computed outside this project by nanoGPT's model.py
// (GPT-2) and by transformers' modeling_opt.py (OPT) — see tests/data/README.md.

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "testsupport.h"

#include <QTest>

#include <torch/torch.h>

#include <string>
#include <vector>

using namespace sparselab;
using sparselab::testing::testDataDir;

namespace {

constexpr double kTolerance = 1e-4;

std::filesystem::path modelDir(const QString& name) { return testDataDir() / "models" / name.toStdString(); }

struct Golden {
    torch::Tensor ids;    // [B, T] int64
    torch::Tensor logits; // [B, T, vocab] float32
};

Golden readGolden(const std::filesystem::path& folder)
{
    const auto file = io::SafetensorsFile::open(folder / "golden_logits.safetensors");
    const io::TensorView ids = file.view("ids");
    const io::TensorView logits = file.view("logits");
    if (ids.dtype != io::DType::I64 || ids.shape.size() != 2 || logits.dtype != io::DType::F32
        || logits.shape.size() != 3)
        throw std::runtime_error("unexpected golden_logits.safetensors layout");
    Golden g;
    // from_blob does not copy; clone so the tensors outlive the mapping.
    g.ids = torch::from_blob(const_cast<std::byte*>(ids.data), ids.shape, torch::kInt64).clone();
    g.logits = torch::from_blob(const_cast<std::byte*>(logits.data), logits.shape, torch::kFloat32).clone();
    return g;
}

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b)
{
    return (a.to(torch::kCPU).to(torch::kFloat64) - b.to(torch::kCPU).to(torch::kFloat64)).abs().max().item<double>();
}

// The sub-layer names of one block, in execution order, as HF names them.
std::vector<std::string> expectedKinds(model::Architecture arch)
{
    switch (arch) {
    case model::Architecture::Gpt2: return {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
    case model::Architecture::Opt:
        return {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2"};
    case model::Architecture::Llama:
        return {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    }
    return {};
}

std::string blockPrefix(model::Architecture arch, int64_t block)
{
    const std::string b = std::to_string(block);
    switch (arch) {
    case model::Architecture::Gpt2: return "transformer.h." + b + ".";
    case model::Architecture::Opt: return "model.decoder.layers." + b + ".";
    case model::Architecture::Llama: return "model.layers." + b + ".";
    }
    return {};
}

void addModelRows()
{
    QTest::addColumn<QString>("folder");
    QTest::newRow("tiny-gpt2") << QStringLiteral("tiny-gpt2");
    QTest::newRow("tiny-gpt2-f16") << QStringLiteral("tiny-gpt2-f16");
    QTest::newRow("tiny-opt") << QStringLiteral("tiny-opt");
    QTest::newRow("tiny-opt-postln") << QStringLiteral("tiny-opt-postln");
}

} // namespace

class TestArchForward : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { torch::set_num_threads(2); }

    void configParses_data()
    {
        QTest::addColumn<QString>("folder");
        QTest::addColumn<int>("arch");
        QTest::addColumn<QString>("modelType");
        QTest::addColumn<qint64>("intermediate");
        QTest::addColumn<qint64>("vocab");
        QTest::addColumn<bool>("preNorm");
        QTest::addColumn<QString>("activation");
        QTest::addColumn<QString>("torchDtype");
        const int gpt2 = int(model::Architecture::Gpt2);
        const int opt = int(model::Architecture::Opt);
        QTest::newRow("tiny-gpt2") << QStringLiteral("tiny-gpt2") << gpt2 << QStringLiteral("gpt2") << qint64(128)
                                   << qint64(256) << true << QStringLiteral("gelu_new") << QStringLiteral("float32");
        QTest::newRow("tiny-gpt2-f16") << QStringLiteral("tiny-gpt2-f16") << gpt2 << QStringLiteral("gpt2")
                                       << qint64(128) << qint64(256) << true << QStringLiteral("gelu_new")
                                       << QStringLiteral("float16");
        QTest::newRow("tiny-opt") << QStringLiteral("tiny-opt") << opt << QStringLiteral("opt") << qint64(96)
                                  << qint64(272) << true << QStringLiteral("relu") << QStringLiteral("float32");
        QTest::newRow("tiny-opt-postln") << QStringLiteral("tiny-opt-postln") << opt << QStringLiteral("opt")
                                         << qint64(96) << qint64(272) << false << QStringLiteral("relu")
                                         << QStringLiteral("float32");
    }
    void configParses()
    {
        QFETCH(QString, folder);
        QFETCH(int, arch);
        QFETCH(QString, modelType);
        QFETCH(qint64, intermediate);
        QFETCH(qint64, vocab);
        QFETCH(bool, preNorm);
        QFETCH(QString, activation);
        QFETCH(QString, torchDtype);
        const auto c = model::ModelConfig::load(modelDir(folder));
        QCOMPARE(int(c.architecture), arch);
        QCOMPARE(c.modelType, modelType.toStdString());
        QCOMPARE(c.hiddenSize, int64_t(32));
        QCOMPARE(c.numLayers, int64_t(2));
        QCOMPARE(c.numHeads, int64_t(4));
        QCOMPARE(c.numKvHeads, int64_t(4));
        QCOMPARE(c.headDim, int64_t(8));
        QCOMPARE(c.intermediateSize, int64_t(intermediate));
        QCOMPARE(c.vocabSize, int64_t(vocab));
        QCOMPARE(c.maxPositions, int64_t(64));
        QCOMPARE(c.normEps, 1e-5);
        QVERIFY(c.attentionBias);
        QVERIFY(c.attentionOutputBias);
        QVERIFY(c.mlpBias);
        QVERIFY(c.tieWordEmbeddings);
        QCOMPARE(c.doLayerNormBefore, preNorm);
        QCOMPARE(c.activation, activation.toStdString());
        QCOMPARE(c.torchDtype, torchDtype.toStdString());
    }

    void logitsMatchGolden_data() { addModelRows(); }
    void logitsMatchGolden()
    {
        QFETCH(QString, folder);
        const auto lm = model::CausalLM::load(modelDir(folder));
        const Golden g = readGolden(modelDir(folder));
        const torch::Tensor logits = lm->logits(g.ids);
        QCOMPARE(logits.scalar_type(), torch::kFloat32);
        QCOMPARE(logits.sizes().vec(), g.logits.sizes().vec());
        const double diff = maxAbsDiff(logits, g.logits);
        qInfo("%s: max |logits - golden| = %.3g", qPrintable(folder), diff);
        QVERIFY2(diff <= kTolerance, qPrintable(QStringLiteral("max abs diff %1 > 1e-4").arg(diff)));
        // Each sequence alone gives the same logits (no leakage across the batch).
        const double single = maxAbsDiff(lm->logits(g.ids.slice(0, 1, 2)), g.logits.slice(0, 1, 2));
        QVERIFY2(single <= kTolerance, qPrintable(QStringLiteral("batch of one: %1").arg(single)));
        // Causality: a prefix's logits do not depend on later tokens.
        const double prefix = maxAbsDiff(lm->logits(g.ids.slice(1, 0, 5)), g.logits.slice(1, 0, 5));
        QVERIFY2(prefix <= kTolerance, qPrintable(QStringLiteral("prefix of 5 tokens: %1").arg(prefix)));
    }

    void blockPipelineEqualsLogits_data() { addModelRows(); }
    void blockPipelineEqualsLogits()
    {
        QFETCH(QString, folder);
        const auto lm = model::CausalLM::load(modelDir(folder));
        const Golden g = readGolden(modelDir(folder));
        const int64_t B = g.ids.size(0);
        const int64_t T = g.ids.size(1);
        const model::ModelConfig& c = lm->config();

        torch::Tensor x = lm->embed(g.ids);
        QCOMPARE(x.sizes().vec(), (std::vector<int64_t>{B, T, c.hiddenSize}));
        for (int64_t b = 0; b < lm->numBlocks(); ++b) {
            std::vector<std::string> seen;
            const auto& layers = lm->linears(b);
            x = lm->runBlock(b, x, [&](const model::LinearLayer& layer, const torch::Tensor& in) {
                seen.push_back(layer.kind);
                QCOMPARE(layer.block, b);
                QCOMPARE(in.scalar_type(), torch::kFloat32);
                QCOMPARE(in.sizes().vec(), (std::vector<int64_t>{B, T, layer.weight.size(1)}));
                if (c.architecture == model::Architecture::Opt && layer.kind == "fc2")
                    QVERIFY(in.min().item<float>() >= 0.0f); // after ReLU
            });
            std::vector<std::string> expected;
            for (const auto& layer : layers)
                expected.push_back(layer.kind);
            QCOMPARE(seen, expected);
            QCOMPARE(x.sizes().vec(), (std::vector<int64_t>{B, T, c.hiddenSize}));
        }
        const torch::Tensor viaBlocks = lm->head(x);
        const double diff = maxAbsDiff(viaBlocks, lm->logits(g.ids));
        QVERIFY2(diff <= 1e-6, qPrintable(QStringLiteral("embed/runBlock/head vs logits: %1").arg(diff)));
        QVERIFY(maxAbsDiff(viaBlocks, g.logits) <= kTolerance);
    }

    // Outside autograd the forward pass overwrites its own temporaries (residual adds,
    // activations, the norms' scratch); with autograd on, it makes new tensors. Both must give
    // the same floats, block by block, for every architecture.
    void reusedTemporariesGiveTheSameFloats_data()
    {
        addModelRows();
        QTest::newRow("hf-llama") << QStringLiteral("hf-llama");
        QTest::newRow("hf-mistral") << QStringLiteral("hf-mistral");
    }
    void reusedTemporariesGiveTheSameFloats()
    {
        QFETCH(QString, folder);
        const auto lm = model::CausalLM::load(modelDir(folder));
        torch::manual_seed(7);
        const torch::Tensor ids = torch::randint(lm->config().vocabSize, {2, 16}, torch::kLong);
        torch::Tensor x;
        {
            torch::NoGradGuard noGrad;
            x = lm->embed(ids);
        }
        for (int64_t b = 0; b < lm->numBlocks(); ++b) {
            torch::Tensor newTensors;
            {
                torch::AutoGradMode gradOn(true);
                newTensors = lm->runBlock(b, x);
            }
            torch::NoGradGuard noGrad;
            const torch::Tensor reused = lm->runBlock(b, x);
            QVERIFY2(torch::equal(newTensors, reused), qPrintable(QStringLiteral("block %1").arg(b)));
            QVERIFY(maxAbsDiff(reused, x) > 0.0); // the block did something
            x = reused;
        }
    }

    // BlockResult::LinearInputsOnly shows the hook the same inputs, bit for bit and in the
    // same order, as a full block, and stops there.
    void linearInputsOnlyShowsTheSameInputs_data()
    {
        addModelRows();
        QTest::newRow("hf-llama") << QStringLiteral("hf-llama");
    }
    void linearInputsOnlyShowsTheSameInputs()
    {
        QFETCH(QString, folder);
        const auto lm = model::CausalLM::load(modelDir(folder));
        torch::NoGradGuard noGrad;
        torch::manual_seed(11);
        torch::Tensor x = lm->embed(torch::randint(lm->config().vocabSize, {2, 16}, torch::kLong));
        using Seen = std::vector<std::pair<std::string, torch::Tensor>>;
        const auto recorder = [](Seen& seen) {
            return [&seen](const model::LinearLayer& layer, const torch::Tensor& input) {
                seen.emplace_back(layer.name, input.clone());
            };
        };
        for (int64_t b = 0; b < lm->numBlocks(); ++b) {
            Seen full, inputsOnly;
            const torch::Tensor out = lm->runBlock(b, x, recorder(full));
            const torch::Tensor none = lm->runBlock(b, x, recorder(inputsOnly), model::BlockResult::LinearInputsOnly);
            QVERIFY(out.defined());
            QVERIFY(!none.defined());
            const auto& layers = lm->linears(b);
            QCOMPARE(full.size(), layers.size());
            QCOMPARE(inputsOnly.size(), layers.size());
            for (size_t i = 0; i < layers.size(); ++i) {
                QCOMPARE(inputsOnly[i].first, layers[i].name);
                QCOMPARE(full[i].first, layers[i].name);
                QVERIFY2(torch::equal(inputsOnly[i].second, full[i].second), layers[i].name.c_str());
            }
            x = out;
        }
    }

    void linearsNameHfTensors_data() { addModelRows(); }
    void linearsNameHfTensors()
    {
        QFETCH(QString, folder);
        const auto lm = model::CausalLM::load(modelDir(folder));
        const auto ckpt = io::Checkpoint::open(modelDir(folder));
        const model::ModelConfig& c = lm->config();
        const bool gpt2 = c.architecture == model::Architecture::Gpt2;
        QCOMPARE(lm->numBlocks(), int64_t(2));

        size_t total = 0;
        for (int64_t b = 0; b < lm->numBlocks(); ++b) {
            const auto& layers = lm->linears(b);
            const auto kinds = expectedKinds(c.architecture);
            QCOMPARE(layers.size(), kinds.size());
            total += layers.size();
            for (size_t i = 0; i < layers.size(); ++i) {
                const model::LinearLayer& l = layers[i];
                const std::string prefix = blockPrefix(c.architecture, b);
                QCOMPARE(l.kind, kinds[i]);
                QCOMPARE(l.name, prefix + kinds[i] + ".weight");
                QCOMPARE(l.block, b);
                QCOMPARE(l.storedTransposed, gpt2);
                QVERIFY2(ckpt.contains(l.name), l.name.c_str());
                // [out, in] in memory, equal to the stored tensor (transposed for Conv1D).
                const torch::Tensor stored = model::toFloatTensor(ckpt.view(l.name));
                const torch::Tensor expected = gpt2 ? stored.t() : stored;
                QCOMPARE(l.weight.sizes().vec(), expected.sizes().vec());
                QCOMPARE(l.weight.scalar_type(), torch::kFloat32);
                QVERIFY2(torch::equal(l.weight.cpu(), expected), l.name.c_str());
                QVERIFY(l.bias.defined());
                const std::string biasName = prefix + kinds[i] + ".bias";
                QVERIFY(torch::equal(l.bias.cpu(), model::toFloatTensor(ckpt.view(biasName))));
                QCOMPARE(l.bias.size(0), l.weight.size(0));
            }
            const int64_t d = c.hiddenSize;
            const int64_t f = c.intermediateSize;
            if (gpt2) {
                QCOMPARE(layers[0].weight.sizes().vec(), (std::vector<int64_t>{3 * d, d})); // fused c_attn
                QCOMPARE(layers[2].weight.sizes().vec(), (std::vector<int64_t>{f, d}));
                QCOMPARE(layers[3].weight.sizes().vec(), (std::vector<int64_t>{d, f}));
            } else {
                QCOMPARE(layers[4].weight.sizes().vec(), (std::vector<int64_t>{f, d}));
                QCOMPARE(layers[5].weight.sizes().vec(), (std::vector<int64_t>{d, f}));
            }
        }
        QCOMPARE(lm->allLinears().size(), total);

        // parameters(): every stored tensor once under its stored name (tied lm_head not added).
        const auto stored = ckpt.storedNames();
        QCOMPARE(lm->parameters().size(), stored.size());
        int64_t numel = 0;
        for (const auto& name : stored) {
            QVERIFY2(lm->parameters().count(name) == 1, name.c_str());
            numel += ckpt.info(name).numel();
        }
        QVERIFY(lm->parameters().count("lm_head.weight") == 0);
        QCOMPARE(lm->parameterCount(), numel);
        QCOMPARE(lm->storedDtype(), std::string(folder.endsWith(QStringLiteral("-f16")) ? "F16" : "F32"));
    }

    // Solvers update LinearLayer::weight in place; the forward must use those tensors.
    void forwardUsesLinearWeights_data() { addModelRows(); }
    void forwardUsesLinearWeights()
    {
        QFETCH(QString, folder);
        auto lm = model::CausalLM::load(modelDir(folder));
        const Golden g = readGolden(modelDir(folder));
        for (size_t i = 0; i < lm->linears(1).size(); ++i) {
            torch::NoGradGuard noGrad;
            model::LinearLayer& l = lm->linears(1)[i];
            const torch::Tensor saved = l.weight.clone();
            l.weight.zero_();
            const double changed = maxAbsDiff(lm->logits(g.ids), g.logits);
            l.weight.copy_(saved);
            QVERIFY2(changed > 1e-2, (l.kind + " zeroed but logits unchanged").c_str());
        }
        QVERIFY(maxAbsDiff(lm->logits(g.ids), g.logits) <= kTolerance);
    }

    void cudaMatchesGolden_data() { addModelRows(); }
    void cudaMatchesGolden()
    {
        QFETCH(QString, folder);
        if (!torch::cuda::is_available())
            QSKIP("no CUDA device");
        const auto lm = model::CausalLM::load(modelDir(folder), torch::Device(torch::kCUDA, 0));
        const Golden g = readGolden(modelDir(folder));
        const torch::Tensor logits = lm->logits(g.ids.to(lm->device()));
        QVERIFY(logits.device().is_cuda());
        const double diff = maxAbsDiff(logits, g.logits);
        qInfo("%s (CUDA): max |logits - golden| = %.3g", qPrintable(folder), diff);
        QVERIFY2(diff <= kTolerance, qPrintable(QStringLiteral("max abs diff %1 > 1e-4").arg(diff)));
    }
};

QTEST_GUILESS_MAIN(TestArchForward)
#include "test_arch_forward.moc"
