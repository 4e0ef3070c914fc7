#include "memory/memory_plan.h"

#include "io/checkpoint.h"
#include "util/engine_threads.h"

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <fstream>
#include <sstream>

namespace sparselab::memory {

namespace {

constexpr int64_t kFloat = 4;
// LibTorch, OpenBLAS buffers, the process itself; on the GPU the CUDA context and cuBLAS
// workspace. Measured order of magnitude, deliberately rounded up.
constexpr int64_t kHostRuntime = 600'000'000;
constexpr int64_t kDeviceRuntime = 1'000'000'000;
// Attention score tiles alive at once in attend(): the mask band, the scores and the
// probabilities, each at most 2 MiB (kScoreTileBytes in model/causal_lm.cpp).
constexpr int64_t kAttentionTiles = 3 * (int64_t(2) << 20);

// Byte counts saturate at kUnbounded instead of wrapping: with sizes at the config limits and
// the largest --nsamples and --seqlen, products reach 2^64 and beyond, and a wrapped (even
// negative) total would say "fits". A saturated total never fits and prints as unknown.
constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();

int64_t mul(std::initializer_list<int64_t> factors)
{
    int64_t product = 1;
    for (const int64_t f : factors)
        if (__builtin_mul_overflow(product, f, &product))
            return kUnbounded;
    return product;
}

int64_t sum(std::initializer_list<int64_t> terms)
{
    int64_t total = 0;
    for (const int64_t t : terms)
        if (__builtin_add_overflow(total, t, &total))
            return kUnbounded;
    return total;
}

} // namespace

std::vector<std::pair<int64_t, int64_t>> blockLinearShapes(const model::ModelConfig& c)
{
    const int64_t d = c.hiddenSize, I = c.intermediateSize;
    switch (c.architecture) {
    case model::Architecture::Llama: {
        const int64_t q = mul({c.numHeads, c.headDim}), kv = mul({c.numKvHeads, c.headDim});
        return {{q, d}, {kv, d}, {kv, d}, {d, q}, {I, d}, {I, d}, {d, I}};
    }
    case model::Architecture::Gpt2:
        return {{mul({3, d}), d}, {d, d}, {I, d}, {d, I}};
    case model::Architecture::Opt:
        return {{d, d}, {d, d}, {d, d}, {d, d}, {I, d}, {d, I}};
    }
    return {};
}

namespace {

// The widest activation a block's forward pass makes: the hidden size or a linear's output.
int64_t widestActivation(const model::ModelConfig& c)
{
    int64_t widest = c.hiddenSize;
    for (const auto& [rows, cols] : blockLinearShapes(c))
        widest = std::max(widest, rows);
    return widest;
}

} // namespace

int64_t forwardTemporaryBytes(const model::ModelConfig& c, int64_t batch, int64_t seqlen)
{
    const int64_t widest = widestActivation(c);
    // Four [batch, seqlen, widest] activations of the MLP, plus attention, which is tiled
    // (model/causal_lm.cpp, attend): the [seqlen, seqlen] causal mask and a few score tiles of
    // at most 2 MiB, never a [batch, heads, seqlen, seqlen] tensor. Measured on an H200
    // (docs/gpu.md): a Qwen2.5-0.5B-shaped prune at 128 × 2048 peaked at 5,833 MiB (nvidia-smi,
    // context included) against 9,126 MiB planned with full score tensors.
    return sum({mul({batch, seqlen, widest, kFloat, 4}), mul({seqlen, seqlen, kFloat}), kAttentionTiles});
}

int parallelForwardBatches(const model::ModelConfig& c, int64_t batch, int64_t seqlen, int64_t batches, int threads)
{
    if (threads <= 1 || batches <= 1)
        return 1;
    const int64_t each = std::max<int64_t>(1, forwardTemporaryBytes(c, batch, seqlen));
    const int64_t others = std::min<int64_t>({int64_t(threads) - 1, batches - 1, kParallelBatchExtraBytes / each});
    return int(1 + others);
}

MemoryPlan planMemory(const MemoryPlanInput& in)
{
    const model::ModelConfig& c = in.config;
    const auto shapes = blockLinearShapes(c);
    int64_t blockWeights = 0, hessians = 0, largestHessianGroup = 0, solve = 0;
    for (const auto& [rows, cols] : shapes) {
        blockWeights = sum({blockWeights, mul({rows, cols, kFloat})});
        hessians = sum({hessians, mul({cols, cols, kFloat})});
        largestHessianGroup = std::max(largestHessianGroup, mul({cols, cols, kFloat}));
        solve = std::max(solve, mul({sum({mul({2, cols, cols}), mul({rows, cols})}), kFloat}));
    }
    const int64_t widest = widestActivation(c);
    if (in.trueSequential) {
        // Groups of layers sharing an input (q/k/v, gate/up) hold their Hessians together.
        int64_t group = 0;
        for (size_t i = 0; i < shapes.size(); ++i) {
            const int64_t h = mul({shapes[i].second, shapes[i].second, kFloat});
            group = (i > 0 && shapes[i].second == shapes[i - 1].second) ? sum({group, h}) : h;
            largestHessianGroup = std::max(largestHessianGroup, group);
        }
        hessians = largestHessianGroup;
    }
    const int64_t d = c.hiddenSize;
    int64_t nonBlock = mul({c.vocabSize, d, kFloat, c.tieWordEmbeddings ? 1 : 2});
    if (c.architecture != model::Architecture::Llama)
        nonBlock = sum({nonBlock, mul({sum({c.maxPositions, 2}), d, kFloat})});
    const int64_t residentBlocks = in.streamed ? 1 : c.numLayers;
    const int64_t tokens = mul({in.nsamples, in.seqlen});
    const int64_t batch = std::min(in.forwardBatch, in.nsamples);
    const int64_t activations = mul({tokens, d, kFloat});
    // Forward temporaries: one batch's, times the batches the walker runs at once on the CPU
    // (small models, their products on one thread: util/engine_threads.h), every CPU the
    // process has for its kernels.
    const int64_t batches = batch > 0 ? (in.nsamples + batch - 1) / batch : 1;
    const int walkerThreads = !in.cuda && d < kAllThreadsFromHidden
        ? parallelForwardBatches(c, batch, in.seqlen, batches, machineThreads())
        : 1;
    const int64_t forward = mul({forwardTemporaryBytes(c, batch, in.seqlen), walkerThreads});

    MemoryPlan plan;
    plan.hostAvailableBytes = in.hostAvailableBytes;
    plan.deviceAvailableBytes = in.deviceAvailableBytes;
    auto add = [&](const std::string& what, bool device, int64_t bytes, const std::string& detail) {
        plan.items.push_back({what, device, bytes, detail});
        int64_t& total = device ? plan.deviceBytes : plan.hostBytes;
        total = sum({total, bytes});
    };
    const bool dev = in.cuda;
    add("weights", dev, sum({mul({residentBlocks, blockWeights}), nonBlock}),
        std::to_string(residentBlocks) + (in.streamed ? " block (streamed)" : " blocks") + " x "
            + formatBytes(blockWeights) + " float32 + " + formatBytes(nonBlock) + " embeddings/head");
    add("activations", dev, activations,
        std::to_string(in.nsamples) + " x " + std::to_string(in.seqlen) + " x " + std::to_string(d)
            + " float32");
    // Collecting (forward passes accumulating every Hessian of the pass) and solving (the layer's
    // factorisation while the Hessians of the layers after it are still alive) do not overlap:
    // the larger of the two peaks counts.
    int64_t solvePhase = 0;
    if (!in.trueSequential) {
        for (size_t i = 0; i < shapes.size(); ++i) {
            int64_t alive = 0;
            for (size_t j = i; j < shapes.size(); ++j)
                alive = sum({alive, mul({shapes[j].second, shapes[j].second, kFloat})});
            const auto [rows, cols] = shapes[i];
            solvePhase = std::max(solvePhase, sum({alive, mul({sum({mul({cols, cols}), mul({rows, cols})}), kFloat})}));
            // + Hinv + dense copy
        }
    } else {
        solvePhase = sum({hessians, solve});
    }
    const int64_t collectPhase = sum({hessians, forward});
    add("hessians+solve", dev, std::max(collectPhase, solvePhase),
        collectPhase >= solvePhase
            ? "collecting: " + formatBytes(hessians) + " of [cols, cols] Hessians + " + formatBytes(forward)
                  + " forward temporaries (batch " + std::to_string(batch)
                  + (walkerThreads > 1 ? ", " + std::to_string(walkerThreads) + " at once" : std::string()) + ")"
            : "solving: the layer's Hinv and dense copy with the Hessians still alive (largest: "
                  + formatBytes(solve) + " of solve buffers)");
    if (in.recoveryLoss == 1 || in.recoveryLoss == 2) {
        const bool kl = in.recoveryLoss == 1;
        const int64_t rb = std::min(std::max<int64_t>(1, in.recoveryBatch), in.nsamples);
        const int64_t perBlock = sum({mul({10, rb, in.seqlen, d, kFloat}), mul({4, rb, in.seqlen, widest, kFloat}),
                                      mul({2, rb, c.numHeads, in.seqlen, in.seqlen, kFloat})});
        int64_t teacher = 0, state = 0, autograd = 0;
        std::string detail;
        if (kl) {
            const int64_t logProbs = mul({in.nsamples, in.seqlen, c.vocabSize, kFloat});
            const int64_t denseCopy = sum({mul({c.numLayers, blockWeights}), nonBlock});
            teacher = logProbs <= (int64_t(2) << 30) ? logProbs : denseCopy;
            state = mul({4, c.numLayers, blockWeights});
            autograd = sum({mul({c.numLayers, perBlock}), mul({3, rb, in.seqlen, c.vocabSize, kFloat})});
            detail = (logProbs <= (int64_t(2) << 30) ? "teacher log-probabilities " : "dense teacher copy ")
                     + formatBytes(teacher) + " + Adam state " + formatBytes(state) + " + autograd "
                     + formatBytes(autograd) + " (batch " + std::to_string(rb) + ")";
        } else {
            teacher = sum({mul({residentBlocks, blockWeights}), nonBlock, mul({in.nsamples, in.seqlen, d, kFloat})});
            state = mul({4, blockWeights});
            autograd = perBlock;
            detail = "dense teacher " + formatBytes(teacher) + " + one block's Adam state " + formatBytes(state)
                     + " + autograd " + formatBytes(autograd) + " (batch " + std::to_string(rb) + ")";
        }
        // The teacher's signal is alive during pruning too; the training replaces the solver's
        // buffers, so only its excess over them is added.
        const int64_t solverBuffers = std::max(collectPhase, solvePhase);
        const int64_t training = sum({state, autograd});
        add("recovery", dev, sum({teacher, training > solverBuffers ? training - solverBuffers : 0}), detail);
    }
    const int64_t exportBytes = in.streamed ? 0 : in.largestShardLinearBytes;
    add("export", false, exportBytes, in.streamed ? "spilled blocks, mapped and released as written"
                                                  : "largest shard's replaced tensors in the stored dtype");
    if (dev) {
        const int64_t staging = [&] {
            int64_t largest = 0;
            for (const auto& [rows, cols] : shapes)
                largest = std::max(largest, mul({rows, cols}));
            return mul({largest, kFloat + in.storedBytesPerWeight});
        }();
        add("staging", false, staging, "largest tensor converted on the host before the copy to the GPU");
        add("runtime", true, kDeviceRuntime, "CUDA context, cuBLAS workspace (allowance)");
    }
    add("runtime", false, kHostRuntime, "process, LibTorch, BLAS buffers (allowance)");
    return plan;
}

std::string MemoryPlan::refusal() const
{
    std::ostringstream s;
    if (!fitsDevice())
        s << "needs " << formatBytes(deviceBytes) << " on the GPU, " << formatBytes(deviceAvailableBytes)
          << " free";
    if (!fitsHost()) {
        if (!s.str().empty())
            s << "; ";
        s << "needs " << formatBytes(hostBytes) << " of host memory, " << formatBytes(hostAvailableBytes)
          << " available";
    }
    if (!s.str().empty())
        s << " (try --stream, fewer --nsamples or a shorter --seqlen)";
    return s.str();
}

int64_t hostAvailableMemory()
{
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    int64_t value = 0;
    std::string unit;
    while (meminfo >> key >> value) {
        std::getline(meminfo, unit);
        if (key == "MemAvailable:")
            return value * 1024;
    }
    return -1;
}

MemoryPlanInput describeModelFolder(const std::filesystem::path& folder)
{
    MemoryPlanInput in;
    in.config = model::ModelConfig::load(folder);
    const io::Checkpoint ckpt = io::Checkpoint::open(folder);
    // Linear weights: the 2-D tensors of the decoder blocks (names with a block index), i.e.
    // everything 2-D but embeddings, positions and the LM head.
    auto isLinear = [](const io::TensorInfo& t) {
        return t.shape.size() == 2 && t.name.find("embed") == std::string::npos
            && t.name.find("lm_head") == std::string::npos && t.name.find("wte") == std::string::npos
            && t.name.find("wpe") == std::string::npos;
    };
    bool dtypeSeen = false;
    for (const io::SafetensorsFile& file : ckpt.files()) {
        int64_t shardBytes = 0;
        for (const io::TensorInfo& t : file.tensors())
            if (isLinear(t)) {
                shardBytes += int64_t(t.end - t.begin);
                if (!dtypeSeen) {
                    in.storedBytesPerWeight = int64_t(io::dtypeSize(t.dtype));
                    dtypeSeen = true;
                }
            }
        in.largestShardLinearBytes = std::max(in.largestShardLinearBytes, shardBytes);
    }
    return in;
}

std::string formatBytes(int64_t bytes)
{
    if (bytes < 0)
        return "unknown";
    if (bytes == kUnbounded)
        return "more than 9.2 EB"; // saturated: beyond int64
    char text[32];
    if (bytes >= 1'000'000'000)
        std::snprintf(text, sizeof text, "%.2f GB", double(bytes) / 1e9);
    else
        std::snprintf(text, sizeof text, "%.1f MB", double(bytes) / 1e6);
    return text;
}

} // namespace sparselab::memory
