#include "util/progress.h"

#include "util/errors.h"

#include <algorithm>

namespace sparselab {

void throwIfCancelled(const CancelToken* token)
{
    if (token && token->cancelled())
        throw CancelledError();
}

ProgressReporter::ProgressReporter(const ProgressCallback& callback, std::string stage, int64_t total)
    : m_callback(callback), m_stage(std::move(stage)), m_total(total),
      m_start(std::chrono::steady_clock::now())
{
}

double ProgressReporter::elapsedSeconds() const
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
}

void ProgressReporter::report(int64_t done, const std::string& detail)
{
    if (!m_callback)
        return;
    Progress p;
    p.stage = m_stage;
    p.detail = detail;
    p.total = m_total;
    p.done = m_total > 0 ? std::clamp<int64_t>(done, 0, m_total) : done;
    p.elapsedSeconds = elapsedSeconds();
    // Linear extrapolation; unknown until some work is done.
    if (m_total > 0 && p.done > 0)
        p.etaSeconds = p.elapsedSeconds * double(m_total - p.done) / double(p.done);
    m_callback(p);
}

} // namespace sparselab
