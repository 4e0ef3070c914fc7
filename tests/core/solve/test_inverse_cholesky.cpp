// solve/inverse_cholesky.h against the reference sequence cholesky → cholesky_inverse →
// cholesky(upper) written out here in float64 loops: sizes around the 32-wide leaves and their
// splits, a leading dimension wider than n, the strictly lower part left alone, and matrices
// that are not positive definite in the first, the last or only the combined diagonal block.

#include "solve/inverse_cholesky.h"

#include <QTest>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace sparselab;

namespace {

using Matrix = std::vector<double>; // n × n row-major

// H = XᵀX/t + damp·mean(diag)·I, X t × n with correlated neighbouring columns (as activations
// are), so that the factor is not close to diagonal.
Matrix correlatedSpd(int n, unsigned seed)
{
    const int t = 2 * n + 8;
    std::mt19937 generator(seed);
    std::normal_distribution<double> normal;
    std::vector<double> x(size_t(t) * n);
    for (int s = 0; s < t; ++s)
        for (int j = 0; j < n; ++j)
            x[size_t(s) * n + j] = normal(generator) + (j > 0 ? 0.7 * x[size_t(s) * n + j - 1] : 0.0);
    Matrix h(size_t(n) * n, 0.0);
    for (int s = 0; s < t; ++s)
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j)
                h[size_t(i) * n + j] += x[size_t(s) * n + i] * x[size_t(s) * n + j] / t;
    double mean = 0.0;
    for (int i = 0; i < n; ++i)
        mean += h[size_t(i) * n + i] / n;
    for (int i = 0; i < n; ++i)
        h[size_t(i) * n + i] += 0.01 * mean;
    return h;
}

// Lower Cholesky factor, textbook order.
Matrix cholesky(const Matrix& a, int n)
{
    Matrix l(size_t(n) * n, 0.0);
    for (int j = 0; j < n; ++j) {
        double d = a[size_t(j) * n + j];
        for (int k = 0; k < j; ++k)
            d -= l[size_t(j) * n + k] * l[size_t(j) * n + k];
        l[size_t(j) * n + j] = std::sqrt(d);
        for (int i = j + 1; i < n; ++i) {
            double s = a[size_t(i) * n + j];
            for (int k = 0; k < j; ++k)
                s -= l[size_t(i) * n + k] * l[size_t(j) * n + k];
            l[size_t(i) * n + j] = s / l[size_t(j) * n + j];
        }
    }
    return l;
}

// The reference's U: cholesky(cholesky_inverse(cholesky(H)), upper=True), in float64.
Matrix referenceU(const Matrix& h, int n)
{
    const Matrix l = cholesky(h, n);
    // L⁻¹ by forward substitution, then H⁻¹ = L⁻ᵀ·L⁻¹.
    Matrix lInv(size_t(n) * n, 0.0);
    for (int c = 0; c < n; ++c)
        for (int i = c; i < n; ++i) {
            double s = i == c ? 1.0 : 0.0;
            for (int k = c; k < i; ++k)
                s -= l[size_t(i) * n + k] * lInv[size_t(k) * n + c];
            lInv[size_t(i) * n + c] = s / l[size_t(i) * n + i];
        }
    Matrix inverse(size_t(n) * n, 0.0);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
            for (int k = std::max(i, j); k < n; ++k)
                inverse[size_t(i) * n + j] += lInv[size_t(k) * n + i] * lInv[size_t(k) * n + j];
    // Upper factor U = Lᵀ of H⁻¹'s lower Cholesky factor.
    const Matrix l2 = cholesky(inverse, n);
    Matrix u(size_t(n) * n, 0.0);
    for (int i = 0; i < n; ++i)
        for (int j = i; j < n; ++j)
            u[size_t(i) * n + j] = l2[size_t(j) * n + i];
    return u;
}

constexpr float kUntouched = 12345.0f;

// H (row-major) into a column-major buffer with leading dimension lda: only the upper
// triangle carries H; the strictly lower part and the padding rows hold a sentinel.
std::vector<float> columnMajorUpper(const Matrix& h, int n, int lda)
{
    std::vector<float> a(size_t(lda) * n, kUntouched);
    for (int c = 0; c < n; ++c)
        for (int r = 0; r <= c; ++r)
            a[size_t(c) * lda + r] = float(h[size_t(r) * n + c]);
    return a;
}

} // namespace

class TestInverseCholesky : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QVERIFY(solve::inverseCholeskyAvailable()); }

    void matchesReferenceSequence_data()
    {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("padding");
        for (const int n : {1, 2, 31, 32, 33, 64, 65, 100, 172, 257})
            for (const int padding : {0, 3})
                QTest::addRow("n%d+%d", n, padding) << n << padding;
    }

    void matchesReferenceSequence()
    {
        QFETCH(int, n);
        QFETCH(int, padding);
        const Matrix h = correlatedSpd(n, unsigned(n));
        const Matrix expected = referenceU(h, n);
        const int lda = n + padding;
        auto a = columnMajorUpper(h, n, lda);
        QVERIFY(solve::upperCholeskyOfInverseInPlace(a.data(), n, lda));
        double largest = 0.0;
        for (double v : expected)
            largest = std::max(largest, std::abs(v));
        double worst = 0.0;
        for (int c = 0; c < n; ++c) {
            for (int r = 0; r <= c; ++r)
                worst = std::max(worst, std::abs(double(a[size_t(c) * lda + r]) - expected[size_t(r) * n + c]));
            for (int r = c + 1; r < lda; ++r)
                QCOMPARE(a[size_t(c) * lda + r], kUntouched);
        }
        // float32 against float64: the error grows with the conditioning (≈ 10³ here), not with
        // the recursion's depth.
        QVERIFY2(worst <= 2e-5 * largest, qPrintable(QString("max |ΔU| = %1 of %2").arg(worst).arg(largest)));
        for (int i = 0; i < n; ++i)
            QVERIFY(a[size_t(i) * lda + i] > 0.0f);
    }

    void byHand2x2()
    {
        // H = [[2, 1], [1, 2]]: H⁻¹ = [[2, −1], [−1, 2]]/3; U00 = √(2/3), U01 = −1/√6, U11 = 1/√2.
        float a[4] = {2.0f, kUntouched, 1.0f, 2.0f};
        QVERIFY(solve::upperCholeskyOfInverseInPlace(a, 2, 2));
        QVERIFY(std::abs(a[0] - std::sqrt(2.0 / 3.0)) < 1e-6);
        QVERIFY(std::abs(a[2] + 1.0 / std::sqrt(6.0)) < 1e-6);
        QVERIFY(std::abs(a[3] - 1.0 / std::sqrt(2.0)) < 1e-6);
        QCOMPARE(a[1], kUntouched);
    }

    void notPositiveDefinite_data()
    {
        QTest::addColumn<int>("n");
        QTest::addColumn<int>("i");
        QTest::addColumn<int>("j");
        QTest::addColumn<double>("value");
        // A negative diagonal entry in the block factored first (bottom right) or last (top left).
        QTest::addRow("last diagonal") << 100 << 99 << 99 << -1.0;
        QTest::addRow("first diagonal") << 100 << 0 << 0 << -1.0;
        // Every diagonal block positive definite; only the coupling across the top-level split
        // (columns 0 and 63 of 64) makes the whole indefinite: the Schur complement 1 − 2² < 0.
        QTest::addRow("across the split") << 64 << 0 << 63 << 2.0;
    }

    void notPositiveDefinite()
    {
        QFETCH(int, n);
        QFETCH(int, i);
        QFETCH(int, j);
        QFETCH(double, value);
        Matrix h(size_t(n) * n, 0.0);
        for (int k = 0; k < n; ++k)
            h[size_t(k) * n + k] = 1.0;
        h[size_t(i) * n + j] = value;
        h[size_t(j) * n + i] = value;
        auto a = columnMajorUpper(h, n, n);
        QVERIFY(!solve::upperCholeskyOfInverseInPlace(a.data(), n, n));
    }
};

QTEST_APPLESS_MAIN(TestInverseCholesky)
#include "test_inverse_cholesky.moc"
