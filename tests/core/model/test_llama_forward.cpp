// model/causal_lm, Llama family: greedy decoding of the bundled stories260K-hf must
// reproduce the ids that an independent NumPy re-implementation of llama2.c produced from
// the original .bin (tests/data/stories260K_greedy_t0_n256.ids.txt; decoded, they are
// llama2.c's published sample). Plus the block-wise API, hooks and half-precision loading.

#include "testsupport.h"

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/causal_lm.h"
#include "tokenize/tokenizer.h"
#include "util/errors.h"

#include <QTemporaryDir>
#include <QtTest>

#include <c10/core/InferenceMode.h>

#include <fstream>

using namespace sparselab;
namespace fs = std::filesystem;

namespace {

std::vector<int64_t> readIds(const fs::path& file)
{
    std::ifstream in(file);
    std::vector<int64_t> ids;
    for (int64_t id = 0; in >> id;)
        ids.push_back(id);
    return ids;
}

// Greedy continuation of `prompt` by `steps` tokens, full forward each step (no KV cache).
std::vector<int64_t> greedy(const model::CausalLM& model, std::vector<int64_t> ids, int steps)
{
    c10::InferenceMode guard;
    const size_t promptLength = ids.size();
    for (int i = 0; i < steps; ++i) {
        const torch::Tensor input = torch::tensor(ids, torch::kLong).unsqueeze(0); // [1, T]
        const torch::Tensor logits = model.logits(input);                          // [1, T, V]
        ids.push_back(logits[0][-1].argmax().item<int64_t>());
    }
    return {ids.begin() + std::ptrdiff_t(promptLength), ids.end()};
}

} // namespace

class TestLlamaForward : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void structure();
    void greedyMatchesReference();
    void greedyContinuationOfPrompt();
    void blockwiseEqualsLogitsAndHooksSeeInputs();
    void batchedEqualsSingle();
    void halfPrecisionCheckpoint_data();
    void halfPrecisionCheckpoint();
    void tinyStories656KGreedy();
    void wrongShapeNamesFile();

private:
    std::unique_ptr<model::CausalLM> m_model;
};

void TestLlamaForward::initTestCase()
{
    m_model = model::CausalLM::load(testing::demoModelDir());
}

void TestLlamaForward::structure()
{
    const model::CausalLM& m = *m_model;
    QCOMPARE(m.numBlocks(), int64_t(5));
    QCOMPARE(m.storedDtype(), std::string("F32"));
    QCOMPARE(m.parameterCount(), int64_t(260032)); // llama2.c's 264,128 floats minus its 4,096 RoPE tables
    const auto& lin = m.linears(0);
    QCOMPARE(lin.size(), size_t(7));
    const char* kinds[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    for (size_t i = 0; i < 7; ++i) {
        QCOMPARE(lin[i].kind, std::string(kinds[i]));
        QCOMPARE(lin[i].name, "model.layers.0." + std::string(kinds[i]) + ".weight");
        QVERIFY(!lin[i].bias.defined());
        QVERIFY(!lin[i].storedTransposed);
        QCOMPARE(lin[i].weight.scalar_type(), torch::kFloat);
        // The linear's tensor is the parameter itself, so in-place updates are seen by both.
        QVERIFY(lin[i].weight.is_same(m.parameters().at(lin[i].name)));
    }
    QVERIFY((lin[1].weight.sizes() == at::IntArrayRef{32, 64})); // 4 KV heads × 8
    QVERIFY((lin[6].weight.sizes() == at::IntArrayRef{64, 172}));
    QCOMPARE(m_model->allLinears().size(), size_t(35));
    QVERIFY(!m.parameters().contains("lm_head.weight"));
}

void TestLlamaForward::greedyMatchesReference()
{
    const std::vector<int64_t> expected = readIds(testing::testDataDir() / "stories260K_greedy_t0_n256.ids.txt");
    QCOMPARE(expected.size(), size_t(256));
    // llama2.c runs 256 steps from BOS (1), printing each sampled token.
    const std::vector<int64_t> got = greedy(*m_model, {1}, 256);
    for (size_t i = 0; i < got.size(); ++i)
        QVERIFY2(got[i] == expected[i], qPrintable(QString("position %1: got %2, expected %3")
                                                       .arg(i).arg(got[i]).arg(expected[i])));
}

// Third-party llama.cpp reference quoted in shared/data/README.md §1.
void TestLlamaForward::greedyContinuationOfPrompt()
{
    const std::vector<int64_t> got = greedy(*m_model, {1, 403, 407, 261, 378}, 8);
    QVERIFY((got == std::vector<int64_t>{432, 383, 286, 261, 376, 298, 315, 421}));
    // Its embedding sum is also quoted there: -3.354054.
    c10::InferenceMode guard;
    const double embSum = m_model->embed(torch::tensor({1, 403, 407, 261, 378}, torch::kLong).unsqueeze(0))
                              .sum()
                              .item<double>();
    QVERIFY2(std::abs(embSum - -3.354054) < 1e-5, qPrintable(QString::number(embSum, 'f', 7)));
}

void TestLlamaForward::blockwiseEqualsLogitsAndHooksSeeInputs()
{
    c10::InferenceMode guard;
    const torch::Tensor ids = torch::randint(0, 512, {3, 40}, torch::kLong);
    const torch::Tensor reference = m_model->logits(ids);
    QVERIFY((reference.sizes() == at::IntArrayRef{3, 40, 512}));

    std::vector<std::pair<std::string, std::vector<int64_t>>> seen;
    const model::LinearInputHook hook = [&](const model::LinearLayer& layer, const torch::Tensor& x) {
        seen.emplace_back(layer.kind, x.sizes().vec());
        QCOMPARE(x.scalar_type(), torch::kFloat);
    };
    torch::Tensor x = m_model->embed(ids);
    QVERIFY((x.sizes() == at::IntArrayRef{3, 40, 64}));
    for (int64_t b = 0; b < m_model->numBlocks(); ++b)
        x = m_model->runBlock(b, x, b == 2 ? hook : model::LinearInputHook{});
    QVERIFY(torch::allclose(m_model->head(x), reference, 0, 1e-6));

    QCOMPARE(seen.size(), size_t(7));
    const std::vector<int64_t> in64{3, 40, 64}, in172{3, 40, 172};
    QCOMPARE(seen[0].first, std::string("self_attn.q_proj"));
    QVERIFY(seen[0].second == in64);
    QVERIFY(seen[3].second == in64); // o_proj input: 8 heads × 8
    QCOMPARE(seen[6].first, std::string("mlp.down_proj"));
    QVERIFY(seen[6].second == in172);
}

// Windows are independent: a batch gives each row what it gives alone (causal mask, no
// leakage across the batch), and a prefix's logits do not depend on later tokens.
void TestLlamaForward::batchedEqualsSingle()
{
    c10::InferenceMode guard;
    const torch::Tensor ids = torch::randint(0, 512, {4, 32}, torch::kLong);
    const torch::Tensor batched = m_model->logits(ids);
    // Different shapes take different GEMM blockings: equal up to float32 rounding.
    const auto maxDiff = [](const torch::Tensor& a, const torch::Tensor& b) {
        return (a - b).abs().max().item<double>();
    };
    for (int64_t i = 0; i < 4; ++i) {
        const double diff = maxDiff(batched[i], m_model->logits(ids.narrow(0, i, 1))[0]);
        QVERIFY2(diff < 1e-4, qPrintable(QString::number(diff)));
    }
    const double diff = maxDiff(m_model->logits(ids.narrow(1, 0, 10)), batched.narrow(1, 0, 10));
    QVERIFY2(diff < 1e-4, qPrintable(QString::number(diff)));
}

void TestLlamaForward::halfPrecisionCheckpoint_data()
{
    QTest::addColumn<int>("dtype");
    QTest::addColumn<double>("tolerance");
    QTest::newRow("F16") << int(io::DType::F16) << 0.05;
    QTest::newRow("BF16") << int(io::DType::BF16) << 0.3;
}

// The demo model rewritten in half precision loads as the rounded float32 weights.
void TestLlamaForward::halfPrecisionCheckpoint()
{
    QFETCH(int, dtype);
    QFETCH(double, tolerance);
    const auto type = io::DType(dtype);
    const torch::ScalarType scalar = type == io::DType::F16 ? torch::kHalf : torch::kBFloat16;

    QTemporaryDir dir;
    const fs::path folder = dir.path().toStdString();
    fs::copy_file(testing::demoModelDir() / "config.json", folder / "config.json");
    const io::Checkpoint source = io::Checkpoint::open(testing::demoModelDir());
    std::vector<torch::Tensor> keep;
    std::vector<io::TensorToWrite> out;
    std::vector<std::string> names = source.storedNames();
    for (const std::string& name : names) {
        keep.push_back(model::toFloatTensor(source.view(name)).to(scalar).contiguous());
        out.push_back({name, type, keep.back().sizes().vec(), keep.back().data_ptr(), size_t(keep.back().nbytes())});
    }
    io::writeSafetensors(folder / "model.safetensors", out);

    const auto half = model::CausalLM::load(folder);
    QCOMPARE(half->storedDtype(), std::string(io::dtypeName(type)));
    const std::string name = "model.layers.1.mlp.up_proj.weight";
    QVERIFY(torch::equal(half->parameters().at(name),
                         m_model->parameters().at(name).to(scalar).to(torch::kFloat)));
    c10::InferenceMode guard;
    const torch::Tensor ids = torch::randint(0, 512, {2, 24}, torch::kLong);
    const double diff = (half->logits(ids) - m_model->logits(ids)).abs().max().item<double>();
    QVERIFY2(diff < tolerance, qPrintable(QString::number(diff)));
}

// Greedy text of TinyStories-656K as decoded by an independent NumPy forward
// (shared/data/README.md §1). Tensors come partly through a __metadata__ alias.
void TestLlamaForward::tinyStories656KGreedy()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const fs::path folder = testing::sharedDataDir() / "models" / "tinystories-656k-hf";
    const auto model = model::CausalLM::load(folder);
    QVERIFY(model->parameters().contains("lm_head.weight"));
    QVERIFY(!model->parameters().contains("model.embed_tokens.weight")); // stored once
    const std::vector<int64_t> ids = greedy(*model, {1}, 40);
    const std::vector<int32_t> ids32(ids.begin(), ids.end());
    const std::string text = tokenize::loadTokenizer(folder)->decode(ids32);
    const std::string expected = "Once upon a time, there was a little girl named Lily. She had a toy car that "
                                 "she loved very much.";
    QVERIFY2(text.find(expected) != std::string::npos, text.c_str());
}

void TestLlamaForward::wrongShapeNamesFile()
{
    QTemporaryDir dir;
    const fs::path folder = dir.path().toStdString();
    fs::copy_file(testing::demoModelDir() / "config.json", folder / "config.json");
    const io::Checkpoint source = io::Checkpoint::open(testing::demoModelDir());
    std::vector<io::TensorToWrite> out;
    std::vector<float> truncated(64 * 63);
    for (const std::string& name : source.storedNames()) {
        const io::TensorView v = source.view(name);
        if (name == "model.layers.3.self_attn.q_proj.weight")
            out.push_back({name, io::DType::F32, {64, 63}, truncated.data(), truncated.size() * 4});
        else
            out.push_back({name, v.dtype, v.shape, v.data, v.nbytes});
    }
    io::writeSafetensors(folder / "model.safetensors", out);
    try {
        (void)model::CausalLM::load(folder);
        QFAIL("wrong shape accepted");
    } catch (const InputError& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.startsWith(QString::fromStdString((folder / "model.safetensors").string())), e.what());
        QVERIFY2(message.contains("[64, 63]") && message.contains("[64, 64]"), e.what());
    }
}

QTEST_GUILESS_MAIN(TestLlamaForward)
#include "test_llama_forward.moc"
