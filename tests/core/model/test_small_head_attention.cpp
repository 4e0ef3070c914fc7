// The small-head attention kernel (model/small_head_attention.h) against causal softmax
// attention computed here in double precision, straight from its definition, and its
// exponential against std::exp.

#include "model/small_head_attention.h"

#include <QTest>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace sparselab::model;

namespace {

// out[g, r, t, :] = Σ_{j ≤ t} softmax_j(scale · q[g, r, t]·k[g, j]) · v[g, j], in double.
// largestScore: the largest |scale · q·k| seen, which bounds the float rounding of any
// implementation (a score rounded by ε·|s| moves its weight by about that much).
std::vector<double> referenceAttention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, int64_t groups, int64_t rep, int64_t T,
                                       int64_t hd, double scale, double& largestScore)
{
    largestScore = 0.0;
    std::vector<double> out(size_t(groups * rep * T * hd), 0.0);
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t r = 0; r < rep; ++r)
            for (int64_t t = 0; t < T; ++t) {
                const float* qt = q.data() + ((g * rep + r) * T + t) * hd;
                std::vector<double> s(size_t(t + 1));
                double m = -std::numeric_limits<double>::infinity();
                for (int64_t j = 0; j <= t; ++j) {
                    double dot = 0.0;
                    for (int64_t d = 0; d < hd; ++d)
                        dot += double(qt[d]) * double(k[size_t((g * T + j) * hd + d)]);
                    s[size_t(j)] = scale * dot;
                    largestScore = std::max(largestScore, std::abs(s[size_t(j)]));
                    m = std::max(m, s[size_t(j)]);
                }
                double sum = 0.0;
                for (auto& x : s) {
                    x = std::exp(x - m);
                    sum += x;
                }
                double* ot = out.data() + ((g * rep + r) * T + t) * hd;
                for (int64_t j = 0; j <= t; ++j)
                    for (int64_t d = 0; d < hd; ++d)
                        ot[d] += s[size_t(j)] / sum * double(v[size_t((g * T + j) * hd + d)]);
            }
    return out;
}

std::vector<float> randomValues(size_t n, float spread, std::mt19937& gen)
{
    std::normal_distribution<float> normal(0.0f, spread);
    std::vector<float> x(n);
    for (auto& value : x)
        value = normal(gen);
    return x;
}

} // namespace

class TestSmallHeadAttention : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void exponentialWithinTwoUlp()
    {
        double worst = 0.0;
        for (int i = 0; i <= 2000000; ++i) {
            const float x = -87.0f * float(i) / 2000000.0f;
            const double exact = std::exp(double(x));
            const double ulp = std::nextafter(float(exact), 2.0f) - float(exact);
            worst = std::max(worst, std::abs(double(expNonPositive(x)) - exact) / ulp);
        }
        QVERIFY2(worst <= 2.0, qPrintable(QString("worst error %1 ulp").arg(worst)));
        QCOMPARE(expNonPositive(0.0f), 1.0f);
        QCOMPARE(expNonPositive(-88.0f), 0.0f);
        QCOMPARE(expNonPositive(-std::numeric_limits<float>::infinity()), 0.0f);
        QVERIFY(std::isnan(expNonPositive(std::numeric_limits<float>::quiet_NaN())));
    }

    void matchesDefinition_data()
    {
        QTest::addColumn<int>("groups");
        QTest::addColumn<int>("rep");
        QTest::addColumn<int>("T");
        QTest::addColumn<int>("hd");
        QTest::addColumn<float>("spread"); // of q and k: scores up to about spread²·hd
        QTest::newRow("one token") << 3 << 1 << 1 << 8 << 1.0f;
        QTest::newRow("demo's heads, GQA 2, 17 tokens") << 2 << 2 << 17 << 8 << 1.0f;
        QTest::newRow("head_dim 4, GQA 4, 64 tokens") << 2 << 4 << 64 << 4 << 2.0f;
        QTest::newRow("head_dim 32, 100 tokens, peaked") << 1 << 2 << 100 << 32 << 3.0f;
        QTest::newRow("head_dim 1, 33 tokens") << 1 << 1 << 33 << 1 << 1.0f;
    }

    void matchesDefinition()
    {
        QFETCH(int, groups);
        QFETCH(int, rep);
        QFETCH(int, T);
        QFETCH(int, hd);
        QFETCH(float, spread);
        std::mt19937 gen(uint32_t(groups * 1000 + rep * 100 + T + hd));
        const auto q = randomValues(size_t(groups * rep * T * hd), spread, gen);
        const auto k = randomValues(size_t(groups * T * hd), spread, gen);
        const auto v = randomValues(size_t(groups * T * hd), 1.0f, gen);
        const float scale = 1.0f / std::sqrt(float(hd));
        std::vector<float> out(q.size(), -1.0f);
        smallHeadCausalAttention(q.data(), k.data(), v.data(), out.data(), rep, T, hd, scale, 0, groups);
        double largestScore = 0.0;
        const auto expected = referenceAttention(q, k, v, groups, rep, T, hd, scale, largestScore);
        double worst = 0.0;
        for (size_t i = 0; i < out.size(); ++i)
            worst = std::max(worst, std::abs(double(out[i]) - expected[i]));
        // |v| ≲ 4 here: a few float epsilons per unit of score, times the values' size.
        const double tolerance = 16.0 * std::numeric_limits<float>::epsilon() * (1.0 + largestScore);
        QVERIFY2(worst <= tolerance, qPrintable(QString("max |Δ| = %1 > %2").arg(worst).arg(tolerance)));
        // The first query sees only the first key: its output is v[0] exactly.
        for (int g = 0; g < groups; ++g)
            for (int r = 0; r < rep; ++r)
                for (int d = 0; d < hd; ++d)
                    QCOMPARE(out[size_t(((g * rep + r) * T) * hd + d)], v[size_t(g * T * hd + d)]);
        // Groups computed in separate calls (as threads split them) give the same bits.
        std::vector<float> split(q.size(), -1.0f);
        for (int g = 0; g < groups; ++g)
            smallHeadCausalAttention(q.data(), k.data(), v.data(), split.data(), rep, T, hd, scale, g, g + 1);
        QVERIFY(split == out);
    }
};

QTEST_APPLESS_MAIN(TestSmallHeadAttention)
#include "test_small_head_attention.moc"
