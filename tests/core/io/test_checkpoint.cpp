// io/checkpoint: single files, sharded folders (index.json), __metadata__ aliases on the
// real TinyStories-656K file, and shard names that try to leave the model folder.

#include "testsupport.h"

#include "io/checkpoint.h"
#include "util/errors.h"

#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cstring>

using namespace sparselab;
using namespace sparselab::io;
namespace fs = std::filesystem;

namespace {

void writeText(const fs::path& path, const std::string& text)
{
    QFile f(QString::fromStdString(path.string()));
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    f.write(text.data(), qint64(text.size()));
}

float firstFloat(const TensorView& v)
{
    float x = 0;
    std::memcpy(&x, v.data, sizeof x);
    return x;
}

// Two shards and an index: a.weight, a.bias in shard 1; b.weight in shard 2.
void writeShardedFolder(const fs::path& folder, const std::string& indexText)
{
    const float a[4] = {1, 2, 3, 4};
    const float bias[2] = {5, 6};
    const float b[6] = {7, 8, 9, 10, 11, 12};
    writeSafetensors(folder / "model-00001-of-00002.safetensors",
                     {{"a.weight", DType::F32, {2, 2}, a, sizeof a}, {"a.bias", DType::F32, {2}, bias, sizeof bias}});
    writeSafetensors(folder / "model-00002-of-00002.safetensors", {{"b.weight", DType::F32, {3, 2}, b, sizeof b}});
    writeText(folder / "model.safetensors.index.json", indexText);
}

const std::string kGoodIndex = R"({
  "metadata": {"total_size": 48},
  "weight_map": {
    "a.bias": "model-00001-of-00002.safetensors",
    "a.weight": "model-00001-of-00002.safetensors",
    "b.weight": "model-00002-of-00002.safetensors"
  }
})";

QString messageOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const InputError& e) {
        return QString::fromUtf8(e.what());
    }
    return {};
}

} // namespace

class TestCheckpoint : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void singleFile();
    void sharded();
    void aliasesOnTinyStories656K();
    void shardOutsideFolder_data();
    void shardOutsideFolder();
    void indexProblems_data();
    void indexProblems();
    void missingTensor();
    void emptyFolder();
};

void TestCheckpoint::singleFile()
{
    const Checkpoint ckpt = Checkpoint::open(testing::demoModelDir());
    QVERIFY(!ckpt.sharded());
    QCOMPARE(ckpt.files().size(), size_t(1));
    QVERIFY(ckpt.contains("model.embed_tokens.weight"));
    QVERIFY(!ckpt.contains("lm_head.weight")); // tied, not stored
    const TensorInfo& emb = ckpt.info("model.embed_tokens.weight");
    QVERIFY((emb.shape == std::vector<int64_t>{512, 64}));
    QCOMPARE(int(emb.dtype), int(DType::F32));
    // 5 blocks × 9 tensors + embedding + final norm.
    QCOMPARE(ckpt.storedNames().size(), size_t(47));
    QCOMPARE(ckpt.names().size(), size_t(47));
}

void TestCheckpoint::sharded()
{
    QTemporaryDir dir;
    const fs::path folder = dir.path().toStdString();
    writeShardedFolder(folder, kGoodIndex);

    const Checkpoint ckpt = Checkpoint::open(folder);
    QVERIFY(ckpt.sharded());
    QCOMPARE(ckpt.files().size(), size_t(2));
    QCOMPARE(ckpt.fileOf("a.bias").path(), folder / "model-00001-of-00002.safetensors");
    QCOMPARE(ckpt.fileOf("b.weight").path(), folder / "model-00002-of-00002.safetensors");
    // Stored order: shard by shard, file order within each.
    QVERIFY((ckpt.storedNames() == std::vector<std::string>{"a.weight", "a.bias", "b.weight"}));
    QVERIFY((ckpt.names() == std::vector<std::string>{"a.bias", "a.weight", "b.weight"}));
    QCOMPARE(firstFloat(ckpt.view("a.weight")), 1.0f);
    QCOMPARE(firstFloat(ckpt.view("a.bias")), 5.0f);
    const TensorView b = ckpt.view("b.weight");
    QVERIFY((b.shape == std::vector<int64_t>{3, 2}));
    QCOMPARE(firstFloat(b), 7.0f);
    QVERIFY(ckpt.aliases().empty());
}

void TestCheckpoint::aliasesOnTinyStories656K()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const Checkpoint ckpt = Checkpoint::open(testing::sharedDataDir() / "models" / "tinystories-656k-hf");
    // The file stores only lm_head.weight; __metadata__ maps the embedding onto it.
    QCOMPARE(ckpt.aliases().size(), size_t(1));
    QCOMPARE(ckpt.aliases().at("model.embed_tokens.weight"), std::string("lm_head.weight"));
    QVERIFY(ckpt.contains("model.embed_tokens.weight"));
    const TensorView emb = ckpt.view("model.embed_tokens.weight");
    const TensorView head = ckpt.view("lm_head.weight");
    QVERIFY(emb.data == head.data);
    QVERIFY((emb.shape == std::vector<int64_t>{2048, 128}));
    QCOMPARE(ckpt.info("model.embed_tokens.weight").name, std::string("lm_head.weight"));
    QCOMPARE(&ckpt.fileOf("model.embed_tokens.weight"), &ckpt.fileOf("lm_head.weight"));

    const auto stored = ckpt.storedNames();
    QVERIFY(std::find(stored.begin(), stored.end(), "model.embed_tokens.weight") == stored.end());
    const auto all = ckpt.names();
    QCOMPARE(all.size(), stored.size() + 1);
    QVERIFY(std::is_sorted(all.begin(), all.end()));
    // "format": "pt" is metadata, not an alias.
    QVERIFY(!ckpt.contains("format"));
}

void TestCheckpoint::shardOutsideFolder_data()
{
    QTest::addColumn<QString>("shard");
    QTest::newRow("parent") << "../model-00002-of-00002.safetensors";
    QTest::newRow("absolute") << "/tmp/model-00002-of-00002.safetensors";
    QTest::newRow("down and back up") << "sub/../../model-00002-of-00002.safetensors";
    QTest::newRow("symlink out") << "escape/model-00002-of-00002.safetensors";
    QTest::newRow("empty") << "";
}

void TestCheckpoint::shardOutsideFolder()
{
    QFETCH(QString, shard);
    QTemporaryDir dir;
    const fs::path outer = dir.path().toStdString();
    const fs::path folder = outer / "model";
    fs::create_directory(folder);
    fs::create_directory(outer / "elsewhere");
    // A real shard outside the folder, so a lax loader would succeed in reading it.
    const float b[6] = {};
    writeSafetensors(outer / "model-00002-of-00002.safetensors", {{"b.weight", DType::F32, {3, 2}, b, sizeof b}});
    writeSafetensors(outer / "elsewhere" / "model-00002-of-00002.safetensors",
                     {{"b.weight", DType::F32, {3, 2}, b, sizeof b}});
    fs::create_directory_symlink(outer / "elsewhere", folder / "escape");
    writeShardedFolder(folder, R"({"weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                                  "a.bias": "model-00001-of-00002.safetensors",
                                                  "b.weight": ")"
                                   + shard.toStdString() + R"("}})");

    const QString message = messageOf([&] { (void)Checkpoint::open(folder); });
    const QString index = QString::fromStdString((folder / "model.safetensors.index.json").string());
    QVERIFY2(message.startsWith(index + ": "), qPrintable(message));
    QVERIFY2(message.contains("outside the model folder"), qPrintable(message));
}

void TestCheckpoint::indexProblems_data()
{
    QTest::addColumn<QString>("index");
    QTest::addColumn<QString>("expected");
    QTest::newRow("not JSON") << "{\"weight_map\": " << "not valid JSON";
    QTest::newRow("no weight_map") << "{\"metadata\": {}}" << "weight_map";
    QTest::newRow("shard missing")
        << R"({"weight_map": {"a.weight": "model-00003-of-00002.safetensors"}})" << "does not exist";
    QTest::newRow("tensor not in its shard")
        << R"({"weight_map": {"b.weight": "model-00001-of-00002.safetensors"}})" << "not stored there";
    QTest::newRow("entry not a string") << R"({"weight_map": {"a.weight": 3}})" << "not a file name";
}

void TestCheckpoint::indexProblems()
{
    QFETCH(QString, index);
    QFETCH(QString, expected);
    QTemporaryDir dir;
    const fs::path folder = dir.path().toStdString();
    writeShardedFolder(folder, index.toStdString());
    const QString message = messageOf([&] { (void)Checkpoint::open(folder); });
    QVERIFY2(message.startsWith(QString::fromStdString((folder / "model.safetensors.index.json").string())),
             qPrintable(message));
    QVERIFY2(message.contains(expected), qPrintable(message));
}

void TestCheckpoint::missingTensor()
{
    const fs::path folder = testing::demoModelDir();
    const Checkpoint ckpt = Checkpoint::open(folder);
    QVERIFY(!ckpt.contains("model.layers.9.mlp.up_proj.weight"));
    const QString message = messageOf([&] { (void)ckpt.view("model.layers.9.mlp.up_proj.weight"); });
    QCOMPARE(message, QString::fromStdString(folder.string())
                          + ": tensor 'model.layers.9.mlp.up_proj.weight' is missing");
    QVERIFY(!messageOf([&] { (void)ckpt.info("nope"); }).isEmpty());
    QVERIFY(!messageOf([&] { (void)ckpt.fileOf("nope"); }).isEmpty());
}

void TestCheckpoint::emptyFolder()
{
    QTemporaryDir dir;
    const QString message = messageOf([&] { (void)Checkpoint::open(dir.path().toStdString()); });
    QVERIFY2(message.startsWith(dir.path() + ": "), qPrintable(message));
    QVERIFY2(message.contains("model.safetensors"), qPrintable(message));
    const QString notFolder = messageOf([&] { (void)Checkpoint::open(dir.filePath("absent").toStdString()); });
    QVERIFY2(notFolder.contains("absent"), qPrintable(notFolder));
}

QTEST_GUILESS_MAIN(TestCheckpoint)
#include "test_checkpoint.moc"
