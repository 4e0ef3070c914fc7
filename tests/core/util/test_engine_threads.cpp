// util/engine_threads.h: the default engine threads. Without OMP_NUM_THREADS a model at or above
// kAllThreadsFromHidden gets every CPU this process may run on, counted here by Qt
// (QThread::idealThreadCount, the affinity mask on Linux), not by the code under test; a smaller
// model gets one thread. (LibTorch's own default was 1 on the 2-CPU machine, which is why the
// engine counts CPUs itself; this test fails if it goes back to trusting it there.)

#include "util/engine_threads.h"

#include <QTest>
#include <QThread>

#include <cstdlib>

using namespace sparselab;

class TestEngineThreads : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void defaultsFollowTheModelSizeAndTheMachine()
    {
        // Before the first call (the count is read once): as a user's shell, no OpenMP setting.
        ::unsetenv("OMP_NUM_THREADS");
        const int cpus = QThread::idealThreadCount();
        QVERIFY(cpus >= 1);
        QCOMPARE(defaultEngineThreads(kAllThreadsFromHidden), cpus);
        QCOMPARE(defaultEngineThreads(4096), cpus);
        QCOMPARE(defaultEngineThreads(0), cpus); // not known yet: every CPU
        QCOMPARE(defaultEngineThreads(kAllThreadsFromHidden - 1), 1);
        QCOMPARE(defaultEngineThreads(64), 1);
    }
};

QTEST_APPLESS_MAIN(TestEngineThreads)
#include "test_engine_threads.moc"
