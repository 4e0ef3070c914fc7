#pragma once
// Memory planner: what a prune run will need on the host and on the GPU, before it starts
// (no LibTorch, no Qt; pure arithmetic on the model's config.json and the run's settings).
//
// The estimate follows what the pipeline (pipeline/prune_pipeline.h) keeps alive, in bytes:
//   weights      — every block's linear weights as float32 (in memory), or one block's
//                  (streamed: CausalLM::load with streamBlocks), plus the non-block tensors
//                  (embeddings, positions, LM head, norms) as float32;
//   activations  — the calibration hidden states [nsamples, seqlen, hidden] float32, one
//                  copy (a block's inputs; pipeline::BlockWalker writes each batch's outputs
//                  over its inputs, the batch's output being one of the forward temporaries);
//   hessians+solve — the larger of two phases that do not overlap: collecting (one
//                  [cols, cols] float32 accumulator per linear layer solved in the pass — all
//                  layers of the block, with true-sequential the largest group — plus one batch
//                  of forward temporaries: the widest intermediate four times, the causal mask
//                  and attention's score tiles (forwardTemporaryBytes); on the CPU below hidden 1024,
//                  the batches BlockWalker runs at once on other threads, parallelForwardBatches)
//                  and solving (a layer's Hinv,
//                  cols², and dense copy, rows·cols, while the Hessians of it and of the layers
//                  after it are alive);
//   export       — in memory: the largest shard's replaced tensors in the stored dtype;
//                  streamed: nothing (mapped pages are released as written);
//   recovery     — with recovery after pruning (recovery/recovery.h), what it adds: the dense
//                  teacher's cached log-probabilities [nsamples, seqlen, vocab] float32 (alive
//                  from before pruning; above 2 GiB a dense copy of the weights instead), or for
//                  the block loss a dense copy of the resident weights and the dense block
//                  outputs [nsamples, seqlen, hidden]; plus the training state — gradient, two
//                  Adam moments and the mask, four float32 copies of the trained weights (all
//                  linears, or one block's) — and one batch's autograd activations: per block
//                  passed through, 10 × [batch, seqlen, hidden] + 4 × [batch, seqlen, widest]
//                  + 2 × [batch, heads, seqlen, seqlen], and 3 × [batch, seqlen, vocab] for the
//                  logits (kl). The solver's buffers are gone by then, so only what exceeds
//                  them counts on top.
// With device "cuda" everything but export and a one-tensor staging buffer is on the GPU;
// with "cpu" all of it is host memory. A fixed allowance covers the runtime itself (LibTorch,
// CUDA context). The figures are estimates with a stated method, not measurements: the
// benchmark in docs/gpu.md compares them with peak RSS.

#include "model/config.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace sparselab::memory {

struct MemoryPlanInput {
    model::ModelConfig config;
    int64_t storedBytesPerWeight = 2;   // dtype size on disk of the linear weights (F16: 2)
    int64_t largestShardLinearBytes = 0; // stored bytes of linear weights in the largest shard
    int64_t nsamples = 128;             // calibration windows
    int64_t seqlen = 2048;              // tokens per window
    int64_t forwardBatch = 8;           // windows per block forward pass
    bool streamed = false;              // one block resident (--stream)
    bool trueSequential = false;
    bool cuda = false;                  // device "cuda" (else "cpu")
    int recoveryLoss = 0;               // recovery after pruning: 0 none, 1 kl, 2 block
    int64_t recoveryBatch = 8;          // windows per recovery step
    int64_t hostAvailableBytes = -1;    // -1 = unknown (no check)
    int64_t deviceAvailableBytes = -1;  // -1 = unknown (no check)
};

struct MemoryItem {
    std::string what;   // "weights", "activations", ...
    bool onDevice = false;
    int64_t bytes = 0;
    std::string detail; // how it was counted, one line
};

struct MemoryPlan {
    std::vector<MemoryItem> items;
    int64_t hostBytes = 0;
    int64_t deviceBytes = 0;
    int64_t hostAvailableBytes = -1;
    int64_t deviceAvailableBytes = -1;
    [[nodiscard]] bool usesDevice() const { return deviceBytes > 0; }
    [[nodiscard]] bool fitsHost() const { return hostAvailableBytes < 0 || hostBytes <= hostAvailableBytes; }
    [[nodiscard]] bool fitsDevice() const { return deviceAvailableBytes < 0 || deviceBytes <= deviceAvailableBytes; }
    [[nodiscard]] bool fits() const { return fitsHost() && fitsDevice(); }
    // One line saying what does not fit and by how much, suggesting --stream or a smaller
    // calibration; empty when it fits.
    [[nodiscard]] std::string refusal() const;
};

// Shapes [rows, cols] of one block's linear layers, in execution order.
[[nodiscard]] std::vector<std::pair<int64_t, int64_t>> blockLinearShapes(const model::ModelConfig& config);

[[nodiscard]] MemoryPlan planMemory(const MemoryPlanInput& input);

// One batch's forward temporaries on a block, in bytes, as the plan counts them: four
// [batch, seqlen, widest linear output] float32 activations of the MLP, the [seqlen, seqlen]
// causal mask and attention's score tiles.
[[nodiscard]] int64_t forwardTemporaryBytes(const model::ModelConfig& config, int64_t batch, int64_t seqlen);

// What pipeline::BlockWalker's batches on several threads may add to one batch's temporaries:
// it runs only as many batches at once as keep the others' temporaries within this, so the
// plan counts at most this much beyond one batch (the demo's batches are 12 MB each; a
// 896-wide model's batch of 8 × 2048 tokens, 1.3 GB, runs alone).
inline constexpr int64_t kParallelBatchExtraBytes = int64_t(256) << 20;

// The batches BlockWalker runs at once when a pass has `batches` of them and it could use
// `threads`: at most both, and only as many as keep the extra batches' temporaries within
// kParallelBatchExtraBytes.
[[nodiscard]] int parallelForwardBatches(const model::ModelConfig& config, int64_t batch, int64_t seqlen,
                                         int64_t batches, int threads);

// MemAvailable of /proc/meminfo in bytes, or -1 where unknown.
[[nodiscard]] int64_t hostAvailableMemory();

// "1.23 GB" (decimal units).
[[nodiscard]] std::string formatBytes(int64_t bytes);

} // namespace sparselab::memory

namespace sparselab::memory {

// Fills config, storedBytesPerWeight and largestShardLinearBytes from a model folder
// (config.json and the safetensors headers; no weights are read). InputError naming the file
// on a bad folder. The run settings keep their defaults.
[[nodiscard]] MemoryPlanInput describeModelFolder(const std::filesystem::path& folder);

} // namespace sparselab::memory
