#include "util/fork_join.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sparselab::detail {
namespace {

// One call's units, handed out one at a time to whoever works on them.
struct Job {
    int64_t units = 0;
    ForkJoinUnit call = nullptr;
    const void* fn = nullptr;
    std::atomic<int64_t> next{0};
    std::mutex failureMutex;
    std::exception_ptr failure;

    void work(int worker)
    {
        try {
            for (int64_t u = next.fetch_add(1); u < units; u = next.fetch_add(1))
                call(fn, worker, u);
        } catch (...) {
            std::lock_guard lock(failureMutex);
            if (!failure)
                failure = std::current_exception();
            next.store(units);
        }
    }
};

// Parked helper threads that one call at a time can use. Helpers are started as calls need
// them and never exit; they wait on m_wake between calls.
class HelperPool {
public:
    // Runs `job` on the caller (worker 0) and up to `helpers` helpers (workers 1 …), and
    // returns when every helper that took part has finished. False, having run nothing, when
    // another call holds the pool.
    bool tryRun(Job& job, int helpers)
    {
        bool expected = false;
        if (!m_inUse.compare_exchange_strong(expected, true))
            return false;
        {
            std::lock_guard lock(m_mutex);
            try {
                while (m_started < helpers) {
                    std::thread(&HelperPool::helperLoop, this).detach();
                    ++m_started;
                }
            } catch (...) {
                // No more threads to be had: the job runs on those there are.
            }
            m_job = &job;
            m_wanted = std::min(helpers, m_started);
            m_joined = 0;
            ++m_generation;
        }
        m_wake.notify_all();
        job.work(0);
        std::unique_lock lock(m_mutex);
        // The units are all taken: helpers not awake yet need not join any more.
        m_wanted = m_joined;
        m_done.wait(lock, [&] { return m_running == 0; });
        m_job = nullptr;
        lock.unlock();
        m_inUse.store(false);
        return true;
    }

private:
    void helperLoop()
    {
        uint64_t seen = 0;
        std::unique_lock lock(m_mutex);
        for (;;) {
            m_wake.wait(lock, [&] { return m_generation != seen; });
            seen = m_generation;
            if (!m_job || m_joined >= m_wanted)
                continue;
            const int worker = ++m_joined;
            ++m_running;
            Job* job = m_job;
            lock.unlock();
            job->work(worker);
            lock.lock();
            if (--m_running == 0)
                m_done.notify_one();
        }
    }

    std::atomic<bool> m_inUse{false};
    std::mutex m_mutex;
    std::condition_variable m_wake; // helpers wait here for a call
    std::condition_variable m_done; // the caller waits here for its helpers
    int m_started = 0;              // helpers started (they never exit)
    uint64_t m_generation = 0;      // one more for every call
    Job* m_job = nullptr;           // the current call's units
    int m_wanted = 0;               // helpers the current call still takes
    int m_joined = 0;               // helpers that took part in it
    int m_running = 0;              // of those, the ones still working
};

HelperPool& helperPool()
{
    // Never destroyed: detached helpers wait on its members until the process ends.
    static HelperPool* pool = new HelperPool;
    return *pool;
}

} // namespace

void runForkJoin(int64_t units, int threads, ForkJoinUnit call, const void* fn)
{
    const int64_t count = std::min<int64_t>(std::max(threads, 1), units);
    if (count <= 1) {
        for (int64_t u = 0; u < units; ++u)
            call(fn, 0, u);
        return;
    }
    Job job;
    job.units = units;
    job.call = call;
    job.fn = fn;
    if (!helperPool().tryRun(job, int(count - 1))) {
        std::vector<std::thread> threadsOfThisCall;
        threadsOfThisCall.reserve(size_t(count - 1));
        for (int w = 1; w < int(count); ++w)
            threadsOfThisCall.emplace_back([&job, w] { job.work(w); });
        job.work(0);
        for (auto& t : threadsOfThisCall)
            t.join();
    }
    if (job.failure)
        std::rethrow_exception(job.failure);
}

} // namespace sparselab::detail
