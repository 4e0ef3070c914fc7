#include "run_live_feed.h"

#include <QCoreApplication>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace sparselab::gui {

namespace {

QString tr(const char* text) { return QCoreApplication::translate("sparselab::gui::RunJob", text); }

QString fromStd(const std::string& text) { return QString::fromUtf8(text.data(), qsizetype(text.size())); }

constexpr auto kReportInterval = std::chrono::milliseconds(100);
constexpr auto kFrameInterval = std::chrono::milliseconds(100);

} // namespace

RunLiveFeed::RunLiveFeed(const workflow::CompressionSpec& spec, const QList<PlanRow>& plan, int64_t numBlocks,
                         const CalibrationSettings& calibration, const EvaluationSettings& evaluation,
                         const RecoverySettings& recovery, const CostRates& rates, RunFeedSink sink)
    : m_spec(spec), m_plan(plan), m_calibration(calibration), m_evaluation(evaluation), m_recovery(recovery),
      m_rates(rates), m_sink(std::move(sink)), m_numBlocks(std::max<int64_t>(1, numBlocks))
{
    for (const PlanRow& row : m_plan) {
        const std::string name = row.name.toStdString();
        m_blocksize[name] = std::max<int64_t>(1, row.setting.blocksize);
        if (!row.setting.dense()) {
            ++m_layerCount;
            ++m_layersPerBlock[row.block];
        }
    }
    // The phases and what each is expected to cost (the weights of the progress bar). The
    // evaluation passes are weighed once the calibration text is tokenized (its bytes per
    // token give the evaluation's windows).
    m_pruneUnits = double(m_calibration.nsamples) * double(m_calibration.seqlen) * double(m_numBlocks);
    // A recovery step runs one batch of windows forward and backward through the whole model
    // (block loss: through one block per step, every block in turn).
    m_recoveryUnits = m_recovery.enabled ? double(m_recovery.steps) * double(spec.recovery.batchWindows)
                                               * double(m_calibration.seqlen)
                                               * (spec.recovery.loss == recovery::RecoveryLoss::BlockMse
                                                      ? double(m_numBlocks)
                                                      : double(m_numBlocks + 1))
                                         : 0.0;
    m_progress = PhasedProgress({{tr("Tokenizing"), 0.0},
                                 {tr("Pruning"), m_pruneUnits * m_rates.prunePerTokenBlock},
                                 {tr("Perplexity before"), 0.0},
                                 {tr("Perplexity of the pruned model"), 0.0},
                                 {tr("Recovery"), m_recoveryUnits * m_rates.recoverPerTokenBlock},
                                 {tr("Perplexity after"), 0.0}});
}

void RunLiveFeed::updatePruneFraction()
{
    const int64_t layers = m_layersPerBlock.count(m_block) ? m_layersPerBlock.at(m_block) : 0;
    const int64_t solved = m_solvedPerBlock.count(m_block) ? m_solvedPerBlock.at(m_block) : 0;
    double share = m_blockShare;
    // Solving counts once the block's inputs are collected (its first layer has started).
    if (layers > 0 && m_blockShare >= kCollect)
        share = std::max(share, kCollect + kSolve * (double(solved) + std::min(m_layerFraction, 0.999)) / double(layers));
    m_progress.set(Prune, (double(m_block) + std::min(share, 0.999)) / double(m_numBlocks));
}

void RunLiveFeed::report(bool force)
{
    const auto now = std::chrono::steady_clock::now();
    if (!force && m_emittedOnce && now - m_lastEmit < kReportInterval)
        return;
    m_emittedOnce = true;
    m_lastEmit = now;
    RunProgress p;
    p.overall = m_progress.overall();
    p.etaSeconds = m_progress.etaSeconds();
    p.stage = m_stage;
    p.layer = m_currentLayer;
    p.layerIndex = m_currentLayer.isEmpty() ? m_layersDone : m_currentLayerIndex;
    p.layerCount = m_layerCount;
    p.layerFraction = m_layerFraction;
    p.recovering = m_progress.phase() == Recover;
    QString text = p.stage;
    if (m_progress.phase() == Prune && !p.layer.isEmpty())
        text += QStringLiteral(": ") + p.layer;
    m_sink.progress(p, qint64(std::llround(p.overall * 10000.0)), text);
}

void RunLiveFeed::postFrame(const std::string& layer, bool force)
{
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - m_lastFrame < kFrameInterval)
        return;
    const auto it = m_layers.find(layer);
    if (it == m_layers.end())
        return;
    m_lastFrame = now;
    const auto blocks = m_columnBlocks[layer];
    const int64_t colsFinal = force ? it->second.cols : blocks.first * m_blocksize[layer];
    m_sink.frame(fromStd(layer), colsFinal, force ? std::max(blocks.first, blocks.second) : blocks.first, blocks.second);
}

void RunLiveFeed::finish()
{
    m_progress.finish();
    m_stage = tr("Done");
    report(true);
}

void RunLiveFeed::onPhase(workflow::RunPhase phase, const workflow::RunFacts& facts, CostRates& measured)
{
    const bool before = m_evaluation.enabled && !m_spec.knownBefore;
    switch (phase) {
    case workflow::RunPhase::Tokenizing:
        m_progress.setExpectedSeconds(Tokenize, double(facts.calibrationBytes) * m_rates.tokenizePerByte);
        m_stage = tr("Tokenizing");
        report(true);
        break;
    case workflow::RunPhase::Pruning: {
        if (facts.calibrationBytes > 0)
            measured.tokenizePerByte = m_progress.phaseSeconds(Tokenize) / double(facts.calibrationBytes);
        if (m_evaluation.enabled) {
            // Windows the evaluation will have, from the text's length at the calibration
            // text's bytes per token (same tokenizer; counted exactly once it is tokenized).
            const double tokensPerByte =
                double(facts.calibrationTokens) / double(std::max<int64_t>(1, facts.calibrationBytes));
            int64_t evalWindows =
                int64_t(double(facts.evaluationBytes) * tokensPerByte) / std::max<int64_t>(1, m_spec.evaluation.seqlen);
            if (m_spec.evaluation.maxWindows > 0)
                evalWindows = std::min<int64_t>(evalWindows, m_spec.evaluation.maxWindows);
            const double evalUnits = double(evalWindows) * double(m_spec.evaluation.seqlen) * double(m_numBlocks + 1);
            // Tokenizing the evaluation text is part of the first evaluation pass.
            const double tokenizeEval = double(facts.evaluationBytes) * m_rates.tokenizePerByte;
            m_progress.setExpectedSeconds(Before, before ? tokenizeEval + evalUnits * m_rates.evalPerTokenBlock : 0.0);
            m_progress.setExpectedSeconds(After, (before ? 0.0 : tokenizeEval) + evalUnits * m_rates.evalPerTokenBlock);
            if (m_recovery.enabled)
                m_progress.setExpectedSeconds(Pruned, evalUnits * m_rates.evalPerTokenBlock);
        }
        m_stage = tr("Pruning");
        m_progress.set(Prune, 0.0);
        report(true);
        // The first layer to be solved, still dense, while its block's calibration inputs are
        // collected: the live view shows what is about to be pruned from the start.
        for (const PlanRow& row : m_plan)
            if (!row.setting.dense()) {
                m_columnBlocks[row.name.toStdString()] = {0, 0};
                postFrame(row.name.toStdString(), false);
                break;
            }
        break;
    }
    case workflow::RunPhase::PerplexityBefore:
    case workflow::RunPhase::PerplexityAfter: {
        const Phase p = phase == workflow::RunPhase::PerplexityBefore ? Before : After;
        if (p == After) {
            m_layersDone = m_layerCount;
            m_currentLayer.clear();
            m_layerFraction = 0;
            m_progress.set(Prune, 1.0);
        }
        m_stage = p == Before ? tr("Perplexity before") : tr("Perplexity after");
        m_progress.set(p, 0.0);
        report(true);
        break;
    }
    case workflow::RunPhase::PerplexityPruned:
    case workflow::RunPhase::Recovering: {
        const Phase p = phase == workflow::RunPhase::PerplexityPruned ? Pruned : Recover;
        m_layersDone = m_layerCount;
        m_currentLayer.clear();
        m_layerFraction = 0;
        m_stage = p == Pruned ? tr("Perplexity of the pruned model") : tr("Recovery");
        m_progress.set(p, 0.0);
        report(true);
        break;
    }
    case workflow::RunPhase::Recording:
        break;
    }
}

void RunLiveFeed::onPruneProgress(const Progress& p)
{
    if (p.stage != "prune")
        return;
    if (p.done != m_layersDone) { // a layer was finished
        m_layersDone = p.done;
        m_layerFraction = 0;
    }
    if (const auto layer = m_layers.find(p.detail); layer != m_layers.end()) {
        const QString detail = fromStd(p.detail);
        if (detail != m_currentLayer) {
            // A layer starts: show it dense, before its first block.
            m_currentLayer = detail;
            m_currentLayerIndex = m_layersDone;
            m_layerFraction = 0;
            m_columnBlocks[p.detail] = {0, 0};
            if (layer->second.block != m_block) {
                m_block = layer->second.block;
                m_blockShare = 0;
            }
            m_blockShare = std::max(m_blockShare, kCollect); // its inputs are collected
            postFrame(p.detail, false);
        }
    } else if (p.detail.rfind("block ", 0) == 0) {
        // "block B: collecting inputs": the previous block has passed its inputs on.
        const int64_t b = std::strtoll(p.detail.c_str() + 6, nullptr, 10);
        if (b != m_block) {
            m_block = b;
            m_blockShare = 0;
        }
    }
    updatePruneFraction();
    report(false);
}

workflow::RunObserver RunLiveFeed::observer(CostRates& measured, const CancelToken* cancel,
                                            const CancelToken* stopRecovery)
{
    workflow::RunObserver observer;
    observer.prune.cancel = cancel;
    observer.prune.log = [this](const std::string& line) { m_sink.log(fromStd(line)); };
    observer.onPhase = [this, &measured](workflow::RunPhase phase, const workflow::RunFacts& facts) {
        onPhase(phase, facts, measured);
    };
    observer.onPhaseProgress = [this](workflow::RunPhase phase, const Progress& p) {
        const int index = [phase]() -> int {
            switch (phase) {
            case workflow::RunPhase::PerplexityBefore: return Before;
            case workflow::RunPhase::PerplexityPruned: return Pruned;
            case workflow::RunPhase::Recovering: return Recover;
            case workflow::RunPhase::PerplexityAfter: return After;
            default: return -1;
            }
        }();
        if (index >= 0) {
            m_progress.set(index, p.fraction());
            report(false);
        }
    };
    // The loss curve, throttled to ~10 points a second (the record keeps every step).
    m_lastStepPost = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    const int64_t recoverySteps =
        m_spec.recovery.steps * (m_spec.recovery.loss == recovery::RecoveryLoss::BlockMse ? m_numBlocks : 1);
    observer.onRecoveryStep = [this, recoverySteps](int64_t step, double loss) {
        const auto now = std::chrono::steady_clock::now();
        if (now - m_lastStepPost < kReportInterval && step < recoverySteps)
            return;
        m_lastStepPost = now;
        m_sink.recoveryStep(step, loss);
    };
    observer.stopRecovery = stopRecovery;
    observer.onRecoveryHeldOut = [this](const recovery::HeldOutPoint& point) {
        m_sink.recoveryHeldOut(point.step, point.perplexity);
    };
    observer.prune.progress = [this](const Progress& p) { onPruneProgress(p); };
    observer.prune.onBlock = [this](const std::string& layer, int64_t done, int64_t total, const at::Tensor&) {
        m_columnBlocks[layer] = {done, total};
        m_layerFraction = total > 0 ? double(done) / double(total) : 0.0;
        updatePruneFraction();
        if (done < total)
            postFrame(layer, false);
        report(false);
    };
    observer.prune.onLayer = [this](const solve::LayerRecord& r) {
        m_sink.layerFinished(r);
        if (!r.dense) {
            ++m_solvedPerBlock[r.block];
            m_layerFraction = 0;
            auto& blocks = m_columnBlocks[r.name];
            if (blocks.second == 0)
                blocks = {1, 1}; // baselines have no column blocks
            postFrame(r.name, true);
            updatePruneFraction();
            report(false);
        }
    };
    return observer;
}

void RunLiveFeed::measureRates(const workflow::CompressionOutcome& outcome, CostRates& measured) const
{
    if (m_pruneUnits > 0)
        measured.prunePerTokenBlock = outcome.prune.seconds / m_pruneUnits;
    if (outcome.recovery && m_recoveryUnits > 0 && outcome.recovery->stoppedBy == "steps")
        measured.recoverPerTokenBlock = outcome.recovery->seconds / m_recoveryUnits;
    for (const auto& measuredPass : {outcome.before, outcome.after})
        if (measuredPass) {
            const double units = double(measuredPass->windows) * double(measuredPass->seqlen) * double(m_numBlocks + 1);
            if (units > 0)
                measured.evalPerTokenBlock = measuredPass->seconds / units;
        }
}

} // namespace sparselab::gui
