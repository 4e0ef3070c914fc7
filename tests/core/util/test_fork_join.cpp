// util/fork_join.h: every unit runs exactly once, on at most `threads` workers numbered from 0
// (the caller is worker 0), a unit's exception reaches the caller after the workers have joined,
// and one thread (or one unit) runs everything on the caller in order. The helpers are kept
// from one call to the next, and calls made while they are busy (nested, or from another
// thread) still run every unit.

#include "util/fork_join.h"

#include <QTest>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace sparselab;

class TestForkJoin : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void everyUnitOnceOnAtMostThreadsWorkers()
    {
        for (const int threads : {1, 2, 3, 8}) {
            for (const int64_t units : {int64_t(0), int64_t(1), int64_t(2), int64_t(7), int64_t(1000)}) {
                std::vector<std::atomic<int>> runs(static_cast<size_t>(units));
                std::mutex mutex;
                std::set<int> workers;
                std::set<std::thread::id> systemThreads;
                forkJoin(units, threads, [&](int worker, int64_t unit) {
                    runs[size_t(unit)].fetch_add(1);
                    std::lock_guard lock(mutex);
                    workers.insert(worker);
                    systemThreads.insert(std::this_thread::get_id());
                });
                for (int64_t u = 0; u < units; ++u)
                    QCOMPARE(runs[size_t(u)].load(), 1);
                const int64_t most = std::min<int64_t>(threads, units);
                QVERIFY(int64_t(workers.size()) <= most);
                QVERIFY(int64_t(systemThreads.size()) <= most);
                for (int w : workers)
                    QVERIFY(w >= 0 && w < most);
            }
        }
    }

    void oneThreadRunsInOrderOnTheCaller()
    {
        std::vector<int64_t> order;
        const auto caller = std::this_thread::get_id();
        bool elsewhere = false;
        forkJoin(5, 1, [&](int worker, int64_t unit) {
            QCOMPARE(worker, 0);
            elsewhere = elsewhere || std::this_thread::get_id() != caller;
            order.push_back(unit);
        });
        QVERIFY(!elsewhere);
        QCOMPARE(order, (std::vector<int64_t>{0, 1, 2, 3, 4}));
    }

    void anExceptionReachesTheCaller()
    {
        std::atomic<int> ran{0};
        bool caught = false;
        try {
            forkJoin(100, 2, [&](int, int64_t unit) {
                ran.fetch_add(1);
                if (unit == 3)
                    throw std::runtime_error("unit 3 failed");
            });
        } catch (const std::runtime_error& e) {
            caught = QString(e.what()) == "unit 3 failed";
        }
        QVERIFY(caught);
        QVERIFY(ran.load() >= 4); // units 0..3 at least; the rest may be skipped once one failed
        QVERIFY(ran.load() <= 100);
    }

    void helpersAreKeptBetweenCalls()
    {
        // Each unit waits until both have started, so a helper must take the second. A
        // thread_local count survives only on a thread that lives from one call to the next;
        // earlier tests may have started up to 7 helpers, so over 20 calls one of them must
        // come back (with threads started per call, every helper would count 0).
        thread_local int unitsOnThisThread = 0;
        int mostSeenOnAHelper = -1;
        for (int call = 0; call < 20; ++call) {
            std::atomic<int> started{0};
            const auto caller = std::this_thread::get_id();
            forkJoin(2, 2, [&](int, int64_t) {
                started.fetch_add(1);
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (started.load() < 2 && std::chrono::steady_clock::now() < deadline)
                    std::this_thread::yield();
                if (std::this_thread::get_id() != caller)
                    mostSeenOnAHelper = std::max(mostSeenOnAHelper, unitsOnThisThread);
                ++unitsOnThisThread;
            });
            QCOMPARE(started.load(), 2);
        }
        QVERIFY(mostSeenOnAHelper >= 1);
    }

    void nestedAndConcurrentCallsRunEveryUnit()
    {
        std::atomic<int> inner{0};
        forkJoin(4, 2, [&](int, int64_t) { forkJoin(10, 2, [&](int, int64_t) { inner.fetch_add(1); }); });
        QCOMPARE(inner.load(), 40);

        std::atomic<int> total{0};
        std::vector<std::thread> callers;
        for (int c = 0; c < 3; ++c)
            callers.emplace_back([&] {
                for (int rep = 0; rep < 50; ++rep)
                    forkJoin(8, 2, [&](int worker, int64_t) {
                        QVERIFY(worker == 0 || worker == 1);
                        total.fetch_add(1);
                    });
            });
        for (auto& t : callers)
            t.join();
        QCOMPARE(total.load(), 3 * 50 * 8);
    }
};

QTEST_APPLESS_MAIN(TestForkJoin)
#include "test_fork_join.moc"
