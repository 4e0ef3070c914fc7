#pragma once
// Progress reporting and cancellation for long engine operations.
//
// Every long operation takes a `const ProgressCallback&` (may be empty) and a
// `const CancelToken*` (may be null). It calls the callback at least once per unit of work
// (window, column block, layer) and always once more at the end, and checks the token at
// the same places. On cancellation it throws CancelledError having written nothing.
// Callbacks run on the worker thread: front ends forward and throttle them (~10 Hz).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace sparselab {

struct Progress {
    std::string stage;      // short phrase, e.g. "perplexity", "calibration", "layer"
    std::string detail;     // e.g. "model.layers.3.mlp.down_proj"
    int64_t done = 0;       // units finished
    int64_t total = 0;      // units in all (0 = unknown)
    double elapsedSeconds = 0.0;
    double etaSeconds = -1.0; // < 0 when unknown
    [[nodiscard]] double fraction() const { return total > 0 ? double(done) / double(total) : 0.0; }
};

using ProgressCallback = std::function<void(const Progress&)>;

// Thread-safe flag; cancel() from any thread, polled by the worker.
class CancelToken {
public:
    void cancel() { m_cancelled.store(true, std::memory_order_relaxed); }
    void reset() { m_cancelled.store(false, std::memory_order_relaxed); }
    [[nodiscard]] bool cancelled() const { return m_cancelled.load(std::memory_order_relaxed); }
private:
    std::atomic<bool> m_cancelled{false};
};

// Throws CancelledError when token is non-null and cancelled.
void throwIfCancelled(const CancelToken* token);

// What a caller watches a long engine call with that reports nothing else (a layer capture,
// a sensitivity scan): progress and cancel, both optional. Calls that report more have their
// own observer (pipeline::PruneObserver, analysis::SweepObserver, workflow::RunObserver).
struct Watch {
    ProgressCallback progress;
    const CancelToken* cancel = nullptr;
};

// Computes elapsed time and a linear ETA for a stage, and forwards to a callback.
class ProgressReporter {
public:
    ProgressReporter(const ProgressCallback& callback, std::string stage, int64_t total);
    // Reports `done` units finished (clamped to total). Cheap when callback is empty.
    void report(int64_t done, const std::string& detail = {});
    [[nodiscard]] double elapsedSeconds() const;
private:
    const ProgressCallback& m_callback;
    std::string m_stage;
    int64_t m_total;
    std::chrono::steady_clock::time_point m_start;
};

} // namespace sparselab
