#pragma once
// The one progress model of the workbench's long jobs: a job is a list of phases, each
// weighted by what it is expected to cost in seconds; the overall share is the weighted sum
// of the phases done, and the time left is `elapsed × (1 − share) / share`. With weights
// proportional to the real costs that estimate is right from the first percent on; with the
// unweighted shares used before (15 % per perplexity pass, 70 % for pruning) it was off by
// a factor of four on the demo ("24:20 left" at 2 %).
//
// Where the expected costs come from: each phase kind has a rate (seconds per unit of work,
// the units named below) measured on the last finished job of that kind and remembered in
// QSettings (CostRates::load / store); before the first job the built-in rates measured on
// the demo model are used (kDemo… below).
//
// Qt-free apart from QString/QSettings; no LibTorch. Not thread-safe: one thread drives a
// PhasedProgress (the worker), values are copied out to the GUI.

#include <QList>
#include <QString>

#include <chrono>

namespace sparselab::gui {

// Seconds per unit of work of each phase kind. Units:
//   evalPerTokenBlock      one evaluation token through one decoder block (the LM head
//                          counts as one more block);
//   prunePerTokenBlock     one calibration token through one block, both passes of the
//                          pipeline (collecting the Hessians, then through the compressed
//                          block), solving included;
//   tokenizePerByte        one byte of text tokenized (calibration and evaluation texts);
//   recoverPerTokenBlock   one calibration token of a recovery step through one block,
//                          forward and backward (the LM head counts as one more block).
struct CostRates {
    // Measured in the workbench on the bundled demo (stories260K, 5 blocks; one engine thread,
    // the default for its size until SparseLab's kernels took every core, which made the prune
    // ~0.2 s faster: these rates stay on the safe side), the rates the three cold runs of
    // `bench_first_frame 3` stored (2-core machine, nothing else running; medians): evaluation
    // 3.9e-6 s per token-block (32 windows × 256 tokens in 0.2 s), tokenizing 8.1e-8 s per byte.
    // Pruning: 5.7e-6 (128 × 256 calibration tokens in 0.9 s) on the Zen 4 EPYC once the forward
    // passes ran whole batches on both cores (pipeline/block_walker.h), against 1.2e-5 before on
    // the older EPYC; 6.5e-6 leaves room for a slower 2-core machine without doubling the ETA here.
    static constexpr double kDemoEvalPerTokenBlock = 3.9e-6;
    static constexpr double kDemoPrunePerTokenBlock = 6.5e-6;
    static constexpr double kDemoTokenizePerByte = 8.1e-8;
    // Recovery: 200 KL steps of 8 × 256 tokens in 36.1 s (`prune … --recover 200 --threads 1`,
    // the same machine, load about 2).
    static constexpr double kDemoRecoverPerTokenBlock = 36.1 / (200.0 * 8.0 * 256.0 * 6.0);

    double evalPerTokenBlock = kDemoEvalPerTokenBlock;
    double prunePerTokenBlock = kDemoPrunePerTokenBlock;
    double tokenizePerByte = kDemoTokenizePerByte;
    double recoverPerTokenBlock = kDemoRecoverPerTokenBlock;

    // The rates remembered from the last finished run (the demo's where none is known).
    [[nodiscard]] static CostRates load();
    // Remembers these rates for the next run's estimate (only finite, positive values).
    void store() const;
};

// Phases weighted by their expected seconds. Shares never go backwards.
class PhasedProgress {
public:
    struct Phase {
        QString label;            // shown as the stage, e.g. "Pruning"
        double expectedSeconds;   // weight; 0 = the phase is skipped
    };

    PhasedProgress() = default;
    explicit PhasedProgress(QList<Phase> phases);

    // Starts the clock (construction does too).
    void restart();
    // Enters phase `index` (phases before it count as done) with share `fraction` of it done.
    void set(int index, double fraction);
    void setFraction(double fraction) { set(m_phase, fraction); }
    // Changes the weight of a phase not yet entered (e.g. once the text's length is known).
    void setExpectedSeconds(int index, double seconds);
    void finish();

    [[nodiscard]] int phase() const { return m_phase; }
    [[nodiscard]] QString label() const;
    [[nodiscard]] double overall() const { return m_overall; }          // [0, 1]
    [[nodiscard]] double elapsedSeconds() const;
    // Seconds left for the whole job: before 1 % and half a second the expected seconds of the
    // phases not done (the rates), then elapsed × (1 − share) / share; < 0 when no phase has a
    // cost.
    [[nodiscard]] double etaSeconds() const;
    // Seconds spent in each phase so far (index as given), for measuring rates.
    [[nodiscard]] double phaseSeconds(int index) const;

private:
    using Clock = std::chrono::steady_clock;
    QList<Phase> m_phases;
    QList<double> m_spent;
    double m_total = 0;
    int m_phase = 0;
    double m_overall = 0;
    Clock::time_point m_start = Clock::now();
    Clock::time_point m_phaseStart = m_start;
};

} // namespace sparselab::gui
