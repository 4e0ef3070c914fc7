#include "workspace_jobs.h"

#include "analysis/sensitivity.h"
#include "analysis/sweep.h"
#include "store/analysis_store.h"
#include "store/run_records.h"
#include "store/workspace.h"
#include "util/errors.h"
#include "util/sha256.h"

#include <QDir>
#include <QFileInfo>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

namespace sparselab::gui {

namespace {

namespace fs = std::filesystem;

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


// ---- WorkspaceSaveJob ------------------------------------------------------------------

WorkspaceSaveJob::WorkspaceSaveJob(Params params, QObject* parent) : EngineJob(EngineThreads{}, parent), m_params(std::move(params)) {}

std::vector<const void*> WorkspaceSaveJob::models() const
{
    std::vector<const void*> models{m_params.dense.get()};
    for (const auto& [run, model] : m_params.runs)
        models.push_back(model.get());
    return models;
}

void WorkspaceSaveJob::execute()
{
    const auto stage = [this](const std::string& what, int64_t done) {
        Progress p;
        p.stage = what;
        p.done = done;
        p.total = 3;
        reportProgress(p);
    };
    store::WorkspaceContents contents;
    stage("hashing the model's files", 0);
    if (m_params.dense)
        contents.model = store::modelIdentity(*m_params.dense, cancelToken());
    const auto& c = m_params.calibration;
    if (!c.textPath.isEmpty())
        contents.calibration = store::CalibrationSettings{text(c.textPath), hashIfFile(c.textPath), 0, c.nsamples,
                                                          c.seqlen, c.seed};
    // The workspaces the runs were read from: their stored runs and groups.
    stage("collecting the runs", 1);
    std::map<QString, store::WorkspaceContents> origins;
    for (const auto& entry : m_params.runs) {
        throwIfCancelled(cancelToken());
        const QString& origin = entry.first.originFile;
        if (!origin.isEmpty() && !origins.count(origin) && QFileInfo(origin).isFile())
            origins.emplace(origin, store::loadWorkspace(origin.toStdString()));
    }
    std::map<std::string, store::ExtraGroup> groups;
    for (const auto& [file, stored] : origins)
        for (const auto& g : stored.groups)
            groups[g.path] = g;
    int index = 1;
    for (const auto& [run, model] : m_params.runs) {
        throwIfCancelled(cancelToken());
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
    if (m_params.scan)
        storeAnalysis(store::sensitivityGroup(*m_params.scan, "scan"), "sensitivity");
    if (m_params.sweep)
        storeAnalysis(store::sweepGroup(*m_params.sweep, "sweep"), "sweeps");
    for (auto& [path, g] : groups)
        contents.groups.push_back(std::move(g));
    stage("writing", 2);
    throwIfCancelled(cancelToken()); // the last point where stopping leaves the file as it was
    store::saveWorkspace(m_params.file.toStdString(), contents);
    stage("written", 3);
    Result r{m_params.file, int(m_params.runs.size())};
    deliver([this, r] { Q_EMIT finished(r); });
}

// ---- WorkspaceOpenJob ------------------------------------------------------------------

WorkspaceOpenJob::WorkspaceOpenJob(QString file, QObject* parent) : EngineJob(EngineThreads{}, parent), m_file(std::move(file)) {}

void WorkspaceOpenJob::execute()
{
    Result r;
    r.file = m_file;
    // Masks are not shown by the Results view: skip reading them (saving re-reads the stored
    // runs whole).
    const auto contents = store::loadWorkspace(m_file.toStdString(), {false, true});
    if (contents.model)
        r.modelPath = text(contents.model->path);
    for (const auto& run : contents.runs) {
        RunRecord view = fromStoreRun(run);
        view.originFile = m_file;
        view.originId = text(run.id);
        r.runs.push_back(std::move(view));
    }
    // The last sweep and scan for their tabs, from the same read. A malformed one does not
    // stop the runs from opening.
    try {
        if (auto s = store::lastStoredSweep(contents, m_file.toStdString()))
            r.sweep = std::make_shared<const analysis::SweepResult>(std::move(*s));
        if (auto s = store::lastStoredSensitivity(contents, m_file.toStdString()))
            r.scan = std::make_shared<const analysis::SensitivityResult>(std::move(*s));
    } catch (const std::exception& e) {
        r.analysisError = QString::fromUtf8(e.what());
    }
    deliver([this, r] { Q_EMIT finished(r); });
}

} // namespace sparselab::gui
