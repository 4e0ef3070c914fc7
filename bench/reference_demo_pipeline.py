#!/usr/bin/env python3
"""The published SparseGPT pipeline (IST-DASLab/sparsegpt, llama_sequential in llama.py, run
unchanged with its SparseGPT class) pruning the demo model, for bench/bench_demo_vs_reference.sh.

Debian has no `transformers`, so the model is a stand-in written here: a Llama decoder in plain
torch with the module names and call signatures llama_sequential uses (model.model.layers,
embed_tokens, norm, config.use_cache/hidden_size, layer(x, attention_mask=...)[0], nn.Linear
projections found by find_layers). Its dense perplexity on the evaluation text is printed and
must equal SparseLab's (5.8471 on the demo) before any timing is trusted.

Calibration: the text tokenized with the model's SentencePiece model (BOS first), windows drawn
by random.seed(seed); random.randint(0, n - seqlen - 1), as the reference's datautils and
SparseLab do, so both prune on the same windows.

Timed in-process: from reading the weights to the pruned weights (llama_sequential), excluding
Python's start-up and imports. One JSON line: the time, the perplexities, the pruned tensors'
path (safetensors, for the comparison with SparseLab's output).

usage: reference_demo_pipeline.py --reference DIR --model HF_DIR --calib FILE --eval FILE
       [--nsamples 128] [--seqlen 256] [--sparsity 0.5] [--seed 0] [--threads N] [--out F]
"""
import argparse
import json
import math
import os
import random
import struct
import sys
import time
import types

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sparsegpt_reference import import_llama, read_safetensors  # noqa: E402


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, tensor in tensors.items():
        data = tensor.detach().contiguous().numpy().astype(np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads", self.heads)
        self.head_dim = cfg["hidden_size"] // self.heads
        self.theta = cfg.get("rope_theta", 10000.0)
        hidden = cfg["hidden_size"]
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def forward(self, x, attention_mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        angles = torch.outer(torch.arange(t, dtype=torch.float32), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        repeat = self.heads // self.kv_heads
        k = k.repeat_interleave(repeat, dim=1)
        v = v.repeat_interleave(repeat, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + attention_mask
        out = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class Mlp(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden, inner = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = Mlp(cfg)

    def forward(self, x, attention_mask=None):
        x = x + self.self_attn(self.input_layernorm(x), attention_mask)
        return (x + self.mlp(self.post_attention_layernorm(x)),)


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class CausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = types.SimpleNamespace(use_cache=False, hidden_size=cfg["hidden_size"])
        self.model = Decoder(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)

    def forward(self, ids):
        t = ids.shape[1]
        mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, attention_mask=mask)[0]
        return self.lm_head(self.model.norm(x))


def load_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    model = CausalLM(cfg)
    weights = {name: torch.from_numpy(array.copy())
               for name, array in read_safetensors(os.path.join(folder, "model.safetensors")).items()}
    if "lm_head.weight" not in weights:  # tied embeddings
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    model.load_state_dict(weights, strict=True)
    model.seqlen = None
    return model.eval()


@torch.no_grad()
def perplexity(model, ids, seqlen):
    # SparseGPT's protocol: consecutive windows of seqlen, the mean loss of the shifted tokens.
    windows = ids.numel() // seqlen
    nlls = []
    for w in range(windows):
        batch = ids[:, w * seqlen:(w + 1) * seqlen]
        logits = model(batch)
        loss = nn.functional.cross_entropy(logits[0, :-1], batch[0, 1:])
        nlls.append(loss.float() * seqlen)
    return torch.exp(torch.stack(nlls).sum() / (windows * seqlen)).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0: torch's default")
    ap.add_argument("--out", default="")
    ap.add_argument("--skip-eval", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    llama = import_llama(args.reference)
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(args.model, "tokenizer.model"))

    def tokenize(path):
        with open(path, encoding="utf-8") as f:
            return torch.tensor([[sp.bos_id()] + sp.encode(f.read())], dtype=torch.long)

    calib = tokenize(args.calib)
    random.seed(args.seed)
    loader = []
    for _ in range(args.nsamples):
        i = random.randint(0, calib.shape[1] - args.seqlen - 1)
        loader.append((calib[:, i:i + args.seqlen],))

    dense_ppl = None
    if not args.skip_eval:
        dense_ppl = perplexity(load_model(args.model), tokenize(args.eval), args.seqlen)

    start = time.perf_counter()
    model = load_model(args.model)
    model.seqlen = args.seqlen
    llama.args = types.SimpleNamespace(nsamples=args.nsamples, true_sequential=False, minlayer=-1, maxlayer=1000,
                                       prune_only="", invert=False, wbits=16, sparsity=args.sparsity, prunen=0,
                                       prunem=0, percdamp=0.01, blocksize=128)
    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # llama_sequential prints a line per layer
    try:
        llama.llama_sequential(model, loader, torch.device("cpu"))
    finally:
        sys.stdout.close()
        sys.stdout = stdout
    seconds = time.perf_counter() - start

    pruned_ppl = None if args.skip_eval else perplexity(model, tokenize(args.eval), args.seqlen)
    if args.out:
        write_safetensors(args.out, {name: p for name, p in model.state_dict().items() if name.endswith("proj.weight")})
    print(json.dumps({"impl": "reference", "threads": torch.get_num_threads(),
                      "coretype": os.environ.get("OPENBLAS_CORETYPE") or "default", "prune_s": round(seconds, 4),
                      "dense_ppl": dense_ppl, "pruned_ppl": pruned_ppl, "out": args.out}))


if __name__ == "__main__":
    main()
