#pragma once
// The hook calls of batches that run on several threads (pipeline/block_walker.h), delivered as
// a sequential walk delivers them: one call at a time (hooks need no locking of their own), and
// the k-th call of batch i only after the k-th call of batch i − 1. Every batch of a block makes
// the same calls in the same order (runBlock), so the k-th call is the same linear in every
// batch and each accumulator sees the windows in their order, with the sequential walk's float
// rounding. No deadlock: batch i waits only for batch i − 1, and the walker hands the batches to
// its threads in order, so the lowest unfinished batch is always running.
// A failure anywhere (a hook's exception, a cancel) wakes and stops every waiter; the first
// failure is the one kept. No Qt, no LibTorch.

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <vector>

namespace sparselab::pipeline {

class OrderedHookCalls {
public:
    // Thrown by run() to a batch that waited for its turn when the walk had failed.
    struct Stopped {};

    // Runs `call`, the k-th hook call of `batch`, in its turn, holding the lock; throws Stopped
    // when the walk failed before or while it waited. An exception from `call` leaves the turn
    // where it was: the caller reports it with fail().
    template <class Call>
    void run(int64_t batch, size_t k, const Call& call)
    {
        std::unique_lock lock(m_mutex);
        ++m_waiting;
        m_turn.wait(lock, [&] { return m_failed || turnOf(k) == batch; });
        --m_waiting;
        if (m_failed)
            throw Stopped{};
        call();
        m_next.resize(std::max(m_next.size(), k + 1), 0);
        ++m_next[k];
        m_turn.notify_all();
    }
    // Records the first failure and wakes every waiter.
    void fail(std::exception_ptr error)
    {
        const std::lock_guard lock(m_mutex);
        if (!m_failed)
            m_error = std::move(error);
        m_failed = true;
        m_turn.notify_all();
    }
    [[nodiscard]] bool failed()
    {
        const std::lock_guard lock(m_mutex);
        return m_failed;
    }
    // The threads blocked in run() for their turn now (for tests that must know one waits).
    [[nodiscard]] int waiting()
    {
        const std::lock_guard lock(m_mutex);
        return m_waiting;
    }
    // Rethrows the first failure, if any (call once every batch has returned).
    void rethrowFailure() const
    {
        if (m_error)
            std::rethrow_exception(m_error);
    }

private:
    [[nodiscard]] int64_t turnOf(size_t k) const { return k < m_next.size() ? m_next[k] : 0; }
    std::mutex m_mutex;
    std::condition_variable m_turn;
    std::vector<int64_t> m_next; // m_next[k]: the batch whose k-th call is due
    bool m_failed = false;
    int m_waiting = 0;
    std::exception_ptr m_error;
};

} // namespace sparselab::pipeline
