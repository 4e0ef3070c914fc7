// util/engine_threads.h: the default engine threads. Without OMP_NUM_THREADS SparseLab's kernels
// get every CPU this process may run on, counted here by Qt (QThread::idealThreadCount, the
// affinity mask on Linux), not by the code under test; so do the libraries for a model at or
// above kAllThreadsFromHidden, and a smaller model's libraries get one thread. (LibTorch's own
// default was 1 on the 2-CPU machine, which is why the engine counts CPUs itself; this test
// fails if it goes back to trusting it there.) Then what setEngineThreads sets, per thread
// (LibTorch's own pool on one thread), and OpenBLAS's spin wait as shortenBlasSpinWait leaves it.

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
#include <filesystem>
#include <set>
#include <string>
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
        QCOMPARE(libraryThreads(), 1);
        QCOMPARE(at::get_num_threads(), 1);
        setEngineThreads(EngineThreads{0, 0}); // zeros change nothing
        QCOMPARE(kernelThreads(), 3);
        QCOMPARE(libraryThreads(), 1);
        setEngineThreads(2);
        QCOMPARE(kernelThreads(), 2);
        QCOMPARE(libraryThreads(), 2);
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

    // LibTorch's own pool stays at one thread whatever the library threads (its OpenMP threads
    // would spin against OpenBLAS's), unless the user chose libgomp's waiting: then it gets
    // them too. (The suite runs with OMP_WAIT_POLICY=PASSIVE; the test clears it first.)
    void libTorchPoolOnOneThreadUnlessTheUserChoseOpenMpWaiting()
    {
        // Put back at the end: LibTorch's count, OpenBLAS's pool, this thread's kernels.
        using GetFn = int (*)();
        using SetFn = void (*)(int);
        const auto getBlasThreads = util::dynamicFunction<GetFn>("openblas_get_num_threads");
        const auto setBlasThreads = util::dynamicFunction<SetFn>("openblas_set_num_threads");
        const int torchBefore = at::get_num_threads();
        const int blasBefore = getBlasThreads ? getBlasThreads() : 0;
        const int kernelsBefore = kernelThreads();
        std::vector<std::pair<std::string, std::string>> saved;
        for (const char* name : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"})
            if (const char* value = std::getenv(name)) {
                saved.emplace_back(name, value);
                ::unsetenv(name);
            }
        setEngineThreads(EngineThreads{2, 2});
        QCOMPARE(libraryThreads(), 2);
        QCOMPARE(at::get_num_threads(), 1);
        for (const char* name : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}) {
            ::setenv(name, "passive", 1);
            setEngineThreads(EngineThreads{2, 2});
            QCOMPARE(at::get_num_threads(), 2);
            ::unsetenv(name);
        }
        setEngineThreads(EngineThreads{2, 1});
        QCOMPARE(at::get_num_threads(), 1);
        QCOMPARE(libraryThreads(), 1);
        for (const auto& [name, value] : saved)
            ::setenv(name.c_str(), value.c_str(), 1);
        setEngineThreads(EngineThreads{kernelsBefore, 0});
        at::set_num_threads(torchBefore);
        if (setBlasThreads && blasBefore > 0)
            setBlasThreads(blasBefore);
    }

    // OpenBLAS's own reading of OPENBLAS_THREAD_TIMEOUT (0 when unset at load), which its pool
    // takes when it starts. A user's non-empty value is left alone; otherwise the wait becomes
    // kBlasSpinWaitLog2Cycles and the environment is as it was. After the pool was stopped, a
    // product on two threads starts a pool thread again and is right. (The spinning itself is
    // timing: bench_solve_layer measures its cost, bench/results/blas-spin-wait-2026-12-06.jsonl.)
    void blasSpinWaitShortenedUnlessTheUserChose()
    {
        using TimeoutFn = unsigned int (*)();
        using SetFn = void (*)(int);
        using GetFn = int (*)();
        const auto timeout = util::dynamicFunction<TimeoutFn>("openblas_thread_timeout");
        const auto setThreads = util::dynamicFunction<SetFn>("openblas_set_num_threads");
        const auto getThreads = util::dynamicFunction<GetFn>("openblas_get_num_threads");
        if (!timeout || !setThreads || !getThreads || !util::dynamicFunction<void (*)()>("blas_thread_shutdown_"))
            QSKIP("the BLAS in this process is not OpenBLAS");
        const unsigned int atLoad = timeout();
        for (const char* users : {"25", ""}) {
            ::setenv("OPENBLAS_THREAD_TIMEOUT", users, 1);
            shortenBlasSpinWait();
            // A non-empty value is the user's; an empty one is as good as unset.
            QCOMPARE(timeout(), *users ? atLoad : unsigned(kBlasSpinWaitLog2Cycles));
            QCOMPARE(std::strcmp(std::getenv("OPENBLAS_THREAD_TIMEOUT"), users), 0); // as it was
        }
        ::unsetenv("OPENBLAS_THREAD_TIMEOUT");
        shortenBlasSpinWait();
        QCOMPARE(timeout(), unsigned(kBlasSpinWaitLog2Cycles));
        QVERIFY(std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr);

        // A product on two OpenBLAS threads after the pool was stopped, against the sums written
        // out in double, and the pool thread it started.
        const std::set<std::string> before = taskIds();
        const int threadsBefore = getThreads();
        setThreads(2); // capped by OpenBLAS at the CPUs it found when loaded
        const auto a = at::randn({1024, 1024}), b = at::randn({1024, 1024}); // large enough for two threads
        const auto c = at::mm(a, b);
        const float* pa = a.data_ptr<float>();
        const float* pb = b.data_ptr<float>();
        const float* pc = c.data_ptr<float>();
        for (int i = 0; i < 1024; i += 67)
            for (int j = 0; j < 1024; j += 53) {
                double sum = 0.0;
                for (int k = 0; k < 1024; ++k)
                    sum += double(pa[i * 1024 + k]) * double(pb[k * 1024 + j]);
                QVERIFY(std::abs(pc[i * 1024 + j] - sum) < 5e-3); // float32 sums of 1024 terms of size ~1
            }
        int started = 0;
        for (const auto& id : taskIds())
            started += before.count(id) ? 0 : 1;
        const bool twoThreads = getThreads() >= 2;
        setThreads(threadsBefore);
        if (twoThreads) // on one CPU OpenBLAS has no pool to start; the product above still counts
            QVERIFY2(started > 0, "OpenBLAS started no pool thread for the product");
    }

private:
    // This process's threads (Linux), by id.
    static std::set<std::string> taskIds()
    {
        std::set<std::string> ids;
        for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task"))
            ids.insert(entry.path().filename().string());
        return ids;
    }
};

QTEST_APPLESS_MAIN(TestEngineThreads)
#include "test_engine_threads.moc"
