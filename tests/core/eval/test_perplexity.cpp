// eval/perplexity: the reference figures of shared/data/README.md §7 (measured there with
// llama2.c's model.py and an independent HF-semantics forward), plus input errors,
// progress and cancellation.

#include "testsupport.h"

#include "eval/perplexity.h"
#include "model/causal_lm.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"

#include <QtTest>

#include <fstream>

using namespace sparselab;
namespace fs = std::filesystem;

namespace {

constexpr double kTolerance = 5e-4; // the README prints four decimals

std::vector<int32_t> readIds(const fs::path& file)
{
    std::ifstream in(file);
    std::vector<int32_t> ids;
    for (int32_t id = 0; in >> id;)
        ids.push_back(id);
    return ids;
}

std::vector<int32_t> tokenizeFile(const fs::path& modelFolder, const fs::path& text)
{
    return tokenize::loadTokenizer(modelFolder)->encodeForModel(readTextFile(text));
}

const model::CausalLM& demoModel()
{
    static const std::unique_ptr<model::CausalLM> model = model::CausalLM::load(testing::demoModelDir());
    return *model;
}

template <typename Error>
QString errorOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const Error& e) {
        return QString::fromUtf8(e.what());
    }
    return {};
}

} // namespace

class TestPerplexity : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void demoOnBundledEvalText();
    void demoOnTinyStoriesVal();
    void tinyStories656KOnEvalText();
    void maxWindowsAndBatchSizeAgree();
    void seqlenBeyondModel();
    void textShorterThanOneWindow();
    void idsOutsideVocabulary();
    void progressAndCancel();
};

// Needs nothing outside the repository: bundled model, bundled text.
void TestPerplexity::demoOnBundledEvalText()
{
    const std::vector<int32_t> ids = tokenizeFile(testing::demoModelDir(), testing::demoEvalText());
    QCOMPARE(ids.front(), 1); // BOS once, at the start of the text
    eval::PerplexityParams params;
    params.seqlen = 256;
    params.batchSize = 16;
    const eval::PerplexityResult r = eval::evaluatePerplexity(demoModel(), ids, params);
    qInfo("stories260K-hf, tinystories_eval.txt @256: ppl %.5f, %lld windows, %lld tokens, %.2f s", r.perplexity,
          (long long)r.windows, (long long)r.tokens, r.seconds);
    QCOMPARE(r.windows, int64_t(764));
    QCOMPARE(r.windows, int64_t(ids.size()) / 256);
    QCOMPARE(r.seqlen, int64_t(256));
    QCOMPARE(r.tokens, int64_t(ids.size()));
    QCOMPARE(r.windowLoss.size(), size_t(764));
    QVERIFY2(std::abs(r.perplexity - 5.8471) <= kTolerance, qPrintable(QString::number(r.perplexity, 'f', 5)));
}

void TestPerplexity::demoOnTinyStoriesVal()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const std::vector<int32_t> ids = tokenizeFile(testing::demoModelDir(),
                                                  testing::sharedDataDir() / "text" / "tinystories" / "tinystories_val.txt");
    eval::PerplexityParams params;
    params.seqlen = 256;
    params.batchSize = 16;
    const eval::PerplexityResult r = eval::evaluatePerplexity(demoModel(), ids, params);
    qInfo("stories260K-hf, tinystories_val.txt @256: ppl %.5f, %lld windows, %lld tokens, %.2f s", r.perplexity,
          (long long)r.windows, (long long)r.tokens, r.seconds);
    QCOMPARE(r.tokens, int64_t(393013));
    QCOMPARE(r.windows, int64_t(1535));
    QVERIFY2(std::abs(r.perplexity - 5.12029) <= kTolerance, qPrintable(QString::number(r.perplexity, 'f', 5)));
}

// Token ids from the shared reference tokenization (HF tokenizers, JS port), so this
// checks the forward pass and the protocol independently of our tokenizer.
void TestPerplexity::tinyStories656KOnEvalText()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const fs::path folder = testing::sharedDataDir() / "models" / "tinystories-656k-hf";
    const std::vector<int32_t> ids = readIds(testing::sharedDataDir() / "reference-tokenizations" / "generated"
                                             / "tinystories_eval.tinystories-656k.ids.txt");
    QCOMPARE(ids.size(), size_t(96686));
    const auto model = model::CausalLM::load(folder);
    eval::PerplexityParams params;
    params.seqlen = 256;
    params.batchSize = 16;
    const eval::PerplexityResult r = eval::evaluatePerplexity(*model, ids, params);
    qInfo("tinystories-656k-hf, tinystories_eval.txt @256: ppl %.5f, %lld windows, %lld tokens, %.2f s",
          r.perplexity, (long long)r.windows, (long long)r.tokens, r.seconds);
    QCOMPARE(r.windows, int64_t(377));
    QCOMPARE(r.tokens, int64_t(96686));
    QVERIFY2(std::abs(r.perplexity - 40.23327) <= kTolerance, qPrintable(QString::number(r.perplexity, 'f', 5)));
}

void TestPerplexity::maxWindowsAndBatchSizeAgree()
{
    const std::vector<int32_t> ids = tokenizeFile(testing::demoModelDir(), testing::demoEvalText());
    eval::PerplexityParams params;
    params.seqlen = 128;
    params.maxWindows = 7;
    params.batchSize = 3; // 3 + 3 + 1
    const eval::PerplexityResult a = eval::evaluatePerplexity(demoModel(), ids, params);
    params.batchSize = 1;
    const eval::PerplexityResult b = eval::evaluatePerplexity(demoModel(), ids, params);
    QCOMPARE(a.windows, int64_t(7));
    QCOMPARE(a.windowLoss.size(), size_t(7));
    for (size_t i = 0; i < 7; ++i)
        QVERIFY(std::abs(a.windowLoss[i] - b.windowLoss[i]) < 1e-5);
    double mean = 0;
    for (double l : a.windowLoss)
        mean += l / 7.0;
    QVERIFY(std::abs(a.perplexity - std::exp(mean)) < 1e-9);

    // seqlen 0 = the model's maximum (512 here).
    params.seqlen = 0;
    params.maxWindows = 1;
    QCOMPARE(eval::evaluatePerplexity(demoModel(), ids, params).seqlen, int64_t(512));
}

void TestPerplexity::seqlenBeyondModel()
{
    const std::vector<int32_t> ids(2000, 300);
    eval::PerplexityParams params;
    params.seqlen = 513; // max_position_embeddings is 512
    const QString message = errorOf<InputError>([&] { (void)eval::evaluatePerplexity(demoModel(), ids, params); });
    QVERIFY2(message.contains("--seqlen") && message.contains("512"), qPrintable(message));
}

void TestPerplexity::textShorterThanOneWindow()
{
    const std::vector<int32_t> ids(255, 300);
    eval::PerplexityParams params;
    params.seqlen = 256;
    const QString message = errorOf<InputError>([&] { (void)eval::evaluatePerplexity(demoModel(), ids, params); });
    QVERIFY2(message.contains("255 tokens") && message.contains("256"), qPrintable(message));
    QVERIFY(!errorOf<InputError>([&] { (void)eval::evaluatePerplexity(demoModel(), {}, params); }).isEmpty());
}

void TestPerplexity::idsOutsideVocabulary()
{
    std::vector<int32_t> ids(300, 5);
    ids[17] = 512;
    eval::PerplexityParams params;
    params.seqlen = 64;
    const QString message = errorOf<InputError>([&] { (void)eval::evaluatePerplexity(demoModel(), ids, params); });
    QVERIFY2(message.contains("512"), qPrintable(message));
}

void TestPerplexity::progressAndCancel()
{
    const std::vector<int32_t> ids = tokenizeFile(testing::demoModelDir(), testing::demoEvalText());
    eval::PerplexityParams params;
    params.seqlen = 256;
    params.maxWindows = 10;
    params.batchSize = 4;

    // Uncancelled: one report per batch, the last one complete.
    std::vector<Progress> reports;
    (void)eval::evaluatePerplexity(demoModel(), ids, params, [&](const Progress& p) { reports.push_back(p); });
    QCOMPARE(reports.size(), size_t(3));
    QCOMPARE(reports[0].done, int64_t(4));
    QCOMPARE(reports.back().done, int64_t(10));
    QCOMPARE(reports.back().total, int64_t(10));
    QCOMPARE(reports.back().stage, std::string("perplexity"));

    // Cancelled from the progress callback after the first batch.
    CancelToken token;
    int calls = 0;
    const auto cancelAfterFirst = [&](const Progress&) {
        ++calls;
        token.cancel();
    };
    bool cancelled = false;
    try {
        (void)eval::evaluatePerplexity(demoModel(), ids, params, cancelAfterFirst, &token);
    } catch (const CancelledError&) {
        cancelled = true;
    }
    QVERIFY(cancelled);
    QCOMPARE(calls, 1);
}

QTEST_GUILESS_MAIN(TestPerplexity)
#include "test_perplexity.moc"
