#pragma once
// A decoder-only language model in LibTorch: Llama family, GPT-2 and OPT, evaluated with
// Hugging Face semantics. Weights are held as float32 tensors on one torch::Device,
// whatever their dtype on disk (F16/BF16 are widened).
//
// The model is exposed block by block so the pruning pipeline can run one decoder block at
// a time and observe the input of every linear sub-layer:
//     x = embed(ids);  for b in blocks: x = runBlock(b, x, hook);  logits = head(x)
//
// Linear layers are always [out, in] (GPT-2 Conv1D weights, stored [in, out], are
// transposed on load and back on export; LinearLayer::storedTransposed says so).
// Fused GPT-2 c_attn is one linear layer [3*d, d], as in the checkpoint.
//
// Forward semantics: causal attention over positions 0..T-1 of every row (no padding, no
// KV cache); Llama RoPE is HF's rotate-half form, OPT positions are offset by 2, GPT-2/OPT
// positions are limited to maxPositions. Inputs and outputs live on device(); ids may be
// int32 or int64. The forward methods keep no state: concurrent const calls are safe, but
// not while a solver is updating weights. They do not set grad mode: callers wrap them in
// torch::NoGradGuard or c10::InferenceMode (parameters never require grad).

#include "io/safetensors.h" // io::TensorView (finishedWeight)
#include "model/config.h"

#include <torch/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sparselab::io {
class Checkpoint;
struct TensorView;
} // namespace sparselab::io

namespace sparselab::model {

struct LinearLayer {
    std::string name;            // checkpoint tensor name, e.g. "model.layers.0.mlp.down_proj.weight"
    std::string kind;            // sub-layer name within the block, e.g. "mlp.down_proj", "attn.c_attn"
    int64_t block = 0;
    torch::Tensor weight;        // [out, in] float32 on the model's device; solvers update it in place
    torch::Tensor bias;          // [out] or undefined
    bool storedTransposed = false; // true for GPT-2 Conv1D ([in, out] on disk)
};

// Called with the input of a linear layer during runBlock: x is [batch, tokens, in] float32
// (batch = calibration sequences in this call; the Hessian is a mean over sequences).
using LinearInputHook = std::function<void(const LinearLayer& layer, const torch::Tensor& x)>;

// Called with the output of a linear layer during runBlock, y = x·Wᵀ + b [batch, tokens, out]
// float32, right after the product and before anything reads it (the forward may then
// overwrite y in place: activations, residual adds). Not called for the last linear under
// BlockResult::LinearInputsOnly, which skips that product.
using LinearOutputHook = std::function<void(const LinearLayer& layer, const torch::Tensor& y)>;

// What runBlock computes. Output: the block's output. LinearInputsOnly: only what the hook is
// shown, the input of every linear layer; the last linear's product and what follows it
// (residual, post-norm) are skipped and runBlock returns an undefined tensor. The pruning
// pipeline's collecting pass wants only the inputs (the reference computes that pass's outputs
// and overwrites them unread); skipping the last product saves a quarter of a Llama block's
// multiply-adds there.
enum class BlockResult { Output, LinearInputsOnly };

class CausalLM {
public:
    // Loads config.json and the safetensors weights of a model folder onto `device`.
    // InputError naming the file for any missing tensor or wrong shape.
    // streamBlocks: the linear weights of the decoder blocks stay in the memory-mapped files
    // (their LinearLayer::weight is a shape-only meta tensor) until materializeBlock; every
    // other tensor (embeddings, norms, biases, head) is loaded as usual. See "Streaming" below.
    static std::unique_ptr<CausalLM> load(const std::filesystem::path& folder,
                                          torch::Device device = torch::kCPU, bool streamBlocks = false);

    // ---- Streaming (models loaded with streamBlocks) -----------------------------------------
    // Only the blocks in use hold their linear weights: materializeBlock(b) reads block b's
    // weights (from the checkpoint, or from the spill file once finished) as float32 onto
    // device() and drops the mapped pages it read; finishBlock(b) writes the block's current
    // weights, converted to their stored dtype (and layout), into a spill file (a private
    // temporary folder, removed with the model) and puts meta tensors back, so memory stays
    // bounded by one block whatever the model's size. prefetchBlock(b) starts reading block b
    // from disk in the background (MADV_WILLNEED); on a CUDA device it also converts block b
    // to float32 in pinned host memory on a background thread, so that materializeBlock(b)
    // only queues asynchronous copies (the next block's transfer overlaps the current solve;
    // the host then holds one staged block). finishedWeight(name) is the spilled tensor
    // of a finished block (valid while the model lives), for the exporter. Forward calls on a
    // block that is not materialized throw (meta tensors). On a model loaded without
    // streamBlocks, materializeBlock/finishBlock/prefetchBlock do nothing.
    // Not thread-safe; call between forward passes.
    [[nodiscard]] bool streamed() const { return m_stream != nullptr; }
    void materializeBlock(int64_t block);
    void finishBlock(int64_t block);
    void prefetchBlock(int64_t block);
    [[nodiscard]] std::optional<io::TensorView> finishedWeight(const std::string& name) const;

    [[nodiscard]] const ModelConfig& config() const { return m_config; }
    [[nodiscard]] const std::filesystem::path& folder() const { return m_folder; }
    [[nodiscard]] torch::Device device() const { return m_device; }
    [[nodiscard]] int64_t numBlocks() const { return m_config.numLayers; }

    // ids: [batch, tokens] int64 → hidden states [batch, tokens, hidden] (positions from 0).
    [[nodiscard]] torch::Tensor embed(const torch::Tensor& ids) const;
    // One decoder block (causal attention over the whole sequence). The hook sees every
    // linear's input, in execution order, before the product, whatever `result` asks for;
    // outputHook every product computed, right after it.
    [[nodiscard]] torch::Tensor runBlock(int64_t block, const torch::Tensor& hidden, const LinearInputHook& hook = {},
                                         BlockResult result = BlockResult::Output,
                                         const LinearOutputHook& outputHook = {}) const;
    // Final norm and LM head: [batch, tokens, hidden] → logits [batch, tokens, vocab].
    [[nodiscard]] torch::Tensor head(const torch::Tensor& hidden) const;
    // All of it: [batch, tokens] int64 → logits [batch, tokens, vocab] float32.
    [[nodiscard]] torch::Tensor logits(const torch::Tensor& ids) const;

    // The prunable linear layers of one block, in execution order
    // (Llama: q,k,v,o,gate,up,down; GPT-2: c_attn,c_proj,c_fc,mlp.c_proj; OPT: q,k,v,out,fc1,fc2).
    [[nodiscard]] std::vector<LinearLayer>& linears(int64_t block) { return m_linears.at(size_t(block)); }
    [[nodiscard]] const std::vector<LinearLayer>& linears(int64_t block) const { return m_linears.at(size_t(block)); }
    [[nodiscard]] std::vector<LinearLayer*> allLinears();

    // The normalisation weights (and biases, where the architecture has them) of one block,
    // or of the final norm for block -1 (none for post-norm OPT). The model's own tensors, not
    // copies: training them (recovery) changes the model.
    [[nodiscard]] std::vector<torch::Tensor> normParameters(int64_t block) const;

    // Every parameter tensor by checkpoint name (float32, [out, in] for linears; tied
    // weights appear once under their stored name).
    [[nodiscard]] const std::map<std::string, torch::Tensor>& parameters() const { return m_params; }
    [[nodiscard]] int64_t parameterCount() const;
    // dtype of the weights on disk, e.g. "F32" (the most common dtype among stored tensors).
    [[nodiscard]] const std::string& storedDtype() const { return m_storedDtype; }

private:
    CausalLM() = default;
    struct Impl;
    struct Stream;
    ModelConfig m_config;
    std::filesystem::path m_folder;
    torch::Device m_device = torch::kCPU;
    std::map<std::string, torch::Tensor> m_params;
    std::vector<std::vector<LinearLayer>> m_linears;
    std::string m_storedDtype;
    std::shared_ptr<const Impl> m_impl; // architecture-specific tensor handles
    // streamBlocks state; null otherwise. Copies of a model share it: copy only models loaded
    // without streamBlocks (a streamed copy would see the other's spills).
    std::shared_ptr<Stream> m_stream;
};

// Converts a stored tensor view into a float32 CPU tensor that owns its memory (a copy:
// the view may be unaligned and may not outlive its file). F16/BF16 widen exactly;
// integer and BOOL views convert by value.
[[nodiscard]] torch::Tensor toFloatTensor(const io::TensorView& view);

} // namespace sparselab::model
