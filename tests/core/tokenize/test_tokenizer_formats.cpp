// tokenize: the tokenizer.json features the reference files do not exercise (Llama-3/Qwen2
// Split regexes, ignore_merges, merges as pairs, NFC, Metaspace, added tokens), GPT-2's
// vocab.json + merges.txt, folder BOS configuration, and malformed input: every bad file is
// refused with a one-line InputError that names it.

#include "testsupport.h"

#include "tokenize/pre_tokenizer.h"
#include "tokenize/tokenizer.h"
#include "util/errors.h"

#include <QByteArrayList>
#include <QTemporaryDir>
#include <QtTest>

#include <nlohmann/json.hpp>

#include <fstream>

using namespace sparselab;
using namespace sparselab::tokenize;
using nlohmann::json;

namespace {

void writeFile(const std::filesystem::path& path, const std::string& content)
{
    std::ofstream out(path, std::ios::binary);
    out << content;
}

std::string byteLevel(std::string_view bytes)
{
    std::string s;
    appendByteLevel(bytes, s);
    return s;
}

constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A Llama-3-shaped byte-level tokenizer.json: ids 0..255 are the bytes (in byte order),
// then 256 "12", 257 "123", 258 "34", 259 "45", 260 "xyz" (reachable only through
// ignore_merges), 261 <|begin_of_text|> (special, the BOS of the post-processor).
json byteLevelTokenizerJson(const char* splitRegex, bool ignoreMerges, bool nfc)
{
    json vocab = json::object();
    for (int b = 0; b < 256; ++b)
        vocab[byteLevel(std::string(1, char(b)))] = b;
    vocab["12"] = 256;
    vocab["123"] = 257;
    vocab["34"] = 258;
    vocab["45"] = 259;
    vocab["xyz"] = 260;
    vocab["<|begin_of_text|>"] = 261;

    json byteLevelStep = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
        {"use_regex", splitRegex == nullptr}};
    json preTokenizer = byteLevelStep;
    if (splitRegex) {
        json split = {
            {"type", "Split"}, {"pattern", {{"Regex", splitRegex}}}, {"behavior", "Isolated"}, {"invert", false}};
        preTokenizer = {{"type", "Sequence"}, {"pretokenizers", json::array({split, byteLevelStep})}};
    }
    json bos = {{"id", 261}, {"content", "<|begin_of_text|>"}, {"single_word", false}, {"lstrip", false},
        {"rstrip", false}, {"normalized", false}, {"special", true}};
    json single = json::array({json{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
        json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}});
    json specialTokens = {{"<|begin_of_text|>",
        {{"id", "<|begin_of_text|>"}, {"ids", json::array({261})}, {"tokens", json::array({"<|begin_of_text|>"})}}}};
    // Pairs, as newer files store them; "3 4" outranks "1 2".
    json merges = json::array(
        {json::array({"3", "4"}), json::array({"1", "2"}), json::array({"12", "3"}), json::array({"4", "5"})});
    json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false},
        {"byte_fallback", false}, {"ignore_merges", ignoreMerges}, {"vocab", vocab}, {"merges", merges}};
    json root = json::object();
    root["version"] = "1.0";
    root["added_tokens"] = json::array({bos});
    root["normalizer"] = nfc ? json{{"type", "NFC"}} : json();
    root["pre_tokenizer"] = preTokenizer;
    root["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specialTokens}};
    root["decoder"] = byteLevelStep;
    root["model"] = model;
    return root;
}

// A Metaspace-style SentencePiece BPE (as converted Llama/Mistral files with legacy=false):
// 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then ▁ h e l o w r d and merges up to "▁hello".
// The decoder is Mistral's (Replace ▁, ByteFallback, Fuse, Strip) or a Metaspace decoder.
json metaspaceTokenizerJson(bool metaspaceDecoder)
{
    json vocab = json::object();
    vocab["<unk>"] = 0;
    vocab["<s>"] = 1;
    vocab["</s>"] = 2;
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", unsigned(b));
        vocab[name] = 3 + b;
    }
    int id = 259;
    for (const char* piece :
        {"\u2581", "h", "e", "l", "o", "w", "r", "d", "\u2581h", "ll", "ell", "\u2581hell", "\u2581hello"})
        vocab[piece] = id++;

    const json metaspace = {
        {"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", true}};
    json mistralDecoder = {{"type", "Sequence"},
        {"decoders",
            json::array({json{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                json{{"type", "ByteFallback"}}, json{{"type", "Fuse"}},
                json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    json addedTokens = json::array({json{{"id", 1}, {"content", "<s>"}, {"normalized", false}, {"special", true}},
        json{{"id", 2}, {"content", "</s>"}, {"normalized", false}, {"special", true}}});
    json single = json::array(
        {json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}});
    json specialTokens = {{"<s>", {{"id", "<s>"}, {"ids", json::array({1})}, {"tokens", json::array({"<s>"})}}}};
    json merges = json::array({"\u2581 h", "l l", "e ll", "\u2581h ell", "\u2581hell o"});

    json root = json::object();
    root["added_tokens"] = addedTokens;
    root["normalizer"] = nullptr;
    root["pre_tokenizer"] = metaspace;
    root["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specialTokens}};
    root["decoder"] = metaspaceDecoder ? metaspace : mistralDecoder;
    root["model"] = {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true},
        {"vocab", vocab}, {"merges", merges}};
    return root;
}

std::vector<int32_t> ids(std::initializer_list<int32_t> list) { return list; }

} // namespace

class TestTokenizerFormats : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void splitPatterns_data();
    void splitPatterns();
    void llama3StyleByteLevel();
    void qwen2StyleWithNfc();
    void metaspaceWithByteFallback();
    void gpt2VocabMergesFolder();
    void badInput_data();
    void badInput();
    void encodeStopsWhenCancelled();
};

// Expected pieces from Python's `regex` module with the same patterns.
void TestTokenizerFormats::splitPatterns_data()
{
    QTest::addColumn<int>("pattern");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QByteArrayList>("pieces");
    const int gpt2 = int(SplitPattern::Gpt2), llama3 = int(SplitPattern::Llama3), qwen2 = int(SplitPattern::Qwen2);
    QTest::newRow("gpt2 digits") << gpt2 << QByteArray("I'm 12345 ok!!")
                                 << QByteArrayList{"I", "'m", " 12345", " ok", "!!"};
    QTest::newRow("llama3 digits") << llama3 << QByteArray("I'm 12345 ok!!")
                                   << QByteArrayList{"I", "'m", " ", "123", "45", " ok", "!!"};
    QTest::newRow("qwen2 digits") << qwen2 << QByteArray("I'm 12345 ok!!")
                                  << QByteArrayList{"I", "'m", " ", "1", "2", "3", "4", "5", " ok", "!!"};
    QTest::newRow("gpt2 spaces") << gpt2 << QByteArray("  two  spaces\n\n\tend  ")
                                 << QByteArrayList{" ", " two", " ", " spaces", "\n\n", "\t", "end", "  "};
    QTest::newRow("llama3 spaces") << llama3 << QByteArray("  two  spaces\n\n\tend  ")
                                   << QByteArrayList{" ", " two", " ", " spaces", "\n\n", "\tend", "  "};
    QTest::newRow("gpt2 case") << gpt2 << QByteArray("We'VE a'lL 'Sure")
                               << QByteArrayList{"We", "'", "VE", " a", "'", "lL", " '", "Sure"};
    QTest::newRow("llama3 case") << llama3 << QByteArray("We'VE a'lL 'Sure")
                                 << QByteArrayList{"We", "'VE", " a", "'lL", " '", "Sure"};
    QTest::newRow("gpt2 unicode") << gpt2 << QByteArray("naïve café ½ ٣٤")
                                  << QByteArrayList{"naïve", " café", " ½", " ٣٤"};
    QTest::newRow("llama3 unicode") << llama3 << QByteArray("naïve café ½ ٣٤")
                                    << QByteArrayList{"naïve", " café", " ", "½", " ", "٣٤"};
    QTest::newRow("gpt2 crlf") << gpt2 << QByteArray("x\r\n\r\n  y") << QByteArrayList{"x", "\r\n\r\n ", " y"};
    QTest::newRow("llama3 crlf") << llama3 << QByteArray("x\r\n\r\n  y") << QByteArrayList{"x", "\r\n\r\n", " ", " y"};
    QTest::newRow("llama3 punctuation") << llama3 << QByteArray("(\"quote\")...\n")
                                        << QByteArrayList{"(\"", "quote", "\")...\n"};
    QTest::newRow("gpt2 invalid utf-8") << gpt2 << QByteArray("a\xff\xfe b") << QByteArrayList{"a", "\xff\xfe", " b"};
}

void TestTokenizerFormats::splitPatterns()
{
    QFETCH(int, pattern);
    QFETCH(QByteArray, text);
    QFETCH(QByteArrayList, pieces);
    std::vector<std::string_view> out;
    splitPreTokens(SplitPattern(pattern), std::string_view(text.constData(), size_t(text.size())), out);
    QByteArrayList got;
    for (std::string_view piece : out)
        got.append(QByteArray(piece.data(), qsizetype(piece.size())));
    QCOMPARE(got, pieces);
}

void TestTokenizerFormats::llama3StyleByteLevel()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::filesystem::path root = dir.path().toStdString();
    const auto file = root / "tokenizer.json";

    writeFile(file, byteLevelTokenizerJson(kLlama3Regex, true, false).dump());
    const auto llama3 = loadTokenizerJson(file);
    QVERIFY(QString::fromStdString(llama3->description()).startsWith("Byte-level BPE"));
    // \p{N}{1,3} splits "12345" as "123" + "45" before any merge.
    QCOMPARE(llama3->encode("12345"), ids({257, 259}));
    // ignore_merges: a pre-token that is itself in the vocabulary is taken whole.
    QCOMPARE(llama3->encode("xyz"), ids({260}));
    // Added tokens are split out verbatim; BOS comes from the TemplateProcessing post-processor.
    QCOMPARE(llama3->encode("a<|begin_of_text|>b"), ids({'a', 261, 'b'}));
    QVERIFY(llama3->addsBos());
    QCOMPARE(llama3->encodeForModel("12"), ids({261, 256}));
    QCOMPARE(llama3->decode(llama3->encodeForModel("12345 xyz\n")), std::string("12345 xyz\n"));
    QCOMPARE(llama3->tokenId("<|begin_of_text|>"), std::optional<int32_t>(261));
    QVERIFY_THROWS_EXCEPTION(std::out_of_range, (void)llama3->decode(std::vector<int32_t>{262}));

    // The same vocabulary with GPT-2's ByteLevel regex keeps "12345" whole, so the top-ranked
    // merge "3 4" wins; and without ignore_merges "xyz" stays three bytes.
    writeFile(file, byteLevelTokenizerJson(nullptr, false, false).dump());
    const auto gpt2 = loadTokenizerJson(file);
    QCOMPARE(gpt2->encode("12345"), ids({256, 258, '5'}));
    QCOMPARE(gpt2->encode("xyz"), ids({'x', 'y', 'z'}));
}

void TestTokenizerFormats::qwen2StyleWithNfc()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const auto file = std::filesystem::path(dir.path().toStdString()) / "tokenizer.json";
    writeFile(file, byteLevelTokenizerJson(kQwen2Regex, false, true).dump());
    const auto qwen2 = loadTokenizerJson(file);
    QCOMPARE(qwen2->encode("12345"), ids({'1', '2', '3', '4', '5'})); // single digits
    // NFC: "e" + U+0301 becomes U+00E9 (bytes C3 A9) before byte-level encoding.
    QCOMPARE(qwen2->encode("e\xCC\x81"), ids({0xC3, 0xA9}));
    QCOMPARE(qwen2->decode(qwen2->encode("e\xCC\x81")), std::string("\xC3\xA9"));
}

void TestTokenizerFormats::metaspaceWithByteFallback()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const auto file = std::filesystem::path(dir.path().toStdString()) / "tokenizer.json";
    writeFile(file, metaspaceTokenizerJson(false).dump());
    const auto tokenizer = loadTokenizerJson(file);
    QVERIFY(QString::fromStdString(tokenizer->description()).contains("byte fallback"));
    // ▁=259 h=260 e=261 l=262 o=263 w=264 r=265 d=266 ▁h=267 ll=268 ell=269 ▁hell=270 ▁hello=271
    QCOMPARE(tokenizer->encode("hello world"), ids({271, 259, 264, 263, 265, 262, 266}));
    // Byte fallback: é is not in the vocabulary, its UTF-8 bytes are.
    QCOMPARE(tokenizer->encode("w\xC3\xA9"), ids({259, 264, 3 + 0xC3, 3 + 0xA9}));
    // prepend_scheme "first": text after an added token gets no "▁".
    QCOMPARE(tokenizer->encode("<s>hello"), ids({1, 260, 269, 263}));
    QCOMPARE(tokenizer->encodeForModel("hello"), ids({1, 271}));
    for (const std::string text : {"hello world", "w\xC3\xA9 hello  wo", "hello\n\n world"})
        QCOMPARE(tokenizer->decode(tokenizer->encodeForModel(text)), text);
    // Invalid byte runs decode to U+FFFD, one per byte.
    QCOMPARE(tokenizer->decode(ids({3 + 0xC3, 264})), std::string("\xEF\xBF\xBDw"));

    // The Metaspace decoder drops the replacement characters of the first token only.
    writeFile(file, metaspaceTokenizerJson(true).dump());
    const auto withMetaspaceDecoder = loadTokenizerJson(file);
    QCOMPARE(withMetaspaceDecoder->decode(ids({271, 259, 264})), std::string("hello w"));
}

// GPT-2's original files (as OPT ships them: no tokenizer.json), with an OPT-style
// tokenizer_config.json asking for BOS.
void TestTokenizerFormats::gpt2VocabMergesFolder()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::filesystem::path root = dir.path().toStdString();
    const auto gpt2 = testing::sharedDataDir() / "tokenizers" / "gpt2";
    std::filesystem::copy_file(gpt2 / "vocab.json", root / "vocab.json");
    std::filesystem::copy_file(gpt2 / "merges.txt", root / "merges.txt");
    writeFile(root / "tokenizer_config.json",
        R"({"add_bos_token": true, "bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|endoftext|>"})");

    const auto folder = loadTokenizer(root);
    QVERIFY(QString::fromStdString(folder->description()).contains("vocab.json + merges.txt"));
    QVERIFY(folder->addsBos());
    QCOMPARE(folder->encodeForModel("Hello world"), ids({50256, 15496, 995}));
    // The config's special tokens are split out verbatim and skipped when decoding.
    QCOMPARE(folder->encode("a<|endoftext|>b"), ids({64, 50256, 65}));
    QCOMPARE(folder->decode(folder->encode("a<|endoftext|>b")), std::string("ab"));

    const auto json = loadTokenizerJson(gpt2 / "tokenizer.json");
    const std::string sample = "The Tower's 2,500 bricks — laid in 1887 — weren't \"cheap\".\n\n  Indented line\t\n";
    QCOMPARE(folder->encode(sample), json->encode(sample));
}

void TestTokenizerFormats::badInput_data()
{
    QTest::addColumn<QString>("tokenizerJson");     // "" = no tokenizer.json
    QTest::addColumn<QByteArray>("tokenizerModel"); // "" = no tokenizer.model
    QTest::addColumn<QString>("tokenizerConfig");   // "" = no tokenizer_config.json
    QTest::addColumn<QString>("named");             // the file (or folder) the message must name

    const std::string good = byteLevelTokenizerJson(nullptr, false, false).dump();
    json unigram = json::object();
    unigram["model"] = {{"type", "Unigram"}, {"vocab", json::array()}};
    json badMerge = byteLevelTokenizerJson(nullptr, false, false);
    badMerge["model"]["merges"].push_back(json::array({"x", "nope"}));
    json badRegex = byteLevelTokenizerJson("\\p{L}+", false, false);
    json badNormalizer = byteLevelTokenizerJson(nullptr, false, false);
    badNormalizer["normalizer"] = {{"type", "BertNormalizer"}};
    json badVocab = byteLevelTokenizerJson(nullptr, false, false);
    badVocab["model"]["vocab"] = json::array();

    QTest::newRow("malformed json") << "{ \"model\": " << QByteArray() << ""
                                    << "tokenizer.json";
    QTest::newRow("not an object") << "[1, 2]" << QByteArray() << ""
                                   << "tokenizer.json";
    QTest::newRow("unsupported model type") << QString::fromStdString(unigram.dump()) << QByteArray() << ""
                                            << "tokenizer.json";
    QTest::newRow("merge outside vocab") << QString::fromStdString(badMerge.dump()) << QByteArray() << ""
                                         << "tokenizer.json";
    QTest::newRow("unsupported split regex") << QString::fromStdString(badRegex.dump()) << QByteArray() << ""
                                             << "tokenizer.json";
    QTest::newRow("unsupported normalizer") << QString::fromStdString(badNormalizer.dump()) << QByteArray() << ""
                                            << "tokenizer.json";
    QTest::newRow("vocab not an object") << QString::fromStdString(badVocab.dump()) << QByteArray() << ""
                                         << "tokenizer.json";
    QTest::newRow("garbage tokenizer.model") << "" << QByteArray("not a protobuf\x01\x02\xff", 17) << ""
                                             << "tokenizer.model";
    QTest::newRow("malformed tokenizer_config")
        << QString::fromStdString(good) << QByteArray() << "{\"add_bos_token\": "
        << "tokenizer_config.json";
    QTest::newRow("bos not in vocabulary")
        << QString::fromStdString(good) << QByteArray() << R"({"add_bos_token": true, "bos_token": "<nope>"})"
        << "tokenizer_config.json";
    QTest::newRow("no tokenizer files") << "" << QByteArray() << ""
                                        << "FOLDER";
    QTest::newRow("missing folder") << "" << QByteArray() << ""
                                    << "MISSING";
}

void TestTokenizerFormats::badInput()
{
    QFETCH(QString, tokenizerJson);
    QFETCH(QByteArray, tokenizerModel);
    QFETCH(QString, tokenizerConfig);
    QFETCH(QString, named);

    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    std::filesystem::path root = dir.path().toStdString();
    if (!tokenizerJson.isEmpty())
        writeFile(root / "tokenizer.json", tokenizerJson.toStdString());
    if (!tokenizerModel.isEmpty())
        writeFile(root / "tokenizer.model", tokenizerModel.toStdString());
    if (!tokenizerConfig.isEmpty())
        writeFile(root / "tokenizer_config.json", tokenizerConfig.toStdString());
    if (named == "MISSING")
        root /= "missing";
    const std::string expectedName =
        named == "FOLDER" || named == "MISSING" ? root.string() : (root / named.toStdString()).string();

    try {
        (void)loadTokenizer(root);
        QFAIL("expected an InputError");
    } catch (const InputError& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.startsWith(QString::fromStdString(expectedName + ": ")), qPrintable(message));
        QVERIFY2(!message.contains('\n'), qPrintable(message));
    }
}

// Ctrl-C / Cancel reach the encoders themselves: inside an EncodeCancelScope whose token is
// already cancelled, encode() (which checks nothing before or after its work) throws
// CancelledError, so it can only be the encoder polling while it works — the SentencePiece
// encoder, and (with ../shared) GPT-2's byte-level BPE. No threads or timing: it cannot pass
// because a machine is slow. With a live token, or after the scope, results are intact.
void TestTokenizerFormats::encodeStopsWhenCancelled()
{
    std::ifstream in(sparselab::testing::demoCalibText(), std::ios::binary);
    const std::string calib((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    QVERIFY(calib.size() > 100000); // thousands of words: far more than one poll interval (256)
    std::vector<std::unique_ptr<Tokenizer>> tokenizers;
    tokenizers.push_back(loadTokenizer(sparselab::testing::demoModelDir()));
    if (sparselab::testing::haveSharedData())
        tokenizers.push_back(loadTokenizerJson(sparselab::testing::sharedDataDir() / "tokenizers" / "gpt2" / "tokenizer.json"));
    for (const auto& tokenizer : tokenizers) {
        const std::vector<int32_t> expected = tokenizer->encode(calib);
        sparselab::CancelToken live;
        QCOMPARE(tokenizer->encodeForModel(calib, &live), tokenizer->encodeForModel(calib));
        sparselab::CancelToken cancelled;
        cancelled.cancel();
        bool stopped = false;
        {
            const EncodeCancelScope scope(&cancelled);
            try {
                (void)tokenizer->encode(calib);
            } catch (const sparselab::CancelledError&) {
                stopped = true;
            }
        }
        QVERIFY2(stopped, tokenizer->description().c_str());
        QCOMPARE(tokenizer->encode(calib), expected); // the scope is gone with its block
    }
}

QTEST_GUILESS_MAIN(TestTokenizerFormats)
#include "test_tokenizer_formats.moc"
