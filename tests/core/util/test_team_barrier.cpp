// TeamBarrier (util/team_barrier.h): the CPU column loop's per-block meeting point. Checked
// against std::barrier's contract: nobody passes a phase before everyone has arrived, the
// completion runs once per phase before anyone is released, a dropped thread is no longer
// waited for, and a waiter that has gone to sleep is woken.

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
    // written and no thread in the next one, and every thread sees the completion done. With
    // both ways of waiting (four threads on a 2-core machine spin against each other, which
    // must still be correct).
    void phasesAreSeparatedAndTheCompletionRunsOncePerPhase()
    {
        for (const BarrierWait wait : {BarrierWait::SpinThenSleep, BarrierWait::Sleep}) {
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
            TeamBarrier barrier(kThreads, completion, wait);
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
    }

    // Threads that leave count as arrived in their phase and are not waited for afterwards:
    // one that drops in phase 0 and returns; one that drops twice in phase 0 for two workers
    // that could not be started and goes on (the column loop's failure path); one that drops
    // in phase 5. The others go on, and every phase completes once.
    void droppedThreadsAreNoLongerWaitedFor()
    {
        constexpr int kPhases = 100;
        int completions = 0;
        TeamBarrier barrier(6, [&]() noexcept { ++completions; }, BarrierWait::SpinThenSleep);
        runTeam(4, [&](int t) {
            if (t == 3) {
                barrier.arrive_and_drop();
                return;
            }
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

    // A waiter that sleeps must be woken by the last arrival. BarrierWait::Sleep makes the
    // waiter sleep whatever the timing, so this holds on a slow machine too: without the
    // wake-up the team hangs and runTeam fails. Each thread is late in turn.
    void aSleepingWaiterIsWoken()
    {
        int completions = 0;
        TeamBarrier barrier(2, [&]() noexcept { ++completions; }, BarrierWait::Sleep);
        std::atomic<int> passed{0};
        runTeam(2, [&](int t) {
            for (int phase = 0; phase < 4; ++phase) {
                if (phase % 2 == t)
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
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
        TeamBarrier barrier(1, [&]() noexcept { ++completions; }, BarrierWait::SpinThenSleep);
        for (int phase = 0; phase < 5; ++phase)
            barrier.arrive_and_wait();
        QCOMPARE(completions, 5);
    }
};

QTEST_APPLESS_MAIN(TestTeamBarrier)
#include "test_team_barrier.moc"
