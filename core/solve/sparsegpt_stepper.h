#pragma once
// SparseGPT on one layer, one column at a time — the engine of the teaching mode.
//
// The stepper runs exactly the solver's algorithm (design.md §3) with the solver's own pieces:
// the preamble (dead inputs, damping, Hinv) is detail::prepareSparseGpt, the element kernels
// (N:M selection, quantization grid and rounding, the unstructured rank) are
// solve/sparsegpt_kernels.h, and every weight sees the same float32 operations in the same
// order as in the CPU solver's row tiles (w − q, (w − q)/d, w −= err·h, then one GEMM per
// block for the lazy update, with the same operands). Stepping a whole layer therefore gives
// the solver's masks and weights bit for bit, and its loss (summed in the same tiles);
// tests/core/solve/test_sparsegpt_stepper.cpp checks this against solveLayer.
//
// Between steps the state is inspectable: the weights as the solver holds them, the block's
// saliency and threshold, the last column's w, q, err and Hinv row, the block before and after
// the column's update, and the running loss. CPU only (teaching-sized work); one thread.
//
// Usage:
//     SparseGptStepper s(weight, hessian, options);     // copies both; throws InputError
//     while (s.stepColumn()) {                          // or stepBlock(), runToEnd()
//         const auto& c = s.lastColumn();               // c.err[r] = (c.w[r] − c.q[r]) / c.d
//     }
//     s.weight(); s.mask(); s.loss();                   // == solveLayer's result
// Not thread-safe: one thread at a time (a worker thread may own it and hand copies out).

#include "solve/solver.h"

#include <torch/types.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace sparselab::solve {

class SparseGptStepper {
public:
    // The current column block, as selected at its start.
    struct BlockInfo {
        int64_t index = -1;            // block number, 0-based
        int64_t begin = 0, end = 0;    // its columns [begin, end)
        // Saliency w²/[Hinv1]_jj² of the block's entries at the block start (after the lazy
        // updates of the earlier blocks), [rows × (end − begin)] row-major. Unstructured masks
        // prune score <= threshold; N:M masks are chosen per group of M columns from the current
        // weights when the group's first column is reached (groupSaliency below).
        std::vector<float> saliency;
        float threshold = std::numeric_limits<float>::quiet_NaN(); // unstructured only
        int64_t rank = -1;             // threshold = the score at this sorted index (int(numel·p))
        int64_t prunedInBlock = 0;     // entries the block's mask prunes (unstructured: known at the start)
        std::vector<float> hinvDiagonal; // [end − begin] = diag(Hinv1)
        std::vector<float> startWeights; // [rows × (end − begin)] the block's weights at its start
    };
    // What the last column step did. Vectors over rows are [rows].
    struct ColumnInfo {
        int64_t column = -1;           // global column index
        int64_t local = -1;            // index inside the block (i)
        float d = 0.0f;                // [Hinv1]_ii
        std::vector<float> w;          // the column before the step (current, updated weights)
        std::vector<float> q;          // its value after the step: 0 if pruned, else w (then quantized)
        std::vector<float> err;        // (w − q)/d
        std::vector<uint8_t> pruned;   // 1 = pruned
        std::vector<float> hinvRow;    // Hinv1[i, i:] = [count − i]; hinvRow[0] == d
        // The block's working weights [rows × count] row-major before and after this step:
        // after = before with column i set to q and columns j > i less err ⊗ Hinv1[i, j].
        std::vector<float> blockBefore, blockAfter;
        // N:M only, when this column starts a group: the group's scores [rows × width] and width.
        std::vector<float> groupSaliency;
        int64_t groupWidth = 0;
        double columnLoss = 0.0;       // Σ_rows (w − q)²/d² / 2
        bool endedBlock = false;       // this step finished the block (the lazy update was applied)
    };

    // weight [rows, cols] and hessian [cols, cols] (undamped, as accumulated), any dtype/device;
    // both are copied to float32 CPU. Throws InputError as solveLayer does (shapes, non-finite
    // values, invalid options, a Hessian that stays singular). options.method is ignored.
    SparseGptStepper(const torch::Tensor& weight, const torch::Tensor& hessian, const SolverOptions& options);

    [[nodiscard]] int64_t rows() const { return m_rows; }
    [[nodiscard]] int64_t cols() const { return m_cols; }
    [[nodiscard]] int64_t blockCount() const { return (m_cols + m_options.blocksize - 1) / m_options.blocksize; }
    [[nodiscard]] const SolverOptions& options() const { return m_options; }

    [[nodiscard]] bool finished() const { return m_next >= m_cols; }
    [[nodiscard]] int64_t columnsDone() const { return m_next; }
    // True when the next step starts a block (its mask is chosen by that step).
    [[nodiscard]] bool atBlockStart() const { return !m_inBlock; }

    // One column (selecting the block's mask first at a block start, applying the lazy update
    // after the block's last column). False, doing nothing, when finished.
    bool stepColumn();
    // The rest of the current block (or the whole next block at a block boundary).
    bool stepBlock();
    // Everything left; cancel checked once per block (CancelledError).
    void runToEnd(const CancelToken* cancel = nullptr);

    [[nodiscard]] const BlockInfo& block() const { return m_block; }
    [[nodiscard]] const ColumnInfo& lastColumn() const { return m_column; }

    // The weights as the solver holds them [rows, cols] float32 (a copy): columns before the
    // block final, the block's working values, later columns with the lazy updates of the
    // finished blocks only. After the last step: the solver's result.
    [[nodiscard]] torch::Tensor weight() const { return weightRows(0, m_rows); }
    // Rows [firstRow, firstRow + count) of weight() (for views of large layers).
    [[nodiscard]] torch::Tensor weightRows(int64_t firstRow, int64_t count) const;
    // The same with the pending lazy update of the current block's finished columns applied to
    // the later columns: the weights the algorithm would leave if it stopped here with the
    // remaining columns unpruned. Equal to weight() at block boundaries.
    [[nodiscard]] torch::Tensor effectiveWeight() const;
    // [rows, cols] bool, true = pruned, for the columns decided so far (unstructured: the whole
    // current block from its start); false elsewhere.
    [[nodiscard]] torch::Tensor mask() const { return maskRows(0, m_rows); }
    [[nodiscard]] torch::Tensor maskRows(int64_t firstRow, int64_t count) const;
    // The dense weights [rows, cols] float32 as given (before dead inputs are zeroed).
    [[nodiscard]] const torch::Tensor& denseWeight() const { return m_dense; }
    [[nodiscard]] const torch::Tensor& hessian() const { return m_h; }              // undamped [cols, cols]
    // H as factorised: dead inputs' diagonal set to 1, damping added [cols, cols].
    [[nodiscard]] torch::Tensor dampedHessian() const;
    [[nodiscard]] const torch::Tensor& hinv() const { return m_hinv; }              // [cols, cols] upper
    [[nodiscard]] double dampAbsolute() const { return m_dampAbsolute; }

    // Running loss Σ (w − q)²/[Hinv1]_ii² / 2 over the columns done: at block boundaries exactly
    // the solver's value (summed in its row tiles), inside a block the same terms summed per row.
    [[nodiscard]] double loss() const;
    // loss() after each column step so far [columnsDone()].
    [[nodiscard]] const std::vector<double>& lossCurve() const { return m_lossCurve; }
    // Damping and dead-input statistics, loss; after the last step also sparsity and
    // relOutputError (‖XWᵀ − XŴᵀ‖²/‖XWᵀ‖² as tr(ΔW H ΔWᵀ)/tr(W H Wᵀ), computed directly once).
    [[nodiscard]] LayerStats stats() const;

private:
    void beginBlock();
    void endBlock();

    SolverOptions m_options;
    int64_t m_rows = 0, m_cols = 0;
    torch::Tensor m_dense;       // [rows, cols] as given
    torch::Tensor m_w;           // [rows, cols] the solver's W (block columns hold their start values)
    torch::Tensor m_h;           // [cols, cols] undamped
    torch::Tensor m_hinv;        // [cols, cols]
    torch::Tensor m_hinv1;       // [count, count] contiguous, current block
    std::vector<float> m_errT;   // Errᵀ [count, rows] of the block, for the lazy update
    torch::Tensor m_mask;        // [rows, cols] bool
    LayerStats m_setupStats;
    mutable LayerStats m_finalStats;   // stats() once finished (computed on first call)
    mutable bool m_haveFinalStats = false;
    double m_dampAbsolute = 0.0;
    std::vector<float> m_scale, m_zero; // [rows] grid in force per row (quantization)
    float m_maxq = 0.0f;

    // Current block.
    bool m_inBlock = false;
    int64_t m_next = 0;           // next global column
    int64_t m_i1 = 0, m_count = 0;
    std::vector<float> m_t;       // [rows × count] working weights (then q)
    std::vector<float> m_e;       // [rows × count] err
    std::vector<uint8_t> m_m;     // [rows × count] pruned flags
    std::vector<double> m_rowLoss; // [rows] Σ (w − q)²/d² over the block's columns done

    double m_lossBefore = 0.0;    // loss of the finished blocks (the solver's sum)
    std::vector<double> m_lossCurve;
    BlockInfo m_block;
    ColumnInfo m_column;
};

} // namespace sparselab::solve
