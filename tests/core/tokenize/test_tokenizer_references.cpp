// tokenize: whole-corpus reference tokenizations made with the real libraries (see
// shared/data/README.md §4, §6), BOS conventions, decode round trips, and the bundled demo
// model's tokenizer (which needs no shared data).

#include "testsupport.h"

#include "tokenize/tokenizer.h"

#include <QElapsedTimer>
#include <QtTest>

#include <algorithm>
#include <fstream>
#include <sstream>

using namespace sparselab;
using namespace sparselab::tokenize;

namespace {

std::string readText(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

std::vector<int32_t> readIds(const std::filesystem::path& path)
{
    std::ifstream in(path);
    std::vector<int32_t> ids;
    for (int64_t id; in >> id;)
        ids.push_back(int32_t(id));
    return ids;
}

// Python's text.split("\n"): a final newline leaves one more, empty, line.
std::vector<std::string_view> splitLines(std::string_view text)
{
    std::vector<std::string_view> lines;
    for (size_t start = 0;;) {
        const size_t end = text.find('\n', start);
        lines.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
        if (end == std::string_view::npos)
            return lines;
        start = end + 1;
    }
}

// Index of the first difference (or the shorter length), for a readable failure.
size_t firstDifference(const std::vector<int32_t>& a, const std::vector<int32_t>& b)
{
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i])
        ++i;
    return i;
}

void compareIds(const std::vector<int32_t>& got, const std::vector<int32_t>& expected)
{
    const size_t at = firstDifference(got, expected);
    QVERIFY2(got == expected,
        qPrintable(QStringLiteral("%1 ids vs %2 expected; first difference at %3")
                       .arg(got.size())
                       .arg(expected.size())
                       .arg(at)));
}

} // namespace

class TestTokenizerReferences : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void demoModelStories260K();
    void tok512PerLine();
    void llama2WikiTestRaw();
    void gpt2WikiTestRaw();
    void tinyStories656kEval();
    void tinyStories656kRoundTrip();
};

// The bundled demo (resources/models/stories260K-hf): SentencePiece tokenizer.model with BOS 1.
// Reference ids: SentencePiece 0.1.97 and third-party llama2.c repositories.
void TestTokenizerReferences::demoModelStories260K()
{
    const auto tokenizer = loadTokenizer(testing::demoModelDir());
    QVERIFY(tokenizer->addsBos());
    QCOMPARE(tokenizer->bosId(), std::optional<int32_t>(1));
    QCOMPARE(tokenizer->eosId(), std::optional<int32_t>(2));
    QCOMPARE(tokenizer->vocabSize(), 512);
    QVERIFY(QString::fromStdString(tokenizer->description()).contains("tokenizer.model"));

    const std::string text = "Once upon a time, there was a little dragon";
    const std::vector<int32_t> expected{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 279, 420, 412, 428, 289};
    const std::vector<int32_t> ids = tokenizer->encodeForModel(text);
    QCOMPARE(ids, expected);
    QCOMPARE(tokenizer->encode(text), std::vector<int32_t>(expected.begin() + 1, expected.end()));
    QCOMPARE(tokenizer->decode(ids), text); // BOS decodes to nothing
    QCOMPARE(tokenizer->tokenText(1), std::string("<s>"));
    QCOMPARE(tokenizer->tokenId("<s>"), std::optional<int32_t>(1));
    QVERIFY(!tokenizer->tokenId("no such piece").has_value());
    QVERIFY_THROWS_EXCEPTION(std::out_of_range, (void)tokenizer->tokenText(512));
}

// stories260K's tok512.model (nmt_nfkc normalizer: whitespace collapsed, dummy prefix) on
// every line of tinystories_val.txt, against SentencePiece 0.1.97: 8,660 lines, 380,549 ids.
void TestTokenizerReferences::tok512PerLine()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const auto data = testing::sharedDataDir();
    const auto tokenizer = loadSentencePieceModel(data / "models" / "stories260K" / "tok512.model");
    const std::string text = readText(data / "text" / "tinystories" / "tinystories_val.txt");
    const std::vector<std::string_view> lines = splitLines(text);
    const std::string reference =
        readText(data / "reference-tokenizations" / "generated" / "tinystories_val.tok512.per-line.ids.txt");
    const std::vector<std::string_view> expectedLines = splitLines(reference);
    QCOMPARE(expectedLines.size(), lines.size());

    size_t lineNumber = 0, totalIds = 0;
    for (; lineNumber < lines.size(); ++lineNumber) {
        std::istringstream fields{std::string(expectedLines[lineNumber])};
        std::vector<int32_t> expected;
        for (int64_t id; fields >> id;)
            expected.push_back(int32_t(id));
        const std::vector<int32_t> ids = tokenizer->encode(lines[lineNumber]);
        QVERIFY2(ids == expected, qPrintable(QStringLiteral("line %1 differs").arg(lineNumber + 1)));
        totalIds += ids.size();
    }
    QCOMPARE(lineNumber, size_t(8660));
    QCOMPARE(totalIds, size_t(380549));
}

// Llama-2's tokenizer.model on the whole of wiki.test.raw as one string: the cost of a
// Llama perplexity run's tokenization (the ids themselves are checked by the vocab cases).
void TestTokenizerReferences::llama2WikiTestRaw()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const auto data = testing::sharedDataDir();
    const auto tokenizer = loadSentencePieceModel(data / "tokenizers" / "llama2" / "tokenizer.model");
    QVERIFY(tokenizer->addsBos());
    const std::string text = readText(data / "text" / "wikitext-2-raw" / "wiki.test.raw");
    QElapsedTimer timer;
    timer.start();
    const std::vector<int32_t> ids = tokenizer->encodeForModel(text);
    const qint64 encodeMs = timer.elapsed();
    qInfo("encoding wiki.test.raw with Llama-2's tokenizer.model took %lld ms (%zu ids)", encodeMs, ids.size());
    QCOMPARE(ids.size(), size_t(335688)); // SentencePiece 0.1.97 gives 335,687, plus BOS
    QCOMPARE(ids.front(), 1);
    QVERIFY2(encodeMs < 20000, "Llama-2 encoding of wiki.test.raw is far too slow");
    // Llama-2's normalizer is the identity, so decoding gives the text back.
    QVERIFY(tokenizer->decode(ids) == text);
}

// GPT-2 ids of the whole of wiki.test.raw (tiktoken `gpt2`, encode_ordinary): 286,221 ids.
void TestTokenizerReferences::gpt2WikiTestRaw()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const auto data = testing::sharedDataDir();
    const auto tokenizer = loadTokenizer(data / "tokenizers" / "gpt2");
    QVERIFY(!tokenizer->addsBos()); // GPT-2 adds no BOS
    QCOMPARE(tokenizer->bosId(), std::optional<int32_t>(50256));
    QCOMPARE(tokenizer->eosId(), std::optional<int32_t>(50256));

    const std::string text = readText(data / "text" / "wikitext-2-raw" / "wiki.test.raw");
    QCOMPARE(text.size(), size_t(1290590));
    QElapsedTimer timer;
    timer.start();
    const std::vector<int32_t> ids = tokenizer->encodeForModel(text);
    const qint64 encodeMs = timer.elapsed();
    qInfo("encoding wiki.test.raw (%zu bytes) with GPT-2 took %lld ms", text.size(), encodeMs);
    compareIds(ids, readIds(data / "reference-tokenizations" / "generated" / "wiki.test.raw.gpt2.ids.txt"));
    // "A few seconds at most" on a busy 2-core machine; generous so that only a regression
    // (say, a quadratic merge loop) trips it.
    QVERIFY2(encodeMs < 20000, "GPT-2 encoding of wiki.test.raw is far too slow");

    QVERIFY(tokenizer->decode(ids) == text); // byte-level BPE is lossless
}

// TinyStories-656K's tokenizer.json (SentencePiece-style BPE, no pre-tokenizer, so the whole
// text is one BPE word) on tinystories_eval.txt: 96,686 ids from HF's JS tokenizers, BOS first.
void TestTokenizerReferences::tinyStories656kEval()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const auto data = testing::sharedDataDir();
    const auto tokenizer = loadTokenizer(data / "models" / "tinystories-656k-hf");
    QVERIFY(tokenizer->addsBos());
    QCOMPARE(tokenizer->bosId(), std::optional<int32_t>(1)); // <|start_story|>
    QCOMPARE(tokenizer->eosId(), std::optional<int32_t>(2)); // <|end_story|>
    QVERIFY(QString::fromStdString(tokenizer->description()).contains("SentencePiece-style"));

    const std::string text = readText(data / "text" / "tinystories" / "tinystories_eval.txt");
    QElapsedTimer timer;
    timer.start();
    const std::vector<int32_t> ids = tokenizer->encodeForModel(text);
    qInfo("encoding tinystories_eval.txt (%zu bytes) with TinyStories-656K took %lld ms", text.size(), timer.elapsed());
    compareIds(
        ids, readIds(data / "reference-tokenizations" / "generated" / "tinystories_eval.tinystories-656k.ids.txt"));

    // The file-level loader gives the same BOS from the post-processor alone.
    const auto direct = loadTokenizerJson(data / "models" / "tinystories-656k-hf" / "tokenizer.json");
    QCOMPARE(direct->encodeForModel("Once upon a time"), tokenizer->encodeForModel("Once upon a time"));
}

// Decoding inverts encoding wherever the vocabulary can represent the text. This vocabulary
// has no <0xXX> byte pieces, so characters outside it (the eval text has some mojibake)
// become <unk> and are lost; every line without <unk> must come back exactly.
void TestTokenizerReferences::tinyStories656kRoundTrip()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const auto data = testing::sharedDataDir();
    const auto tokenizer = loadTokenizer(data / "models" / "tinystories-656k-hf");
    const std::string text = readText(data / "text" / "tinystories" / "tinystories_eval.txt");
    const int32_t unk = *tokenizer->tokenId("<unk>");

    std::istringstream lines(text);
    int checked = 0, withUnk = 0;
    for (std::string line; std::getline(lines, line);) {
        const std::vector<int32_t> ids = tokenizer->encode(line);
        if (std::find(ids.begin(), ids.end(), unk) != ids.end()) {
            ++withUnk;
            continue;
        }
        QCOMPARE(tokenizer->decode(ids), line);
        ++checked;
    }
    qInfo("round trip: %d lines exact, %d lines with <unk> skipped", checked, withUnk);
    QVERIFY(checked > 10 * withUnk);
    QCOMPARE(tokenizer->decode(tokenizer->encodeForModel("  Two spaces, then\n\na break.")),
        std::string("  Two spaces, then\n\na break."));
}

QTEST_GUILESS_MAIN(TestTokenizerReferences)
#include "test_tokenizer_references.moc"
