// The shared input readers: readTextFile refuses anything but a regular file and anything
// over its size cap; readJsonFile / parseJsonText refuse JSON nested deeper than
// kMaxJsonDepth, counting only brackets outside strings.

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/json_file.h"

#include <QFile>
#include <QTemporaryDir>
#include <QTest>

#include <string>

#include <sys/stat.h>

using namespace sparselab;

namespace {

std::string nested(int depth, const std::string& inside = "0")
{
    return std::string(size_t(depth), '[') + inside + std::string(size_t(depth), ']');
}

// The InputError message of `f`, or "" when it does not throw one.
template <typename F>
std::string inputErrorOf(F&& f)
{
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    return {};
}

void write(const QString& path, const QByteArray& bytes)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    QCOMPARE(f.write(bytes), bytes.size());
}

} // namespace

class TestInputFiles : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void depthLimit_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<bool>("tooDeep");
        QTest::newRow("flat") << "{\"a\": 1}" << false;
        QTest::newRow("256 arrays") << QString::fromStdString(nested(256)) << false;
        QTest::newRow("257 arrays") << QString::fromStdString(nested(257)) << true;
        QTest::newRow("objects and arrays, 257")
            << QString::fromStdString("{\"a\": " + nested(255, "{\"b\": 1}") + "}") << true;
        QTest::newRow("objects and arrays, 256")
            << QString::fromStdString("{\"a\": " + nested(254, "{\"b\": 1}") + "}") << false;
        QTest::newRow("brackets inside strings do not count")
            << QString::fromStdString(nested(256, "\"" + std::string(1000, '[') + "\"")) << false;
        QTest::newRow("escaped quote keeps the string open")
            << QString::fromStdString(nested(256, "\"\\\"[[[[\"")) << false;
        QTest::newRow("escaped backslash closes the string")
            << QString::fromStdString(nested(255, "\"\\\\\", [1]")) << false;
        QTest::newRow("escaped backslash, then one level too many")
            << QString::fromStdString(nested(256, "\"\\\\\", [1]")) << true;
        QTest::newRow("siblings do not add up")
            << QString::fromStdString("[" + nested(200) + "," + nested(200) + "]") << false;
    }

    void depthLimit()
    {
        QFETCH(QString, text);
        QFETCH(bool, tooDeep);
        const std::string t = text.toStdString();
        QCOMPARE(jsonNestedDeeperThan(t), tooDeep);
        const std::string message = inputErrorOf([&] { (void)parseJsonText(t, "doc.json"); });
        if (tooDeep) {
            QCOMPARE(message, std::string("doc.json: nested deeper than 256 levels"));
        } else {
            QCOMPARE(message, std::string()); // and it parses
            QVERIFY(!parseJsonText(t, "doc.json").is_discarded());
        }
    }

    void deepFileIsOneInputError()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath("config.json");
        write(path, QByteArray::fromStdString("{\"x\": " + nested(100000) + "}"));
        const std::string file = QFile::encodeName(path).toStdString();
        QCOMPARE(inputErrorOf([&] { (void)readJsonFile(file); }), file + ": nested deeper than 256 levels");
        // A part of a file is named as such.
        QCOMPARE(inputErrorOf([&] { (void)parseJsonText(nested(300), "m.safetensors", "header"); }),
                 std::string("m.safetensors: header is nested deeper than 256 levels"));
        QVERIFY(inputErrorOf([&] { (void)parseJsonText("{\"a\": ", "m.json"); }).starts_with("m.json: not valid JSON: "));
    }

    void sizeCap()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath("text.txt");
        write(path, QByteArray(4096, 'a'));
        const std::string file = QFile::encodeName(path).toStdString();
        QCOMPARE(readTextFile(file, 4096).size(), size_t(4096));
        QCOMPARE(inputErrorOf([&] { (void)readTextFile(file, 4095); }), file + ": larger than 4095 bytes");
        QCOMPARE(inputErrorOf([&] { (void)readTextFile(file, std::uintmax_t(3) << 20); }), std::string());
        // A sparse file past the JSON cap is refused without reading it.
        const QString big = dir.filePath("big.json");
        {
            QFile f(big);
            QVERIFY(f.open(QIODevice::WriteOnly));
            QVERIFY(f.resize(qint64(kMaxJsonFileBytes) + 1));
        }
        const std::string bigFile = QFile::encodeName(big).toStdString();
        QCOMPARE(inputErrorOf([&] { (void)readJsonFile(bigFile); }), bigFile + ": larger than 256 MiB");
    }

    void onlyRegularFiles()
    {
        QTemporaryDir dir;
        const QString fifo = dir.filePath("fifo");
        QCOMPARE(::mkfifo(QFile::encodeName(fifo).constData(), 0600), 0);
        const std::string fifoFile = QFile::encodeName(fifo).toStdString();
        // Would block forever in open() if it were opened as a file.
        QCOMPARE(inputErrorOf([&] { (void)readTextFile(fifoFile); }), fifoFile + ": not a regular file");
        QCOMPARE(inputErrorOf([&] { (void)readJsonFile(fifoFile); }), fifoFile + ": not a regular file");
        QCOMPARE(inputErrorOf([&] { (void)readTextFile("/dev/zero"); }), std::string("/dev/zero: not a regular file"));
        const std::string folder = QFile::encodeName(dir.path()).toStdString();
        QCOMPARE(inputErrorOf([&] { (void)readTextFile(folder); }), folder + ": is a folder, expected a file");
        const std::string missing = folder + "/absent.txt";
        QCOMPARE(inputErrorOf([&] { (void)readTextFile(missing); }), missing + ": file not found");
        // A symlink to a regular file is read; one to a FIFO is refused.
        const QString toText = dir.filePath("link.txt");
        write(dir.filePath("t.txt"), "hello");
        QVERIFY(QFile::link(dir.filePath("t.txt"), toText));
        QCOMPARE(readTextFile(QFile::encodeName(toText).toStdString()), std::string("hello"));
        const QString toFifo = dir.filePath("link-fifo");
        QVERIFY(QFile::link(fifo, toFifo));
        const std::string toFifoFile = QFile::encodeName(toFifo).toStdString();
        QCOMPARE(inputErrorOf([&] { (void)readTextFile(toFifoFile); }), toFifoFile + ": not a regular file");
    }
};

QTEST_GUILESS_MAIN(TestInputFiles)
#include "test_input_files.moc"
