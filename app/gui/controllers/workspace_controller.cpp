#include "workspace_controller.h"

#include "calibration_panel.h"
#include "main_window.h"
#include "results_panel.h"
#include "sensitivity_panel.h"
#include "analysis_controller.h"
#include "sweep_panel.h"

#include "store/analysis_store.h"
#include "pipeline/sensitivity.h"
#include "pipeline/sweep.h"
#include "store/run_records.h"
#include "store/workspace.h"
#include "util/errors.h"
#include "util/sha256.h"
#include "log_view.h"

#include <QAction>
#include <QApplication>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QMessageBox>
#include <QSettings>
#include <QStatusBar>
#include <QStyle>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>

namespace sparselab::gui {

namespace {

namespace fs = std::filesystem;

const char* const kRecentKey = "workspace/recent";
const char* const kLastDirKey = "workspace/lastDir";
const char* const kGuiGroup = "gui";       // run extras: the workbench's own settings
const char* const kPlanGroup = "gui/plan"; // run extras: the plan rows

std::string text(const QString& s) { return s.toStdString(); }
QString text(const std::string& s) { return QString::fromStdString(s); }

std::string hashIfFile(const QString& path)
{
    std::error_code ec;
    if (path.isEmpty() || !fs::is_regular_file(path.toStdString(), ec))
        return {};
    try {
        return sha256File(path.toStdString());
    } catch (const InputError&) {
        return {};
    }
}

store::ExtraGroup planGroup(const QList<PlanRow>& plan)
{
    std::vector<std::string> names, kinds, methods;
    std::vector<int64_t> blocks, rows, cols, nmN, nmM, bits, groups, syms, blocksizes;
    std::vector<double> sparsity, damp;
    for (const PlanRow& p : plan) {
        names.push_back(text(p.name));
        kinds.push_back(text(p.kind));
        methods.push_back(text(planMethodKey(p.setting.method)));
        blocks.push_back(p.block);
        rows.push_back(p.rows);
        cols.push_back(p.cols);
        nmN.push_back(p.setting.nmN);
        nmM.push_back(p.setting.nmM);
        bits.push_back(p.setting.bits);
        groups.push_back(p.setting.group);
        syms.push_back(p.setting.sym ? 1 : 0);
        blocksizes.push_back(p.setting.blocksize);
        sparsity.push_back(p.setting.sparsity);
        damp.push_back(p.setting.damp);
    }
    store::ExtraGroup g;
    g.path = kPlanGroup;
    g.datasets = {store::Dataset::text("name", names),         store::Dataset::text("kind", kinds),
                  store::Dataset::text("method", methods),     store::Dataset::int64("block", blocks),
                  store::Dataset::int64("rows", rows),         store::Dataset::int64("cols", cols),
                  store::Dataset::int64("nm_n", nmN),          store::Dataset::int64("nm_m", nmM),
                  store::Dataset::int64("bits", bits),         store::Dataset::int64("group", groups),
                  store::Dataset::int64("sym", syms),          store::Dataset::int64("blocksize", blocksizes),
                  store::Dataset::float64("sparsity", sparsity), store::Dataset::float64("damp", damp)};
    return g;
}

QList<PlanRow> planFromGroup(const store::ExtraGroup& g)
{
    QList<PlanRow> plan;
    const auto* names = g.dataset("name");
    if (!names)
        return plan;
    const auto column = [&](const char* name) -> const store::Dataset& {
        const auto* d = g.dataset(name);
        if (!d || d->size() != names->size())
            throw InputError(std::string("run plan: column '") + name + "' missing or of the wrong length");
        return *d;
    };
    const auto &kinds = column("kind"), &methods = column("method"), &blocks = column("block"),
               &rows = column("rows"), &cols = column("cols"), &nmN = column("nm_n"), &nmM = column("nm_m"),
               &bits = column("bits"), &groups = column("group"), &syms = column("sym"),
               &blocksizes = column("blocksize"), &sparsity = column("sparsity"), &damp = column("damp");
    for (size_t i = 0; i < names->strings.size(); ++i) {
        PlanRow p;
        p.name = text(names->strings[i]);
        p.kind = text(kinds.strings.at(i));
        (void)parsePlanMethod(text(methods.strings.at(i)), &p.setting.method);
        p.block = int(blocks.i64.at(i));
        p.rows = rows.i64.at(i);
        p.cols = cols.i64.at(i);
        p.setting.nmN = int(nmN.i64.at(i));
        p.setting.nmM = int(nmM.i64.at(i));
        p.setting.bits = int(bits.i64.at(i));
        p.setting.group = groups.i64.at(i);
        p.setting.sym = syms.i64.at(i) != 0;
        p.setting.blocksize = blocksizes.i64.at(i);
        p.setting.sparsity = sparsity.f64.at(i);
        p.setting.damp = damp.f64.at(i);
        plan.push_back(p);
    }
    return plan;
}

template <typename T>
T attributeOr(const store::Attributes& a, const char* name, T fallback)
{
    const auto it = a.find(name);
    if (it == a.end() || !std::holds_alternative<T>(it->second))
        return fallback;
    return std::get<T>(it->second);
}

} // namespace

store::RunRecord toStoreRun(const RunRecord& run)
{
    // The record the run made as it ran (workflow/compression_run.h): the one the CLI writes
    // for the same run. Runs read from a workspace are written back from their stored run.
    if (!run.stored)
        throw InputError("run '" + text(run.name) + "' carries no record of its own: run it again to save it");
    store::RunRecord s = *run.stored;
    s.label = text(run.name);
    store::ExtraGroup gui;
    gui.path = kGuiGroup;
    gui.attributes = {{"model_folder", text(run.modelFolder)},
                      {"finished_at", text(run.finishedAt.toString(Qt::ISODateWithMs))},
                      {"eval_enabled", int64_t(run.evaluation.enabled ? 1 : 0)},
                      {"eval_text", text(run.evaluation.textPath)},
                      {"eval_seqlen", int64_t(run.evaluation.seqlen)},
                      {"eval_max_windows", int64_t(run.evaluation.maxWindows)},
                      {"eval_batch", int64_t(run.evaluation.batchSize)},
                      {"eval_windows", int64_t(run.evalWindows)},
                      {"eval_used_seqlen", int64_t(run.evalSeqlen)}};
    // The run's own groups (e.g. "recovery") stay; the workbench's two are written afresh.
    std::vector<store::ExtraGroup> extras;
    for (const auto& extra : s.extras)
        if (extra.path != kGuiGroup && extra.path != kPlanGroup)
            extras.push_back(extra);
    extras.push_back(gui);
    extras.push_back(planGroup(run.plan));
    s.extras = std::move(extras);
    return s;
}

RunRecord fromStoreRun(const store::RunRecord& s)
{
    RunRecord run;
    run.name = text(s.label);
    run.recipeJson = QByteArray::fromStdString(s.recipeJson);
    run.linearSparsity = s.linearSparsity;
    run.pruneSeconds = s.timings.pruneSeconds;
    run.totalSeconds = s.timings.totalSeconds;
    run.device = text(s.provenance.device);
    run.finishedAt = QDateTime::fromString(text(s.createdUtc), Qt::ISODateWithMs);
    if (s.calibration) {
        run.calibration.textPath = text(s.calibration->file);
        run.calibration.nsamples = s.calibration->nsamples;
        run.calibration.seqlen = s.calibration->seqlen;
        run.calibration.seed = s.calibration->seed;
    }
    run.evaluation.enabled = s.evaluation.has_value();
    if (s.evaluation) {
        run.evaluation.textPath = text(s.evaluation->file);
        run.evaluation.maxWindows = s.evaluation->maxWindows;
    }
    run.layers = QList<solve::LayerRecord>(s.layers.begin(), s.layers.end());
    run.perplexityBefore = s.perplexityBefore ? s.perplexityBefore->perplexity : NAN;
    run.perplexityAfter = s.perplexityAfter ? s.perplexityAfter->perplexity : NAN;
    if (s.perplexityBefore)
        run.detailBefore = std::make_shared<const store::PerplexityRecord>(*s.perplexityBefore);
    if (s.perplexityAfter)
        run.detailAfter = std::make_shared<const store::PerplexityRecord>(*s.perplexityAfter);
    const auto* after = s.perplexityAfter ? &*s.perplexityAfter : (s.perplexityBefore ? &*s.perplexityBefore : nullptr);
    if (after) {
        run.evalWindows = after->windows;
        run.evalSeqlen = after->seqlen;
    }
    for (const auto& extra : s.extras) {
        if (extra.path == kGuiGroup) {
            const auto& a = extra.attributes;
            run.modelFolder = text(attributeOr<std::string>(a, "model_folder", {}));
            const QDateTime local =
                QDateTime::fromString(text(attributeOr<std::string>(a, "finished_at", {})), Qt::ISODateWithMs);
            if (local.isValid())
                run.finishedAt = local;
            run.evaluation.enabled = attributeOr<int64_t>(a, "eval_enabled", run.evaluation.enabled ? 1 : 0) != 0;
            run.evaluation.textPath = text(attributeOr<std::string>(a, "eval_text", text(run.evaluation.textPath)));
            run.evaluation.seqlen = attributeOr<int64_t>(a, "eval_seqlen", run.evaluation.seqlen);
            run.evaluation.maxWindows = attributeOr<int64_t>(a, "eval_max_windows", run.evaluation.maxWindows);
            run.evaluation.batchSize = attributeOr<int64_t>(a, "eval_batch", run.evaluation.batchSize);
            run.evalWindows = attributeOr<int64_t>(a, "eval_windows", run.evalWindows);
            run.evalSeqlen = attributeOr<int64_t>(a, "eval_used_seqlen", run.evalSeqlen);
        } else if (extra.path == "recovery") { // workflow/recovery_step.h
            const auto& a = extra.attributes;
            run.recovery.enabled = true;
            run.recovery.steps = attributeOr<int64_t>(a, "steps", run.recovery.steps);
            run.recovery.loss = text(attributeOr<std::string>(a, "loss", "kl"));
            run.recovery.learningRate = attributeOr<double>(a, "learning_rate", run.recovery.learningRate);
            run.perplexityPruned = attributeOr<double>(a, "perplexity_pruned", NAN);
        } else if (extra.path == kPlanGroup) {
            run.plan = planFromGroup(extra);
        }
    }
    if (run.plan.isEmpty()) // a workspace written by the CLI: the plan is what the layers were given
        for (const solve::LayerRecord& l : run.layers)
            run.plan.push_back(planRow(l));
    if (run.modelFolder.isEmpty())
        run.modelFolder = text(s.exportPath);
    run.modelKept = false;
    return run;
}

// ---------------------------------------------------------------------------------------------

WorkspaceController::WorkspaceController(MainWindow* window)
    : QObject(window), m_window(window)
{
    m_pool.setMaxThreadCount(1);
    QStyle* s = window->style();
    m_openAction = new QAction(s->standardIcon(QStyle::SP_DialogOpenButton), tr("Open &Workspace…"), this);
    m_openAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    m_saveAction = new QAction(s->standardIcon(QStyle::SP_DialogSaveButton), tr("Save Wor&kspace"), this);
    m_saveAction->setShortcut(QKeySequence(Qt::CTRL | Qt::ALT | Qt::Key_S));
    m_saveAsAction = new QAction(tr("Save Workspace &As…"), this);
    m_saveAsAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::ALT | Qt::Key_S));
    const auto tip = [](QAction* a, const QString& t) {
        const QString full = a->shortcut().isEmpty() ? t
                                                     : QStringLiteral("%1 (%2)").arg(t, a->shortcut().toString(QKeySequence::NativeText));
        a->setToolTip(full);
        a->setStatusTip(full);
    };
    tip(m_openAction, tr("Open a workspace file (.h5): its runs replace the Results view."));
    tip(m_saveAction, tr("Save every run of the Results view, with the model's identity, to the workspace file."));
    tip(m_saveAsAction, tr("Save the runs to a new workspace file (.h5, readable with h5py and h5dump)."));
    connect(m_openAction, &QAction::triggered, this, &WorkspaceController::openWorkspaceDialog);
    connect(m_saveAction, &QAction::triggered, this, [this] { saveWorkspace(); });
    connect(m_saveAsAction, &QAction::triggered, this, &WorkspaceController::saveWorkspaceAsDialog);
    for (QAction* a : {m_openAction, m_saveAction, m_saveAsAction})
        window->addAction(a);

    m_recent = new RecentFiles(QString::fromLatin1(kRecentKey), kMaxRecentWorkspaces, this);
    m_recent->load();
    connect(m_recent, &RecentFiles::chosen, this, [this](const QString& path) { openWorkspace(path); });
    connect(window, &MainWindow::runFinished, this, [this] { m_modified = true; });
    connect(window->resultsPanel(), &ResultsPanel::runRemoved, this, [this] { m_modified = true; });
    connect(window->resultsPanel(), &ResultsPanel::runRenamed, this, [this] { m_modified = true; });
    connect(window, &MainWindow::busyChanged, this, &WorkspaceController::updateActions);
    updateActions();
}

WorkspaceController::~WorkspaceController() { m_pool.waitForDone(); }

void WorkspaceController::populateFileMenu(QMenu* file)
{
    file->addAction(m_openAction);
    m_recentMenu = file->addMenu(tr("Open Recent Wor&kspace"));
    m_recent->setMenu(m_recentMenu);
    file->addAction(m_saveAction);
    file->addAction(m_saveAsAction);
}

void WorkspaceController::setBusy(bool busy)
{
    m_busy = busy;
    updateActions();
    Q_EMIT busyChanged(busy);
}

void WorkspaceController::updateActions()
{
    // Opening replaces the runs: not while an engine run may add one.
    const bool free = !m_busy && !m_window->isRunning();
    m_openAction->setEnabled(free);
    m_saveAction->setEnabled(free);
    m_saveAsAction->setEnabled(free);
    m_recent->setAvailable(free);
}

void WorkspaceController::addRecent(const QString& file)
{
    const QString path = QDir::cleanPath(QFileInfo(file).absoluteFilePath());
    m_recent->add(path);
    QSettings().setValue(kLastDirKey, QFileInfo(path).absolutePath());
}

void WorkspaceController::clearRecentWorkspaces()
{
    m_recent->clear();
    updateActions();
}

void WorkspaceController::fail(const QString& title, const QString& message)
{
    m_window->reportError(title, message);
    Q_EMIT workspaceFailed(message);
}

void WorkspaceController::openWorkspaceDialog()
{
    const QString dir = QSettings().value(kLastDirKey, QDir::homePath()).toString();
    const QString file = QFileDialog::getOpenFileName(m_window, tr("Open Workspace"), dir,
                                                      tr("SparseLab workspaces (*.h5);;All files (*)"));
    if (!file.isEmpty())
        openWorkspace(file);
}

void WorkspaceController::saveWorkspaceAsDialog()
{
    const QString dir = QSettings().value(kLastDirKey, QDir::homePath()).toString();
    QString file = QFileDialog::getSaveFileName(m_window, tr("Save Workspace As"),
                                                m_file.isEmpty() ? dir + QStringLiteral("/workspace.h5") : m_file,
                                                tr("SparseLab workspaces (*.h5)"));
    if (file.isEmpty())
        return;
    if (QFileInfo(file).suffix().isEmpty())
        file += QStringLiteral(".h5");
    saveWorkspaceAs(file);
}

bool WorkspaceController::saveWorkspace()
{
    if (m_file.isEmpty()) {
        saveWorkspaceAsDialog();
        return m_busy;
    }
    return saveWorkspaceAs(m_file);
}

bool WorkspaceController::saveWorkspaceAs(const QString& file)
{
    if (m_busy || file.isEmpty())
        return false;
    // The models the save reads (the dense one, every kept run's): not while a job uses them.
    ModelLease::Models models{m_window->denseModel().get()};
    for (const RunRecord& run : m_window->resultsPanel()->runs())
        models.push_back(m_window->runModel(run.id).get());
    QString refusal;
    m_saveLease = ModelLease::take(models, tr("saving the workspace"), &refusal);
    if (!refusal.isEmpty()) {
        m_window->reportError(tr("Cannot save the workspace now"), refusal);
        Q_EMIT workspaceFailed(refusal);
        return false;
    }
    // Snapshot on the GUI thread; the worker converts, hashes and writes.
    struct Job {
        std::vector<std::pair<RunRecord, std::shared_ptr<const model::CausalLM>>> runs;
        std::shared_ptr<const model::CausalLM> dense;
        CalibrationSettings calibration;
        std::shared_ptr<const pipeline::SensitivityResult> scan;
        std::shared_ptr<const pipeline::SweepResult> sweep;
    };
    auto job = std::make_shared<Job>();
    for (const RunRecord& run : m_window->resultsPanel()->runs())
        job->runs.emplace_back(run, m_window->runModel(run.id));
    job->dense = m_window->denseModel();
    job->calibration = m_window->calibrationPanel()->settings();
    job->scan = m_window->analysis()->panel()->scan();
    if (const pipeline::SweepResult* sweep = m_window->sweepPanel()->sweep())
        job->sweep = std::make_shared<pipeline::SweepResult>(*sweep);
    const QString path = QDir::cleanPath(QFileInfo(file).absoluteFilePath());
    m_window->logView()->appendInfo(tr("Saving workspace %1…").arg(path));
    m_window->statusBar()->showMessage(tr("Saving workspace %1…").arg(QFileInfo(path).fileName()));
    setBusy(true);
    QPointer<WorkspaceController> self(this);
    m_pool.start([self, job, path] {
        QString error;
        try {
            store::WorkspaceContents contents;
            if (job->dense)
                contents.model = store::modelIdentity(*job->dense);
            const auto& c = job->calibration;
            if (!c.textPath.isEmpty())
                contents.calibration = store::CalibrationSettings{text(c.textPath), hashIfFile(c.textPath), 0,
                                                                  c.nsamples, c.seqlen, c.seed};
            // The workspaces the runs were read from: their stored runs and groups.
            std::map<QString, store::WorkspaceContents> origins;
            for (const auto& entry : job->runs) {
                const QString& origin = entry.first.originFile;
                if (!origin.isEmpty() && !origins.count(origin) && QFileInfo(origin).isFile())
                    origins.emplace(origin, store::loadWorkspace(origin.toStdString()));
            }
            std::map<std::string, store::ExtraGroup> groups;
            for (const auto& [file, stored] : origins)
                for (const auto& g : stored.groups)
                    groups[g.path] = g;
            int index = 1;
            for (const auto& [run, model] : job->runs) {
                const store::RunRecord* stored = nullptr;
                if (const auto origin = origins.find(run.originFile); origin != origins.end())
                    stored = origin->second.run(run.originId.toStdString());
                store::RunRecord s = stored ? *stored : toStoreRun(run);
                if (stored)
                    s.label = text(run.name);
                char id[32];
                std::snprintf(id, sizeof id, "run_%04d", index++);
                s.id = id;
                if (!stored && model && s.masks.empty())
                    s.masks = store::zeroMasks(*model);
                contents.runs.push_back(std::move(s));
            }
            // The Sensitivity and Sweeps tabs' results, unless already stored under some name.
            const auto storeAnalysis = [&groups](store::ExtraGroup group, const std::string& prefix) {
                std::vector<std::string> taken;
                for (const auto& [path, g] : groups) {
                    if (path.rfind(prefix + "/", 0) != 0)
                        continue;
                    taken.push_back(path.substr(prefix.size() + 1));
                    const auto a = g.attributes.find("json");
                    const auto b = group.attributes.find("json");
                    if (a != g.attributes.end() && b != group.attributes.end() && a->second == b->second)
                        return; // the same result is there already
                }
                const std::string name = store::nextGroupName(taken, prefix == "sweeps" ? "sweep" : "scan");
                group.path = prefix + "/" + name;
                groups[group.path] = std::move(group);
            };
            if (job->scan)
                storeAnalysis(store::sensitivityGroup(*job->scan, "scan"), "sensitivity");
            if (job->sweep)
                storeAnalysis(store::sweepGroup(*job->sweep, "sweep"), "sweeps");
            for (auto& [path, g] : groups)
                contents.groups.push_back(std::move(g));
            store::saveWorkspace(path.toStdString(), contents);
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        }
        const int count = int(job->runs.size());
        QMetaObject::invokeMethod(
            qApp,
            [self, path, error, count] {
                if (!self)
                    return;
                self->setBusy(false);
                self->m_saveLease.release();
                if (!error.isEmpty()) {
                    self->fail(tr("Cannot save the workspace"), error);
                    return;
                }
                self->m_file = path;
                self->m_modified = false;
                self->addRecent(path);
                const QString message = tr("Saved %n run(s) to %1", nullptr, count).arg(path);
                self->m_window->logView()->appendInfo(message);
                self->m_window->statusBar()->showMessage(message, 10'000);
                Q_EMIT self->workspaceSaved(path, count);
            },
            Qt::QueuedConnection);
    });
    return true;
}

bool WorkspaceController::openWorkspace(const QString& file)
{
    if (m_busy || file.isEmpty() || m_window->isRunning())
        return false;
    if (m_modified && !m_window->resultsPanel()->runs().isEmpty() && m_window->isVisible()) {
        const auto answer = QMessageBox::question(
            m_window, tr("Open Workspace"),
            tr("The runs in Results have not been saved. Opening %1 replaces them. Continue?")
                .arg(QFileInfo(file).fileName()));
        if (answer != QMessageBox::Yes)
            return false;
    }
    const QString path = QDir::cleanPath(QFileInfo(file).absoluteFilePath());
    m_window->logView()->appendInfo(tr("Opening workspace %1…").arg(path));
    setBusy(true);
    QPointer<WorkspaceController> self(this);
    m_pool.start([self, path] {
        QString error;
        auto runs = std::make_shared<QList<RunRecord>>();
        QString modelPath, analysisError;
        std::shared_ptr<const pipeline::SweepResult> sweep;
        std::shared_ptr<const pipeline::SensitivityResult> scan;
        try {
            // Masks are not shown by the Results view: skip reading them (saving re-reads the
            // stored runs whole).
            const auto contents = store::loadWorkspace(path.toStdString(), {false, true});
            if (contents.model)
                modelPath = text(contents.model->path);
            for (const auto& run : contents.runs) {
                RunRecord r = fromStoreRun(run);
                r.originFile = path;
                r.originId = text(run.id);
                runs->push_back(std::move(r));
            }
            // The last sweep and scan for their tabs, from the same read. A malformed one does
            // not stop the runs from opening.
            try {
                if (auto s = store::lastStoredSweep(contents, path.toStdString()))
                    sweep = std::make_shared<const pipeline::SweepResult>(std::move(*s));
                if (auto s = store::lastStoredSensitivity(contents, path.toStdString()))
                    scan = std::make_shared<const pipeline::SensitivityResult>(std::move(*s));
            } catch (const std::exception& e) {
                analysisError = QString::fromUtf8(e.what());
            }
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        }
        QMetaObject::invokeMethod(
            qApp,
            [self, path, error, runs, modelPath, sweep, scan, analysisError] {
                if (!self)
                    return;
                self->setBusy(false);
                if (!error.isEmpty()) {
                    self->fail(tr("Cannot open the workspace"), error);
                    return;
                }
                self->m_window->replaceRuns(*runs);
                self->m_loadedSweep = sweep;
                self->m_loadedScan = scan;
                if (!analysisError.isEmpty())
                    self->m_window->logView()->appendError(analysisError);
                self->m_file = path;
                self->m_modified = false;
                self->addRecent(path);
                QString message = tr("Opened %1: %n run(s)", nullptr, int(runs->size())).arg(path);
                if (!modelPath.isEmpty())
                    message += tr(" of model %1").arg(modelPath);
                self->m_window->logView()->appendInfo(message);
                self->m_window->statusBar()->showMessage(message, 10'000);
                Q_EMIT self->workspaceLoaded(path, int(runs->size()));
            },
            Qt::QueuedConnection);
    });
    return true;
}

} // namespace sparselab::gui
