// The engine's own SentencePiece BPE against libsentencepiece itself (loaded in isolation
// through libsparselab_spm.so): identical ids and decoded text, line by line, on the bundled
// TinyStories texts with the demo tokenizer, and on WikiText-2 with the Llama-2 tokenizer
// (shared data; skipped when absent).

#include "testsupport.h"

#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"

#include <QTest>

#include <sstream>

using namespace sparselab;

namespace {

void compareLineByLine(const std::filesystem::path& model, const std::filesystem::path& text, size_t maxLines)
{
    const auto native = tokenize::loadSentencePieceModel(model);
    const auto library = tokenize::loadSentencePieceModelWithLibrary(model);
    QCOMPARE(native->vocabSize(), library->vocabSize());
    QCOMPARE(native->bosId(), library->bosId());
    std::istringstream lines(readTextFile(text));
    std::string line;
    size_t compared = 0;
    while (std::getline(lines, line) && compared < maxLines) {
        const auto expected = library->encode(line);
        const auto got = native->encode(line);
        QVERIFY2(got == expected, qPrintable(QString::fromStdString("line " + std::to_string(compared) + ": " + line)));
        QCOMPARE(native->decode(got), library->decode(expected));
        ++compared;
    }
    // And the whole text at once, as the evaluation tokenizes it.
    const std::string whole = readTextFile(text).substr(0, 200000);
    QVERIFY(native->encode(whole) == library->encode(whole));
}

} // namespace

class TestSentencePieceLibrary : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase()
    {
        if (!tokenize::libSentencePieceAvailable())
            QSKIP("libsentencepiece bridge not built (no libsentencepiece-dev)");
    }
    void demoTokenizerOnBundledTexts()
    {
        const auto model = testing::demoModelDir() / "tokenizer.model";
        compareLineByLine(model, testing::demoEvalText(), 100000);
        compareLineByLine(model, testing::demoCalibText(), 100000);
    }
    void llama2OnWikiText()
    {
        SPARSELAB_REQUIRE_SHARED_DATA();
        compareLineByLine(testing::sharedDataDir() / "tokenizers/llama2/tokenizer.model",
                          testing::sharedDataDir() / "text/wikitext-2-raw/wiki.test.raw", 1500);
    }
    void loadTokenizerHonoursTheBackendSwitch()
    {
        qputenv("SPARSELAB_SENTENCEPIECE", "library");
        const auto viaLibrary = tokenize::loadTokenizer(testing::demoModelDir());
        qunsetenv("SPARSELAB_SENTENCEPIECE");
        const auto native = tokenize::loadTokenizer(testing::demoModelDir());
        QVERIFY(viaLibrary->description().find("libsentencepiece") != std::string::npos);
        QVERIFY(native->description().find("libsentencepiece") == std::string::npos);
        const std::string text = "Once upon a time, there was a little dragon";
        QVERIFY(viaLibrary->encodeForModel(text) == native->encodeForModel(text));
        QCOMPARE(viaLibrary->encodeForModel(text).front(), 1);
    }
};

QTEST_GUILESS_MAIN(TestSentencePieceLibrary)
#include "test_sentencepiece_library.moc"
