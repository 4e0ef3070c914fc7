#include "model/causal_lm.h"

#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "model/rotary.h"
#include "model/small_head_attention.h"
#include "util/atomic_file.h"
#include "util/engine_threads.h"
#include "util/errors.h"
#include "util/fork_join.h"

#include <c10/core/GradMode.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <future>
#include <limits>
#include <optional>
#include <stdexcept>

#include <stdlib.h> // mkdtemp

namespace sparselab::model {

namespace fs = std::filesystem;

// Per-architecture tensors that are not prunable linears. Linear weights are read from
// m_linears at run time (never cached here), so in-place solver updates are always seen.
struct CausalLM::Impl {
    struct Block {
        torch::Tensor norm1Weight, norm1Bias; // [hidden]; bias undefined for RMSNorm
        torch::Tensor norm2Weight, norm2Bias; // [hidden]
    };
    torch::Tensor tokenEmbedding;    // [vocab, hidden]
    torch::Tensor positionEmbedding; // [positions + offset, hidden]; undefined for Llama (RoPE)
    int64_t positionOffset = 0;      // OPT keeps 2 unused rows in front (padding legacy)
    std::vector<Block> blocks;
    torch::Tensor finalNormWeight, finalNormBias; // undefined for post-norm OPT
    torch::Tensor lmHead;                          // [vocab, hidden]
};

namespace {

// One rule for every command: a checkpoint tensor holding NaN or Inf is refused when it is
// read, naming the file and the tensor (evaluation would print "perplexity nan", GGUF export
// would quantize it to finite numbers, the solver could only name "weight").
void requireFiniteTensor(const torch::Tensor& t, const fs::path& file, const std::string& name)
{
    if (t.numel() > 0 && !at::isfinite(t).all().item<bool>())
        throw inputError(file, "tensor '" + name + "' holds NaN or Inf values");
}


torch::ScalarType scalarTypeOf(io::DType dtype)
{
    switch (dtype) {
    case io::DType::F32: return torch::kFloat;
    case io::DType::F16: return torch::kHalf;
    case io::DType::BF16: return torch::kBFloat16;
    case io::DType::I8: return torch::kChar;
    case io::DType::U8: return torch::kByte;
    case io::DType::I32: return torch::kInt;
    case io::DType::I64: return torch::kLong;
    case io::DType::Bool: return torch::kBool;
    }
    throw std::invalid_argument("unknown dtype");
}

std::string shapeText(at::IntArrayRef shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// Reads tensors out of a checkpoint into float32 on the target device, checking shapes,
// and records each once under its stored name (aliases share the stored tensor).
class Loader {
public:
    Loader(const io::Checkpoint& ckpt, torch::Device device, std::map<std::string, torch::Tensor>& params)
        : m_ckpt(ckpt), m_device(device), m_params(params)
    {
    }

    [[nodiscard]] bool has(const std::string& name) const { return m_ckpt.contains(name); }

    // `expected` is the shape in memory; with `transposed` the file holds its transpose
    // (GPT-2 Conv1D [in, out]) and we keep the [out, in] contiguous copy.
    // With `shapeOnly` (streamed linears) nothing is read: a meta tensor of the shape is returned.
    torch::Tensor get(const std::string& name, std::vector<int64_t> expected, bool transposed = false,
                      bool shapeOnly = false)
    {
        const io::TensorInfo& info = m_ckpt.info(name); // InputError when missing
        const auto found = m_params.find(info.name);
        if (found != m_params.end())
            return found->second;
        const fs::path& file = m_ckpt.fileOf(name).path();
        if (info.dtype != io::DType::F32 && info.dtype != io::DType::F16 && info.dtype != io::DType::BF16)
            throw inputError(file, "tensor '" + info.name + "' has dtype " + std::string(io::dtypeName(info.dtype))
                                       + ", expected F32, F16 or BF16");
        std::vector<int64_t> onDisk = expected;
        if (transposed && onDisk.size() == 2)
            std::swap(onDisk[0], onDisk[1]);
        if (info.shape != onDisk)
            throw inputError(file, "tensor '" + name + "' has shape " + shapeText(info.shape) + ", expected "
                                       + shapeText(onDisk));
        if (shapeOnly) {
            torch::Tensor t = torch::empty(expected, torch::TensorOptions().dtype(torch::kFloat).device(torch::kMeta));
            m_params[info.name] = t;
            return t;
        }
        const io::TensorView view = m_ckpt.view(name);
        torch::Tensor t = toFloatTensor(view);
        io::releaseMappedPages(view.data, view.nbytes); // copied: the mapped pages may go
        requireFiniteTensor(t, file, info.name);
        if (transposed)
            t = t.t().contiguous();
        t = t.to(m_device);
        m_params[info.name] = t;
        return t;
    }

    // Optional tensors (biases): loaded when `wanted`, otherwise undefined.
    torch::Tensor maybe(bool wanted, const std::string& name, std::vector<int64_t> expected)
    {
        return wanted ? get(name, std::move(expected)) : torch::Tensor();
    }

private:
    const io::Checkpoint& m_ckpt;
    torch::Device m_device;
    std::map<std::string, torch::Tensor>& m_params;
};

// Whether the forward pass may overwrite its own temporaries. Outside autograd each
// temporary below that is written in place gets the floats its out-of-place form would
// (element-wise operations; a + b and a·b commute exactly), without a fresh tensor: the
// large ones are fresh mappings (util/memory_policy.h), whose pages the kernel clears before
// the first write. Under autograd (recovery training) the graph needs them as they were.
bool reuseTemporaries()
{
    return !at::GradMode::is_enabled();
}

// HF LlamaRMSNorm: x * rsqrt(mean(x²) + eps) * weight, statistics in float32.
torch::Tensor rmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps)
{
    if (reuseTemporaries()) {
        torch::Tensor out = x.pow(2);
        const torch::Tensor variance = out.mean(-1, /*keepdim=*/true);
        at::mul_out(out, x, torch::rsqrt(variance + eps)); // x² is no longer needed
        return out.mul_(weight);
    }
    const torch::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
    return weight * (x * torch::rsqrt(variance + eps));
}

// residual + y, written into y when temporaries may be reused (y is then a fresh temporary).
torch::Tensor addResidual(const torch::Tensor& residual, torch::Tensor y)
{
    return reuseTemporaries() ? y.add_(residual) : residual + y;
}

torch::Tensor layerNorm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, double eps)
{
    return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

torch::Tensor linear(const LinearLayer& layer, const torch::Tensor& x, const LinearInputHook& hook,
                     const LinearOutputHook& outputHook)
{
    if (hook)
        hook(layer, x);
    torch::Tensor y = at::linear(x, layer.weight, layer.bias);
    if (outputHook)
        outputHook(layer, y);
    return y;
}

// The activation of x, a fresh temporary: written into x when temporaries may be reused (the
// in-place operations run the same kernels), else into a new tensor.
torch::Tensor activate(const std::string& activation, torch::Tensor x)
{
    const bool inPlace = reuseTemporaries();
    if (activation == "silu")
        return inPlace ? at::silu_(x) : at::silu(x);
    if (activation == "relu")
        return inPlace ? at::relu_(x) : at::relu(x);
    // gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    if (activation == "gelu_new" || activation == "gelu_pytorch_tanh")
        return inPlace ? at::gelu_(x, "tanh") : at::gelu(x, "tanh");
    if (activation == "gelu")
        return inPlace ? at::gelu_(x) : at::gelu(x);
    throw std::logic_error("unsupported activation " + activation); // config.cpp rejects these
}

// [batch, tokens, heads * headDim] → [batch, heads, tokens, headDim]
torch::Tensor splitHeads(const torch::Tensor& x, int64_t heads, int64_t headDim)
{
    return x.view({x.size(0), x.size(1), heads, headDim}).transpose(1, 2);
}

// Causal softmax attention. q [B, H, T, hd]; k, v [B, KV, T, hd] with H a multiple of KV
// (grouped-query: query head h reads KV head h / (H/KV), as HF's repeat_kv).
// Scores are scaled by `scale` (1/sqrt(head_dim) for HF Llama/GPT-2; 1 when the caller
// already scaled q, as HF OPT does). Returns [B, T, H * hd].
//
// Why tiled: a plain [B, H, T, T] score tensor is tens of MB even for tiny models, and
// streaming it through softmax and two matmuls (plus fresh pages for every temporary)
// cost more than all the arithmetic. Tiles of at most kScoreTileBytes stay in cache and
// recycle the same allocations. The query heads that share a KV head are stacked into one
// taller matrix, so k and v are never copied per query head. When the rows of one tile
// end at query position t, keys after t are fully masked and skipped.
// Heads of at most kSmallHeadDim on the CPU, outside autograd, take the row-by-row kernel of
// model/small_head_attention.h instead (products with an inner dimension of 8 run BLAS at a
// few percent of its speed).
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale)
{
    constexpr int64_t kScoreTileBytes = int64_t(2) << 20;
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3);
    const int64_t KV = k.size(1), rep = H / KV, G = B * KV;
    const auto opts = q.options();

    const torch::Tensor qg = q.reshape({G, rep, T, hd}).contiguous(); // head h = (h / rep, h % rep)
    const torch::Tensor kt = k.reshape({G, T, hd}).transpose(1, 2);   // [G, hd, T]
    const torch::Tensor vg = v.reshape({G, T, hd});                   // [G, T, hd]
    const bool differentiable = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());

    // Small heads on the CPU: one pass per query row (model/small_head_attention.h), before the
    // mask and tiles below are made, which it does not use.
    if (!differentiable && q.device().is_cpu() && q.scalar_type() == torch::kFloat && hd <= kSmallHeadDim) {
        torch::Tensor out = torch::empty({G, rep, T, hd}, opts);
        const torch::Tensor kc = k.reshape({G, T, hd}).contiguous();
        const torch::Tensor vc = vg.contiguous();
        const float* qp = qg.data_ptr<float>();
        const float* kp = kc.data_ptr<float>();
        const float* vp = vc.data_ptr<float>();
        float* op = out.data_ptr<float>();
        // One contiguous range of KV groups per thread (every group is the same work), so that
        // each call's scratch serves all its groups; the result does not depend on the split.
        const int64_t ranges = std::min<int64_t>(kernelThreads(), G);
        forkJoin(ranges, int(ranges), [&](int, int64_t range) {
            smallHeadCausalAttention(qp, kp, vp, op, rep, T, hd, float(scale), range * G / ranges,
                                     (range + 1) * G / ranges);
        });
        return out.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
    }

    // 0 on and below the diagonal, -inf above: added to the scores, as HF's causal mask.
    const torch::Tensor mask = torch::full({T, T}, -std::numeric_limits<float>::infinity(), opts).triu_(1);

    // Under autograd (recovery training) the tiles below cannot be used: writing into a
    // preallocated output (bmm_out, copy_ into a band) is not differentiable. The same
    // arithmetic in one piece is, at the cost of the [G, rep·T, T] score tensor.
    if (differentiable) {
        const torch::Tensor scores = at::baddbmm(mask.repeat({rep, 1}), qg.view({G, rep * T, hd}), kt, 1.0, scale);
        const torch::Tensor whole = at::bmm(at::softmax(scores, -1), vg); // [G, rep·T, hd]
        return whole.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
    }
    torch::Tensor out = torch::empty({G, rep, T, hd}, opts);

    const int64_t elem = int64_t(q.element_size());
    const int64_t groupBytes = rep * T * T * elem;
    // Whole groups per tile when one fits; otherwise one group and a band of query rows.
    const int64_t groupsPerTile = std::clamp<int64_t>(kScoreTileBytes / groupBytes, 1, G);
    const int64_t rowsPerTile = groupBytes <= kScoreTileBytes
                                    ? T
                                    : std::clamp<int64_t>(kScoreTileBytes / (rep * T * elem), 1, T);
    for (int64_t t0 = 0; t0 < T; t0 += rowsPerTile) {
        const int64_t nt = std::min(rowsPerTile, T - t0);
        const int64_t keys = t0 + nt; // causal: later keys are masked for every row here
        // [rep * nt, keys]: the mask band, once per query head of the group.
        const torch::Tensor bias = mask.narrow(0, t0, nt).narrow(1, 0, keys).repeat({rep, 1});
        for (int64_t g0 = 0; g0 < G; g0 += groupsPerTile) {
            const int64_t ng = std::min(groupsPerTile, G - g0);
            const torch::Tensor qTile = qg.narrow(0, g0, ng).narrow(2, t0, nt).reshape({ng, rep * nt, hd});
            const torch::Tensor scores = at::baddbmm(bias, qTile, kt.narrow(0, g0, ng).narrow(2, 0, keys), 1.0, scale);
            const torch::Tensor probs = at::softmax(scores, -1); // [ng, rep * nt, keys]
            const torch::Tensor vTile = vg.narrow(0, g0, ng).narrow(1, 0, keys);
            if (nt == T) {
                torch::Tensor dst = out.narrow(0, g0, ng).view({ng, rep * T, hd});
                at::bmm_out(dst, probs, vTile);
            } else {
                out.narrow(0, g0, ng).narrow(2, t0, nt).copy_(at::bmm(probs, vTile).view({ng, rep, nt, hd}));
            }
        }
    }
    // [G, rep, T, hd] = [B, H, T, hd] → [B, T, H * hd]
    return out.view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
}

// HF rotate-half RoPE tables for positions 0..T-1: cos, sin [T, headDim], float32 as HF
// computes them (inv_freq = 1 / theta^(2i/d) in float32, angles = position · inv_freq).
std::pair<torch::Tensor, torch::Tensor> ropeTables(int64_t T, int64_t headDim, double theta, torch::Device device)
{
    const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(device);
    const torch::Tensor exponent = torch::arange(0, headDim, 2, torch::TensorOptions().dtype(torch::kLong).device(device))
                                       .to(torch::kFloat)
                                   / double(headDim);
    const torch::Tensor invFreq = 1.0 / at::pow(theta, exponent); // [hd/2]
    const torch::Tensor freqs = at::outer(torch::arange(T, opts), invFreq); // [T, hd/2]
    const torch::Tensor emb = torch::cat({freqs, freqs}, -1);               // [T, hd]
    return {emb.cos(), emb.sin()};
}

torch::Tensor rotateHalf(const torch::Tensor& x)
{
    const int64_t half = x.size(-1) / 2;
    return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x·cos + rotate_half(x)·sin for x [B, H, T, hd] and tables [T, hd]: in one pass into a
// contiguous result on the CPU outside autograd (model/rotary.h, the same bits), else as tensors.
torch::Tensor applyRotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin)
{
    const bool differentiable = at::GradMode::is_enabled() && x.requires_grad();
    if (differentiable || !x.device().is_cpu() || x.scalar_type() != torch::kFloat || x.stride(3) != 1
        || x.size(3) % 2 != 0 || !cos.is_contiguous() || !sin.is_contiguous())
        return x * cos + rotateHalf(x) * sin;
    const int64_t B = x.size(0), H = x.size(1), T = x.size(2), hd = x.size(3);
    torch::Tensor out = torch::empty({B, H, T, hd}, x.options());
    const float* in = x.data_ptr<float>();
    const float* c = cos.data_ptr<float>();
    const float* s = sin.data_ptr<float>();
    float* o = out.data_ptr<float>();
    // Rows in chunks of 8192 (about 70 µs of work at head size 8) over the kernel threads; a
    // row's result does not depend on the split.
    constexpr int64_t kRowsPerChunk = 8192;
    const int64_t rows = B * H * T;
    forkJoin((rows + kRowsPerChunk - 1) / kRowsPerChunk, kernelThreads(), [&](int, int64_t chunk) {
        rotateHalfRows(in, x.stride(0), x.stride(1), x.stride(2), H, T, hd, c, s, o, chunk * kRowsPerChunk,
                       std::min(rows, (chunk + 1) * kRowsPerChunk));
    });
    return out;
}

std::string storedDtypeOf(const io::Checkpoint& ckpt)
{
    std::map<io::DType, int64_t> elements;
    for (const io::SafetensorsFile& file : ckpt.files())
        for (const io::TensorInfo& t : file.tensors())
            elements[t.dtype] += t.numel();
    io::DType best = io::DType::F32;
    int64_t most = -1;
    for (const auto& [dtype, count] : elements) {
        if (count > most) {
            best = dtype;
            most = count;
        }
    }
    return std::string(io::dtypeName(best));
}

} // namespace

torch::Tensor toFloatTensor(const io::TensorView& view)
{
    const torch::ScalarType type = scalarTypeOf(view.dtype);
    // Copy rather than wrap: the mapped bytes need not be aligned for the element type,
    // and the result must outlive the file.
    torch::Tensor raw = torch::empty(view.shape, torch::TensorOptions().dtype(type));
    if (size_t(raw.nbytes()) != view.nbytes)
        throw std::invalid_argument("toFloatTensor: view of " + std::to_string(view.nbytes) + " bytes for shape "
                                    + shapeText(view.shape));
    if (view.nbytes > 0)
        std::memcpy(raw.data_ptr(), view.data, view.nbytes);
    return type == torch::kFloat ? raw : raw.to(torch::kFloat);
}

// Streaming state: the open checkpoint (its mappings are where weights are paged in from) and
// the spill files of finished blocks, in a private temporary folder removed with the model.
struct CausalLM::Stream {
    explicit Stream(io::Checkpoint c) : checkpoint(std::move(c)) {}
    ~Stream()
    {
        if (staged.valid())
            staged.wait(); // the staging thread reads our mappings
        spills.clear(); // unmap before removing the files
        if (!spillDir.empty()) {
            std::error_code ignored;
            fs::remove_all(spillDir, ignored);
        }
    }
    io::Checkpoint checkpoint;
    fs::path spillDir;                                   // created on the first finishBlock
    std::map<int64_t, io::SafetensorsFile> spills;       // block → its spill file
    std::map<std::string, int64_t, std::less<>> spilled; // linear weight name → block
    // CUDA devices: the next block's weights converted to float32 in pinned host memory on a
    // background thread while the current block is solved (prefetchBlock), copied to the GPU
    // asynchronously by materializeBlock. One block staged at most.
    std::future<std::vector<torch::Tensor>> staged;
    int64_t stagedBlock = -1;
};


std::unique_ptr<CausalLM> CausalLM::load(const fs::path& folder, torch::Device device, bool streamBlocks)
{
    std::unique_ptr<CausalLM> lm(new CausalLM());
    lm->m_config = ModelConfig::load(folder);
    lm->m_folder = folder;
    lm->m_device = device;
    const ModelConfig& c = lm->m_config;
    std::optional<io::Checkpoint> local;
    if (streamBlocks) {
        (void)scratchFolder(); // finished blocks are spilled there: a missing TMPDIR fails now, not after block 0
        lm->m_stream = std::make_shared<Stream>(io::Checkpoint::open(folder));
    }
    else
        local.emplace(io::Checkpoint::open(folder));
    const io::Checkpoint& ckpt = streamBlocks ? lm->m_stream->checkpoint : *local;
    lm->m_storedDtype = storedDtypeOf(ckpt);

    auto impl = std::make_shared<Impl>();
    Loader load(ckpt, device, lm->m_params);
    const int64_t d = c.hiddenSize, V = c.vocabSize, I = c.intermediateSize;
    const auto addLinear = [&](int64_t block, const std::string& prefix, const std::string& kind,
                               std::vector<int64_t> shape, bool bias, bool transposed = false) {
        LinearLayer layer;
        layer.name = prefix + kind + ".weight";
        layer.kind = kind;
        layer.block = block;
        layer.weight = load.get(layer.name, shape, transposed, streamBlocks);
        layer.bias = load.maybe(bias, prefix + kind + ".bias", {shape[0]});
        layer.storedTransposed = transposed;
        lm->m_linears[size_t(block)].push_back(std::move(layer));
    };
    lm->m_linears.resize(size_t(c.numLayers));
    impl->blocks.resize(size_t(c.numLayers));

    switch (c.architecture) {
    case Architecture::Llama: {
        const int64_t q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
        impl->tokenEmbedding = load.get("model.embed_tokens.weight", {V, d});
        for (int64_t b = 0; b < c.numLayers; ++b) {
            const std::string p = "model.layers." + std::to_string(b) + ".";
            Impl::Block& blk = impl->blocks[size_t(b)];
            blk.norm1Weight = load.get(p + "input_layernorm.weight", {d});
            blk.norm2Weight = load.get(p + "post_attention_layernorm.weight", {d});
            addLinear(b, p, "self_attn.q_proj", {q, d}, c.attentionBias);
            addLinear(b, p, "self_attn.k_proj", {kv, d}, c.attentionBias);
            addLinear(b, p, "self_attn.v_proj", {kv, d}, c.attentionBias);
            addLinear(b, p, "self_attn.o_proj", {d, q}, c.attentionOutputBias);
            addLinear(b, p, "mlp.gate_proj", {I, d}, c.mlpBias);
            addLinear(b, p, "mlp.up_proj", {I, d}, c.mlpBias);
            addLinear(b, p, "mlp.down_proj", {d, I}, c.mlpBias);
        }
        impl->finalNormWeight = load.get("model.norm.weight", {d});
        impl->lmHead = c.tieWordEmbeddings ? impl->tokenEmbedding : load.get("lm_head.weight", {V, d});
        break;
    }
    case Architecture::Gpt2: {
        // Hub GPT-2 checkpoints store the bare transformer ("h.0…"); models saved from
        // GPT2LMHeadModel prefix it with "transformer.".
        const std::string root = load.has("transformer.wte.weight") ? "transformer." : "";
        impl->tokenEmbedding = load.get(root + "wte.weight", {V, d});
        impl->positionEmbedding = load.get(root + "wpe.weight", {c.maxPositions, d});
        for (int64_t b = 0; b < c.numLayers; ++b) {
            const std::string p = root + "h." + std::to_string(b) + ".";
            Impl::Block& blk = impl->blocks[size_t(b)];
            blk.norm1Weight = load.get(p + "ln_1.weight", {d});
            blk.norm1Bias = load.get(p + "ln_1.bias", {d});
            blk.norm2Weight = load.get(p + "ln_2.weight", {d});
            blk.norm2Bias = load.get(p + "ln_2.bias", {d});
            addLinear(b, p, "attn.c_attn", {3 * d, d}, true, true);
            addLinear(b, p, "attn.c_proj", {d, d}, true, true);
            addLinear(b, p, "mlp.c_fc", {I, d}, true, true);
            addLinear(b, p, "mlp.c_proj", {d, I}, true, true);
        }
        impl->finalNormWeight = load.get(root + "ln_f.weight", {d});
        impl->finalNormBias = load.get(root + "ln_f.bias", {d});
        impl->lmHead = c.tieWordEmbeddings ? impl->tokenEmbedding : load.get("lm_head.weight", {V, d});
        break;
    }
    case Architecture::Opt: {
        const std::string root = load.has("model.decoder.embed_tokens.weight") ? "model.decoder." : "decoder.";
        impl->tokenEmbedding = load.get(root + "embed_tokens.weight", {V, d});
        impl->positionOffset = 2;
        impl->positionEmbedding = load.get(root + "embed_positions.weight", {c.maxPositions + 2, d});
        for (int64_t b = 0; b < c.numLayers; ++b) {
            const std::string p = root + "layers." + std::to_string(b) + ".";
            Impl::Block& blk = impl->blocks[size_t(b)];
            blk.norm1Weight = load.get(p + "self_attn_layer_norm.weight", {d});
            blk.norm1Bias = load.get(p + "self_attn_layer_norm.bias", {d});
            blk.norm2Weight = load.get(p + "final_layer_norm.weight", {d});
            blk.norm2Bias = load.get(p + "final_layer_norm.bias", {d});
            addLinear(b, p, "self_attn.q_proj", {d, d}, c.attentionBias);
            addLinear(b, p, "self_attn.k_proj", {d, d}, c.attentionBias);
            addLinear(b, p, "self_attn.v_proj", {d, d}, c.attentionBias);
            addLinear(b, p, "self_attn.out_proj", {d, d}, c.attentionOutputBias);
            addLinear(b, p, "fc1", {I, d}, c.mlpBias);
            addLinear(b, p, "fc2", {d, I}, c.mlpBias);
        }
        // HF builds the decoder's final LayerNorm only for pre-norm models.
        if (c.doLayerNormBefore) {
            impl->finalNormWeight = load.get(root + "final_layer_norm.weight", {d});
            impl->finalNormBias = load.get(root + "final_layer_norm.bias", {d});
        }
        impl->lmHead = c.tieWordEmbeddings ? impl->tokenEmbedding : load.get("lm_head.weight", {V, d});
        break;
    }
    }
    lm->m_impl = std::move(impl);
    return lm;
}

torch::Tensor CausalLM::embed(const torch::Tensor& ids) const
{
    if (ids.dim() != 2)
        throw std::invalid_argument("CausalLM::embed: ids must be [batch, tokens], got " + shapeText(ids.sizes()));
    const int64_t T = ids.size(1);
    // Every caller checks its ids against the vocabulary with the file named; this is the
    // backstop that turns a missed one into one clear line instead of an index error.
    if (ids.numel() > 0) {
        const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
        if (lo < 0 || hi >= m_config.vocabSize)
            throw InputError("token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the model's vocabulary of "
                             + std::to_string(m_config.vocabSize) + " (a tokenizer of another model?)");
    }
    const torch::Tensor idx = ids.to(m_device, torch::kLong);
    torch::Tensor x = at::embedding(m_impl->tokenEmbedding, idx); // [B, T, d]
    if (m_impl->positionEmbedding.defined()) {
        if (T > m_config.maxPositions)
            throw optionError("--seqlen", std::to_string(T) + " tokens exceed the model's "
                                              + std::to_string(m_config.maxPositions) + " positions");
        // No padding: positions are 0..T-1 (OPT: shifted by its offset of 2).
        x = x + m_impl->positionEmbedding.narrow(0, m_impl->positionOffset, T);
    }
    return x;
}

torch::Tensor CausalLM::runBlock(int64_t block, const torch::Tensor& hidden, const LinearInputHook& hook,
                                 BlockResult result, const LinearOutputHook& outputHook) const
{
    // The block's last linear: with LinearInputsOnly its input goes to the hook and the block
    // stops there (returns an undefined tensor); otherwise `finish` gets its output.
    const bool inputsOnly = result == BlockResult::LinearInputsOnly;
    const auto lastLinear = [&](const LinearLayer& layer, const torch::Tensor& x, auto&& finish) -> torch::Tensor {
        if (!inputsOnly)
            return finish(linear(layer, x, hook, outputHook));
        if (hook)
            hook(layer, x);
        return {};
    };
    const ModelConfig& c = m_config;
    const Impl::Block& blk = m_impl->blocks.at(size_t(block));
    const std::vector<LinearLayer>& lin = m_linears.at(size_t(block));
    const int64_t T = hidden.size(1);
    const int64_t H = c.numHeads, KV = c.numKvHeads, hd = c.headDim;

    switch (c.architecture) {
    case Architecture::Llama: {
        const torch::Tensor xn = rmsNorm(hidden, blk.norm1Weight, c.normEps);
        torch::Tensor q = splitHeads(linear(lin[0], xn, hook, outputHook), H, hd);
        torch::Tensor k = splitHeads(linear(lin[1], xn, hook, outputHook), KV, hd);
        const torch::Tensor v = splitHeads(linear(lin[2], xn, hook, outputHook), KV, hd);
        const auto [cos, sin] = ropeTables(T, hd, c.ropeTheta, hidden.device());
        q = applyRotary(q, cos, sin);
        k = applyRotary(k, cos, sin);
        const torch::Tensor attn = attend(q, k, v, 1.0 / std::sqrt(double(hd)));
        const torch::Tensor h = addResidual(hidden, linear(lin[3], attn, hook, outputHook));
        const torch::Tensor hn = rmsNorm(h, blk.norm2Weight, c.normEps);
        torch::Tensor gate = activate(c.activation, linear(lin[4], hn, hook, outputHook));
        const torch::Tensor up = linear(lin[5], hn, hook, outputHook);
        gate = reuseTemporaries() ? gate.mul_(up) : gate * up;
        return lastLinear(lin[6], gate, [&](const torch::Tensor& down) { return addResidual(h, down); });
    }
    case Architecture::Gpt2: {
        const torch::Tensor xn = layerNorm(hidden, blk.norm1Weight, blk.norm1Bias, c.normEps);
        const std::vector<torch::Tensor> qkv = linear(lin[0], xn, hook, outputHook).split(c.hiddenSize, -1);
        const torch::Tensor attn = attend(splitHeads(qkv[0], H, hd), splitHeads(qkv[1], H, hd),
                                          splitHeads(qkv[2], H, hd), 1.0 / std::sqrt(double(hd)));
        const torch::Tensor h = addResidual(hidden, linear(lin[1], attn, hook, outputHook));
        const torch::Tensor hn = layerNorm(h, blk.norm2Weight, blk.norm2Bias, c.normEps);
        return lastLinear(lin[3], activate(c.activation, linear(lin[2], hn, hook, outputHook)),
                          [&](const torch::Tensor& projected) { return addResidual(h, projected); });
    }
    case Architecture::Opt: {
        const bool pre = c.doLayerNormBefore;
        const torch::Tensor xn = pre ? layerNorm(hidden, blk.norm1Weight, blk.norm1Bias, c.normEps) : hidden;
        // HF OPTAttention scales the projected queries (head_dim^-0.5) before q·kᵀ.
        const torch::Tensor q = splitHeads(linear(lin[0], xn, hook, outputHook) * (1.0 / std::sqrt(double(hd))), H, hd);
        const torch::Tensor k = splitHeads(linear(lin[1], xn, hook, outputHook), H, hd);
        const torch::Tensor v = splitHeads(linear(lin[2], xn, hook, outputHook), H, hd);
        torch::Tensor h = addResidual(hidden, linear(lin[3], attend(q, k, v, 1.0), hook, outputHook));
        if (!pre)
            h = layerNorm(h, blk.norm1Weight, blk.norm1Bias, c.normEps);
        const torch::Tensor hn = pre ? layerNorm(h, blk.norm2Weight, blk.norm2Bias, c.normEps) : h;
        return lastLinear(lin[5], activate(c.activation, linear(lin[4], hn, hook, outputHook)), [&](const torch::Tensor& fc2) {
            const torch::Tensor out = addResidual(h, fc2);
            return pre ? out : layerNorm(out, blk.norm2Weight, blk.norm2Bias, c.normEps);
        });
    }
    }
    throw std::logic_error("unknown architecture");
}

torch::Tensor CausalLM::head(const torch::Tensor& hidden) const
{
    torch::Tensor x = hidden;
    if (m_config.architecture == Architecture::Llama)
        x = rmsNorm(x, m_impl->finalNormWeight, m_config.normEps);
    else if (m_impl->finalNormWeight.defined())
        x = layerNorm(x, m_impl->finalNormWeight, m_impl->finalNormBias, m_config.normEps);
    return at::linear(x, m_impl->lmHead);
}

std::vector<torch::Tensor> CausalLM::normParameters(int64_t block) const
{
    std::vector<torch::Tensor> out;
    const auto add = [&out](const torch::Tensor& t) {
        if (t.defined())
            out.push_back(t);
    };
    if (block < 0) {
        add(m_impl->finalNormWeight);
        add(m_impl->finalNormBias);
    } else {
        const Impl::Block& blk = m_impl->blocks.at(size_t(block));
        add(blk.norm1Weight);
        add(blk.norm1Bias);
        add(blk.norm2Weight);
        add(blk.norm2Bias);
    }
    return out;
}

torch::Tensor CausalLM::logits(const torch::Tensor& ids) const
{
    torch::Tensor x = embed(ids);
    for (int64_t b = 0; b < numBlocks(); ++b)
        x = runBlock(b, x);
    return head(x);
}

void CausalLM::materializeBlock(int64_t block)
{
    if (!m_stream)
        return;
    std::vector<torch::Tensor> staged;
    if (m_stream->stagedBlock == block && m_stream->staged.valid()) {
        staged = m_stream->staged.get(); // rethrows a failure of the staging thread
        m_stream->stagedBlock = -1;
    }
    size_t next = 0;
    for (LinearLayer& layer : m_linears.at(size_t(block))) {
        if (!layer.weight.is_meta())
            continue;
        if (!staged.empty() && !m_stream->spilled.count(layer.name)) {
            // Pinned host memory: the copy is queued on the current stream, ahead of the kernels
            // that read it, and the host thread goes on.
            layer.weight = staged.at(next++).to(m_device, /*non_blocking=*/true);
            continue;
        }
        const auto spilled = m_stream->spilled.find(layer.name);
        const io::TensorView view = spilled != m_stream->spilled.end()
            ? m_stream->spills.at(spilled->second).view(layer.name)
            : m_stream->checkpoint.view(layer.name);
        torch::Tensor t = toFloatTensor(view);
        io::releaseMappedPages(view.data, view.nbytes);
        if (spilled == m_stream->spilled.end())
            requireFiniteTensor(t, m_stream->checkpoint.fileOf(layer.name).path(), layer.name);
        if (layer.storedTransposed)
            t = t.t().contiguous();
        layer.weight = t.to(m_device);
    }
}

void CausalLM::prefetchBlock(int64_t block)
{
    if (!m_stream || block < 0 || block >= numBlocks())
        return;
    struct Source {
        io::TensorView view;
        bool transposed;
        fs::path file;
        std::string name;
    };
    std::vector<Source> sources;
    for (const LinearLayer& layer : m_linears.at(size_t(block)))
        if (layer.weight.is_meta() && !m_stream->spilled.count(layer.name)) {
            const io::TensorView view = m_stream->checkpoint.view(layer.name);
            io::prefetchMappedPages(view.data, view.nbytes);
            sources.push_back({view, layer.storedTransposed, m_stream->checkpoint.fileOf(layer.name).path(), layer.name});
        }
    if (!m_device.is_cuda() || sources.empty() || m_stream->staged.valid())
        return;
    // All of the block's linears are staged or none: materializeBlock relies on the order.
    if (sources.size() != m_linears.at(size_t(block)).size())
        return;
    m_stream->stagedBlock = block;
    m_stream->staged = std::async(std::launch::async, [sources] {
        std::vector<torch::Tensor> out;
        for (const Source& s : sources) {
            torch::Tensor t = toFloatTensor(s.view);
            io::releaseMappedPages(s.view.data, s.view.nbytes);
            requireFiniteTensor(t, s.file, s.name); // rethrown by materializeBlock's get()
            if (s.transposed)
                t = t.t().contiguous();
            out.push_back(t.pin_memory());
        }
        return out;
    });
}

void CausalLM::finishBlock(int64_t block)
{
    if (!m_stream)
        return;
    auto& layers = m_linears.at(size_t(block));
    std::vector<io::TensorToWrite> tensors;
    std::vector<torch::Tensor> keepAlive;
    for (const LinearLayer& layer : layers) {
        if (layer.weight.is_meta())
            continue; // never materialized: the checkpoint still holds it
        const io::TensorInfo& info = m_stream->checkpoint.info(layer.name);
        torch::Tensor w = layer.weight.detach().to(torch::kCPU);
        if (layer.storedTransposed)
            w = w.t();
        w = w.to(scalarTypeOf(info.dtype)).contiguous();
        tensors.push_back({info.name, info.dtype, info.shape, w.data_ptr(), size_t(w.nbytes())});
        keepAlive.push_back(w);
    }
    if (tensors.empty())
        return;
    if (m_stream->spillDir.empty()) {
        // A private folder next to the system's temporary files; mkdtemp makes it unique.
        const fs::path scratch = scratchFolder();
        std::string pattern = (scratch / "sparselab-stream-XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw InputError(scratch.string() + ": cannot create a folder for streamed blocks: " + std::strerror(errno));
        m_stream->spillDir = pattern;
    }
    const fs::path file = m_stream->spillDir / ("block-" + std::to_string(block) + ".safetensors");
    m_stream->spills.erase(block);
    io::writeSafetensors(file, tensors);
    keepAlive.clear();
    m_stream->spills.emplace(block, io::SafetensorsFile::open(file));
    for (LinearLayer& layer : layers) {
        if (layer.weight.is_meta())
            continue;
        m_stream->spilled[layer.name] = block;
        layer.weight = torch::empty(layer.weight.sizes(), torch::TensorOptions().dtype(torch::kFloat).device(torch::kMeta));
    }
}

std::optional<io::TensorView> CausalLM::finishedWeight(const std::string& name) const
{
    if (!m_stream)
        return std::nullopt;
    const auto it = m_stream->spilled.find(name);
    if (it == m_stream->spilled.end())
        return std::nullopt;
    return m_stream->spills.at(it->second).view(name);
}

std::vector<LinearLayer*> CausalLM::allLinears()
{
    std::vector<LinearLayer*> out;
    for (auto& block : m_linears)
        for (LinearLayer& layer : block)
            out.push_back(&layer);
    return out;
}

int64_t CausalLM::parameterCount() const
{
    int64_t n = 0;
    for (const auto& [name, t] : m_params)
        n += t.numel();
    return n;
}

} // namespace sparselab::model
