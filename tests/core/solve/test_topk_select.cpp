// solve/topk_select.h — the N:M selection shared by the CPU column loop and the CUDA kernel —
// against the standard library it mirrors: ATen's CPU topk(largest=False) runs
// std::partial_sort (n·64 <= width) or std::nth_element over (double value, index) pairs,
// comparing values only, NaN largest. On tie-heavy groups (values drawn from 3 levels, zeros,
// NaN) every width 1…128 and every n, the sets chosen must be the same, since on ties the
// steps of the algorithm decide which equal entries are taken (a rank-by-index kernel did not
// agree with the CPU on tests/data/solver/problem_c's integer weights).

#include "solve/topk_select.h"

#include <QTest>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

using namespace sparselab::solve;

namespace {

std::vector<unsigned char> standardLibrary(const std::vector<float>& scores, int n)
{
    const int width = int(scores.size());
    std::vector<unsigned char> chosen(size_t(width), 0);
    if (n >= width) {
        std::fill(chosen.begin(), chosen.end(), 1);
        return chosen;
    }
    std::vector<std::pair<double, int64_t>> queue;
    for (int k = 0; k < width; ++k)
        queue.emplace_back(double(scores[size_t(k)]), k);
    auto less = [](const std::pair<double, int64_t>& x, const std::pair<double, int64_t>& y) {
        return (!std::isnan(x.first) && std::isnan(y.first)) || (x.first < y.first);
    };
    if (int64_t(n) * 64 <= width)
        std::partial_sort(queue.begin(), queue.begin() + n, queue.end(), less);
    else
        std::nth_element(queue.begin(), queue.begin() + (n - 1), queue.end(), less);
    for (int k = 0; k < n; ++k)
        chosen[size_t(queue[size_t(k)].second)] = 1;
    return chosen;
}

std::vector<unsigned char> shared(const std::vector<float>& scores, int n)
{
    std::vector<topk::Entry> work(scores.size());
    std::vector<unsigned char> chosen(scores.size(), 7);
    topk::selectSmallest(scores.data(), int(scores.size()), n, work.data(), chosen.data());
    return chosen;
}

} // namespace

class TestTopkSelect : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sameSetsAsTheStandardLibrary_data()
    {
        QTest::addColumn<int>("levels");
        QTest::addColumn<double>("nanShare");
        QTest::newRow("all equal") << 1 << 0.0;
        QTest::newRow("three levels") << 3 << 0.0;
        QTest::newRow("three levels and NaN") << 3 << 0.1;
        QTest::newRow("continuous") << 0 << 0.0;
    }
    void sameSetsAsTheStandardLibrary()
    {
        QFETCH(int, levels);
        QFETCH(double, nanShare);
        std::mt19937 rng(1234);
        std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
        std::uniform_int_distribution<int> level(0, std::max(levels - 1, 0));
        int cases = 0, ties = 0;
        for (int width = 1; width <= 128; ++width) {
            for (int repeat = 0; repeat < 6; ++repeat) {
                std::vector<float> scores(static_cast<size_t>(width));
                for (float& s : scores) {
                    s = levels > 0 ? float(level(rng)) * 1.01f : uniform(rng);
                    if (uniform(rng) < nanShare)
                        s = std::numeric_limits<float>::quiet_NaN();
                }
                for (int n = 0; n <= width; ++n) {
                    const auto expected = standardLibrary(scores, n);
                    const auto got = shared(scores, n);
                    ++cases;
                    if (got != expected)
                        QFAIL(qPrintable(QStringLiteral("width %1, n %2, repeat %3: sets differ").arg(width).arg(n).arg(repeat)));
                    int count = 0;
                    for (unsigned char c : got)
                        count += c;
                    QCOMPARE(count, std::min(n, width));
                }
                std::vector<float> sorted = scores;
                std::sort(sorted.begin(), sorted.end());
                ties += std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() ? 1 : 0;
            }
        }
        qInfo("%d selections compared, %d groups with ties", cases, ties);
    }

    // The partial_sort branch (n·64 <= width) and the heap select inside introselect: 1:64 and
    // 2:128 groups, all equal, where the heaps decide alone.
    void heapBranches()
    {
        for (const auto& [n, width] : {std::pair{1, 64}, std::pair{2, 128}, std::pair{1, 100}}) {
            const std::vector<float> scores(static_cast<size_t>(width), 2.0f);
            QCOMPARE(shared(scores, n), standardLibrary(scores, n));
        }
    }
};

QTEST_GUILESS_MAIN(TestTopkSelect)
#include "test_topk_select.moc"
