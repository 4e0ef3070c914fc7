#!/usr/bin/python3
# Golden outputs of the published GPTQ (IST-DASLab/gptq gptq.py + quant.py, unmodified, imported
# from ./ref) for SparseLab's solver tests (tests/core/solve/test_gptq.cpp).
# Usage (Debian python3-torch, CPU): put gptq.py and quant.py of IST-DASLab/gptq (commit
# 2d65066eeb06a5c9ff5184d8cebdf33662c67faf) in ./ref, copy tests/data/solver/problem_a.safetensors
# into OUT, then: /usr/bin/python3 scripts/make_gptq_goldens.py OUT  → problem_d + gptq_*. Shims: a stand-in `transformers` module (gptq.py
# only uses transformers.Conv1D in isinstance checks) and a no-op torch.cuda.synchronize (CPU).
import contextlib, io, json, struct, sys, types
import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)
fake = types.ModuleType("transformers")
class Conv1D(nn.Module):
    pass
fake.Conv1D = Conv1D
sys.modules["transformers"] = fake
torch.cuda.synchronize = lambda *a, **k: None
sys.path.insert(0, "ref")
from gptq import GPTQ          # noqa: E402
from quant import Quantizer    # noqa: E402

OUT = sys.argv[1]

def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        dt = {"F32": np.float32, "U8": np.uint8}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(v["shape"]).copy())
    return out

def write_st(path, tensors, meta):
    head, blobs, off = {}, [], 0
    for k, t in tensors.items():
        a = t.contiguous().numpy()
        dt = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}[a.dtype]
        raw = a.tobytes()
        head[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw); off += len(raw)
    head["__metadata__"] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for r in blobs: f.write(r)

# problem_d: 16x160, H from 3 sequences x 96 tokens through GPTQ.add_batch (one per call),
# column-scaled correlated Gaussian inputs, input 7 dead. Seed 5.
g = torch.Generator().manual_seed(5)
rows, cols = 16, 160
W = torch.randn(rows, cols, generator=g) * 0.05
mix = torch.randn(cols, cols, generator=g) * 0.2 + torch.eye(cols)
colscale = torch.exp(torch.randn(cols, generator=g) * 0.7)
layer = nn.Linear(cols, rows, bias=False)
layer.weight.data = W.clone()
acc = GPTQ(layer)
for s in range(3):
    x = torch.randn(96, cols, generator=g) @ mix * colscale
    x[:, 7] = 0
    acc.add_batch(x.unsqueeze(0), None)
H_d = acc.H.clone()
write_st(f"{OUT}/problem_d.safetensors", {"weight": W, "hessian": H_d}, {})

problems = {"a": read_st(f"{OUT}/problem_a.safetensors"), "d": {"weight": W, "hessian": H_d}}

def run(pid, bits, group, sym, act, static, blocksize=128, damp=0.01):
    P = problems[pid]
    layer = nn.Linear(P["weight"].shape[1], P["weight"].shape[0], bias=False)
    layer.weight.data = P["weight"].clone()
    q = GPTQ(layer)
    q.H = P["hessian"].clone()
    q.quantizer = Quantizer()
    q.quantizer.configure(bits, perchannel=True, sym=sym, mse=False)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        q.fasterquant(blocksize=blocksize, percdamp=damp, groupsize=group if group else -1,
                      actorder=act, static_groups=static)
    loss = [l for l in buf.getvalue().splitlines() if l.startswith("error")][0].split()[1]
    name = f"gptq_{pid}_{bits}bit_{'g%d' % group if group else 'row'}_{'sym' if sym else 'asym'}"
    if act: name += "_act"
    if static: name += "_static"
    meta = {"problem": pid, "method": "sparsegpt", "sparsity": "0", "nm": "0:0", "blocksize": blocksize,
            "damp": damp, "bits": bits, "group": group, "sym": int(sym), "act_order": int(act),
            "static_groups": int(static), "loss": loss}
    mask = torch.zeros(layer.weight.shape, dtype=torch.uint8)
    write_st(f"{OUT}/{name}.safetensors", {"weight": layer.weight.data.float(), "mask": mask}, meta)
    print(name, loss)

# Every grid on problem d: bits 2..8 x per-row / 32 / 64 / 128 x sym / asym.
for bits in range(2, 9):
    for group in (0, 32, 64, 128):
        for sym in (False, True):
            run("d", bits, group, sym, False, False)
# Act-order and static groups.
for bits, group, sym in ((4, 32, True), (3, 64, False), (4, 0, False), (8, 128, True), (2, 32, False)):
    for act, static in ((True, False), (False, True), (True, True)):
        if static and not group:
            continue
        run("d", bits, group, sym, act, static)
# Problem a (64x256, input 17 dead, two blocks): act-order with groups, blocksize 64.
run("a", 4, 32, True, True, False, blocksize=64)
run("a", 3, 64, False, True, True)
