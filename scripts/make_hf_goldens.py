#!/usr/bin/env python3
"""Small random Hugging Face models and their golden logits, made by `transformers` itself.

    python3 scripts/make_hf_goldens.py --out tests/data/models

Run where `transformers` and `torch` are installed (the GPU machine's Python has both; Debian
has no transformers). For every architecture SparseLab loads it builds a random model from a
config written here, saves it with `save_pretrained` (config.json + model.safetensors, exactly
what a user downloads from the Hub), and writes golden_logits.safetensors beside it: `ids`
(I64 [2, 24], fixed) and `logits` (F32 [2, 24, vocab]) from transformers' own forward pass on
the CPU in float32 with eager attention. tests/core/model/test_hf_logits.cpp compares SparseLab's
forward pass with them (CPU, in CI); tests/gpu/test_hf_logits_cuda.cpp does it on CUDA.

Folders (prefix hf-): llama (GQA, rope_theta 500000, untied head), mistral (GQA, rope_theta
1e6, sliding window larger than the sequence), qwen2 (GQA, q/k/v bias, tied embeddings),
gpt2 (Conv1D, tied), opt (pre-LN), opt-postln (post-LN, as OPT-350m's flag).

Weights are drawn larger than a trained model's init (matrices std 1/sqrt(fan_in), norm
weights 1 + N(0, 0.2^2), biases N(0, 0.1^2), embeddings N(0, 1)) so that any wrong operation
moves the logits far beyond the 1e-4 tolerance.
"""

import argparse
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

VOCAB = 320
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 160
POSITIONS = 128


def configs():
    common = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                  intermediate_size=INTERMEDIATE, max_position_embeddings=POSITIONS,
                  rms_norm_eps=1e-6, hidden_act="silu")
    return {
        "hf-llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                     dict(common, rope_theta=500000.0, tie_word_embeddings=False, attention_bias=False)),
        "hf-mistral": (transformers.MistralConfig, transformers.MistralForCausalLM,
                       dict(common, rope_theta=1000000.0, tie_word_embeddings=False, sliding_window=4096)),
        "hf-qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
                     dict(common, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False)),
        "hf-gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel,
                    dict(vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS,
                         activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True)),
        "hf-opt": (transformers.OPTConfig, transformers.OPTForCausalLM,
                   dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        ffn_dim=INTERMEDIATE, max_position_embeddings=POSITIONS, word_embed_proj_dim=HIDDEN,
                        do_layer_norm_before=True, activation_function="relu", tie_word_embeddings=True)),
        "hf-opt-postln": (transformers.OPTConfig, transformers.OPTForCausalLM,
                          dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                               num_attention_heads=HEADS, ffn_dim=INTERMEDIATE, max_position_embeddings=POSITIONS,
                               word_embed_proj_dim=HIDDEN, do_layer_norm_before=False,
                               activation_function="relu", tie_word_embeddings=True)),
    }


def randomise(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() >= 2:
                if "embed" in name or "wte" in name or "wpe" in name:
                    std = 1.0
                else:  # Linear [out, in] or GPT-2's Conv1D [in, out]: fan-in is the input side
                    fan_in = p.shape[0] if "c_attn" in name or "c_fc" in name or "c_proj" in name else p.shape[1]
                    std = 1.0 / math.sqrt(fan_in)
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif "bias" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:  # norm weights
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1234))
    summary = {"transformers": transformers.__version__, "torch": torch.__version__, "models": {}}
    failures = 0
    for seed, (folder, (config_cls, model_cls, kwargs)) in enumerate(configs().items()):
        try:
            summary["models"][folder] = make(args.out, ids, seed, folder, config_cls, model_cls, kwargs)
        except Exception as e:  # one architecture failing must not cost the others
            failures += 1
            summary["models"][folder] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(summary))
    return 1 if failures else 0


def make_config(config_cls, kwargs):
    """The config, with rope_theta given the way this transformers version takes it (top-level
    before 5, inside rope_parameters since), checked to be in effect."""
    theta = kwargs.get("rope_theta")
    config = config_cls(**kwargs)
    if theta is not None:
        params = getattr(config, "rope_parameters", None)
        effective = params.get("rope_theta") if isinstance(params, dict) else getattr(config, "rope_theta", None)
        if effective != theta:
            rest = {k: v for k, v in kwargs.items() if k != "rope_theta"}
            config = config_cls(**rest, rope_parameters={"rope_type": "default", "rope_theta": theta})
            params = getattr(config, "rope_parameters", None)
            effective = params.get("rope_theta") if isinstance(params, dict) else getattr(config, "rope_theta", None)
        if effective != theta:
            raise RuntimeError(f"rope_theta {theta} did not take effect ({effective})")
    config._attn_implementation = "eager"
    return config


def make(out, ids, seed, folder, config_cls, model_cls, kwargs):
    config = make_config(config_cls, kwargs)
    torch.manual_seed(seed)
    model = model_cls(config).float().eval()
    randomise(model, 100 + seed)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()  # the head is the embedding again after randomise()
    path = os.path.join(out, folder)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float().contiguous()
    save_file({"ids": ids.contiguous(), "logits": logits}, os.path.join(path, "golden_logits.safetensors"),
              metadata={"made_by": f"transformers {transformers.__version__} {model_cls.__name__}, "
                                   f"torch {torch.__version__}, CPU float32, eager attention"})
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))
    with open(os.path.join(path, "config.json")) as f:
        saved = json.load(f)
    return {"class": model_cls.__name__, "logit_std": float(logits.std()), "files": sorted(os.listdir(path)),
            "config": saved}


if __name__ == "__main__":
    sys.exit(main())
