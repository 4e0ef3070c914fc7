#include "job_runner.h"

#include "util/memory_policy.h"

#include <QCoreApplication>
#include <QThread>

#include <map>

namespace sparselab::gui {

namespace {

// model → what holds it. GUI thread only (asserted), so no lock.
std::map<const void*, QString>& leases()
{
    static std::map<const void*, QString> held;
    return held;
}

void assertGuiThread()
{
    Q_ASSERT(!QCoreApplication::instance() || QThread::currentThread() == QCoreApplication::instance()->thread());
}

} // namespace

ModelLease::ModelLease(ModelLease&& other) noexcept : m_models(std::move(other.m_models)) { other.m_models.clear(); }

ModelLease& ModelLease::operator=(ModelLease&& other) noexcept
{
    if (this != &other) {
        release();
        m_models = std::move(other.m_models);
        other.m_models.clear();
    }
    return *this;
}

ModelLease::~ModelLease() { release(); }

ModelLease ModelLease::take(const Models& models, const QString& holder, QString* refusal)
{
    assertGuiThread();
    for (const void* model : models)
        if (model && leases().count(model)) {
            if (refusal)
                *refusal = QCoreApplication::translate("sparselab::gui::JobRunner",
                                                       "The model is in use by %1: wait for it to finish or cancel it (Esc).")
                               .arg(leases().at(model));
            return {};
        }
    ModelLease lease;
    for (const void* model : models)
        if (model && leases().emplace(model, holder).second)
            lease.m_models.push_back(model);
    if (refusal)
        refusal->clear();
    return lease;
}

QString ModelLease::holderOf(const void* model)
{
    assertGuiThread();
    const auto it = leases().find(model);
    return it == leases().end() ? QString() : it->second;
}

void ModelLease::release()
{
    for (const void* model : m_models)
        leases().erase(model);
    m_models.clear();
}

JobRunner::JobRunner(QObject* parent) : QObject(parent)
{
    m_pool.setMaxThreadCount(1);
    // One long-lived worker: LibTorch's per-thread state (intra-op threads, grad mode) is set
    // once per job anyway, and thread start-up is not paid per job.
    m_pool.setExpiryTimeout(-1);
}

JobRunner::~JobRunner()
{
    cancel();
    m_pool.waitForDone();
}

void JobRunner::cancel()
{
    if (m_job)
        m_job->cancel();
}

void JobRunner::waitForDone() { m_pool.waitForDone(); }

QString JobRunner::start(EngineJob* job, const QString& what, const Models& models)
{
    job->setAutoDelete(false);
    if (m_job) {
        delete job;
        return tr("Another job is running (%1): wait for it to finish or cancel it (Esc).").arg(m_what);
    }
    QString refusal;
    ModelLease lease = ModelLease::take(models, what, &refusal);
    if (!refusal.isEmpty()) {
        delete job;
        return refusal;
    }
    m_lease = std::move(lease);
    m_job = job;
    m_what = what;
    connect(job, &EngineJob::ending, this, &JobRunner::end);
    Q_EMIT busyChanged(true);
    m_pool.start(job);
    return {};
}

void JobRunner::end()
{
    if (m_job)
        m_job->deleteLater();
    m_job = nullptr;
    m_what.clear();
    m_lease.release();
    // The large temporaries the job freed were kept for its next allocations
    // (util/memory_policy.h); between jobs they go back to the system.
    releaseCachedLargeBlocks();
    Q_EMIT busyChanged(false);
}

} // namespace sparselab::gui
