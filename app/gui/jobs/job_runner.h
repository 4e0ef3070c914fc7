#pragma once
// The workbench's one way to run engine jobs (engine_jobs.h, analysis_jobs.h, teaching_jobs.h):
// one engine pool that runs one job at a time, the busy state, cancel, and the rule that one
// job uses a model at a time.
//
// Models are leased. A job started with the models it reads holds them until its final
// signal; a job on another runner (another window) that asks for a held model is refused with
// one readable sentence instead of racing the job. Leases are process-wide (windows may share
// models) and are taken and released on the GUI thread only. Every engine job of a window —
// load, evaluation, run, export, analyses, workspace open and save (workspace_jobs.h) and the
// Teaching Mode window's captures — goes through that window's one runner (session/workbench.h).
//
// Usage (launch: the outcome handlers and start in one call; every launcher uses it):
//     auto* job = new PerplexityJob(params);
//     connect(job, &PerplexityJob::progress, this, &Window::onProgress); // any other signals
//     if (!m_jobs.launch(job, tr("the evaluation"), {m_model.get()}, this,
//             {.ended = [this] { m_evaluation = nullptr; updateActions(); },  // first, every outcome
//              .finished = [this](const PerplexityJob::Result& r) { show(r); },
//              .failed = [this](const QString& message) { reportError(tr("Evaluation failed"), message); },
//              .cancelled = [this] { statusBar()->showMessage(tr("Cancelled.")); }}))
//         return false; // refused: the job was deleted, `ended` ran, and the refusal was shown
// A refusal is shown once for every launcher: by the outcome's `refused` handler when it has
// one, else by the runner's refusal handler (the workbench's "Busy" message box).
// The runner owns the job and deletes it after its final signal. It is idle again
// (busyChanged(false) emitted, leases released) before the outcome handlers run (the job's
// ending() comes first), so a handler may start the next job.

#include "engine_jobs.h"

#include <QObject>
#include <QPointer>
#include <QString>
#include <QThreadPool>

#include <functional>
#include <memory>
#include <vector>

namespace sparselab::gui {

// Models held outside a job; released when the lease is destroyed (or release() is called).
class ModelLease {
public:
    using Models = std::vector<const void*>;
    ModelLease() = default;
    ModelLease(ModelLease&& other) noexcept;
    ModelLease& operator=(ModelLease&& other) noexcept;
    ModelLease(const ModelLease&) = delete;
    ModelLease& operator=(const ModelLease&) = delete;
    ~ModelLease();

    // Takes every model of `models` (null entries are skipped) for `holder` (e.g. "the run
    // “SparseGPT 50 %”"), or none of them: then the lease is empty and `refusal` says which
    // work holds which model.
    static ModelLease take(const Models& models, const QString& holder, QString* refusal);
    // Who holds `model` ("" when free).
    [[nodiscard]] static QString holderOf(const void* model);

    [[nodiscard]] bool held() const { return !m_models.empty(); }
    void release();

private:
    Models m_models;
};

// What a launcher does when its job ends: `ended` on every outcome, first (forget the job, refresh
// the actions), then the one handler for how it ended. Empty handlers are skipped. A job the
// runner refuses to start ends too: `ended`, then `refused` with the one sentence saying why
// (empty: the runner's refusal handler shows it).
template <class Job>
struct JobOutcome {
    std::function<void()> ended;
    std::function<void(const typename Job::Result&)> finished;
    std::function<void(const QString&)> failed;
    std::function<void()> cancelled;
    std::function<void(const QString&)> refused;
};

class JobRunner : public QObject {
    Q_OBJECT

public:
    using Models = ModelLease::Models;

    explicit JobRunner(QObject* parent = nullptr);
    ~JobRunner() override; // cancels the running job and waits for it

    // Starts `job` (taking ownership) unless a job is running here or one of `models` is
    // leased elsewhere: then deletes it and returns why, in one sentence naming what holds it.
    // Connect the job's outcome signals before or after; the runner is idle again (leases
    // released, busyChanged(false) emitted, the job deleted later) before any of them runs.
    QString start(EngineJob* job, const QString& what, const Models& models = {});
    // start() with `outcome`'s handlers connected to the job's final signals, run in
    // `context`'s thread and dropped if `context` is destroyed first. True when the job started;
    // on a refusal the job is deleted, `ended` and then `refused` (else the refusal handler)
    // run, and false is returned.
    template <class Job>
    bool launch(Job* job, const QString& what, const Models& models, QObject* context, JobOutcome<Job> outcome);
    // Shows a refusal whose launcher has no `refused` handler (the workbench: a "Busy" message).
    void setRefusalHandler(std::function<void(const QString& refusal)> handler) { m_refusalHandler = std::move(handler); }

    [[nodiscard]] bool isBusy() const { return !m_job.isNull(); }
    [[nodiscard]] QString currentWork() const { return m_what; } // "" when idle
    [[nodiscard]] EngineJob* currentJob() const { return m_job; }
    void cancel();        // asks the running job to stop (its cancelled() follows)
    void waitForDone();   // blocks until the pool is idle (shutdown)

Q_SIGNALS:
    void busyChanged(bool busy);

private:
    void end();

    QThreadPool m_pool;
    QPointer<EngineJob> m_job;
    QString m_what;
    ModelLease m_lease;
    std::function<void(const QString&)> m_refusalHandler;
};

template <class Job>
bool JobRunner::launch(Job* job, const QString& what, const Models& models, QObject* context,
                       JobOutcome<Job> outcome)
{
    const auto handlers = std::make_shared<const JobOutcome<Job>>(std::move(outcome));
    const auto ended = [handlers] {
        if (handlers->ended)
            handlers->ended();
    };
    connect(job, &Job::finished, context, [handlers, ended](const typename Job::Result& result) {
        ended();
        if (handlers->finished)
            handlers->finished(result);
    });
    connect(job, &EngineJob::failed, context, [handlers, ended](const QString& message) {
        ended();
        if (handlers->failed)
            handlers->failed(message);
    });
    connect(job, &EngineJob::cancelled, context, [handlers, ended] {
        ended();
        if (handlers->cancelled)
            handlers->cancelled();
    });
    const QString refusal = start(job, what, models);
    if (refusal.isEmpty())
        return true;
    ended();
    if (handlers->refused)
        handlers->refused(refusal);
    else if (m_refusalHandler)
        m_refusalHandler(refusal);
    return false;
}

} // namespace sparselab::gui
