// io/safetensors: writer → reader round trip for every dtype, and a table of malformed
// files, each of which must be refused with an InputError that names the file.

#include "testsupport.h"

#include "io/safetensors.h"
#include "util/errors.h"

#include <QByteArray>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <cstring>
#include <numeric>

using namespace sparselab;
using namespace sparselab::io;

namespace {

// A safetensors file from raw parts: 8-byte little-endian header length, header, data.
QByteArray safetensorsBytes(const QByteArray& header, const QByteArray& data, qint64 lengthField = -1)
{
    const quint64 len = lengthField < 0 ? quint64(header.size()) : quint64(lengthField);
    QByteArray out(8, '\0');
    for (int i = 0; i < 8; ++i)
        out[i] = char((len >> (8 * i)) & 0xff);
    return out + header + data;
}

void writeBytes(const QString& path, const QByteArray& bytes)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    QCOMPARE(f.write(bytes), bytes.size());
}

} // namespace

class TestSafetensors : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void dtypeNames();
    void roundTrip_data();
    void roundTrip();
    void emptyAndScalarTensors();
    void malformed_data();
    void malformed();
    void missingFile();
    void missingTensor();
};

void TestSafetensors::dtypeNames()
{
    for (DType d : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8, DType::I32, DType::I64, DType::Bool}) {
        const auto parsed = parseDType(dtypeName(d));
        QVERIFY(parsed.has_value());
        QCOMPARE(int(*parsed), int(d));
    }
    QCOMPARE(dtypeSize(DType::BF16), size_t(2));
    QCOMPARE(dtypeSize(DType::I64), size_t(8));
    QVERIFY(!parseDType("F64").has_value());
    QVERIFY(!parseDType("f32").has_value());
}

void TestSafetensors::roundTrip_data()
{
    QTest::addColumn<int>("dtype");
    QTest::addColumn<QList<qint64>>("shape");
    QTest::newRow("F32 [3,5]") << int(DType::F32) << QList<qint64>{3, 5};
    QTest::newRow("F16 [7]") << int(DType::F16) << QList<qint64>{7};
    QTest::newRow("BF16 [2,3,4]") << int(DType::BF16) << QList<qint64>{2, 3, 4};
    QTest::newRow("I8 [9]") << int(DType::I8) << QList<qint64>{9};
    QTest::newRow("U8 [3,3]") << int(DType::U8) << QList<qint64>{3, 3};
    QTest::newRow("I32 [4,1]") << int(DType::I32) << QList<qint64>{4, 1};
    QTest::newRow("I64 [5]") << int(DType::I64) << QList<qint64>{5};
    QTest::newRow("BOOL [6]") << int(DType::Bool) << QList<qint64>{6};
}

void TestSafetensors::roundTrip()
{
    QFETCH(int, dtype);
    QFETCH(QList<qint64>, shape);
    const DType type = DType(dtype);
    const std::vector<int64_t> dims(shape.begin(), shape.end());
    const int64_t numel = std::accumulate(dims.begin(), dims.end(), int64_t(1), std::multiplies<>());

    // Distinct bytes, so a misplaced offset cannot go unnoticed. BOOL must stay 0/1.
    std::vector<unsigned char> payload(size_t(numel) * dtypeSize(type));
    for (size_t i = 0; i < payload.size(); ++i)
        payload[i] = type == DType::Bool ? (i % 3 == 0) : static_cast<unsigned char>(i * 37 + 11);
    // An odd-sized first tensor so the second one starts unaligned.
    const std::vector<unsigned char> lead = {1, 2, 3};

    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::filesystem::path path = dir.filePath("rt.safetensors").toStdString();
    writeSafetensors(path,
                     {{"lead", DType::U8, {3}, lead.data(), lead.size()},
                      {"model.weight", type, dims, payload.data(), payload.size()}},
                     {{"format", "pt"}, {"note", "round trip"}});

    // The data section is 8-byte aligned: header length is a multiple of 8.
    QFile raw(QString::fromStdString(path.string()));
    QVERIFY(raw.open(QIODevice::ReadOnly));
    const QByteArray head = raw.read(8);
    quint64 headerLen = 0;
    std::memcpy(&headerLen, head.constData(), 8);
    QCOMPARE(headerLen % 8, quint64(0));
    // No temporary file is left beside the output.
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 1);

    const SafetensorsFile file = SafetensorsFile::open(path);
    QCOMPARE(file.tensors().size(), size_t(2));
    QCOMPARE(file.tensors()[0].name, std::string("lead")); // file order
    QCOMPARE(file.tensors()[1].name, std::string("model.weight"));
    const TensorView v = file.view("model.weight");
    QCOMPARE(int(v.dtype), dtype);
    QVERIFY(v.shape == dims);
    QCOMPARE(v.numel(), numel);
    QCOMPARE(v.nbytes, payload.size());
    QVERIFY(std::memcmp(v.data, payload.data(), payload.size()) == 0);
    QCOMPARE(file.find("model.weight")->begin, uint64_t(3));
    QVERIFY(file.find("absent") == nullptr);
    QCOMPARE(file.metadata().at("format"), std::string("pt"));
    QCOMPARE(file.metadata().at("note"), std::string("round trip"));
}

void TestSafetensors::emptyAndScalarTensors()
{
    QTemporaryDir dir;
    const std::filesystem::path path = dir.filePath("edge.safetensors").toStdString();
    const float scalar = 2.5f;
    writeSafetensors(path, {{"empty", DType::F32, {0, 4}, nullptr, 0}, {"scalar", DType::F32, {}, &scalar, 4}});
    const SafetensorsFile file = SafetensorsFile::open(path);
    QCOMPARE(file.view("empty").numel(), int64_t(0));
    const TensorView s = file.view("scalar");
    QVERIFY(s.shape.empty());
    QCOMPARE(s.numel(), int64_t(1));
    float back = 0;
    std::memcpy(&back, s.data, 4);
    QCOMPARE(back, scalar);
}

void TestSafetensors::malformed_data()
{
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("expected"); // a fragment of the message: the right rule fired

    const QByteArray eight(8, '\x01');
    const QByteArray sixteen(16, '\x01');
    auto t = [](const char* name, const char* dtype, const char* shape, const char* offsets) {
        return QByteArray("\"") + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape
               + ",\"data_offsets\":" + offsets + "}";
    };
    QTest::newRow("too short") << QByteArray("abc") << "too short";
    QTest::newRow("header length past end")
        << safetensorsBytes("{}", eight, 4096) << "runs past the end of the file";
    QTest::newRow("header length huge")
        << safetensorsBytes("{}", eight, qint64(1) << 62) << "runs past the end of the file";
    QTest::newRow("header not JSON") << safetensorsBytes("{\"a\": [1, 2", eight) << "not valid JSON";
    QTest::newRow("header not object") << safetensorsBytes("[1, 2, 3]", eight) << "not a JSON object";
    QTest::newRow("entry not object") << safetensorsBytes("{\"a\": 3}", eight) << "not an object";
    QTest::newRow("unknown dtype")
        << safetensorsBytes("{" + t("a", "F64", "[1]", "[0,8]") + "}", eight) << "unknown dtype 'F64'";
    QTest::newRow("negative shape")
        << safetensorsBytes("{" + t("a", "U8", "[-2,-4]", "[0,8]") + "}", eight) << "negative dimension";
    QTest::newRow("fractional shape")
        << safetensorsBytes("{" + t("a", "U8", "[2.5]", "[0,8]") + "}", eight) << "must be integers";
    QTest::newRow("shape x dtype != bytes")
        << safetensorsBytes("{" + t("a", "F32", "[3]", "[0,8]") + "}", eight) << "needs 12 bytes";
    QTest::newRow("offsets out of range")
        << safetensorsBytes("{" + t("a", "F32", "[4]", "[0,16]") + "}", eight) << "run past the data section";
    QTest::newRow("offsets reversed")
        << safetensorsBytes("{" + t("a", "U8", "[0]", "[8,0]") + "}", eight) << "reversed";
    QTest::newRow("negative offset")
        << safetensorsBytes("{" + t("a", "U8", "[8]", "[-8,0]") + "}", eight) << "two non-negative integers";
    QTest::newRow("missing offsets")
        << safetensorsBytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[8]}}", eight) << "data_offsets";
    QTest::newRow("missing dtype")
        << safetensorsBytes("{\"a\":{\"shape\":[8],\"data_offsets\":[0,8]}}", eight) << "dtype";
    QTest::newRow("overlapping offsets")
        << safetensorsBytes("{" + t("a", "F32", "[2]", "[0,8]") + "," + t("b", "F32", "[2]", "[4,12]") + "}", sixteen)
        << "overlap";
    QTest::newRow("duplicate name")
        << safetensorsBytes("{" + t("a", "F32", "[2]", "[0,8]") + "," + t("a", "F32", "[2]", "[8,16]") + "}", sixteen)
        << "more than once";
    QTest::newRow("empty name") << safetensorsBytes("{" + t("", "U8", "[8]", "[0,8]") + "}", eight) << "empty name";
    QTest::newRow("metadata value not string")
        << safetensorsBytes("{\"__metadata__\":{\"format\":1}}", eight) << "__metadata__";
    QTest::newRow("overflowing shape")
        << safetensorsBytes("{" + t("a", "F32", "[4294967296,4294967296,16]", "[0,8]") + "}", eight) << "too large";
}

void TestSafetensors::malformed()
{
    QFETCH(QByteArray, bytes);
    QFETCH(QString, expected);
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath("bad-input.safetensors");
    writeBytes(path, bytes);
    try {
        (void)SafetensorsFile::open(path.toStdString());
        QFAIL("malformed file was accepted");
    } catch (const InputError& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.startsWith(path + ": "), qPrintable(message));
        QVERIFY2(message.contains(expected), qPrintable(message));
        QVERIFY2(!message.contains('\n'), qPrintable(message));
    }
}

void TestSafetensors::missingFile()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("nowhere.safetensors");
    try {
        (void)SafetensorsFile::open(path.toStdString());
        QFAIL("missing file was accepted");
    } catch (const InputError& e) {
        QVERIFY2(QString::fromUtf8(e.what()).startsWith(path), e.what());
    }
}

void TestSafetensors::missingTensor()
{
    QTemporaryDir dir;
    const std::filesystem::path path = dir.filePath("one.safetensors").toStdString();
    const float x = 1.0f;
    writeSafetensors(path, {{"x", DType::F32, {1}, &x, 4}});
    const SafetensorsFile file = SafetensorsFile::open(path);
    try {
        (void)file.view("y");
        QFAIL("missing tensor was found");
    } catch (const InputError& e) {
        const QString message = QString::fromUtf8(e.what());
        QVERIFY2(message.contains(QString::fromStdString(path.string())), e.what());
        QVERIFY2(message.contains("'y'"), e.what());
    }
}

QTEST_GUILESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
