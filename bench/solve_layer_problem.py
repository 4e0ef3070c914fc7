#!/usr/bin/env python3
"""`solve-layer` problem files for the benchmarks, written one way everywhere
(bench_solve_layer_vs_reference.sh, bench_solve_layer_process_ab.sh,
compare_builds_solve_layer.sh), so that the same size gives the same bytes in each.

    bench/solve_layer_problem.py OUT.safetensors N [TOKENS] [SEQLEN]
writes the random layer of size N: weight [N, N] ~ N(0, 0.02²) and inputs
[TOKENS / SEQLEN, SEQLEN, N] ~ N(0, 1), float32, numpy's default_rng seeded with N
(TOKENS 8192, SEQLEN 2048 by default). As a module: write_problem and random_layer.
Needs numpy (Debian's python3-numpy)."""
import json
import os
import struct
import sys

import numpy as np


def write_problem(path, weight, inputs):
    """A safetensors file with float32 `weight` then `inputs` (header padded with spaces to 8
    bytes), written to PATH.part and renamed, so an interrupted run leaves no partial file."""
    header = {"weight": {"dtype": "F32", "shape": list(weight.shape), "data_offsets": [0, weight.nbytes]},
              "inputs": {"dtype": "F32", "shape": list(inputs.shape),
                         "data_offsets": [weight.nbytes, weight.nbytes + inputs.nbytes]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(weight.tobytes())
        f.write(inputs.tobytes())
    os.replace(path + ".part", path)


def random_layer(n, tokens=8192, seqlen=2048):
    """(weight [n, n], inputs [tokens // seqlen, seqlen, n]), float32, seed n."""
    if tokens % seqlen:
        raise ValueError("tokens must be a multiple of seqlen")
    rng = np.random.default_rng(n)
    weight = (rng.standard_normal((n, n), dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    inputs = rng.standard_normal((tokens // seqlen, seqlen, n), dtype=np.float32)
    return weight, inputs


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4, 5):
        sys.exit(__doc__)
    n = int(sys.argv[2])
    tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 8192
    seqlen = int(sys.argv[4]) if len(sys.argv) > 4 else 2048
    write_problem(sys.argv[1], *random_layer(n, tokens, seqlen))
