#pragma once
// The one record of what a run did to one linear layer: which layer, what was asked (the
// whole SolverOptions, quantization grid included) and what came out (LayerStats). The
// pipeline reports it, resume checkpoints and workspaces store it (store/workspace.h), the
// run's sparselab.json writes it (workflow/compression_run.h), and the workbench's tables and
// plots show it. Plain values, no LibTorch.
//
// The options are kept in one canonical form (recordedOptions), the form the workspace's
// per-layer table holds without loss: a dense layer was asked nothing, and an N:M layer's
// sparsity is N/M. So a record read back from a workspace or a checkpoint equals the record
// that was written.

#include "solve/solver_options.h"

#include <cstdint>
#include <string>

namespace sparselab::solve {

// `options` as a record keeps them. Dense: method SparseGPT, sparsity 0, no N:M, no
// quantization (blocksize and damp kept, as the recipe stated them). N:M: sparsity N/M.
[[nodiscard]] SolverOptions recordedOptions(const SolverOptions& options, bool dense);

struct LayerRecord {
    std::string name;                // module name, e.g. "model.layers.0.self_attn.q_proj"
    std::string kind;                // e.g. "self_attn.q_proj"
    int64_t block = 0;
    int64_t rows = 0, cols = 0;      // [out, in]
    bool dense = false;              // left untouched by the plan
    SolverOptions options;           // what was asked (canonical: recordedOptions)
    LayerStats stats;                // what came out

    // "dense" for untouched layers, else the method's name ("sparsegpt", ...).
    [[nodiscard]] std::string methodKey() const { return dense ? std::string("dense") : methodName(options.method); }
    // Fraction of weights asked to be pruned: N/M for N:M, 0 when dense.
    [[nodiscard]] double targetSparsity() const
    {
        if (dense)
            return 0.0;
        return options.structured() ? double(options.nmN) / double(options.nmM) : options.sparsity;
    }
    // Bits per kept weight asked (16 = not quantized, and for dense layers).
    [[nodiscard]] int bits() const { return dense ? 16 : options.quant.bits; }
    bool operator==(const LayerRecord&) const = default;
};

} // namespace sparselab::solve
