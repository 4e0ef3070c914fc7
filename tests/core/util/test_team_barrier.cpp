// TeamBarrier (util/team_barrier.h): the CPU column loop's per-block meeting point. Checked
// against std::barrier's contract: nobody passes a phase before everyone has arrived, the
// completion runs once per phase before anyone is released, a dropped thread is no longer
// waited for, and a waiter that has gone to sleep (past the spin) is woken.

#include "util/team_barrier.h"

#include <QTest>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <thread>
#include <vector>

using namespace sparselab;

namespace {

// Runs fn(thread) on `threads` threads and fails the test (instead of hanging it) when they
// have not all returned within `limit`.
void runTeam(int threads, const std::function<void(int)>& fn, std::chrono::seconds limit = std::chrono::seconds(300))
{
    std::vector<std::thread> team;
    std::promise<void> done;
    auto finished = done.get_future();
    std::thread supervisor([&] {
        for (int t = 0; t < threads; ++t)
            team.emplace_back(fn, t);
        for (auto& thread : team)
            thread.join();
        done.set_value();
    });
    if (finished.wait_for(limit) != std::future_status::ready) {
        supervisor.detach();
        qFatal("the team did not finish: a thread is still waiting at the barrier");
    }
    supervisor.join();
}

} // namespace

class TestTeamBarrier : public QObject {
    Q_OBJECT
private Q_SLOTS:
    // Every phase: each thread writes its slot, the completion sees all slots of that phase
    // written and no thread in the next one, and every thread sees the completion done.
    void phasesAreSeparatedAndTheCompletionRunsOncePerPhase()
    {
        constexpr int kThreads = 4;
        constexpr int kPhases = 3000;
        std::vector<std::atomic<int>> slot(kThreads);
        for (auto& s : slot)
            s.store(-1);
        int completions = 0; // written only by the completion
        std::atomic<int> badCompletions{0};
        std::atomic<int> badReleases{0};
        auto completion = [&]() noexcept {
            for (auto& s : slot)
                if (s.load() != completions)
                    badCompletions.fetch_add(1);
            ++completions;
        };
        TeamBarrier barrier(kThreads, completion);
        runTeam(kThreads, [&](int t) {
            for (int phase = 0; phase < kPhases; ++phase) {
                slot[size_t(t)].store(phase);
                barrier.arrive_and_wait();
                if (completions != phase + 1)
                    badReleases.fetch_add(1);
            }
        });
        QCOMPARE(completions, kPhases);
        QCOMPARE(badCompletions.load(), 0);
        QCOMPARE(badReleases.load(), 0);
    }

    // A thread that drops out during phase 0 counts as arrived there and is not waited for
    // afterwards; the others go on for many phases.
    void aDroppedThreadIsNoLongerWaitedFor()
    {
        constexpr int kPhases = 200;
        int completions = 0;
        TeamBarrier barrier(3, [&]() noexcept { ++completions; });
        runTeam(3, [&](int t) {
            if (t == 2) {
                barrier.arrive_and_drop();
                return;
            }
            for (int phase = 0; phase < kPhases; ++phase)
                barrier.arrive_and_wait();
        });
        QCOMPARE(completions, kPhases);
    }

    // The column loop's failure path: one thread leaves for two workers that could not be
    // started (two drops from one thread in phase 0), and a worker that leaves later (phase 5);
    // the others go on, and every phase completes once.
    void dropsFromOneThreadAndInALaterPhase()
    {
        constexpr int kPhases = 100;
        int completions = 0;
        TeamBarrier barrier(5, [&]() noexcept { ++completions; });
        runTeam(3, [&](int t) {
            if (t == 0) {
                barrier.arrive_and_drop();
                barrier.arrive_and_drop();
            }
            for (int phase = 0; phase < kPhases; ++phase) {
                if (t == 2 && phase == 5) {
                    barrier.arrive_and_drop();
                    return;
                }
                barrier.arrive_and_wait();
            }
        });
        QCOMPARE(completions, kPhases);
    }

    // One thread arrives long after the spin has ended, so the other is asleep and must be
    // woken; then the roles swap.
    void aSleepingWaiterIsWoken()
    {
        const auto late = kTeamBarrierSpin * 20;
        int completions = 0;
        TeamBarrier barrier(2, [&]() noexcept { ++completions; });
        std::atomic<int> passed{0};
        runTeam(2, [&](int t) {
            for (int phase = 0; phase < 4; ++phase) {
                if (phase % 2 == t)
                    std::this_thread::sleep_for(late);
                barrier.arrive_and_wait();
                passed.fetch_add(1);
            }
        });
        QCOMPARE(completions, 4);
        QCOMPARE(passed.load(), 8);
    }

    // A team of one never waits, and runs the completion at each arrival.
    void aTeamOfOneCompletesAtEachArrival()
    {
        int completions = 0;
        TeamBarrier barrier(1, [&]() noexcept { ++completions; });
        for (int phase = 0; phase < 5; ++phase)
            barrier.arrive_and_wait();
        QCOMPARE(completions, 5);
    }
};

QTEST_APPLESS_MAIN(TestTeamBarrier)
#include "test_team_barrier.moc"
