#!/usr/bin/python3
"""Writes the tiny random GPT-2 and OPT checkpoints used by tests/core/model/test_arch_forward.cpp.

    /usr/bin/python3 scripts/make_tiny_checkpoints.py [--out tests/data/models]

Needs only Python 3 with numpy (Debian: python3-numpy). No torch, no transformers: the
weights come from numpy's PCG64 generator with fixed seeds, so the output is bit-for-bit
reproducible, and model.safetensors is written by hand (8-byte little-endian header length,
JSON header padded with spaces to a multiple of 8, raw little-endian row-major data).

Folders written (each a Hugging Face model folder: config.json + model.safetensors):
  tiny-gpt2        GPT2LMHeadModel, n_embd 32, n_layer 2, n_head 4, n_positions 64,
                   vocab 256, F32. Tensor names as GPT2LMHeadModel.save_pretrained() writes
                   them ("transformer." prefix, Conv1D weights stored [in, out], lm_head tied
                   to transformer.wte and therefore not stored).
  tiny-gpt2-f16    the same weights rounded to float16 and stored as F16.
  tiny-opt         OPTForCausalLM, hidden 32, ffn_dim 96, 2 layers, 4 heads,
                   max_position_embeddings 64 (embed_positions has 64 + 2 rows), vocab 272,
                   pre-LN (do_layer_norm_before true), relu, lm_head tied (not stored).
  tiny-opt-postln  as tiny-opt but do_layer_norm_before false (post-LN, OPT-350m's flag);
                   like every such HF OPT model it has no model.decoder.final_layer_norm.

Weights are deliberately larger than a trained model's init (std ~ 1/sqrt(fan_in), LayerNorm
weights 1 + N(0, 0.25^2), biases N(0, 0.1^2)) so that a wrong op changes the logits clearly.

The golden logits (golden_logits.safetensors beside each model) are NOT made here: they were
computed by independent reference implementations run outside this repository; see
tests/data/README.md. Re-running this script reproduces the same model.safetensors bytes, so
the committed goldens stay valid.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, numpy array); F32, F16 and I64 supported."""
    dtype_names = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, array in tensors:
        array = np.ascontiguousarray(array)
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": dtype_names[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


class Init:
    def __init__(self, seed):
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def normal(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def linear(self, fan_in, shape):  # weight of any layout; std from fan_in
        return self.normal(shape, 0.9 / np.sqrt(fan_in))

    def bias(self, n):
        return self.normal((n,), 0.1)

    def ln_weight(self, n):
        return (1.0 + self.rng.standard_normal(n) * 0.25).astype(np.float32)

    def ln_bias(self, n):
        return self.normal((n,), 0.1)


def gpt2_checkpoint(seed=1234):
    d, layers, heads, positions, vocab = 32, 2, 4, 64, 256
    inner = 4 * d
    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": vocab - 1,
        "embd_pdrop": 0.1,
        "eos_token_id": vocab - 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": positions,
        "n_embd": d,
        "n_head": heads,
        "n_inner": None,
        "n_layer": layers,
        "n_positions": positions,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": "float32",
        "transformers_version": "4.40.0",
        "use_cache": True,
        "vocab_size": vocab,
    }
    r = Init(seed)
    t = [
        ("transformer.wte.weight", r.normal((vocab, d), 0.5)),
        ("transformer.wpe.weight", r.normal((positions, d), 0.3)),
    ]
    for i in range(layers):
        p = f"transformer.h.{i}."
        # Conv1D: weight stored [in, out], y = x @ W + b
        t += [
            (p + "ln_1.weight", r.ln_weight(d)),
            (p + "ln_1.bias", r.ln_bias(d)),
            (p + "attn.c_attn.weight", r.linear(d, (d, 3 * d))),
            (p + "attn.c_attn.bias", r.bias(3 * d)),
            (p + "attn.c_proj.weight", r.linear(d, (d, d))),
            (p + "attn.c_proj.bias", r.bias(d)),
            (p + "ln_2.weight", r.ln_weight(d)),
            (p + "ln_2.bias", r.ln_bias(d)),
            (p + "mlp.c_fc.weight", r.linear(d, (d, inner))),
            (p + "mlp.c_fc.bias", r.bias(inner)),
            (p + "mlp.c_proj.weight", r.linear(inner, (inner, d))),
            (p + "mlp.c_proj.bias", r.bias(d)),
        ]
    t += [
        ("transformer.ln_f.weight", r.ln_weight(d)),
        ("transformer.ln_f.bias", r.ln_bias(d)),
    ]
    return config, t


def opt_checkpoint(pre_ln, seed):
    d, ffn, layers, heads, positions, vocab = 32, 96, 2, 4, 64, 272
    config = {
        "_remove_final_layer_norm": False,
        "activation_dropout": 0.0,
        "activation_function": "relu",
        "architectures": ["OPTForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 2,
        "do_layer_norm_before": pre_ln,
        "dropout": 0.1,
        "enable_bias": True,
        "eos_token_id": 2,
        "ffn_dim": ffn,
        "hidden_size": d,
        "init_std": 0.02,
        "layer_norm_elementwise_affine": True,
        "layerdrop": 0.0,
        "max_position_embeddings": positions,
        "model_type": "opt",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "pad_token_id": 1,
        "prefix": "</s>",
        "torch_dtype": "float32",
        "transformers_version": "4.40.0",
        "use_cache": True,
        "vocab_size": vocab,
        "word_embed_proj_dim": d,
    }
    r = Init(seed)
    t = [
        ("model.decoder.embed_tokens.weight", r.normal((vocab, d), 0.5)),
        ("model.decoder.embed_positions.weight", r.normal((positions + 2, d), 0.3)),
    ]
    for i in range(layers):
        p = f"model.decoder.layers.{i}."
        # nn.Linear: weight stored [out, in], y = x @ W^T + b
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            t += [
                (p + f"self_attn.{proj}.weight", r.linear(d, (d, d))),
                (p + f"self_attn.{proj}.bias", r.bias(d)),
            ]
        t += [
            (p + "self_attn_layer_norm.weight", r.ln_weight(d)),
            (p + "self_attn_layer_norm.bias", r.ln_bias(d)),
            (p + "fc1.weight", r.linear(d, (ffn, d))),
            (p + "fc1.bias", r.bias(ffn)),
            (p + "fc2.weight", r.linear(ffn, (d, ffn))),
            (p + "fc2.bias", r.bias(d)),
            (p + "final_layer_norm.weight", r.ln_weight(d)),
            (p + "final_layer_norm.bias", r.ln_bias(d)),
        ]
    if pre_ln:  # HF builds model.decoder.final_layer_norm only when do_layer_norm_before
        t += [
            ("model.decoder.final_layer_norm.weight", r.ln_weight(d)),
            ("model.decoder.final_layer_norm.bias", r.ln_bias(d)),
        ]
    return config, t


def save(folder, config, tensors):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt"})


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "models"))
    args = parser.parse_args()

    config, tensors = gpt2_checkpoint()
    save(os.path.join(args.out, "tiny-gpt2"), config, tensors)
    f16 = dict(config, torch_dtype="float16")
    save(os.path.join(args.out, "tiny-gpt2-f16"), f16, [(n, a.astype(np.float16)) for n, a in tensors])

    config, tensors = opt_checkpoint(pre_ln=True, seed=2345)
    save(os.path.join(args.out, "tiny-opt"), config, tensors)
    config, tensors = opt_checkpoint(pre_ln=False, seed=3456)
    save(os.path.join(args.out, "tiny-opt-postln"), config, tensors)

    for name in ("tiny-gpt2", "tiny-gpt2-f16", "tiny-opt", "tiny-opt-postln"):
        folder = os.path.join(args.out, name)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f"{folder}: {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
