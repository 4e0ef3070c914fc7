// Calibration sampling must reproduce CPython's `random` exactly (the reference pipeline
// draws its windows with random.seed(seed); random.randint(0, n - seqlen - 1)).
// Expected values were printed by CPython 3.11:
//   random.seed(0); [random.randint(0, 100000) for _ in range(5)]
//   random.seed(0); [random.getrandbits(40) for _ in range(2)]
//   random.seed(12345678901); [random.randint(0, 7) for _ in range(5)]

#include "data/calibration.h"
#include "util/errors.h"

#include <QTest>

using namespace sparselab;

class TestCalibration : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void matchesCPythonRandint()
    {
        data::PythonRandom rng(0);
        const std::vector<int64_t> expected = {50494, 99346, 55125, 5306, 33936};
        for (int64_t e : expected)
            QCOMPARE(rng.randint(0, 100000), e);
    }
    void matchesCPythonGetrandbitsWide()
    {
        data::PythonRandom rng(0);
        QCOMPARE(rng.getrandbits(40), uint64_t(424533559245ull));
        QCOMPARE(rng.getrandbits(40), uint64_t(978212965548ull));
    }
    void matchesCPythonMultiWordSeed()
    {
        data::PythonRandom rng(12345678901ull);
        const std::vector<int64_t> expected = {5, 6, 5, 1, 2};
        for (int64_t e : expected)
            QCOMPARE(rng.randint(0, 7), e);
    }
    void windowsAreSlicesAtSeededOffsets()
    {
        // len - seqlen - 1 == 100000, so the offsets are the randint values above.
        const int64_t seqlen = 4;
        std::vector<int32_t> ids(size_t(100001 + seqlen));
        for (size_t i = 0; i < ids.size(); ++i)
            ids[i] = int32_t(i);
        data::CalibrationParams params;
        params.nsamples = 5;
        params.seqlen = seqlen;
        params.seed = 0;
        const auto windows = data::sampleCalibrationWindows(ids, params, "calib.txt");
        const std::vector<int64_t> expected = {50494, 99346, 55125, 5306, 33936};
        QCOMPARE(windows.offsets, expected);
        QCOMPARE(int64_t(windows.ids.size()), 5 * seqlen);
        for (int64_t s = 0; s < 5; ++s)
            for (int64_t t = 0; t < seqlen; ++t)
                QCOMPARE(windows.ids[size_t(s * seqlen + t)], expected[size_t(s)] + t);
    }
    void tooShortTextNamesTheFile()
    {
        std::vector<int32_t> ids(10, 1);
        data::CalibrationParams params;
        params.seqlen = 10;
        try {
            (void)data::sampleCalibrationWindows(ids, params, "short.txt");
            QFAIL("expected InputError");
        } catch (const InputError& e) {
            QVERIFY(std::string(e.what()).find("short.txt") != std::string::npos);
        }
        params.seqlen = 1;
        QVERIFY_THROWS_EXCEPTION(InputError, (void)data::sampleCalibrationWindows(ids, params, "t.txt"));
    }
};

QTEST_GUILESS_MAIN(TestCalibration)
#include "test_calibration.moc"
