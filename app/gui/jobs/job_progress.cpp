#include "job_progress.h"

#include <QSettings>

#include <algorithm>
#include <cmath>

namespace sparselab::gui {

namespace {

const char* const kEvalKey = "progress/evalSecondsPerTokenBlock";
const char* const kPruneKey = "progress/pruneSecondsPerTokenBlock";
const char* const kTokenizeKey = "progress/tokenizeSecondsPerByte";
const char* const kRecoverKey = "progress/recoverSecondsPerTokenBlock";

bool usable(double rate) { return std::isfinite(rate) && rate > 0; }

double readRate(const QSettings& settings, const char* key, double fallback)
{
    const double v = settings.value(QLatin1String(key), fallback).toDouble();
    return usable(v) ? v : fallback;
}

} // namespace

CostRates CostRates::load()
{
    const QSettings settings;
    CostRates r;
    r.evalPerTokenBlock = readRate(settings, kEvalKey, r.evalPerTokenBlock);
    r.prunePerTokenBlock = readRate(settings, kPruneKey, r.prunePerTokenBlock);
    r.tokenizePerByte = readRate(settings, kTokenizeKey, r.tokenizePerByte);
    r.recoverPerTokenBlock = readRate(settings, kRecoverKey, r.recoverPerTokenBlock);
    return r;
}

void CostRates::store() const
{
    QSettings settings;
    if (usable(evalPerTokenBlock))
        settings.setValue(QLatin1String(kEvalKey), evalPerTokenBlock);
    if (usable(prunePerTokenBlock))
        settings.setValue(QLatin1String(kPruneKey), prunePerTokenBlock);
    if (usable(tokenizePerByte))
        settings.setValue(QLatin1String(kTokenizeKey), tokenizePerByte);
    if (usable(recoverPerTokenBlock))
        settings.setValue(QLatin1String(kRecoverKey), recoverPerTokenBlock);
}

PhasedProgress::PhasedProgress(QList<Phase> phases)
    : m_phases(std::move(phases))
{
    for (Phase& p : m_phases) {
        p.expectedSeconds = std::isfinite(p.expectedSeconds) ? std::max(0.0, p.expectedSeconds) : 0.0;
        m_total += p.expectedSeconds;
    }
    m_spent = QList<double>(m_phases.size(), 0.0);
    restart();
}

void PhasedProgress::restart()
{
    m_start = Clock::now();
    m_phaseStart = m_start;
    m_phase = 0;
    m_overall = 0;
    std::fill(m_spent.begin(), m_spent.end(), 0.0);
}

void PhasedProgress::set(int index, double fraction)
{
    if (m_phases.isEmpty())
        return;
    index = std::clamp(index, 0, int(m_phases.size()) - 1);
    if (index != m_phase) {
        const auto now = Clock::now();
        m_spent[m_phase] += std::chrono::duration<double>(now - m_phaseStart).count();
        m_phaseStart = now;
        m_phase = index;
    }
    if (m_total <= 0)
        return;
    double done = 0;
    for (int i = 0; i < index; ++i)
        done += m_phases[i].expectedSeconds;
    done += m_phases[index].expectedSeconds * std::clamp(std::isfinite(fraction) ? fraction : 0.0, 0.0, 1.0);
    m_overall = std::clamp(std::max(m_overall, done / m_total), 0.0, 1.0);
}

void PhasedProgress::setExpectedSeconds(int index, double seconds)
{
    if (index <= m_phase || index >= m_phases.size())
        return;
    seconds = std::isfinite(seconds) ? std::max(0.0, seconds) : 0.0;
    m_total += seconds - m_phases[index].expectedSeconds;
    m_phases[index].expectedSeconds = seconds;
}

void PhasedProgress::finish()
{
    if (!m_phases.isEmpty())
        set(int(m_phases.size()) - 1, 1.0);
    m_overall = 1.0;
}

QString PhasedProgress::label() const { return m_phases.isEmpty() ? QString() : m_phases[m_phase].label; }

double PhasedProgress::elapsedSeconds() const { return std::chrono::duration<double>(Clock::now() - m_start).count(); }

double PhasedProgress::etaSeconds() const
{
    if (m_overall >= 1.0)
        return 0.0;
    const double elapsed = elapsedSeconds();
    // Too little done for a measured rate (the first percent and half second are start-up:
    // threads, first allocations): the expected seconds of what is left, from the rates. A
    // demo run takes two seconds, so without this its first half had no estimate at all.
    if (m_overall < 0.01 || elapsed < 0.5)
        return m_total > 0 ? m_total * (1.0 - m_overall) : -1.0;
    return elapsed * (1.0 - m_overall) / m_overall;
}

double PhasedProgress::phaseSeconds(int index) const
{
    if (index < 0 || index >= m_spent.size())
        return 0.0;
    double s = m_spent[index];
    if (index == m_phase)
        s += std::chrono::duration<double>(Clock::now() - m_phaseStart).count();
    return s;
}

} // namespace sparselab::gui
