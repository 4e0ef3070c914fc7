// The one-pass rotary embedding (model/rotary.h) against HF Llama's formula written with
// LibTorch's own operations, x·cos + rotate_half(x)·sin: bit for bit, on the transposed
// [B, H, T, hd] views the model hands it, at several head sizes; and one row by hand.

#include "model/rotary.h"

#include <torch/torch.h>

#include <QTest>

#include <cstring>

using namespace sparselab::model;

namespace {

torch::Tensor rotateHalf(const torch::Tensor& x)
{
    const int64_t half = x.size(-1) / 2;
    return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

} // namespace

class TestRotary : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void oneRowByHand()
    {
        // x = (1, 2), cos = (0.5, 0.5), sin = (0.25, 0.25):
        // out = (1·0.5 − 2·0.25, 2·0.5 + 1·0.25) = (0, 1.25).
        const float x[2] = {1.0f, 2.0f}, c[2] = {0.5f, 0.5f}, s[2] = {0.25f, 0.25f};
        float out[2] = {-1.0f, -1.0f};
        rotateHalfRows(x, 2, 2, 2, 1, 1, 2, c, s, out, 0, 1);
        QCOMPARE(out[0], 0.0f);
        QCOMPARE(out[1], 1.25f);
    }

    void matchesTheTensorFormulaBitForBit_data()
    {
        QTest::addColumn<int>("headDim");
        QTest::newRow("hd 8 (the demo)") << 8;
        QTest::newRow("hd 6") << 6;
        QTest::newRow("hd 64") << 64;
        QTest::newRow("hd 128") << 128;
    }

    void matchesTheTensorFormulaBitForBit()
    {
        QFETCH(int, headDim);
        const int64_t B = 3, T = 37, H = 5, hd = headDim;
        torch::manual_seed(7);
        // As the model makes q: a linear layer's [B, T, H·hd] output viewed as heads, transposed.
        const torch::Tensor flat = torch::randn({B, T, H * hd}) * 3.0;
        const torch::Tensor x = flat.view({B, T, H, hd}).transpose(1, 2);
        // Tables as the model's (positions · inverse frequencies, both halves equal).
        const torch::Tensor invFreq = 1.0 / torch::pow(10000.0, torch::arange(0, hd, 2).to(torch::kFloat) / double(hd));
        const torch::Tensor freqs = torch::outer(torch::arange(T).to(torch::kFloat), invFreq);
        const torch::Tensor emb = torch::cat({freqs, freqs}, -1);
        const torch::Tensor cos = emb.cos().contiguous(), sin = emb.sin().contiguous();

        const torch::Tensor expected = (x * cos + rotateHalf(x) * sin).contiguous();
        torch::Tensor got = torch::empty({B, H, T, hd});
        rotateHalfRows(x.data_ptr<float>(), x.stride(0), x.stride(1), x.stride(2), H, T, hd, cos.data_ptr<float>(),
                       sin.data_ptr<float>(), got.data_ptr<float>(), 0, B * H * T);
        QCOMPARE(std::memcmp(got.data_ptr<float>(), expected.data_ptr<float>(), size_t(expected.numel()) * sizeof(float)),
                 0);
        // Rows split over two calls give the same bits.
        torch::Tensor split = torch::empty({B, H, T, hd});
        const int64_t middle = B * H * T / 2 + 1;
        rotateHalfRows(x.data_ptr<float>(), x.stride(0), x.stride(1), x.stride(2), H, T, hd, cos.data_ptr<float>(),
                       sin.data_ptr<float>(), split.data_ptr<float>(), 0, middle);
        rotateHalfRows(x.data_ptr<float>(), x.stride(0), x.stride(1), x.stride(2), H, T, hd, cos.data_ptr<float>(),
                       sin.data_ptr<float>(), split.data_ptr<float>(), middle, B * H * T);
        QVERIFY(torch::equal(split, got));
    }
};

QTEST_GUILESS_MAIN(TestRotary)
#include "test_rotary.moc"
