#include "io/gguf_llama.h"

#include "util/errors.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace sparselab::io {

namespace fs = std::filesystem;

std::optional<GgufFileType> parseGgufFileType(std::string_view name)
{
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (lower == "f32")
        return GgufFileType::F32;
    if (lower == "f16")
        return GgufFileType::F16;
    if (lower == "q8_0")
        return GgufFileType::Q8_0;
    if (lower == "q4_0")
        return GgufFileType::Q4_0;
    return std::nullopt;
}

std::string_view ggufFileTypeName(GgufFileType type)
{
    switch (type) {
    case GgufFileType::F32: return "f32";
    case GgufFileType::F16: return "f16";
    case GgufFileType::Q8_0: return "q8_0";
    case GgufFileType::Q4_0: return "q4_0";
    }
    return "?";
}

uint32_t llamaFtype(GgufFileType type)
{
    switch (type) { // llama.h: LLAMA_FTYPE_ALL_F32, _MOSTLY_F16, _MOSTLY_Q8_0, _MOSTLY_Q4_0
    case GgufFileType::F32: return 0;
    case GgufFileType::F16: return 1;
    case GgufFileType::Q8_0: return 7;
    case GgufFileType::Q4_0: return 2;
    }
    return 0;
}

void permuteRopeRows(std::span<std::byte> data, int64_t rows, size_t rowBytes, int64_t nHead, bool toGguf)
{
    if (nHead <= 0 || rows % nHead != 0 || (rows / nHead) % 2 != 0 || data.size() != size_t(rows) * rowBytes)
        throw std::invalid_argument("permuteRopeRows: " + std::to_string(rows) + " rows do not split into "
                                    + std::to_string(nHead) + " heads of even size");
    const int64_t hd = rows / nHead;
    const int64_t half = hd / 2;
    std::vector<std::byte> copy(data.begin(), data.end());
    for (int64_t h = 0; h < nHead; ++h)
        for (int64_t i = 0; i < half; ++i)
            for (int64_t j = 0; j < 2; ++j) {
                const int64_t hf = h * hd + j * half + i;
                const int64_t gg = h * hd + 2 * i + j;
                const int64_t from = toGguf ? hf : gg;
                const int64_t to = toGguf ? gg : hf;
                std::memcpy(data.data() + size_t(to) * rowBytes, copy.data() + size_t(from) * rowBytes, rowBytes);
            }
}

std::vector<LlamaTensorEntry> llamaTensorEntries(const model::ModelConfig& c, bool tied)
{
    const int64_t d = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize;
    const int64_t qRows = c.numHeads * c.headDim, kvRows = c.numKvHeads * c.headDim;
    std::vector<LlamaTensorEntry> out;
    const auto add = [&](std::string hf, std::string gg, std::vector<int64_t> shape, int64_t ropeHeads = 0) {
        out.push_back(LlamaTensorEntry{std::move(hf), std::move(gg), std::move(shape), GgmlType::F32, ropeHeads});
    };
    add("model.embed_tokens.weight", "token_embd.weight", {V, d});
    for (int64_t b = 0; b < c.numLayers; ++b) {
        const std::string hf = "model.layers." + std::to_string(b) + ".";
        const std::string gg = "blk." + std::to_string(b) + ".";
        add(hf + "input_layernorm.weight", gg + "attn_norm.weight", {d});
        add(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", {qRows, d}, c.numHeads);
        add(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kvRows, d}, c.numKvHeads);
        add(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kvRows, d});
        add(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", {d, qRows});
        if (c.attentionBias) {
            add(hf + "self_attn.q_proj.bias", gg + "attn_q.bias", {qRows}, c.numHeads);
            add(hf + "self_attn.k_proj.bias", gg + "attn_k.bias", {kvRows}, c.numKvHeads);
            add(hf + "self_attn.v_proj.bias", gg + "attn_v.bias", {kvRows});
        }
        if (c.attentionOutputBias)
            add(hf + "self_attn.o_proj.bias", gg + "attn_output.bias", {d});
        add(hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", {d});
        add(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {I, d});
        add(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {I, d});
        add(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {d, I});
        if (c.mlpBias) {
            add(hf + "mlp.gate_proj.bias", gg + "ffn_gate.bias", {I});
            add(hf + "mlp.up_proj.bias", gg + "ffn_up.bias", {I});
            add(hf + "mlp.down_proj.bias", gg + "ffn_down.bias", {d});
        }
    }
    add("model.norm.weight", "output_norm.weight", {d});
    if (!tied)
        add("lm_head.weight", "output.weight", {V, d});
    return out;
}

// ---- writing -------------------------------------------------------------------------------

namespace {

int64_t numelOf(const std::vector<int64_t>& shape)
{
    int64_t n = 1;
    for (int64_t s : shape)
        n *= s;
    return n;
}

std::string shapeText(const std::vector<int64_t>& shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

GgmlType chooseType(const LlamaTensorEntry& e, const LlamaGgufParams& params)
{
    if (e.hfShape.size() < 2)
        return GgmlType::F32; // norms and biases: llama.cpp keeps 1-D tensors in F32
    const bool blocks = e.hfShape.back() % kGgmlBlock == 0;
    if (const auto grid = params.grids.find(e.hfName); grid != params.grids.end()) {
        if (!blocks)
            throw std::invalid_argument("GGUF export: tensor '" + e.hfName + "' has rows of "
                                        + std::to_string(e.hfShape.back())
                                        + " values, not a multiple of 32: its grid cannot be a Q4_0/Q8_0 tensor");
        if (grid->second.bits == 4)
            return GgmlType::Q4_0;
        if (grid->second.bits == 8)
            return GgmlType::Q8_0;
        throw std::invalid_argument("GGUF export: grid of '" + e.hfName + "' has " + std::to_string(grid->second.bits)
                                    + " bits; Q4_0 takes 4, Q8_0 takes 8");
    }
    switch (params.type) {
    case GgufFileType::F32: return GgmlType::F32;
    case GgufFileType::F16: return GgmlType::F16;
    case GgufFileType::Q8_0: return blocks ? GgmlType::Q8_0 : GgmlType::F16;
    case GgufFileType::Q4_0: return blocks ? GgmlType::Q4_0 : GgmlType::F16;
    }
    return GgmlType::F32;
}

// Encodes a float tensor (HF layout) into `dst` in the entry's type, in HF row order.
void encode(const LlamaTensorEntry& e, const float* x, const GgufQuantGrid* grid, std::span<std::byte> dst)
{
    const size_t n = size_t(numelOf(e.hfShape));
    const std::span<const float> src(x, n);
    if (grid) {
        const int64_t cols = e.hfShape.back();
        const size_t groups = n / size_t(kGgmlBlock);
        if (grid->codes.size() != n || grid->scales.size() != groups)
            throw std::invalid_argument("GGUF export: grid of '" + e.hfName + "' has " + std::to_string(grid->codes.size())
                                        + " codes and " + std::to_string(grid->scales.size()) + " scales; "
                                        + shapeText(e.hfShape) + " needs " + std::to_string(n) + " and "
                                        + std::to_string(groups));
        if (e.type == GgmlType::Q4_0)
            packQ4_0(grid->scales, grid->codes, dst);
        else
            packQ8_0(grid->scales, grid->codes, dst);
        // The grid must be the model's weight: otherwise the file would silently differ.
        std::vector<float> back(n);
        if (e.type == GgmlType::Q4_0)
            dequantizeRowQ4_0(dst, back);
        else
            dequantizeRowQ8_0(dst, back);
        for (size_t i = 0; i < n; ++i)
            if (back[i] != src[i])
                throw std::invalid_argument("GGUF export: grid of '" + e.hfName + "' gives " + std::to_string(back[i])
                                            + " at row " + std::to_string(int64_t(i) / cols) + ", column "
                                            + std::to_string(int64_t(i) % cols) + " where the weight is "
                                            + std::to_string(src[i]));
        return;
    }
    switch (e.type) {
    case GgmlType::F32: std::memcpy(dst.data(), x, n * sizeof(float)); break;
    case GgmlType::F16:
        for (size_t i = 0; i < n; ++i) {
            const uint16_t h = fp32ToFp16(x[i]);
            std::memcpy(dst.data() + 2 * i, &h, 2);
        }
        break;
    case GgmlType::Q8_0: quantizeRowQ8_0(src, dst); break;
    case GgmlType::Q4_0: quantizeRowQ4_0(src, dst); break;
    default: throw std::invalid_argument("GGUF export: unexpected tensor type");
    }
}

} // namespace

LlamaGgufSummary writeLlamaGguf(const fs::path& out, const model::ModelConfig& c, const LlamaTensorSource& source,
                                const GgufVocab& vocab, const LlamaGgufParams& params,
                                const ProgressCallback& progress, const CancelToken* cancel)
{
    if (c.architecture != model::Architecture::Llama || (c.modelType != "llama" && c.modelType != "mistral"))
        throw std::invalid_argument("GGUF export supports Llama and Mistral models (model_type '" + c.modelType + "')");
    if (c.headDim % 2 != 0)
        throw std::invalid_argument("GGUF export: RoPE needs an even head_dim");

    std::vector<LlamaTensorEntry> entries = llamaTensorEntries(c, c.tieWordEmbeddings);
    for (const auto& [name, grid] : params.grids) {
        const bool known = std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return e.hfName == name; });
        if (!known || name.ends_with(".bias") || name.find("norm") != std::string::npos)
            throw std::invalid_argument("GGUF export: a grid is given for '" + name + "', which is not a weight matrix");
    }
    bool quantized = false;
    for (LlamaTensorEntry& e : entries) {
        e.type = chooseType(e, params);
        quantized = quantized || e.type == GgmlType::Q4_0 || e.type == GgmlType::Q8_0;
    }

    GgufWriter w;
    const auto u32 = [](int64_t v) {
        if (v < 0 || v > int64_t(UINT32_MAX))
            throw std::invalid_argument("GGUF export: value " + std::to_string(v) + " does not fit UINT32");
        return GgufValue::u32(uint32_t(v));
    };
    w.set("general.architecture", GgufValue::string("llama"));
    w.set("general.type", GgufValue::string("model"));
    w.set("general.name", GgufValue::string(params.name));
    w.set("general.alignment", GgufValue::u32(32));
    w.set("general.file_type", GgufValue::u32(llamaFtype(params.type)));
    if (quantized)
        w.set("general.quantization_version", GgufValue::u32(2)); // GGML_QNT_VERSION
    w.set("llama.vocab_size", u32(c.vocabSize));
    w.set("llama.context_length", u32(c.maxPositions));
    w.set("llama.embedding_length", u32(c.hiddenSize));
    w.set("llama.block_count", u32(c.numLayers));
    w.set("llama.feed_forward_length", u32(c.intermediateSize));
    w.set("llama.attention.head_count", u32(c.numHeads));
    w.set("llama.attention.head_count_kv", u32(c.numKvHeads));
    w.set("llama.rope.freq_base", GgufValue::f32(float(c.ropeTheta)));
    w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(float(c.normEps)));
    w.set("llama.rope.dimension_count", u32(c.headDim));
    if (c.headDim * c.numHeads != c.hiddenSize) {
        w.set("llama.attention.key_length", u32(c.headDim));
        w.set("llama.attention.value_length", u32(c.headDim));
    }
    addVocabToGguf(w, vocab);

    LlamaGgufSummary summary;
    for (const LlamaTensorEntry& e : entries) {
        std::vector<int64_t> ne(e.hfShape.rbegin(), e.hfShape.rend());
        const GgufQuantGrid* grid = nullptr;
        if (const auto it = params.grids.find(e.hfName); it != params.grids.end())
            grid = &it->second;
        w.addTensor(e.ggufName, e.type, ne, [&e, grid, &source](std::span<std::byte> dst) {
            const FloatTensorRef t = source(e.hfName);
            if (t.shape != e.hfShape || !t.data)
                throw std::invalid_argument("GGUF export: tensor '" + e.hfName + "' has shape " + shapeText(t.shape)
                                            + ", expected " + shapeText(e.hfShape));
            encode(e, t.data, grid, dst);
            if (e.ropeHeads > 0) {
                const int64_t rows = e.hfShape[0];
                permuteRopeRows(dst, rows, dst.size() / size_t(rows), e.ropeHeads, /*toGguf=*/true);
            }
        });
        ++summary.tensorTypes[std::string(ggmlTypeName(e.type))];
    }
    summary.tensors = int64_t(entries.size());

    ProgressReporter reporter(progress, "gguf", int64_t(entries.size()));
    w.write(out, [&](size_t index, const std::string& name) {
        throwIfCancelled(cancel);
        reporter.report(int64_t(index), name);
    });
    reporter.report(int64_t(entries.size()));
    std::error_code ec;
    summary.bytes = fs::file_size(out, ec);
    return summary;
}

// ---- reading -------------------------------------------------------------------------------

namespace {

// The double whose shortest decimal form is that of the float: 1e-5f → 1e-05 (not
// 9.99999974738e-06), so configs read back the numbers that were written.
double shortestDouble(float v)
{
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    double out = 0.0;
    std::from_chars(buf, r.ptr, out);
    return out;
}

} // namespace

LlamaGguf describeLlamaGguf(const GgufFile& f)
{
    const fs::path& path = f.path();
    const GgufValue* arch = f.find("general.architecture");
    if (!arch || !arch->asString())
        throw inputError(path, "missing general.architecture (STRING)");
    if (*arch->asString() != "llama")
        throw inputError(path, "architecture '" + *arch->asString() + "' is not supported (SparseLab reads llama GGUF files)");

    // A size: an integer key from 1 up to `largest` (config.h's kMaxModel* limits, the same as
    // for a config.json), refused naming the GGUF key.
    const auto integer = [&](const std::string& key, int64_t largest, std::optional<int64_t> fallback) -> int64_t {
        const GgufValue* v = f.find(key);
        if (!v) {
            if (fallback)
                return *fallback;
            throw inputError(path, "missing key '" + key + "'");
        }
        const auto x = v->asInt();
        if (!x || *x < 1)
            throw inputError(path, key + " must be a positive integer, found " + v->describe());
        if (*x > largest)
            throw inputError(path, key + " is " + std::to_string(*x) + ", above the largest "
                                       + std::to_string(largest) + " SparseLab accepts");
        return *x;
    };
    const auto real = [&](const std::string& key, std::optional<double> fallback) -> double {
        const GgufValue* v = f.find(key);
        if (!v) {
            if (fallback)
                return *fallback;
            throw inputError(path, "missing key '" + key + "'");
        }
        if (!v->asReal())
            throw inputError(path, key + " must be a FLOAT32 or FLOAT64, found " + v->describe());
        // The keys read here (epsilon, RoPE base) are positive; a NaN would not even survive the
        // conversion to config.json (JSON has no NaN) and silently became the default.
        const double x = *v->asReal();
        if (!std::isfinite(x) || !(x > 0.0))
            throw inputError(path, key + " must be a positive finite number, got " + std::to_string(x));
        return v->elementType() == GgufValueType::Float32 ? shortestDouble(float(x)) : x;
    };

    if (const GgufValue* experts = f.find("llama.expert_count"); experts && experts->asInt() != std::optional<int64_t>(0))
        throw inputError(path, "mixture-of-experts Llama models are not supported");
    if (const GgufValue* s = f.find("llama.rope.scaling.type"); s && s->asString() && *s->asString() != "none")
        throw inputError(path, "RoPE scaling '" + *s->asString() + "' is not supported");
    if (f.findTensor("rope_freqs.weight"))
        throw inputError(path, "RoPE frequency factors (rope_freqs.weight, Llama 3.1 scaling) are not supported");

    LlamaGguf out;
    model::ModelConfig& c = out.config;
    c.architecture = model::Architecture::Llama;
    c.modelType = "llama";
    c.activation = "silu";
    c.torchDtype = "float32";
    c.numLayers = integer("llama.block_count", model::kMaxModelLayers, std::nullopt);
    c.hiddenSize = integer("llama.embedding_length", model::kMaxModelWidth, std::nullopt);
    c.intermediateSize = integer("llama.feed_forward_length", model::kMaxModelMlpWidth, std::nullopt);
    c.numHeads = integer("llama.attention.head_count", model::kMaxModelHeads, std::nullopt);
    c.numKvHeads = integer("llama.attention.head_count_kv", model::kMaxModelHeads, c.numHeads);
    c.maxPositions = integer("llama.context_length", model::kMaxModelPositions, std::nullopt);
    c.normEps = real("llama.attention.layer_norm_rms_epsilon", std::nullopt);
    c.ropeTheta = real("llama.rope.freq_base", 10000.0);
    if (c.numLayers < 1 || c.hiddenSize < 1 || c.intermediateSize < 1 || c.numHeads < 1 || c.numKvHeads < 1
        || c.numHeads % c.numKvHeads != 0)
        throw inputError(path, "inconsistent llama.* sizes (blocks, widths and heads must be positive, "
                               "head_count a multiple of head_count_kv)");
    const int64_t defaultHeadDim = c.hiddenSize / c.numHeads;
    c.headDim = integer("llama.attention.key_length", model::kMaxModelWidth, defaultHeadDim);
    if (integer("llama.attention.value_length", model::kMaxModelWidth, c.headDim) != c.headDim)
        throw inputError(path, "llama.attention.value_length differs from key_length");
    if (integer("llama.rope.dimension_count", model::kMaxModelWidth, c.headDim) != c.headDim)
        throw inputError(path, "partial RoPE (llama.rope.dimension_count below the head size) is not supported");
    if (c.headDim < 2 || c.headDim % 2 != 0)
        throw inputError(path, "head size " + std::to_string(c.headDim) + " must be even");

    if (const GgufValue* name = f.find("general.name"); name && name->asString())
        out.name = *name->asString();
    if (f.find("tokenizer.ggml.model")) {
        out.vocab = vocabFromGguf(f);
        out.bosId = out.vocab->bosId;
        out.eosId = out.vocab->eosId;
    }

    const GgufTensorInfo* embd = f.findTensor("token_embd.weight");
    if (!embd)
        throw inputError(path, "tensor 'token_embd.weight' is missing");
    if (embd->ne.size() != 2)
        throw inputError(path, "token_embd.weight must be a matrix");
    c.vocabSize = integer("llama.vocab_size", model::kMaxModelVocab, int64_t(embd->ne[1]));
    if (c.vocabSize < 1 || c.vocabSize > model::kMaxModelVocab)
        throw inputError(path, "token_embd.weight has " + std::to_string(embd->ne[1]) + " rows, not a vocabulary of 1 to "
                                   + std::to_string(model::kMaxModelVocab) + " tokens");
    if (out.vocab && int64_t(out.vocab->tokens.size()) != c.vocabSize)
        throw inputError(path, "tokenizer.ggml.tokens has " + std::to_string(out.vocab->tokens.size())
                                   + " tokens but the model has " + std::to_string(c.vocabSize));
    c.tieWordEmbeddings = f.findTensor("output.weight") == nullptr;
    c.attentionBias = f.findTensor("blk.0.attn_q.bias") != nullptr;
    c.attentionOutputBias = f.findTensor("blk.0.attn_output.bias") != nullptr;
    c.mlpBias = f.findTensor("blk.0.ffn_up.bias") != nullptr;
    if (c.attentionBias != c.attentionOutputBias)
        throw inputError(path, "attention biases on q/k/v but not on the output (or the reverse) cannot be "
                               "described as a Llama config");

    std::vector<LlamaTensorEntry> expected = llamaTensorEntries(c, c.tieWordEmbeddings);
    std::map<std::string, size_t> byGguf;
    for (size_t i = 0; i < expected.size(); ++i)
        byGguf.emplace(expected[i].ggufName, i);
    std::vector<bool> seen(expected.size(), false);
    for (const GgufTensorInfo& t : f.tensors()) {
        const auto it = byGguf.find(t.name);
        if (it == byGguf.end())
            throw inputError(path, "tensor '" + t.name + "' is not part of a Llama model with these settings");
        LlamaTensorEntry e = expected[it->second];
        if (!ggmlTypeReadable(t.type))
            throw inputError(path, "tensor '" + t.name + "' has type " + std::string(ggmlTypeName(t.type))
                                       + "; SparseLab reads F32, F16, BF16, Q8_0 and Q4_0");
        if (t.torchShape() != e.hfShape)
            throw inputError(path, "tensor '" + t.name + "' has shape " + shapeText(t.torchShape()) + ", expected "
                                       + shapeText(e.hfShape));
        e.type = t.type;
        seen[it->second] = true;
        out.tensors.push_back(std::move(e));
    }
    for (size_t i = 0; i < expected.size(); ++i)
        if (!seen[i])
            throw inputError(path, "tensor '" + expected[i].ggufName + "' is missing");
    return out;
}

std::vector<float> readLlamaTensor(const GgufFile& f, const LlamaTensorEntry& entry)
{
    const GgufTensorInfo* info = f.findTensor(entry.ggufName);
    if (!info)
        throw inputError(f.path(), "tensor '" + entry.ggufName + "' is missing");
    std::vector<float> values = f.dequantize(*info);
    if (entry.ropeHeads > 0) {
        const int64_t rows = entry.hfShape[0];
        const std::span<std::byte> bytes(reinterpret_cast<std::byte*>(values.data()), values.size() * sizeof(float));
        try {
            permuteRopeRows(bytes, rows, bytes.size() / size_t(rows), entry.ropeHeads, /*toGguf=*/false);
        } catch (const std::invalid_argument& e) {
            throw inputError(f.path(), "tensor '" + entry.ggufName + "': " + e.what());
        }
    }
    return values;
}

} // namespace sparselab::io
