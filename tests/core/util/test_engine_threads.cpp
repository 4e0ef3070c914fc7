// util/engine_threads.h: the default engine threads. Without OMP_NUM_THREADS SparseLab's kernels
// get every CPU this process may run on, counted here by Qt (QThread::idealThreadCount, the
// affinity mask on Linux), not by the code under test; so do the libraries for a model at or
// above kAllThreadsFromHidden, and a smaller model's libraries get one thread. (LibTorch's own
// default was 1 on the 2-CPU machine, which is why the engine counts CPUs itself; this test
// fails if it goes back to trusting it there.) Then what setEngineThreads sets, per thread, and
// OpenBLAS's spin wait as shortenBlasSpinWait leaves it.

#include "util/dynamic_symbol.h"
#include "util/engine_threads.h"

#include <QTest>
#include <QThread>

#include <ATen/Parallel.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/randn.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <thread>

using namespace sparselab;

class TestEngineThreads : public QObject {
    Q_OBJECT
private Q_SLOTS:
    // Before any test calls into the engine (it reads the machine's count once): as a user's
    // shell, no OpenMP setting. Here, so that every test below stands alone in any order.
    void initTestCase() { ::unsetenv("OMP_NUM_THREADS"); }

    void defaultsFollowTheModelSizeAndTheMachine()
    {
        const int cpus = QThread::idealThreadCount();
        QVERIFY(cpus >= 1);
        const EngineThreads all{cpus, cpus}, smallModel{cpus, 1};
        QVERIFY(defaultEngineThreads(kAllThreadsFromHidden) == all);
        QVERIFY(defaultEngineThreads(4096) == all);
        QVERIFY(defaultEngineThreads(0) == all); // not known yet: every CPU
        QVERIFY(defaultEngineThreads(kAllThreadsFromHidden - 1) == smallModel);
        QVERIFY(defaultEngineThreads(64) == smallModel);
    }

    // The kernels' count is this thread's own: set here, it is what kernelThreads() says; on a
    // thread where it was never set, kernelThreads() follows LibTorch's count there.
    void kernelThreadsArePerThread()
    {
        setEngineThreads(EngineThreads{3, 1});
        QCOMPARE(kernelThreads(), 3);
        QCOMPARE(at::get_num_threads(), 1);
        setEngineThreads(EngineThreads{0, 0}); // zeros change nothing
        QCOMPARE(kernelThreads(), 3);
        QCOMPARE(at::get_num_threads(), 1);
        setEngineThreads(2);
        QCOMPARE(kernelThreads(), 2);
        QCOMPARE(at::get_num_threads(), 2);
        int elsewhere = 0, torchThere = 0;
        std::thread other([&] {
            at::set_num_threads(1);
            torchThere = at::get_num_threads();
            elsewhere = kernelThreads();
        });
        other.join();
        QCOMPARE(elsewhere, torchThere);
        QCOMPARE(kernelThreads(), 2);
    }

    // OpenBLAS's own reading of OPENBLAS_THREAD_TIMEOUT (0 when unset at load). A user's value
    // is left alone; otherwise the wait becomes kBlasSpinWaitLog2Cycles, the environment is as it
    // was, and products run as before on the pool OpenBLAS starts again.
    void blasSpinWaitShortenedUnlessTheUserChose()
    {
        using TimeoutFn = unsigned int (*)();
        const auto timeout = util::dynamicFunction<TimeoutFn>("openblas_thread_timeout");
        if (!timeout || !util::dynamicFunction<void (*)()>("blas_thread_shutdown_"))
            QSKIP("the BLAS in this process is not OpenBLAS");
        const unsigned int atLoad = timeout();
        ::setenv("OPENBLAS_THREAD_TIMEOUT", "25", 1);
        shortenBlasSpinWait();
        QCOMPARE(timeout(), atLoad);
        QCOMPARE(std::strcmp(std::getenv("OPENBLAS_THREAD_TIMEOUT"), "25"), 0);
        ::unsetenv("OPENBLAS_THREAD_TIMEOUT");
        shortenBlasSpinWait();
        QCOMPARE(timeout(), unsigned(kBlasSpinWaitLog2Cycles));
        QVERIFY(std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr);
        // A product after the pool was stopped, against the sums written out in double.
        const auto a = at::randn({67, 130}), b = at::randn({130, 45});
        const auto c = at::mm(a, b);
        const float* pa = a.data_ptr<float>();
        const float* pb = b.data_ptr<float>();
        const float* pc = c.data_ptr<float>();
        for (int i = 0; i < 67; ++i)
            for (int j = 0; j < 45; ++j) {
                double sum = 0.0;
                for (int k = 0; k < 130; ++k)
                    sum += double(pa[i * 130 + k]) * double(pb[k * 45 + j]);
                QVERIFY(std::abs(pc[i * 45 + j] - sum) < 1e-4);
            }
    }
};

QTEST_APPLESS_MAIN(TestEngineThreads)
#include "test_engine_threads.moc"
