#!/usr/bin/env python3
"""A random Hugging Face model with the shapes of a current small model, for end-to-end timing.

    python3 scripts/make_random_sized_model.py --shape qwen2.5-0.5b --tokenizer DIR/tokenizer.json --out DIR

Needs `transformers` and `torch` (the GPU machine's Python). The weights are transformers'
own random initialisation (seeded), stored in bfloat16 as the real checkpoint is; the
tokenizer.json given is copied beside them (its ids must fit the vocabulary). Only the shapes
matter here: the run that uses it measures time and memory, not quality.

Shapes: qwen2.5-0.5b — Qwen2ForCausalLM, hidden 896, 24 layers, 14 heads / 2 KV heads,
MLP 4864, vocabulary 151936, q/k/v bias, tied embeddings, rope_theta 1e6.
"""

import argparse
import json
import os
import shutil

import torch
import transformers

SHAPES = {
    "qwen2.5-0.5b": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
                     dict(vocab_size=151936, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                          num_key_value_heads=2, intermediate_size=4864, max_position_embeddings=32768,
                          rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                          hidden_act="silu", use_sliding_window=False)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    config_cls, model_cls, kwargs = SHAPES[args.shape]
    torch.manual_seed(0)
    model = model_cls(config_cls(**kwargs)).to(torch.bfloat16).eval()
    model.save_pretrained(args.out)
    shutil.copy(args.tokenizer, os.path.join(args.out, "tokenizer.json"))
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"shape": args.shape, "parameters": params, "files": sorted(os.listdir(args.out))}))


if __name__ == "__main__":
    main()
