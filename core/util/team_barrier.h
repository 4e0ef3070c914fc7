#pragma once
// A barrier for a small team of threads that meet often (the CPU column loop's workers, once
// per block of 128 columns), with std::barrier's contract: arrive_and_wait, arrive_and_drop,
// and a completion step run by the last thread to arrive, before any is released.
//
// Why not std::barrier: libstdc++'s waits a few dozen spins and then sleeps on a futex, so on
// most blocks the waiting worker is asleep when the last one arrives, and its wake-up (a
// system call on one side, a reschedule on the other) cost about 1 ms per worker over a
// 2048-column solve on two threads on this project's virtual machines. Here a waiter spins,
// with a pause instruction, for up to kTeamBarrierSpin before it sleeps (std::atomic::wait):
// long enough for the usual gap between two workers that do the same work on equal rows. A
// team that waits longer (a busy machine, a cancelled run) still sleeps. A team with more
// threads than the process has cores should not spin at all (BarrierWait::Sleep): a spinning
// waiter would hold a core that a thread still working needs; the caller knows its team and
// the machine (util/engine_threads.h), so it chooses.
//
// No Qt, no LibTorch.

#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace sparselab {

// How long a waiter spins (BarrierWait::SpinThenSleep) before it sleeps.
inline constexpr std::chrono::microseconds kTeamBarrierSpin{500};

enum class BarrierWait {
    SpinThenSleep, // spin up to kTeamBarrierSpin, then sleep: a team that fits the cores
    Sleep,         // sleep at once: a team with more threads than cores
};

template <class Completion>
class TeamBarrier {
    // As std::barrier: the completion must not throw (a throw would leave the team waiting).
    static_assert(std::is_nothrow_invocable_v<Completion&>, "the completion step must be noexcept");

public:
    // `expected` ≥ 1 threads.
    TeamBarrier(int expected, Completion completion, BarrierWait wait)
        : m_expected(expected), m_remaining(expected), m_completion(std::move(completion)),
          m_spin(wait == BarrierWait::SpinThenSleep)
    {
        assert(expected >= 1);
    }
    TeamBarrier(const TeamBarrier&) = delete;
    TeamBarrier& operator=(const TeamBarrier&) = delete;

    // Arrives at the current phase and returns when every expected thread has arrived and the
    // completion step has run.
    void arrive_and_wait()
    {
        const uint32_t phase = m_phase.load(std::memory_order_acquire);
        if (arrive())
            return;
        waitPast(phase);
    }

    // Arrives at the current phase without waiting, and leaves the team: later phases expect
    // one thread fewer.
    void arrive_and_drop()
    {
        m_drops.fetch_add(1, std::memory_order_relaxed);
        (void)arrive();
    }

private:
    // True for the last thread to arrive, which has then run the completion and opened the
    // next phase.
    bool arrive()
    {
        if (m_remaining.fetch_sub(1, std::memory_order_acq_rel) != 1)
            return false;
        m_completion();
        m_expected -= m_drops.exchange(0, std::memory_order_relaxed);
        m_remaining.store(m_expected, std::memory_order_relaxed);
        m_phase.fetch_add(1, std::memory_order_release);
        m_phase.notify_all();
        return true;
    }

    void waitPast(uint32_t phase)
    {
        const auto spinUntil = std::chrono::steady_clock::now() + kTeamBarrierSpin;
        for (int spins = 1; m_spin; ++spins) {
            if (m_phase.load(std::memory_order_acquire) != phase)
                return;
            pause();
            if (spins % 64 == 0 && std::chrono::steady_clock::now() > spinUntil)
                break;
        }
        while (m_phase.load(std::memory_order_acquire) == phase)
            m_phase.wait(phase, std::memory_order_acquire);
    }

    static void pause()
    {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
    }

    int m_expected;                    // threads in the team (changed only by the completing thread)
    std::atomic<int> m_remaining;      // threads yet to arrive in the current phase
    std::atomic<int> m_drops{0};       // threads that left during the current phase
    std::atomic<uint32_t> m_phase{0};
    Completion m_completion;
    bool m_spin;                       // BarrierWait::SpinThenSleep
};

} // namespace sparselab
