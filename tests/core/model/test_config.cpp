// model/config: the bundled demo config, the three architecture families, and the errors
// for missing, malformed and unsupported configs.

#include "testsupport.h"

#include "model/config.h"
#include "util/errors.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

using namespace sparselab;
using namespace sparselab::model;
namespace fs = std::filesystem;

namespace {

fs::path writeConfig(const QTemporaryDir& dir, const QByteArray& text)
{
    const QString path = dir.filePath("config.json");
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate))
        qFatal("cannot write %s", qPrintable(path));
    f.write(text);
    return path.toStdString();
}

const QByteArray kGpt2 = R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768,
  "n_layer": 12, "n_head": 12, "n_inner": null, "n_positions": 1024, "vocab_size": 50257,
  "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new"})";

const QByteArray kOpt = R"({"architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": 768,
  "ffn_dim": 3072, "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 2048,
  "vocab_size": 50272, "do_layer_norm_before": true, "word_embed_proj_dim": 768, "activation_function": "relu",
  "enable_bias": true, "torch_dtype": "float16"})";

} // namespace

class TestConfig : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void demoModel();
    void tinyStories656K();
    void gpt2();
    void opt();
    void qwen2AndMistral();
    void errors_data();
    void errors();
    void missingFile();
};

void TestConfig::demoModel()
{
    // Folder and file path both work.
    for (const fs::path& p : {testing::demoModelDir(), testing::demoModelDir() / "config.json"}) {
        const ModelConfig c = ModelConfig::load(p);
        QCOMPARE(int(c.architecture), int(Architecture::Llama));
        QCOMPARE(c.modelType, std::string("llama"));
        QCOMPARE(c.hiddenSize, int64_t(64));
        QCOMPARE(c.intermediateSize, int64_t(172));
        QCOMPARE(c.numLayers, int64_t(5));
        QCOMPARE(c.numHeads, int64_t(8));
        QCOMPARE(c.numKvHeads, int64_t(4));
        QCOMPARE(c.headDim, int64_t(8));
        QCOMPARE(c.vocabSize, int64_t(512));
        QCOMPARE(c.maxPositions, int64_t(512));
        QCOMPARE(c.normEps, 1e-5);
        QCOMPARE(c.ropeTheta, 10000.0);
        QVERIFY(c.tieWordEmbeddings);
        QVERIFY(!c.attentionBias && !c.attentionOutputBias && !c.mlpBias);
        QCOMPARE(c.activation, std::string("silu"));
        QCOMPARE(c.torchDtype, std::string("float32"));
    }
    QCOMPARE(architectureName(Architecture::Llama), std::string("LlamaForCausalLM"));
    QCOMPARE(architectureName(Architecture::Gpt2), std::string("GPT2LMHeadModel"));
    QCOMPARE(architectureName(Architecture::Opt), std::string("OPTForCausalLM"));
}

void TestConfig::tinyStories656K()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const ModelConfig c = ModelConfig::load(testing::sharedDataDir() / "models" / "tinystories-656k-hf");
    QCOMPARE(c.hiddenSize, int64_t(128));
    QCOMPARE(c.numLayers, int64_t(2));
    QCOMPARE(c.numKvHeads, int64_t(4));
    QCOMPARE(c.headDim, int64_t(16));
    QCOMPARE(c.vocabSize, int64_t(2048));
    QCOMPARE(c.normEps, 1e-6);
    QVERIFY(c.tieWordEmbeddings);
}

void TestConfig::gpt2()
{
    QTemporaryDir dir;
    const ModelConfig c = ModelConfig::load(writeConfig(dir, kGpt2));
    QCOMPARE(int(c.architecture), int(Architecture::Gpt2));
    QCOMPARE(c.hiddenSize, int64_t(768));
    QCOMPARE(c.intermediateSize, int64_t(3072)); // n_inner null → 4 · n_embd
    QCOMPARE(c.numHeads, int64_t(12));
    QCOMPARE(c.numKvHeads, int64_t(12));
    QCOMPARE(c.headDim, int64_t(64));
    QCOMPARE(c.maxPositions, int64_t(1024));
    QCOMPARE(c.activation, std::string("gelu_new"));
    QVERIFY(c.tieWordEmbeddings && c.attentionBias && c.mlpBias);
}

void TestConfig::opt()
{
    QTemporaryDir dir;
    const ModelConfig c = ModelConfig::load(writeConfig(dir, kOpt));
    QCOMPARE(int(c.architecture), int(Architecture::Opt));
    QCOMPARE(c.intermediateSize, int64_t(3072));
    QCOMPARE(c.maxPositions, int64_t(2048));
    QCOMPARE(c.normEps, 1e-5);
    QVERIFY(c.doLayerNormBefore);
    QVERIFY(c.tieWordEmbeddings && c.attentionBias && c.attentionOutputBias && c.mlpBias);
    QCOMPARE(c.activation, std::string("relu"));
    QCOMPARE(c.torchDtype, std::string("float16"));

    QByteArray post = kOpt;
    post.replace("\"do_layer_norm_before\": true", "\"do_layer_norm_before\": false");
    QVERIFY(!ModelConfig::load(writeConfig(dir, post)).doLayerNormBefore);
}

void TestConfig::qwen2AndMistral()
{
    QTemporaryDir dir;
    const ModelConfig q = ModelConfig::load(writeConfig(dir, R"({"architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
        "tie_word_embeddings": true, "hidden_act": "silu"})"));
    QCOMPARE(int(q.architecture), int(Architecture::Llama));
    QCOMPARE(q.headDim, int64_t(64));
    QCOMPARE(q.numKvHeads, int64_t(2));
    QCOMPARE(q.ropeTheta, 1e6);
    QVERIFY(q.attentionBias);        // Qwen2: q/k/v biases
    QVERIFY(!q.attentionOutputBias); // but none on o_proj
    QVERIFY(q.tieWordEmbeddings);

    const ModelConfig m = ModelConfig::load(writeConfig(dir, R"({"architectures": ["MistralForCausalLM"],
        "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32000})"));
    QCOMPARE(m.modelType, std::string("mistral"));
    QCOMPARE(m.headDim, int64_t(128));
    QCOMPARE(m.maxPositions, int64_t(2048)); // transformers' default when absent
    QVERIFY(!m.attentionBias && !m.tieWordEmbeddings);
}

void TestConfig::errors_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("expected");
    QTest::newRow("malformed JSON") << QByteArray("{\"architectures\": [\"LlamaForCausalLM\"") << "not valid JSON";
    QTest::newRow("not an object") << QByteArray("[1, 2]") << "not a JSON object";
    QTest::newRow("unsupported architecture")
        << QByteArray(R"({"architectures": ["BertForMaskedLM"], "model_type": "bert"})")
        << "unsupported architecture 'BertForMaskedLM' (supported: LlamaForCausalLM, MistralForCausalLM, "
           "Qwen2ForCausalLM, GPT2LMHeadModel, OPTForCausalLM)";
    QTest::newRow("unsupported model_type only")
        << QByteArray(R"({"model_type": "gpt_neox"})") << "unsupported architecture 'gpt_neox'";
    QTest::newRow("no architecture at all") << QByteArray("{}") << "unsupported architecture '(none given)'";
    QTest::newRow("missing field")
        << QByteArray(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "vocab_size": 32})")
        << "missing field 'intermediate_size'";
    QTest::newRow("wrong type")
        << QByteArray(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": "64", "intermediate_size": 8,
                        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 32})")
        << "field 'hidden_size' must be a positive integer";
    QTest::newRow("heads not dividing")
        << QByteArray(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
                        "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 4,
                        "vocab_size": 32})")
        << "not a multiple";
    QTest::newRow("rope scaling")
        << QByteArray(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
                        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 32,
                        "rope_scaling": {"type": "linear", "factor": 2.0}})")
        << "rope_scaling";
    QTest::newRow("OPT project_in")
        << QByteArray(kOpt).replace("\"word_embed_proj_dim\": 768", "\"word_embed_proj_dim\": 512")
        << "word_embed_proj_dim 512 differs from hidden_size 768";
    QTest::newRow("GPT-2 unknown activation")
        << QByteArray(kGpt2).replace("gelu_new", "swish") << "activation_function 'swish'";
}

void TestConfig::errors()
{
    QFETCH(QByteArray, text);
    QFETCH(QString, expected);
    QTemporaryDir dir;
    const fs::path file = writeConfig(dir, text);
    try {
        (void)ModelConfig::load(dir.path().toStdString());
        QFAIL("bad config accepted");
    } catch (const InputError& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.startsWith(QString::fromStdString(file.string()) + ": "), qPrintable(message));
        QVERIFY2(message.contains(expected), qPrintable(message));
        QVERIFY2(!message.contains('\n'), qPrintable(message));
    }
}

void TestConfig::missingFile()
{
    QTemporaryDir dir;
    try {
        (void)ModelConfig::load(dir.path().toStdString());
        QFAIL("folder without config.json accepted");
    } catch (const InputError& e) {
        QVERIFY2(QString::fromUtf8(e.what()).startsWith(dir.filePath("config.json")), e.what());
    }
}

QTEST_GUILESS_MAIN(TestConfig)
#include "test_config.moc"
