#pragma once
// Workspace files (store/workspace.h) from the workbench, as engine jobs: they run on the
// session's JobRunner (job_runner.h) like every other job, so a save or an open waits for no
// one and races no one — it is refused while another job runs or holds a model it reads, and
// Esc cancels it (nothing is written then: the save is atomic).
//   WorkspaceSaveJob  writes runs of the Results view (settings, plan, per-layer table,
//                     perplexities, the masks of runs whose compressed model is still in
//                     memory) with the dense model's identity, the Sensitivity tab's scan and
//                     the Sweeps tab's sweep. Runs read from a workspace are written back as
//                     stored there, and that file's workspace-level groups are carried over.
//   WorkspaceOpenJob  reads a workspace's runs for the Results view, and its last sweep and
//                     sensitivity scan for their tabs.
// toStoreRun / fromStoreRun convert between the views' runs and the workspace's (no engine
// work; the calibration and evaluation texts are hashed when the files exist).

#include "engine_jobs.h"
#include "session_types.h"

#include <QList>
#include <QString>

#include <memory>
#include <utility>
#include <vector>

namespace sparselab::model { class CausalLM; }
namespace sparselab::store { struct RunRecord; }
namespace sparselab::analysis {
struct SweepResult;
struct SensitivityResult;
} // namespace sparselab::analysis

namespace sparselab::gui {

[[nodiscard]] store::RunRecord toStoreRun(const RunRecord& run);
[[nodiscard]] RunRecord fromStoreRun(const store::RunRecord& run);

class WorkspaceSaveJob final : public EngineJob {
    Q_OBJECT

public:
    struct Params {
        QString file;  // the workspace to write (replaced atomically)
        // The runs in order, each with its compressed model while it is kept (null otherwise).
        std::vector<std::pair<RunRecord, std::shared_ptr<const model::CausalLM>>> runs;
        std::shared_ptr<const model::CausalLM> dense; // its identity goes in; null = none loaded
        CalibrationSettings calibration;
        std::shared_ptr<const analysis::SensitivityResult> scan; // null = none
        std::shared_ptr<const analysis::SweepResult> sweep;      // null = none
    };
    struct Result {
        QString file;
        int runs = 0;
    };

    explicit WorkspaceSaveJob(Params params, QObject* parent = nullptr);
    // The models the save reads (for the runner's leases): the dense one and the kept ones.
    [[nodiscard]] std::vector<const void*> models() const;

Q_SIGNALS:
    void finished(const sparselab::gui::WorkspaceSaveJob::Result& result);

protected:
    void execute() override;

private:
    Params m_params;
};

class WorkspaceOpenJob final : public EngineJob {
    Q_OBJECT

public:
    struct Result {
        QString file;
        QList<RunRecord> runs;     // each with originFile / originId set
        QString modelPath;         // the model the workspace records ("" when none)
        std::shared_ptr<const analysis::SweepResult> sweep;      // the last one, null = none
        std::shared_ptr<const analysis::SensitivityResult> scan; // the last one, null = none
        QString analysisError;     // a malformed sweep or scan (the runs still open)
    };

    explicit WorkspaceOpenJob(QString file, QObject* parent = nullptr);

Q_SIGNALS:
    void finished(const sparselab::gui::WorkspaceOpenJob::Result& result);

protected:
    void execute() override;

private:
    QString m_file;
};

} // namespace sparselab::gui
