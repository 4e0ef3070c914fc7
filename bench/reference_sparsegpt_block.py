#!/usr/bin/env python3
"""The published SparseGPT solver (IST-DASLab/sparsegpt, class SparseGPT in sparsegpt.py, run
unchanged) on the same synthetic OPT-175B-shaped block as bench_gpu_block, for a side-by-side
comparison in one run. Same data recipe and seeds (W ~ N(0, 0.02^2) with seed l+1, inputs
N(0, 1) with seed 1000*(g+1)+s per chunk of windows, on the device), same settings
(unstructured 50 %, blocksize 128, percdamp 0.01, TF32 off as the reference sets it).
Timed with torch.cuda.synchronize(): add_batch per distinct input (layers sharing an input are
charged once each, as in the reference's pipeline, which keeps one SparseGPT per layer) and
fasterprune per layer. Solve FLOPs counted exactly as in bench_gpu_block. One JSON line.

usage: reference_sparsegpt_block.py --reference DIR [--hidden 12288] [--mlp 49152]
       [--samples 128] [--seqlen 2048] [--chunk 8] [--blocks 96] [--fp32-peak-tflops P]
DIR holds the reference's sparsegpt.py and quant.py (scripts/prepare_gpu_bundle.sh puts them
in gpu-bundle/reference). `transformers` is only used there for an isinstance check on
Conv1D; when it is not installed an empty stand-in module is registered.
"""
import argparse
import contextlib
import io
import json
import sys
import time
import types


def solve_flops(rows, cols, bs):
    flops = 2.0 / 3.0 * cols ** 3
    for i1 in range(0, cols, bs):
        count = min(bs, cols - i1)
        rest = cols - i1 - count
        flops += 2.0 * rows * count * rest + rows * count * count
    return flops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--hidden", type=int, default=12288)
    ap.add_argument("--mlp", type=int, default=49152)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=96)
    ap.add_argument("--fp32-peak-tflops", type=float, default=0.0)
    args = ap.parse_args()

    try:
        import transformers  # noqa: F401
    except ImportError:
        stub = types.ModuleType("transformers")

        class Conv1D:  # never instantiated: the reference only tests isinstance
            pass

        stub.Conv1D = Conv1D
        sys.modules["transformers"] = stub
    sys.path.insert(0, args.reference)
    import torch
    import torch.nn as nn
    from sparsegpt import SparseGPT  # the published class, unchanged

    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    d, I = args.hidden, args.mlp
    input_cols = [d, d, d, I]
    layers = [("q_proj", d, d, 0), ("k_proj", d, d, 0), ("v_proj", d, d, 0),
              ("out_proj", d, d, 1), ("fc1", I, d, 2), ("fc2", d, I, 3)]

    def timed(fn):
        torch.cuda.synchronize()
        t = time.time()
        result = fn()
        torch.cuda.synchronize()
        return time.time() - t, result

    hessian_seconds = [0.0] * 4
    per_layer = []
    solve_seconds = solve_total = hessian_block = 0.0
    current_group, current_h, current_n = -1, None, 0
    for l, (name, rows, cols, g) in enumerate(layers):
        torch.manual_seed(l + 1)
        w = torch.randn(rows, cols, device=dev) * 0.02
        layer = nn.Linear(cols, rows, bias=False, device=dev)
        layer.weight.data = w
        gpt = SparseGPT(layer)
        if g != current_group:
            current_h = None
            torch.cuda.empty_cache()
            seconds = 0.0
            for s in range(0, args.samples, args.chunk):
                torch.manual_seed(1000 * (g + 1) + s)
                x = torch.randn(min(args.chunk, args.samples - s), args.seqlen, input_cols[g], device=dev)
                dt, _ = timed(lambda: gpt.add_batch(x, None))
                seconds += dt
                del x
            hessian_seconds[g] = seconds
            current_group, current_h, current_n = g, gpt.H.clone(), gpt.nsamples
        else:
            gpt.H = current_h.clone()
            gpt.nsamples = current_n
        hessian_block += hessian_seconds[g]
        if g != (layers[l + 1][3] if l + 1 < len(layers) else -1):
            current_h = None  # last layer of this input: let the solve use the memory
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):  # fasterprune prints its own time and error
            dt, _ = timed(lambda: gpt.fasterprune(0.5, prunen=0, prunem=0, blocksize=128, percdamp=0.01))
        flops = solve_flops(rows, cols, 128)
        solve_seconds += dt
        solve_total += flops
        sparsity = (layer.weight.data == 0).float().mean().item()
        per_layer.append({"name": name, "rows": rows, "cols": cols, "solve_seconds": dt,
                          "solve_tflops": flops / dt / 1e12, "sparsity": sparsity})
        gpt.free()
        del gpt, layer, w
        torch.cuda.empty_cache()

    out = {"bench": "reference_sparsegpt_block", "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(0),
           "shape": {"hidden": d, "mlp": I, "samples": args.samples, "seqlen": args.seqlen},
           "hessian_seconds_by_input": hessian_seconds, "hessian_seconds_block": hessian_block,
           "solve_seconds_block": solve_seconds, "solve_tflop": solve_total / 1e12,
           "solve_tflops": solve_total / solve_seconds / 1e12,
           "projection_solve_only_hours": solve_seconds * args.blocks / 3600.0, "layers": per_layer}
    if args.fp32_peak_tflops > 0:
        out["fp32_peak_tflops"] = args.fp32_peak_tflops
        out["solve_fraction_of_peak"] = out["solve_tflops"] / args.fp32_peak_tflops
    print(json.dumps(out))


if __name__ == "__main__":
    main()
