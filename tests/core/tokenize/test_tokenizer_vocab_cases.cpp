// tokenize: llama.cpp's tokenizer test vectors (46 strings each) for GPT-2 byte-level BPE
// (tokenizers/gpt2/tokenizer.json) and Llama-2 SentencePiece (tokenizers/llama2/tokenizer.model).
// .inp holds each input followed by the line "__ggml_vocab_test__"; .out holds one line of
// space-separated ids per input (no BOS). The ids are what HF tokenizers / SentencePiece give.

#include "testsupport.h"

#include "tokenize/tokenizer.h"

#include <QByteArray>
#include <QFile>
#include <QList>
#include <QtTest>

#include <memory>

using namespace sparselab;
using namespace sparselab::tokenize;

namespace {

std::filesystem::path vocabTestsDir() { return testing::sharedDataDir() / "tokenizers" / "llama.cpp-vocab-tests"; }

QByteArray readAll(const std::filesystem::path& path)
{
    QFile f(QString::fromStdString(path.string()));
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

// The inputs, exactly as llama.cpp's test-tokenizer-0 splits them: every input is followed
// by "\n__ggml_vocab_test__\n" (so an input may itself be empty or end in newlines).
QList<QByteArray> readInputs(const std::filesystem::path& path)
{
    const QByteArray data = readAll(path);
    const QByteArray separator = "\n__ggml_vocab_test__\n";
    QList<QByteArray> inputs;
    qsizetype pos = 0;
    for (qsizetype hit; (hit = data.indexOf(separator, pos)) >= 0; pos = hit + separator.size())
        inputs.append(data.mid(pos, hit - pos));
    return inputs;
}

QList<QByteArray> readOutputs(const std::filesystem::path& path)
{
    QList<QByteArray> lines = readAll(path).split('\n');
    if (!lines.isEmpty() && lines.last().isEmpty())
        lines.removeLast(); // the file ends with a newline
    return lines;
}

std::vector<int32_t> parseIds(const QByteArray& line)
{
    std::vector<int32_t> ids;
    for (const QByteArray& field : line.split(' '))
        if (!field.isEmpty())
            ids.push_back(field.toInt());
    return ids;
}

QByteArray idsText(const std::vector<int32_t>& ids)
{
    QByteArray text;
    for (int32_t id : ids)
        text += ' ' + QByteArray::number(id);
    return text;
}

} // namespace

class TestTokenizerVocabCases : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cases_data();
    void cases();

private:
    std::unique_ptr<Tokenizer> m_gpt2;
    std::unique_ptr<Tokenizer> m_llamaSpm;
};

void TestTokenizerVocabCases::initTestCase()
{
    if (!testing::haveSharedData())
        return; // each test skips itself
    const auto dir = testing::sharedDataDir() / "tokenizers";
    m_gpt2 = loadTokenizerJson(dir / "gpt2" / "tokenizer.json");
    m_llamaSpm = loadSentencePieceModel(dir / "llama2" / "tokenizer.model");
}

void TestTokenizerVocabCases::cases_data()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    QTest::addColumn<QString>("vocab");
    QTest::addColumn<QByteArray>("input");
    QTest::addColumn<QByteArray>("expected");

    for (const char* vocab : {"gpt-2", "llama-spm"}) {
        const auto stem = vocabTestsDir() / (std::string("ggml-vocab-") + vocab + ".gguf");
        const QList<QByteArray> inputs = readInputs(stem.string() + ".inp");
        const QList<QByteArray> outputs = readOutputs(stem.string() + ".out");
        QCOMPARE(inputs.size(), 46);
        QCOMPARE(outputs.size(), inputs.size());
        for (qsizetype i = 0; i < inputs.size(); ++i)
            QTest::addRow("%s #%02d", vocab, int(i)) << QString(vocab) << inputs[i] << outputs[i];
    }
}

void TestTokenizerVocabCases::cases()
{
    QFETCH(QString, vocab);
    QFETCH(QByteArray, input);
    QFETCH(QByteArray, expected);

    const Tokenizer& tokenizer = vocab == "gpt-2" ? *m_gpt2 : *m_llamaSpm;
    const std::vector<int32_t> ids = tokenizer.encode(std::string_view(input.constData(), size_t(input.size())));
    QCOMPARE(idsText(ids), idsText(parseIds(expected)));

    // Both tokenizers are lossless on these inputs (Llama-2's normalizer is the identity and
    // its decoder drops only the dummy-prefix space it added).
    const std::string decoded = tokenizer.decode(ids);
    QCOMPARE(QByteArray(decoded.data(), qsizetype(decoded.size())), input);
}

QTEST_GUILESS_MAIN(TestTokenizerVocabCases)
#include "test_tokenizer_vocab_cases.moc"
