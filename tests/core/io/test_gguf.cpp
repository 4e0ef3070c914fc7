// io/gguf, io/gguf_llama, io/gguf_vocab, io/gguf_import, export/gguf_export:
//   - fp16 conversion and the Q8_0 / Q4_0 block codecs against hand-computed blocks, and
//     TinyStories-656K quantized byte for byte as llama.cpp's llama-quantize does (shared data);
//   - GPTQ grids packed losslessly;
//   - writer → reader round trips (metadata of every type, alignment, padding);
//   - the demo model exported (F32) and imported back: same tensors, same tokens, same
//     perplexity; F16/Q8_0/Q4_0 read back equal to the writer's own dequantization;
//   - TinyStories-656K (tokenizer.json, tied lm_head alias) and llama.cpp's vocab-only GGUFs
//     (shared data): token lists equal the tokenizer files, and the tokenizers rebuilt from
//     GGUF metadata reproduce llama.cpp's 46 tokenizer test cases;
//   - a table of malformed files, each refused with an InputError naming the file.

#include "testsupport.h"

#include "eval/perplexity.h"
#include "export/gguf_export.h"
#include "io/gguf.h"
#include "io/gguf_import.h"
#include "io/gguf_llama.h"
#include "io/gguf_vocab.h"
#include "model/causal_lm.h"
#include "tokenize/tokenizer.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <torch/types.h>

#include <QByteArray>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <bit>
#include <cmath>
#include <limits>
#include <cstring>
#include <random>

using namespace sparselab;
using namespace sparselab::io;
namespace fs = std::filesystem;

namespace {

std::vector<std::byte> bytesOf(std::initializer_list<int> values)
{
    std::vector<std::byte> out;
    for (int v : values)
        out.push_back(std::byte(uint8_t(v)));
    return out;
}

template <typename T> std::vector<std::byte> rawBytes(const std::vector<T>& v)
{
    std::vector<std::byte> out(v.size() * sizeof(T));
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}

QString errorText(const std::function<void()>& f)
{
    try {
        f();
    } catch (const InputError& e) {
        return QString::fromUtf8(e.what());
    }
    return {};
}

const model::CausalLM& demoModel()
{
    static const std::unique_ptr<model::CausalLM> model = model::CausalLM::load(testing::demoModelDir());
    return *model;
}

eval::PerplexityResult demoPerplexity(const model::CausalLM& model, const std::vector<int32_t>& ids)
{
    eval::PerplexityParams params;
    params.seqlen = 256;
    params.maxWindows = 32;
    params.batchSize = 16;
    return eval::evaluatePerplexity(model, ids, params);
}

std::vector<int32_t> evalIds(const fs::path& folder)
{
    return tokenize::loadTokenizer(folder)->encodeForModel(readTextFile(testing::demoEvalText()));
}

// Every parameter of `a` equals the one of `b` bit for bit (float32 compare; -0 == 0).
void compareParameters(const model::CausalLM& a, const model::CausalLM& b)
{
    for (const auto& [name, t] : a.parameters()) {
        std::string other = name;
        if (!b.parameters().count(other) && name == "lm_head.weight")
            other = "model.embed_tokens.weight"; // a tied checkpoint stored under lm_head
        QVERIFY2(b.parameters().count(other), name.c_str());
        QVERIFY2(torch::equal(t, b.parameters().at(other)), name.c_str());
    }
}

// The vocab test files: each input followed by "\n__ggml_vocab_test__\n"; one id line per input.
std::vector<std::pair<std::string, std::vector<int32_t>>> vocabCases(const fs::path& stem)
{
    const std::string inp = readTextFile(stem.string() + ".inp");
    const std::string out = readTextFile(stem.string() + ".out");
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    for (size_t pos = 0, hit; (hit = inp.find(sep, pos)) != std::string::npos; pos = hit + sep.size())
        inputs.push_back(inp.substr(pos, hit - pos));
    std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
    size_t lineStart = 0;
    for (const std::string& input : inputs) {
        const size_t end = out.find('\n', lineStart);
        std::istringstream line(out.substr(lineStart, end - lineStart));
        std::vector<int32_t> ids;
        for (int32_t id; line >> id;)
            ids.push_back(id);
        cases.emplace_back(input, ids);
        lineStart = end + 1;
    }
    return cases;
}

// ---- raw GGUF bytes for the malformed-file table --------------------------------------------

class Raw {
public:
    Raw& u32(uint32_t v) { return put(v); }
    Raw& u64(uint64_t v) { return put(v); }
    Raw& i64(int64_t v) { return put(v); }
    Raw& str(const std::string& s)
    {
        u64(s.size());
        m_bytes.append(s.data(), qsizetype(s.size()));
        return *this;
    }
    Raw& bytes(const QByteArray& b)
    {
        m_bytes += b;
        return *this;
    }
    Raw& padTo(int alignment)
    {
        while (m_bytes.size() % alignment)
            m_bytes += '\0';
        return *this;
    }
    [[nodiscard]] const QByteArray& data() const { return m_bytes; }

private:
    template <typename T> Raw& put(T v)
    {
        m_bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
        return *this;
    }
    QByteArray m_bytes;
};

// A valid file: 1 key (general.alignment = 32), 2 F32 tensors of 8 values ("a", "b").
// `mutate` may rewrite any field through the parameters.
struct RawSpec {
    std::string magic = "GGUF";
    uint32_t version = 3;
    uint64_t nTensors = 2;
    uint64_t nKv = 1;
    uint32_t alignmentType = 4;  // UINT32
    uint32_t alignment = 32;
    std::string nameA = "a", nameB = "b";
    uint32_t dimsA = 1;
    int64_t neA = 8;
    uint32_t typeA = 0;
    uint64_t offsetA = 0, offsetB = 32;
    int dataBytes = 64;
};

QByteArray rawFile(const RawSpec& s)
{
    Raw r;
    r.bytes(QByteArray(s.magic.data(), qsizetype(s.magic.size()))).u32(s.version).u64(s.nTensors).u64(s.nKv);
    r.str("general.alignment").u32(s.alignmentType).u32(s.alignment);
    r.str(s.nameA).u32(s.dimsA);
    for (uint32_t d = 0; d < s.dimsA && d < 8; ++d)
        r.i64(d == 0 ? s.neA : 1);
    r.u32(s.typeA).u64(s.offsetA);
    r.str(s.nameB).u32(1).i64(8).u32(0).u64(s.offsetB);
    r.padTo(32);
    return r.data() + QByteArray(s.dataBytes, '\x11');
}

void writeBytes(const fs::path& path, const QByteArray& bytes)
{
    QFile f(QString::fromStdString(path.string()));
    QVERIFY(f.open(QIODevice::WriteOnly));
    QCOMPARE(f.write(bytes), bytes.size());
}

} // namespace

class TestGguf : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void stringsMustBeUtf8();
    void fp16Conversion();
    void q8_0HandBlock();
    void q4_0HandBlocks();
    void zeroBlocks();
    void packGrids();
    void writerReaderRoundTrip();
    void customAlignment();
    void ropePermutation();
    void demoF32RoundTrip();
    void demoQuantizedTypes_data();
    void demoQuantizedTypes();
    void gridExportIsLossless();
    void exportCancelWritesNothing();
    void tinyStories656KRoundTrip();
    void tinyStories656KMatchesLlamaQuantize_data();
    void tinyStories656KMatchesLlamaQuantize();
    void vocabOnlyFiles_data();
    void vocabOnlyFiles();
    void malformed_data();
    void malformed();
    void llamaLevelErrors_data();
    void llamaLevelErrors();

private:
    QTemporaryDir m_dir;
};

void TestGguf::fp16Conversion()
{
    QCOMPARE(fp32ToFp16(1.0f), uint16_t(0x3c00));
    QCOMPARE(fp32ToFp16(-2.0f), uint16_t(0xc000));
    QCOMPARE(fp32ToFp16(65504.0f), uint16_t(0x7bff));  // largest half
    QCOMPARE(fp32ToFp16(65519.0f), uint16_t(0x7bff));  // below the rounding midpoint
    QCOMPARE(fp32ToFp16(65520.0f), uint16_t(0x7c00));  // midpoint, ties to even: infinity
    QCOMPARE(fp32ToFp16(0x1p-24f), uint16_t(0x0001));  // smallest subnormal
    QCOMPARE(fp32ToFp16(0x1p-25f), uint16_t(0x0000));  // half of it: ties to even (0)
    QCOMPARE(fp32ToFp16(0x1.8p-25f), uint16_t(0x0001)); // above the midpoint
    QCOMPARE(fp32ToFp16(0x1.8p-24f), uint16_t(0x0002)); // 1.5 units: ties to even (2)
    QCOMPARE(fp32ToFp16(0x1p-14f), uint16_t(0x0400));  // smallest normal
    QCOMPARE(fp32ToFp16(1.0f / 3.0f), uint16_t(0x3555));
    QCOMPARE(fp32ToFp16(1.0f + 0x1p-11f), uint16_t(0x3c00)); // midpoint, even stays
    QCOMPARE(fp32ToFp16(1.0f + 0x1.8p-11f), uint16_t(0x3c01));
    QCOMPARE(fp32ToFp16(-0.0f), uint16_t(0x8000));
    QCOMPARE(fp32ToFp16(INFINITY), uint16_t(0x7c00));
    QCOMPARE(fp32ToFp16(1e30f), uint16_t(0x7c00));
    QVERIFY((fp32ToFp16(NAN) & 0x7c00) == 0x7c00 && (fp32ToFp16(NAN) & 0x3ff) != 0);
    // Every half survives half → float → half (NaNs stay NaN).
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float f = fp16ToFp32(uint16_t(h));
        if (std::isnan(f))
            QVERIFY(std::isnan(fp16ToFp32(fp32ToFp16(f))));
        else
            QCOMPARE(fp32ToFp16(f), uint16_t(h));
    }
    QCOMPARE(fp16ToFp32(0x0001), 0x1p-24f);
    QCOMPARE(fp16ToFp32(0x3555), 0.333251953125f);
    QCOMPARE(bf16ToFp32(0x3f80), 1.0f);
}

// amax = 127 → d = 1 exactly, so q = round-half-away-from-zero(x).
void TestGguf::q8_0HandBlock()
{
    std::vector<float> x(32, 0.0f);
    x[0] = -127.0f;
    x[1] = 1.4f;
    x[2] = -2.6f;
    x[3] = 100.5f;  // tie: away from zero → 101
    x[4] = -100.5f; // → -101
    x[5] = 0.49f;
    x[6] = 126.6f;
    x[31] = -0.5f; // → -1
    std::vector<std::byte> block(kQ8_0BlockBytes);
    quantizeRowQ8_0(x, block);
    std::vector<std::byte> expected = bytesOf({0x00, 0x3c, -127, 1, -3, 101, -101, 0, 127});
    expected.resize(kQ8_0BlockBytes, std::byte{0});
    expected[2 + 31] = std::byte(uint8_t(-1));
    QVERIFY(block == expected);

    std::vector<float> back(32);
    dequantizeRowQ8_0(block, back);
    QCOMPARE(back[0], -127.0f);
    QCOMPARE(back[3], 101.0f);
    QCOMPARE(back[31], -1.0f);

    // A non-trivial scale: amax = 2 → d = 2/127, fp16 0x2408 (2^-6 · 1.0078125), q = round(x · 63.5).
    std::vector<float> y(32, 0.0f);
    y[0] = 2.0f;
    y[1] = -1.01f; // -64.1 → -64
    y[2] = 0.5f;  // 31.75 → 32
    quantizeRowQ8_0(y, block);
    QCOMPARE(uint8_t(block[0]), uint8_t(0x08));
    QCOMPARE(uint8_t(block[1]), uint8_t(0x24));
    QCOMPARE(int8_t(uint8_t(block[2])), int8_t(127));
    QCOMPARE(int8_t(uint8_t(block[3])), int8_t(-64));
    QCOMPARE(int8_t(uint8_t(block[4])), int8_t(32));
    dequantizeRowQ8_0(block, back);
    QCOMPARE(back[1], -64.0f * fp16ToFp32(0x2408));
}

void TestGguf::q4_0HandBlocks()
{
    // Block 1: the largest magnitude is -8 → d = -8 / -8 = 1, id = 1; q = min(15, trunc(x + 8.5)).
    // Block 2: the largest magnitude is +8 → d = -1, id = -1; q = min(15, trunc(8.5 - x)).
    // Block 3: max 2 → d = -0.25 (fp16 0xb400), id = -4.
    std::vector<float> x(96, 0.0f);
    const float b1[8] = {-8.0f, 7.0f, 7.4f, -0.5f, 0.49f, 0.5f, -3.2f, 2.0f};
    std::copy(b1, b1 + 8, x.begin());
    x[16] = 6.0f;  // high nibble of byte 0
    x[17] = -6.0f; // high nibble of byte 1
    x[32] = 8.0f;
    x[33] = -7.0f;
    x[34] = 3.0f;
    x[64] = 2.0f;
    x[65] = 0.3f;  // 0.3·-4 + 8.5 = 7.3 → 7 → value (7-8)·-0.25 = 0.25
    x[66] = -1.1f; // 4.4 + 8.5 = 12.9 → 12 → -1.0
    std::vector<std::byte> blocks(3 * kQ4_0BlockBytes);
    quantizeRowQ4_0(x, blocks);

    // Block 1 codes: -8→0, 7→15, 7.4→15 (15.9, clamped), -0.5→8, 0.49→8, 0.5→9, -3.2→5, 2→10, zeros→8.
    std::vector<std::byte> e1 = bytesOf({0x00, 0x3c,
                                         0x00 | (14 << 4), 15 | (2 << 4), 15 | (8 << 4), 8 | (8 << 4), 8 | (8 << 4),
                                         9 | (8 << 4), 5 | (8 << 4), 10 | (8 << 4)});
    e1.resize(kQ4_0BlockBytes, std::byte{0x88});
    QVERIFY(std::equal(e1.begin(), e1.end(), blocks.begin()));
    // Block 2: d = -1 (0xbc00); 8 → 0, -7 → 15, 3 → 5, zeros → 8.
    std::vector<std::byte> e2 = bytesOf({0x00, 0xbc, 0x80, 0x8f, 0x85});
    e2.resize(kQ4_0BlockBytes, std::byte{0x88});
    QVERIFY(std::equal(e2.begin(), e2.end(), blocks.begin() + kQ4_0BlockBytes));
    // Block 3: d = -0.25 (0xb400); 2 → 0, 0.3 → 7, -1.1 → 12.
    std::vector<std::byte> e3 = bytesOf({0x00, 0xb4, 0x80, 0x87, 0x8c});
    e3.resize(kQ4_0BlockBytes, std::byte{0x88});
    QVERIFY(std::equal(e3.begin(), e3.end(), blocks.begin() + 2 * kQ4_0BlockBytes));

    std::vector<float> back(96);
    dequantizeRowQ4_0(blocks, back);
    QCOMPARE(back[0], -8.0f);
    QCOMPARE(back[2], 7.0f);
    QCOMPARE(back[3], 0.0f);
    QCOMPARE(back[5], 1.0f);
    QCOMPARE(back[6], -3.0f);
    QCOMPARE(back[16], 6.0f);
    QCOMPARE(back[32], 8.0f);
    QCOMPARE(back[33], -7.0f);
    QCOMPARE(back[64], 2.0f);
    QCOMPARE(back[65], 0.25f);
    QCOMPARE(back[66], -1.0f);
}

void TestGguf::zeroBlocks()
{
    const std::vector<float> zeros(32, 0.0f);
    std::vector<std::byte> q8(kQ8_0BlockBytes), q4(kQ4_0BlockBytes);
    quantizeRowQ8_0(zeros, q8);
    quantizeRowQ4_0(zeros, q4);
    QVERIFY(std::all_of(q8.begin(), q8.end(), [](std::byte b) { return b == std::byte{0}; }));
    QCOMPARE(uint8_t(q4[0]), uint8_t(0));
    QVERIFY(std::all_of(q4.begin() + 2, q4.end(), [](std::byte b) { return b == std::byte{0x88}; }));
    // Exact zeros inside a block (pruned weights) stay exact zeros.
    std::vector<float> sparse(32, 0.0f);
    sparse[3] = 0.7f;
    sparse[20] = -0.2f;
    quantizeRowQ4_0(sparse, q4);
    std::vector<float> back(32);
    dequantizeRowQ4_0(q4, back);
    for (int j = 0; j < 32; ++j)
        if (sparse[j] == 0.0f)
            QCOMPARE(back[j], 0.0f);
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, quantizeRowQ8_0(std::vector<float>(33), q8));
}

void TestGguf::packGrids()
{
    // GPTQ 4-bit: value = scale · (q − 8); 8-bit: value = scale · (q − 128).
    std::vector<uint8_t> codes4(32), codes8(32);
    for (int j = 0; j < 32; ++j) {
        codes4[j] = uint8_t(j % 16);
        codes8[j] = uint8_t(j * 8);
    }
    const std::vector<float> scale = {0.0078125f}; // 2^-7, fp16-exact
    std::vector<std::byte> q4(kQ4_0BlockBytes), q8(kQ8_0BlockBytes);
    packQ4_0(scale, codes4, q4);
    packQ8_0(scale, codes8, q8);
    QCOMPARE(uint8_t(q4[2]), uint8_t(0x00)); // codes 0 (low) and 16 % 16 = 0 (high)
    QCOMPARE(uint8_t(q4[3]), uint8_t(0x11));
    std::vector<float> back(32);
    dequantizeRowQ4_0(q4, back);
    for (int j = 0; j < 32; ++j)
        QCOMPARE(back[j], 0.0078125f * float(int(codes4[j]) - 8));
    dequantizeRowQ8_0(q8, back);
    for (int j = 0; j < 32; ++j)
        QCOMPARE(back[j], 0.0078125f * float(int(codes8[j]) - 128));

    const std::vector<float> notHalf = {0.1f}; // 0.1 is not an fp16 value
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, packQ4_0(notHalf, codes4, q4));
    codes4[5] = 16;
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, packQ4_0(scale, codes4, q4));
}

void TestGguf::writerReaderRoundTrip()
{
    const fs::path file = m_dir.filePath("kv.gguf").toStdString();
    GgufWriter w;
    w.set("u8", GgufValue::u8(200));
    w.set("i8", GgufValue::i8(-5));
    w.set("u16", GgufValue::u16(65000));
    w.set("i16", GgufValue::i16(-30000));
    w.set("u32", GgufValue::u32(4000000000u));
    w.set("i32", GgufValue::i32(-2000000000));
    w.set("u64", GgufValue::u64(18000000000000000000ull));
    w.set("i64", GgufValue::i64(-9000000000000000000ll));
    w.set("f32", GgufValue::f32(0.1f));
    w.set("f64", GgufValue::f64(0.1));
    w.set("bool", GgufValue::boolean(true));
    w.set("str", GgufValue::string("héllo ▁"));
    w.set("strs", GgufValue::stringArray({"a", "", "▁b"}));
    w.set("ints", GgufValue::intArray(GgufValueType::Int32, {1, -2, 3}));
    w.set("floats", GgufValue::realArray(GgufValueType::Float32, {0.5, -1.25}));
    w.set("empty", GgufValue::intArray(GgufValueType::UInt8, {}));
    const std::vector<float> x = {1, 2, 3, 4, 5};                        // 20 bytes → padded to 32
    const std::vector<uint16_t> h = {0x3c00, 0xc000, 0x0001, 0x7bff};   // [2, 2]
    w.addTensor("x", GgmlType::F32, {5}, rawBytes(x));
    w.addTensor("h", GgmlType::F16, {2, 2}, rawBytes(h));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, w.addTensor("x", GgmlType::F32, {1}, rawBytes(std::vector<float>{1})));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, w.addTensor("q", GgmlType::Q4_0, {16}, std::vector<std::byte>(9)));
    w.write(file);

    const GgufFile f = GgufFile::open(file);
    QCOMPARE(f.version(), 3u);
    QCOMPARE(f.alignment(), 32u);
    QCOMPARE(f.metadata().size(), size_t(16));
    QCOMPARE(f.metadata().front().first, std::string("u8"));
    QCOMPARE(*f.find("u8")->asInt(), int64_t(200));
    QCOMPARE(*f.find("i8")->asInt(), int64_t(-5));
    QCOMPARE(*f.find("u16")->asInt(), int64_t(65000));
    QCOMPARE(*f.find("i16")->asInt(), int64_t(-30000));
    QCOMPARE(*f.find("u32")->asInt(), int64_t(4000000000ll));
    QCOMPARE(*f.find("i32")->asInt(), int64_t(-2000000000));
    QVERIFY(!f.find("u64")->asInt()); // above INT64_MAX
    QCOMPARE(uint64_t(f.find("u64")->ints()[0]), 18000000000000000000ull);
    QCOMPARE(*f.find("i64")->asInt(), int64_t(-9000000000000000000ll));
    QCOMPARE(*f.find("f32")->asReal(), double(0.1f));
    QCOMPARE(*f.find("f64")->asReal(), 0.1);
    QCOMPARE(*f.find("bool")->asBool(), true);
    QCOMPARE(*f.find("str")->asString(), std::string("héllo ▁"));
    QCOMPARE(f.find("strs")->strings(), (std::vector<std::string>{"a", "", "▁b"}));
    QCOMPARE(f.find("ints")->elementType(), GgufValueType::Int32);
    QCOMPARE(f.find("ints")->ints(), (std::vector<int64_t>{1, -2, 3}));
    QCOMPARE(f.find("floats")->reals(), (std::vector<double>{0.5, -1.25}));
    QCOMPARE(f.find("empty")->size(), size_t(0));
    QVERIFY(*f.find("strs") == *w.find("strs"));

    QCOMPARE(f.tensors().size(), size_t(2));
    const GgufTensorInfo& tx = *f.findTensor("x");
    const GgufTensorInfo& th = *f.findTensor("h");
    QCOMPARE(tx.offset, uint64_t(0));
    QCOMPARE(th.offset, uint64_t(32)); // 20 bytes padded to the alignment
    QCOMPARE(f.dataOffset() % 32, uint64_t(0));
    QCOMPARE(uint64_t(fs::file_size(file)), f.dataOffset() + 64); // the last tensor is padded too
    QCOMPARE(f.dequantize(tx), x);
    QCOMPARE(f.dequantize(th), (std::vector<float>{1.0f, -2.0f, 0x1p-24f, 65504.0f}));
    QCOMPARE(th.torchShape(), (std::vector<int64_t>{2, 2}));

    // The first bytes, by hand: magic, version 3, 2 tensors, 16 keys, then key "u8".
    const std::string head = readTextFile(file).substr(0, 34);
    const std::string expected = std::string("GGUF\x03\0\0\0", 8) + std::string("\x02\0\0\0\0\0\0\0", 8)
                                 + std::string("\x10\0\0\0\0\0\0\0", 8) + std::string("\x02\0\0\0\0\0\0\0u8", 10);
    QCOMPARE(head, expected);
}

void TestGguf::customAlignment()
{
    const fs::path file = m_dir.filePath("align64.gguf").toStdString();
    GgufWriter w(64);
    w.addTensor("a", GgmlType::F32, {3}, rawBytes(std::vector<float>{1, 2, 3}));
    w.addTensor("b", GgmlType::F32, {1}, rawBytes(std::vector<float>{4}));
    w.write(file);
    const GgufFile f = GgufFile::open(file);
    QCOMPARE(f.alignment(), 64u);
    QCOMPARE(f.dataOffset() % 64, uint64_t(0));
    QCOMPARE(f.findTensor("b")->offset, uint64_t(64));
    QCOMPARE(f.dequantize(*f.findTensor("b")), std::vector<float>{4});
}

void TestGguf::ropePermutation()
{
    // 2 heads of 4 rows (hd = 4): HF rows [h0: 0 1 | 2 3, h1: 4 5 | 6 7] → GGUF [0 2 1 3 4 6 5 7],
    // exactly convert_hf_to_gguf.py's reshape(2, 2, 2).swapaxes(1, 2).
    std::vector<float> rows = {0, 1, 2, 3, 4, 5, 6, 7};
    std::span<std::byte> bytes(reinterpret_cast<std::byte*>(rows.data()), rows.size() * 4);
    permuteRopeRows(bytes, 8, 4, 2, true);
    QCOMPARE(rows, (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
    permuteRopeRows(bytes, 8, 4, 2, false);
    QCOMPARE(rows, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
    // hd = 8: [0..3 | 4..7] → 0 4 1 5 2 6 3 7.
    permuteRopeRows(bytes, 8, 4, 1, true);
    QCOMPARE(rows, (std::vector<float>{0, 4, 1, 5, 2, 6, 3, 7}));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, permuteRopeRows(bytes, 8, 4, 3, true));
}

// Export F32 → import → identical tensors, tokens and perplexity.
void TestGguf::demoF32RoundTrip()
{
    const fs::path gguf = m_dir.filePath("demo-f32.gguf").toStdString();
    exporting::GgufExportParams params;
    params.type = GgufFileType::F32;
    const auto summary = exporting::exportGguf(demoModel(), gguf, params);
    QCOMPARE(summary.tensors, int64_t(1 + 5 * 9 + 1)); // tied: no output.weight
    QCOMPARE(summary.tensorTypes.at("F32"), summary.tensors);
    QCOMPARE(summary.bytes, uint64_t(fs::file_size(gguf)));

    const GgufFile f = GgufFile::open(gguf);
    QCOMPARE(*f.find("general.architecture")->asString(), std::string("llama"));
    QCOMPARE(*f.find("general.name")->asString(), std::string("stories260K-hf"));
    QCOMPARE(*f.find("general.file_type")->asInt(), int64_t(0));
    QCOMPARE(*f.find("general.alignment")->asInt(), int64_t(32));
    QCOMPARE(*f.find("llama.block_count")->asInt(), int64_t(5));
    QCOMPARE(*f.find("llama.attention.head_count_kv")->asInt(), int64_t(4));
    QCOMPARE(*f.find("llama.rope.dimension_count")->asInt(), int64_t(8));
    QCOMPARE(*f.find("llama.attention.layer_norm_rms_epsilon")->asReal(), double(1e-5f));
    QCOMPARE(*f.find("tokenizer.ggml.model")->asString(), std::string("llama"));
    QCOMPARE(f.find("tokenizer.ggml.tokens")->size(), size_t(512));
    QCOMPARE(*f.find("tokenizer.ggml.bos_token_id")->asInt(), int64_t(1));
    QCOMPARE(*f.find("tokenizer.ggml.eos_token_id")->asInt(), int64_t(2));
    QCOMPARE(*f.find("tokenizer.ggml.unknown_token_id")->asInt(), int64_t(0));
    QCOMPARE(*f.find("tokenizer.ggml.add_bos_token")->asBool(), true);
    QVERIFY(!f.findTensor("output.weight"));
    const GgufTensorInfo& q = *f.findTensor("blk.0.attn_q.weight");
    QCOMPARE(q.ne, (std::vector<int64_t>{64, 64}));
    QCOMPARE(f.findTensor("blk.0.attn_k.weight")->ne, (std::vector<int64_t>{64, 32}));
    QCOMPARE(f.findTensor("blk.0.ffn_down.weight")->ne, (std::vector<int64_t>{172, 64}));
    // Row 1 of attn_q in the file is HF row hd/2 = 4 (rotate-half → interleaved pairs).
    const std::vector<float> qFile = f.dequantize(q);
    const torch::Tensor qHf = demoModel().parameters().at("model.layers.0.self_attn.q_proj.weight");
    QCOMPARE(qFile[64 + 5], qHf[4][5].item<float>());
    QCOMPARE(qFile[2 * 64 + 5], qHf[1][5].item<float>());

    const fs::path folder = m_dir.filePath("demo-f32-imported").toStdString();
    importGgufAsHfFolder(gguf, folder);
    QVERIFY(fs::exists(folder / "tokenizer.model"));
    const auto imported = model::CausalLM::load(folder);
    QVERIFY(imported->config().tieWordEmbeddings);
    QCOMPARE(imported->config().normEps, demoModel().config().normEps);
    compareParameters(demoModel(), *imported);

    const std::vector<int32_t> ids = evalIds(testing::demoModelDir());
    QCOMPARE(evalIds(folder), ids);
    torch::NoGradGuard noGrad;
    const auto a = demoPerplexity(demoModel(), ids);
    const auto b = demoPerplexity(*imported, ids);
    qInfo("stories260K-hf @256, 32 windows: source %.6f, F32 GGUF round trip %.6f", a.perplexity, b.perplexity);
    QCOMPARE(b.perplexity, a.perplexity);
    QCOMPARE(b.windowLoss, a.windowLoss);

    // The same through resolveModelPath (the hook loaders use), converted once per process.
    const fs::path resolved = resolveModelPath(gguf);
    QVERIFY(resolved != gguf);
    QCOMPARE(resolveModelPath(gguf), resolved);
    QCOMPARE(resolveModelPath(testing::demoModelDir()), testing::demoModelDir());
    compareParameters(demoModel(), *model::CausalLM::load(resolved));
}

void TestGguf::demoQuantizedTypes_data()
{
    QTest::addColumn<QString>("type");
    QTest::newRow("f16") << "f16";
    QTest::newRow("q8_0") << "q8_0";
    QTest::newRow("q4_0") << "q4_0";
}

// Read-back values equal the writer's own encoding of the source, tensor by tensor, and
// widths that are not a multiple of 32 (ffn_down: 172) fall back to F16.
void TestGguf::demoQuantizedTypes()
{
    QFETCH(QString, type);
    const GgufFileType fileType = *parseGgufFileType(type.toStdString());
    const fs::path gguf = m_dir.filePath("demo-" + type + ".gguf").toStdString();
    exporting::GgufExportParams params;
    params.type = fileType;
    (void)exporting::exportGguf(demoModel(), gguf, params);

    const GgufFile f = GgufFile::open(gguf);
    QCOMPARE(*f.find("general.file_type")->asInt(), int64_t(llamaFtype(fileType)));
    const LlamaGguf described = describeLlamaGguf(f);
    for (const LlamaTensorEntry& e : described.tensors) {
        std::string sourceName = e.hfName;
        const torch::Tensor src = demoModel().parameters().at(sourceName).contiguous();
        const std::span<const float> x(src.data_ptr<float>(), size_t(src.numel()));
        std::vector<float> expected(x.size());
        const bool matrix = e.hfShape.size() == 2;
        const bool blocks = matrix && e.hfShape[1] % 32 == 0;
        if (!matrix) {
            QCOMPARE(e.type, GgmlType::F32);
            expected.assign(x.begin(), x.end());
        } else if (fileType == GgufFileType::F16 || !blocks) {
            QCOMPARE(e.type, GgmlType::F16);
            for (size_t i = 0; i < x.size(); ++i)
                expected[i] = fp16ToFp32(fp32ToFp16(x[i]));
        } else {
            const bool q8 = fileType == GgufFileType::Q8_0;
            QCOMPARE(e.type, q8 ? GgmlType::Q8_0 : GgmlType::Q4_0);
            std::vector<std::byte> enc(ggmlBytes(e.type, int64_t(x.size())));
            q8 ? quantizeRowQ8_0(x, enc) : quantizeRowQ4_0(x, enc);
            q8 ? dequantizeRowQ8_0(enc, expected) : dequantizeRowQ4_0(enc, expected);
        }
        QVERIFY2(readLlamaTensor(f, e) == expected, e.hfName.c_str());
    }
    QVERIFY(f.find("general.quantization_version") != nullptr || fileType == GgufFileType::F16);

    // The imported model evaluates; its perplexity is close to the source's.
    const auto imported = model::CausalLM::load(resolveModelPath(gguf));
    const std::vector<int32_t> ids = evalIds(testing::demoModelDir());
    torch::NoGradGuard noGrad;
    const double base = demoPerplexity(demoModel(), ids).perplexity;
    const double ppl = demoPerplexity(*imported, ids).perplexity;
    qInfo("stories260K-hf @256, 32 windows: %s GGUF %.5f (source %.5f)", qPrintable(type), ppl, base);
    QVERIFY(std::abs(ppl - base) / base < (fileType == GgufFileType::Q4_0 ? 0.5 : 0.01));
}

// A 4-bit group-32 symmetric grid (and an 8-bit one) with fp16 scales is exported exactly.
void TestGguf::gridExportIsLossless()
{
    auto model = model::CausalLM::load(testing::demoModelDir());
    exporting::GgufExportParams params;
    params.type = GgufFileType::F32; // grids decide their own tensors' type; the rest stays exact
    for (int64_t b = 0; b < model->numBlocks(); ++b)
        for (model::LinearLayer& layer : model->linears(b)) {
            const int64_t rows = layer.weight.size(0), cols = layer.weight.size(1);
            if (cols % 32 != 0)
                continue; // ffn_down (172 columns) has no Q4_0 layout
            const int bits = layer.kind == "mlp.up_proj" ? 8 : 4;
            const int maxq = (1 << bits) - 1, zero = 1 << (bits - 1);
            GgufQuantGrid grid;
            grid.bits = bits;
            torch::Tensor w = layer.weight.contiguous();
            float* wp = w.data_ptr<float>();
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t g = 0; g < cols / 32; ++g) {
                    float amax = 0.0f;
                    for (int64_t c = 0; c < 32; ++c)
                        amax = std::max(amax, std::abs(wp[r * cols + g * 32 + c]));
                    // GPTQ's symmetric scale, rounded to fp16 before quantizing with it.
                    const float scale = fp16ToFp32(fp32ToFp16(std::max(2.0f * amax / float(maxq), 1e-4f)));
                    grid.scales.push_back(scale);
                    for (int64_t c = 0; c < 32; ++c) {
                        float& v = wp[r * cols + g * 32 + c];
                        const int q = std::clamp(int(std::nearbyint(v / scale)) + zero, 0, maxq);
                        grid.codes.push_back(uint8_t(q));
                        v = scale * float(q - zero);
                    }
                }
            layer.weight.copy_(w);
            params.grids.emplace(layer.name, std::move(grid));
        }
    const fs::path gguf = m_dir.filePath("demo-grid.gguf").toStdString();
    const auto summary = exporting::exportGguf(*model, gguf, params);
    QCOMPARE(summary.tensorTypes.at("Q4_0"), int64_t(5 * 5)); // q, k, v, o, gate per block
    QCOMPARE(summary.tensorTypes.at("Q8_0"), int64_t(5));     // up
    const auto imported = model::CausalLM::load(resolveModelPath(gguf));
    for (int64_t b = 0; b < model->numBlocks(); ++b)
        for (const model::LinearLayer& layer : model->linears(b))
            if (params.grids.count(layer.name))
                QVERIFY2(torch::equal(layer.weight, imported->parameters().at(layer.name)), layer.name.c_str());
    const std::vector<int32_t> ids = evalIds(testing::demoModelDir());
    torch::NoGradGuard noGrad;
    QCOMPARE(demoPerplexity(*imported, ids).perplexity, demoPerplexity(*model, ids).perplexity);

    // A grid that does not reproduce the weight is refused, and nothing is written.
    auto& grid = params.grids.begin()->second;
    grid.codes[0] = uint8_t(grid.codes[0] == 0 ? 1 : 0);
    const fs::path bad = m_dir.filePath("demo-grid-bad.gguf").toStdString();
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, (void)exporting::exportGguf(*model, bad, params));
    QVERIFY(!fs::exists(bad));
    params.grids.clear();
    params.grids["model.layers.0.mlp.down_proj.weight"] = GgufQuantGrid{};
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, (void)exporting::exportGguf(*model, bad, params));
}

void TestGguf::exportCancelWritesNothing()
{
    const fs::path gguf = m_dir.filePath("cancelled.gguf").toStdString();
    CancelToken token;
    int64_t calls = 0;
    const ProgressCallback progress = [&](const Progress& p) {
        QCOMPARE(p.stage, std::string("gguf"));
        if (++calls == 10)
            token.cancel();
    };
    exporting::GgufExportParams params;
    QVERIFY_THROWS_EXCEPTION(CancelledError, (void)exporting::exportGguf(demoModel(), gguf, params, progress, &token));
    QVERIFY(!fs::exists(gguf));
    for (const auto& entry : fs::directory_iterator(m_dir.path().toStdString()))
        QVERIFY2(entry.path().filename().string().find("cancelled") == std::string::npos, entry.path().c_str());
}

// tokenizer.json (SentencePiece-style BPE, scores from merge ranks) and a tied lm_head stored
// under its own name: tokens and perplexity survive export → import.
void TestGguf::tinyStories656KRoundTrip()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    const fs::path source = testing::sharedDataDir() / "models" / "tinystories-656k-hf";
    const auto model = model::CausalLM::load(source);
    const fs::path gguf = m_dir.filePath("ts656k-f32.gguf").toStdString();
    exporting::GgufExportParams params;
    params.type = GgufFileType::F32;
    (void)exporting::exportGguf(*model, gguf, params);
    const GgufFile f = GgufFile::open(gguf);
    const GgufVocab vocab = vocabFromGguf(f);
    QCOMPARE(vocab.model, std::string("llama"));
    QCOMPARE(vocab.tokens.size(), size_t(2048));
    QCOMPARE(vocab.tokens[1], std::string("<|start_story|>"));
    QCOMPARE(vocab.tokenTypes[1], int32_t(GgufTokenType::Control));
    QCOMPARE(vocab.tokenTypes[0], int32_t(GgufTokenType::Unknown));
    QCOMPARE(*vocab.bosId, 1);
    QCOMPARE(vocab.scores[81], -0.0f); // "e▁", made by the first merge
    QCOMPARE(vocab.scores[82], -1.0f);

    const fs::path folder = resolveModelPath(gguf);
    const auto imported = model::CausalLM::load(folder);
    compareParameters(*model, *imported);
    const std::vector<int32_t> ids = evalIds(source);
    const std::vector<int32_t> viaGguf = evalIds(folder);
    const auto mismatch = std::mismatch(ids.begin(), ids.end(), viaGguf.begin(), viaGguf.end());
    if (mismatch.first != ids.end() || mismatch.second != viaGguf.end()) {
        const auto at = size_t(mismatch.first - ids.begin());
        const auto tok = tokenize::loadTokenizer(source);
        std::string context;
        for (size_t i = at >= 3 ? at - 3 : 0; i < std::min(ids.size(), at + 4); ++i)
            context += "[" + tok->tokenText(ids[i]) + "]";
        std::string other;
        for (size_t i = at >= 3 ? at - 3 : 0; i < std::min(viaGguf.size(), at + 4); ++i)
            other += "[" + tok->tokenText(viaGguf[i]) + "]";
        qWarning("tokenization differs at %zu of %zu/%zu: source %s, GGUF %s", at, ids.size(), viaGguf.size(),
                 context.c_str(), other.c_str());
    }
    QCOMPARE(viaGguf, ids);

    // Without the stored tokenizer.json, the vocabulary reads as llama.cpp reads it: the same
    // merges (scores from merge ranks), but a run of unknown characters gives one <unk> per
    // character instead of one in all (tokenizer.json's fuse_unk).
    GgufVocab plain = vocab;
    plain.huggingFaceJson.clear();
    const fs::path plainFolder = m_dir.filePath("ts656k-ggml-vocab").toStdString();
    fs::create_directories(plainFolder);
    writeHfTokenizer(plain, plainFolder, gguf);
    QVERIFY(fs::exists(plainFolder / "tokenizer.model"));
    std::vector<int32_t> llamaCppStyle = tokenize::loadTokenizer(plainFolder)->encodeForModel(
        readTextFile(testing::demoEvalText()));
    const int32_t unk = *vocab.unkId;
    const size_t before = llamaCppStyle.size();
    llamaCppStyle.erase(std::unique(llamaCppStyle.begin(), llamaCppStyle.end(),
                                    [unk](int32_t a, int32_t b) { return a == unk && b == unk; }),
                        llamaCppStyle.end());
    qInfo("TinyStories-656K, tinystories_eval.txt: %zu tokens (tokenizer.json), %zu from the ggml vocabulary alone",
          ids.size(), before);
    QCOMPARE(llamaCppStyle, ids);
    torch::NoGradGuard noGrad;
    const auto a = demoPerplexity(*model, ids);
    const auto b = demoPerplexity(*imported, ids);
    qInfo("TinyStories-656K @256, 32 windows: source %.6f, F32 GGUF round trip %.6f", a.perplexity, b.perplexity);
    QCOMPARE(b.perplexity, a.perplexity);
}

void TestGguf::tinyStories656KMatchesLlamaQuantize_data()
{
    QTest::addColumn<QString>("type");
    QTest::addColumn<QString>("sha256");
    // SHA-256 over every tensor's bytes, tensors sorted by name, of the file that llama.cpp
    // (ggerganov/llama.cpp c392e50, built with GGML_NATIVE on x86-64) wrote with
    //   llama-quantize --pure ts656k-f32.gguf out.gguf Q4_0   (resp. Q8_0)
    // from SparseLab's own F32 export of tinystories-656k-hf: all 15 matrices quantized,
    // norms F32. SparseLab's quantizers must give the same bytes.
    QTest::newRow("q4_0") << "q4_0" << "366a5c11de8af7a6759f6e564bca862235d9898a4498852922eaea9d41a370b7";
    QTest::newRow("q8_0") << "q8_0" << "eefd5f95afeffcadb21a5b3d71718ba34c517b8120fd6cf9b8e59fec118c0684";
}

void TestGguf::tinyStories656KMatchesLlamaQuantize()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    QFETCH(QString, type);
    QFETCH(QString, sha256);
    const auto model = model::CausalLM::load(testing::sharedDataDir() / "models" / "tinystories-656k-hf");
    const fs::path gguf = m_dir.filePath("ts656k-" + type + ".gguf").toStdString();
    exporting::GgufExportParams params;
    params.type = *parseGgufFileType(type.toStdString());
    (void)exporting::exportGguf(*model, gguf, params);
    const GgufFile f = GgufFile::open(gguf);
    std::map<std::string, const GgufTensorInfo*> byName;
    for (const GgufTensorInfo& t : f.tensors())
        byName[t.name] = &t;
    Sha256 hash;
    for (const auto& [name, info] : byName) {
        const std::span<const std::byte> data = f.tensorData(*info);
        hash.update(data.data(), data.size());
    }
    QCOMPARE(QString::fromStdString(hash.finishHex()), sha256);
}

void TestGguf::vocabOnlyFiles_data()
{
    QTest::addColumn<QString>("vocab");
    QTest::newRow("llama-spm") << "llama-spm";
    QTest::newRow("gpt-2") << "gpt-2";
}

void TestGguf::vocabOnlyFiles()
{
    SPARSELAB_REQUIRE_SHARED_DATA();
    QFETCH(QString, vocab);
    const fs::path tokenizers = testing::sharedDataDir() / "tokenizers";
    const fs::path stem = tokenizers / "llama.cpp-vocab-tests" / ("ggml-vocab-" + vocab.toStdString() + ".gguf");
    const GgufFile f = GgufFile::open(stem);
    QCOMPARE(f.tensors().size(), size_t(0));
    const GgufVocab v = vocabFromGguf(f);
    const bool spm = vocab == "llama-spm";
    const auto reference = spm ? tokenize::loadSentencePieceModel(tokenizers / "llama2" / "tokenizer.model")
                               : tokenize::loadTokenizerJson(tokenizers / "gpt2" / "tokenizer.json");
    QCOMPARE(int64_t(v.tokens.size()), int64_t(reference->vocabSize()));
    for (int32_t i = 0; i < reference->vocabSize(); ++i)
        if (v.tokens[size_t(i)] != reference->tokenText(i))
            QFAIL(qPrintable(QString("token %1: '%2' in the GGUF, '%3' in the tokenizer file")
                                 .arg(i)
                                 .arg(QString::fromStdString(v.tokens[size_t(i)]))
                                 .arg(QString::fromStdString(reference->tokenText(i)))));
    if (spm) {
        QCOMPARE(v.model, std::string("llama"));
        QCOMPARE(v.tokenTypes[0], int32_t(GgufTokenType::Unknown));
        QCOMPARE(v.tokenTypes[1], int32_t(GgufTokenType::Control));
        QCOMPARE(v.tokenTypes[3], int32_t(GgufTokenType::Byte)); // <0x00>
    } else {
        QCOMPARE(v.model, std::string("gpt2"));
        QCOMPARE(v.merges.size(), size_t(50000));
        QCOMPARE(v.merges.front(), std::string("Ġ t"));
    }

    // A tokenizer rebuilt from the GGUF metadata alone gives llama.cpp's expected ids.
    const fs::path folder = m_dir.filePath("vocab-" + vocab).toStdString();
    fs::create_directories(folder);
    writeHfTokenizer(v, folder, stem);
    const auto tokenizer = tokenize::loadTokenizer(folder);
    QCOMPARE(tokenizer->vocabSize(), reference->vocabSize());
    const auto cases = vocabCases(stem);
    QCOMPARE(cases.size(), size_t(46));
    int failures = 0;
    for (const auto& [input, expected] : cases)
        if (tokenizer->encode(input) != expected && ++failures <= 3)
            qWarning("mismatch on '%s'", input.c_str());
    QCOMPARE(failures, 0);
}

void TestGguf::malformed_data()
{
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("problem");

    const auto spec = [](auto mutate) {
        RawSpec s;
        mutate(s);
        return rawFile(s);
    };
    QTest::newRow("valid") << spec([](RawSpec&) {}) << QString();
    QTest::newRow("empty file") << QByteArray() << "not a GGUF file";
    QTest::newRow("bad magic") << spec([](RawSpec& s) { s.magic = "GGML"; }) << "not a GGUF file";
    QTest::newRow("version 1") << spec([](RawSpec& s) { s.version = 1; }) << "unsupported GGUF version 1";
    QTest::newRow("version 4") << spec([](RawSpec& s) { s.version = 4; }) << "unsupported GGUF version 4";
    QTest::newRow("truncated header") << rawFile(RawSpec{}).left(12) << "truncated";
    QTest::newRow("truncated key") << rawFile(RawSpec{}).left(30) << "truncated";
    QTest::newRow("truncated value") << rawFile(RawSpec{}).left(52) << "the type of 'general.alignment'";
    QTest::newRow("truncated tensor info") << rawFile(RawSpec{}).left(70) << "truncated";
    QTest::newRow("truncated shape") << rawFile(RawSpec{}).left(110) << "truncated";
    QTest::newRow("truncated data") << spec([](RawSpec& s) { s.dataBytes = 40; }) << "outside the data section";
    QTest::newRow("kv count too large") << spec([](RawSpec& s) { s.nKv = 1ull << 60; }) << "key/value pairs cannot fit";
    QTest::newRow("tensor count too large") << spec([](RawSpec& s) { s.nTensors = 1ull << 62; }) << "tensor infos cannot fit";
    QTest::newRow("more tensors than present") << spec([](RawSpec& s) { s.nTensors = 3; }) << "tensor 2";
    QTest::newRow("string length too large") << Raw().bytes("GGUF").u32(3).u64(0).u64(1).u64(1ull << 40).bytes(QByteArray(32, 'x')).data()
                                             << "claims 1099511627776 bytes";
    QTest::newRow("unknown value type") << spec([](RawSpec& s) { s.alignmentType = 13; }) << "unknown value type 13";
    QTest::newRow("nested array")
        << Raw().bytes("GGUF").u32(3).u64(0).u64(1).str("k").u32(9).u32(9).u64(1).data() << "nested arrays";
    QTest::newRow("array count too large")
        << Raw().bytes("GGUF").u32(3).u64(0).u64(1).str("k").u32(9).u32(4).u64(1ull << 40).data() << "cannot fit";
    QTest::newRow("duplicate key")
        << Raw().bytes("GGUF").u32(3).u64(0).u64(2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).data()
        << "duplicate key 'k'";
    QTest::newRow("alignment not a power of two") << spec([](RawSpec& s) { s.alignment = 24; }) << "power of two";
    QTest::newRow("alignment of the wrong type") << spec([](RawSpec& s) { s.alignmentType = 5; }) << "power of two";
    QTest::newRow("five dimensions") << spec([](RawSpec& s) { s.dimsA = 5; }) << "5 dimensions";
    QTest::newRow("negative size") << spec([](RawSpec& s) { s.neA = -8; }) << "negative size";
    QTest::newRow("element count overflow")
        << Raw().bytes("GGUF").u32(3).u64(1).u64(0).str("t").u32(2).i64(1ll << 40).i64(1ll << 40).u32(0).u64(0).data()
        << "overflows";
    QTest::newRow("unknown ggml type") << spec([](RawSpec& s) { s.typeA = 31; }) << "unknown ggml type 31";
    QTest::newRow("row not a multiple of the block") << spec([](RawSpec& s) { s.typeA = 2; }) << "block size 32";
    QTest::newRow("unaligned offset") << spec([](RawSpec& s) { s.offsetB = 40; }) << "not a multiple of the alignment";
    QTest::newRow("offset out of range") << spec([](RawSpec& s) { s.offsetB = 1ull << 40; }) << "outside the data section";
    QTest::newRow("overlapping tensors") << spec([](RawSpec& s) { s.offsetB = 0; }) << "overlap";
    QTest::newRow("duplicate tensor name") << spec([](RawSpec& s) { s.nameB = "a"; }) << "duplicate tensor name";
    QTest::newRow("tensor name too long") << spec([](RawSpec& s) { s.nameA = std::string(65, 'x'); }) << "name longer";
}

void TestGguf::malformed()
{
    QFETCH(QByteArray, bytes);
    QFETCH(QString, problem);
    const fs::path file = m_dir.filePath(QString("malformed-%1.gguf").arg(QTest::currentDataTag())).toStdString();
    writeBytes(file, bytes);
    const QString error = errorText([&] { (void)GgufFile::open(file); });
    if (problem.isEmpty()) {
        QVERIFY2(error.isEmpty(), qPrintable(error));
        return;
    }
    QVERIFY2(error.startsWith(QString::fromStdString(file.string()) + ": "), qPrintable(error));
    QVERIFY2(error.contains(problem), qPrintable(error));
    QVERIFY(!error.contains('\n'));
}

void TestGguf::llamaLevelErrors_data()
{
    QTest::addColumn<QString>("mutation");
    QTest::addColumn<QString>("problem");
    QTest::newRow("architecture") << "architecture" << "architecture 'gpt2' is not supported";
    QTest::newRow("missing key") << "missing key" << "missing key 'llama.block_count'";
    QTest::newRow("unknown tensor") << "unknown tensor" << "tensor 'blk.9.attn_q.weight' is not part of";
    QTest::newRow("wrong shape") << "wrong shape" << "has shape [64, 60], expected [64, 64]";
    QTest::newRow("missing tensor") << "missing tensor" << "tensor 'blk.0.attn_v.weight' is missing";
    QTest::newRow("unreadable type") << "unreadable type" << "has type Q6_K";
    QTest::newRow("token count") << "token count" << "tokenizer.ggml.tokens has 511 tokens";
    QTest::newRow("bad special id") << "bad special id" << "bos_token_id = 9999";
    // NaN does not survive into config.json (JSON has no NaN): it became "absent", i.e. 10000.
    QTest::newRow("NaN freq_base") << "NaN freq_base" << "llama.rope.freq_base must be a positive finite number";
    QTest::newRow("negative epsilon") << "negative epsilon"
                                      << "llama.attention.layer_norm_rms_epsilon must be a positive finite number";
    // Absurd sizes are refused naming the GGUF key (not the config.json field of the import,
    // and not a temporary file), before anything is allocated from them.
    QTest::newRow("block count 2^40") << "block count 2^40"
                                      << "llama.block_count is 1099511627776, above the largest 10000";
    QTest::newRow("zero heads") << "zero heads" << "llama.attention.head_count must be a positive integer";
    QTest::newRow("context length 2^62") << "context length 2^62" << "llama.context_length is 4611686018427387904";
}

// Files that are valid GGUF but not a Llama model SparseLab can load.
void TestGguf::llamaLevelErrors()
{
    QFETCH(QString, mutation);
    QFETCH(QString, problem);
    // Start from the demo F32 export and rebuild it with one change.
    const fs::path base = m_dir.filePath("llama-base.gguf").toStdString();
    if (!fs::exists(base)) {
        exporting::GgufExportParams params;
        params.type = GgufFileType::F32;
        (void)exporting::exportGguf(demoModel(), base, params);
    }
    const GgufFile src = GgufFile::open(base);
    GgufWriter w;
    for (const auto& [key, value] : src.metadata()) {
        if (mutation == "architecture" && key == "general.architecture")
            w.set(key, GgufValue::string("gpt2"));
        else if (mutation == "missing key" && key == "llama.block_count")
            continue;
        else if (mutation == "NaN freq_base" && key == "llama.rope.freq_base")
            w.set(key, GgufValue::f32(std::numeric_limits<float>::quiet_NaN()));
        else if (mutation == "block count 2^40" && key == "llama.block_count")
            w.set(key, GgufValue::u64(uint64_t(1) << 40));
        else if (mutation == "zero heads" && key == "llama.attention.head_count")
            w.set(key, GgufValue::u32(0));
        else if (mutation == "context length 2^62" && key == "llama.context_length")
            w.set(key, GgufValue::u64(uint64_t(1) << 62));
        else if (mutation == "negative epsilon" && key == "llama.attention.layer_norm_rms_epsilon")
            w.set(key, GgufValue::f32(-1e-5f));
        else if (mutation == "token count" && key == "tokenizer.ggml.tokens") {
            std::vector<std::string> tokens = value.strings();
            tokens.pop_back();
            w.set(key, GgufValue::stringArray(tokens));
        } else if (mutation == "token count" && key == "tokenizer.ggml.scores") {
            std::vector<double> scores = value.reals();
            scores.pop_back();
            w.set(key, GgufValue::realArray(value.elementType(), scores));
        } else if (mutation == "token count" && key == "tokenizer.ggml.token_type") {
            std::vector<int64_t> types = value.ints();
            types.pop_back();
            w.set(key, GgufValue::intArray(value.elementType(), types));
        } else if (mutation == "bad special id" && key == "tokenizer.ggml.bos_token_id")
            w.set(key, GgufValue::u32(9999));
        else
            w.set(key, value);
    }
    for (const GgufTensorInfo& t : src.tensors()) {
        const std::span<const std::byte> data = src.tensorData(t);
        std::vector<std::byte> bytes(data.begin(), data.end());
        std::string name = t.name;
        std::vector<int64_t> ne = t.ne;
        GgmlType type = t.type;
        if (name == "blk.0.attn_q.weight") {
            if (mutation == "unknown tensor")
                name = "blk.9.attn_q.weight";
            if (mutation == "wrong shape") {
                ne = {60, 64};
                bytes.resize(60 * 64 * 4);
            }
            if (mutation == "unreadable type") {
                ne = {256, 16};
                type = GgmlType::Q6_K;
                bytes.assign(16 * 210, std::byte{0});
            }
        }
        if (mutation == "missing tensor" && name == "blk.0.attn_v.weight")
            continue;
        w.addTensor(name, type, ne, std::move(bytes));
    }
    const fs::path file = m_dir.filePath("llama-" + QString(QTest::currentDataTag()).replace(' ', '-') + ".gguf")
                              .toStdString();
    w.write(file);
    const QString error = errorText([&] {
        const GgufFile f = GgufFile::open(file);
        (void)describeLlamaGguf(f);
    });
    QVERIFY2(error.startsWith(QString::fromStdString(file.string()) + ": "), qPrintable(error));
    QVERIFY2(error.contains(problem), qPrintable(error));
    // The importer refuses it too, and leaves no folder behind.
    const fs::path folder = m_dir.filePath("llama-import-" + QString(QTest::currentDataTag()).replace(' ', '-'))
                                .toStdString();
    QVERIFY(!errorText([&] { importGgufAsHfFolder(file, folder); }).isEmpty());
    QVERIFY(!fs::exists(folder));
}

// GGUF strings are UTF-8: a value, an array element, a key or a tensor name that is not is
// refused naming it, and nothing is written.
void TestGguf::stringsMustBeUtf8()
{
    const std::string bad = "caf\xe9"; // Latin-1 é
    const auto refusal = [&](const std::function<void(GgufWriter&)>& fill) {
        GgufWriter w;
        w.set("general.architecture", GgufValue::string("llama"));
        fill(w);
        const fs::path file = m_dir.filePath("utf8.gguf").toStdString();
        const QString error = errorText([&] { w.write(file); });
        const bool written = fs::exists(file);
        fs::remove(file);
        return written ? QString("written") + error : error;
    };
    QVERIFY(refusal([&](GgufWriter& w) { w.set("general.name", GgufValue::string(bad)); })
                .contains("the value of 'general.name' is not valid UTF-8"));
    QVERIFY(refusal([&](GgufWriter& w) { w.set("tokenizer.ggml.tokens", GgufValue::stringArray({"a", "b", bad})); })
                .contains("'tokenizer.ggml.tokens' element 2 is not valid UTF-8"));
    QVERIFY(refusal([&](GgufWriter& w) { w.set(bad, GgufValue::u32(1)); }).contains("a metadata key is not valid UTF-8"));
    QVERIFY(refusal([&](GgufWriter& w) { w.addTensor(bad, GgmlType::F32, {1}, std::vector<std::byte>(4)); })
                .contains("a tensor name is not valid UTF-8"));
    QCOMPARE(refusal([&](GgufWriter& w) { w.set("general.name", GgufValue::string("caf\xc3\xa9")); }),
             QString("written"));
}

QTEST_GUILESS_MAIN(TestGguf)
#include "test_gguf.moc"
