#pragma once
// The workbench session's plain values, passed between its views and its engine jobs: the
// per-layer plan (what the Plan view edits and the recipe JSON stores), the calibration,
// evaluation and recovery settings, and what a run produces (its per-layer results are the
// engine's solve::LayerRecord). No LibTorch here: engine_jobs.cpp and recipe_bridge.cpp
// convert plans to and from the engine's recipes. Everything is a value type, safe to copy
// across threads. (The session itself — model, runs, caches, jobs — is workbench.h.)

#include "solve/layer_record.h"

#include <QDateTime>
#include <QHash>
#include <QList>
#include <QMetaType>
#include <QString>
#include <QStringList>

#include <cmath>
#include <memory>

namespace sparselab::store { struct PerplexityRecord; struct RunRecord; }

namespace sparselab::gui {

// What to do with one linear layer (the engine's solve::Method plus "leave it dense").
enum class PlanMethod { SparseGpt, Magnitude, Wanda, Rtn, Dense }; // Rtn: round to nearest, prunes nothing

[[nodiscard]] QString planMethodLabel(PlanMethod method);   // "SparseGPT", "Magnitude", "Wanda", "Dense"
[[nodiscard]] QString planMethodKey(PlanMethod method);     // recipe names: "sparsegpt", …, "dense"
[[nodiscard]] bool parsePlanMethod(const QString& keyOrLabel, PlanMethod* method);

// The settings of one layer, as a recipe rule states them. Defaults are the engine's
// (solve::SolverOptions): SparseGPT, 50 % unstructured, no quantization, block 128, damp 0.01.
struct LayerSetting {
    PlanMethod method = PlanMethod::SparseGpt;
    double sparsity = 0.5;   // fraction pruned, [0, 1); ignored when nmM > 0
    int nmN = 0;             // N:M — N zeros in every M consecutive inputs of a row
    int nmM = 0;             // 0 = unstructured
    int bits = 16;           // 2..8 quantizes; 16 = no quantization
    qint64 group = 0;        // quantization group (columns); 0 = per row
    bool sym = false;        // symmetric quantization grid
    bool actOrder = false;   // GPTQ act-order (SparseGPT)
    bool staticGroups = false; // GPTQ static groups (SparseGPT, group > 0)
    bool fp16Scale = false;  // scales rounded to fp16 (lossless GGUF Q4_0/Q8_0)
    bool signedScale = false; // symmetric scale from the largest-magnitude value (as Q4_0)
    qint64 blocksize = 128;  // SparseGPT column block
    double damp = 0.01;      // relative damping of the Hessian

    [[nodiscard]] bool dense() const { return method == PlanMethod::Dense; }
    [[nodiscard]] bool structured() const { return nmM > 0; }
    // Fraction of weights this setting prunes (N/M for N:M, 0 when dense).
    [[nodiscard]] double targetSparsity() const
    {
        if (dense())
            return 0.0;
        return structured() ? double(nmN) / double(nmM) : sparsity;
    }
    // Bits per kept weight (dense layers count as 16).
    [[nodiscard]] int effectiveBits() const { return dense() ? 16 : bits; }
    // "50.0 %", "2:4", "dense"
    [[nodiscard]] QString sparsityText() const;

    bool operator==(const LayerSetting& o) const
    {
        return method == o.method && std::abs(sparsity - o.sparsity) < 1e-12 && nmN == o.nmN && nmM == o.nmM
            && bits == o.bits && group == o.group && sym == o.sym && actOrder == o.actOrder
            && staticGroups == o.staticGroups && fp16Scale == o.fp16Scale && signedScale == o.signedScale && blocksize == o.blocksize
            && std::abs(damp - o.damp) < 1e-15;
    }
    bool operator!=(const LayerSetting& o) const { return !(*this == o); }
    // Equal in effect: two dense settings are alike whatever their (unused) options.
    [[nodiscard]] bool sameEffect(const LayerSetting& o) const { return (dense() && o.dense()) || *this == o; }
};

// One row of the plan: a linear layer of the loaded model and its setting.
struct PlanRow {
    QString name;        // module name, e.g. "model.layers.0.self_attn.q_proj" (recipe patterns match it)
    QString kind;        // e.g. "self_attn.q_proj"
    int block = 0;
    qint64 rows = 0;     // [out, in]
    qint64 cols = 0;
    LayerSetting setting;

    [[nodiscard]] qint64 weights() const { return rows * cols; }
    // Attention projections (q/k/v/o, GPT-2 c_attn/attn.c_proj, OPT out_proj) vs the MLP.
    [[nodiscard]] bool isAttention() const;
};

// How many rows share each effective setting (LayerSetting::sameEffect), in order of first
// appearance; dense rows are left out when `skipDense`. The most common setting is the first
// entry with the largest count (std::max_element on `rows`).
struct SettingCount {
    LayerSetting setting;
    int rows = 0;
};
[[nodiscard]] QList<SettingCount> countSettings(const QList<PlanRow>& plan, bool skipDense);

// Storage estimate of one layer at its setting: kept weights × bits ÷ 8 (16 bits = fp16),
// plus a 1-bit mask per weight for pruned layers and an fp16 scale and zero per output row
// (per group when grouped) for quantized layers.
[[nodiscard]] qint64 estimatedBytes(const PlanRow& row);
[[nodiscard]] qint64 denseBytes(const PlanRow& row); // fp16, no mask

// What a run did to one layer is solve::LayerRecord (solve/layer_record.h), the engine's own
// record, shown as it is. These read it the way the views need it.
// What was asked, as the plan states it (method Dense for untouched layers).
[[nodiscard]] LayerSetting layerSetting(const solve::LayerRecord& record);
// The one conversion from the engine's solver options to a plan setting, field for field;
// `dense` makes the method Dense and keeps the other values (recipe_bridge.cpp reads resolved
// recipes through it).
[[nodiscard]] LayerSetting settingFromOptions(const solve::SolverOptions& options, bool dense);
// The layer as a plan row with that setting (runs recorded by the CLI carry no plan).
[[nodiscard]] PlanRow planRow(const solve::LayerRecord& record);
[[nodiscard]] inline QString layerName(const solve::LayerRecord& record) { return QString::fromStdString(record.name); }
[[nodiscard]] inline QString layerKind(const solve::LayerRecord& record) { return QString::fromStdString(record.kind); }

// The calibration part of a run's settings.
struct CalibrationSettings {
    QString textPath;        // UTF-8 text file
    qint64 nsamples = 128;   // windows
    qint64 seqlen = 256;     // tokens per window
    quint64 seed = 0;
};

// The evaluation part: perplexity before and after, design.md §3.
struct EvaluationSettings {
    bool enabled = true;
    QString textPath;
    qint64 seqlen = 0;       // 0 = the calibration window length
    qint64 maxWindows = 0;   // 0 = all windows
    qint64 batchSize = 8;
};

// Recovery after pruning (recovery/recovery.h): the survivors distilled from the dense model.
// Off by default; the engine's defaults for everything not listed here.
struct RecoverySettings {
    bool enabled = false;
    qint64 steps = 300;          // optimizer steps (block loss: per block)
    QString loss = QStringLiteral("kl"); // "kl" (logits) or "block" (block outputs)
    double learningRate = 2e-3;  // Adam's peak rate, cosine decay

    // "KL distillation, 300 steps", "" when off.
    [[nodiscard]] QString summary() const;
    bool operator==(const RecoverySettings&) const = default;
};

// One perplexity measurement with its per-window loss and per-token NLL, as the workspace
// stores it. Immutable once made and shared between copies of a RunRecord, so copying runs
// between views stays cheap.
using EvaluationDetailPtr = std::shared_ptr<const store::PerplexityRecord>;

// A finished run as the Results view keeps it.
struct RunRecord {
    int id = 0;                      // unique within the session
    QString name;                    // user-editable, e.g. "SparseGPT 50 %"
    QDateTime finishedAt;
    QString modelFolder;
    QString device;                  // "cpu"
    CalibrationSettings calibration;
    EvaluationSettings evaluation;
    QList<PlanRow> plan;
    QList<solve::LayerRecord> layers; // pipeline order
    double perplexityBefore = NAN;   // NaN when not evaluated
    double perplexityAfter = NAN;
    EvaluationDetailPtr detailBefore; // null when not measured in this run nor read back
    EvaluationDetailPtr detailAfter;
    qint64 evalWindows = 0;
    qint64 evalSeqlen = 0;
    RecoverySettings recovery;       // enabled when the run recovered after pruning
    double perplexityPruned = NAN;   // with recovery: after pruning, before recovery
    double linearSparsity = 0;       // zeros / weights over all linear layers
    double pruneSeconds = 0;
    double totalSeconds = 0;
    QByteArray recipeJson;           // the plan as the recipe the CLI reads
    bool modelKept = false;          // the compressed model is still in memory (exportable)
    // What the run recorded when it ran (workflow/compression_run.h), shared and immutable:
    // the workspace entry (texts hashed and tokens counted at run time, masks) and the
    // sparselab.json its export carries. Null / empty for runs read back from a workspace.
    std::shared_ptr<const store::RunRecord> stored;
    QByteArray provenanceJson;
    // Read back from a workspace: its file and run id there. Saving writes that stored run
    // again (masks, export folder and all, with the current name) instead of its summary here.
    QString originFile;
    QString originId;

    [[nodiscard]] QString methodSummary() const; // e.g. "SparseGPT 50 %", "mixed", "… + KL recovery"
};

// Each layer's achieved sparsity in `run`, by module name (the model tree's column).
[[nodiscard]] QHash<QString, double> achievedSparsity(const RunRecord& run);

// Where a run is (RunJob::runProgress): overall share and the current layer.
struct RunProgress {
    double overall = 0;              // [0, 1], never decreases within a run
    double etaSeconds = -1;          // whole run; < 0 unknown
    QString stage;                   // e.g. "Perplexity before", "Pruning", "Perplexity after"
    QString layer;                   // current layer (module name) while pruning
    qint64 layerIndex = 0;           // layers finished
    qint64 layerCount = 0;           // layers to solve
    double layerFraction = 0;        // current layer's solver blocks done / total
    bool recovering = false;         // in the recovery phase (Stop Recovery applies)
};

// Compact human forms used in several views.
[[nodiscard]] QString formatBytes(qint64 bytes);            // "139.3 KB"
[[nodiscard]] QString formatSeconds(double seconds);        // "0.8 s", "1:05"
[[nodiscard]] QString shortLayerLabel(const QString& kind); // "self_attn.q_proj" → "q"

} // namespace sparselab::gui

Q_DECLARE_METATYPE(sparselab::solve::LayerRecord)
Q_DECLARE_METATYPE(sparselab::gui::RunRecord)
Q_DECLARE_METATYPE(sparselab::gui::RunProgress)
