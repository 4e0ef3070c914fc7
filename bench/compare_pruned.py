#!/usr/bin/env python3
"""Two pruned outputs of SparseLab compared: which entries are zero in one and not the other,
and the largest weight difference. For a change to the engine, the build before it against the
build after it, on the same input.

  bench/compare_pruned.py OLD NEW
OLD, NEW: model.safetensors files of two `sparselab-cli prune --out` runs (every 2-D tensor is
compared), or two `sparselab-cli solve-layer --out` files (their "weight"; their "mask" too).
Prints one JSON line. Needs numpy (Debian's python3-numpy)."""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "BOOL": np.bool_}


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    base = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] not in DTYPES:
            continue
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[base + start:base + end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return tensors


def main():
    old, new = read(sys.argv[1]), read(sys.argv[2])
    names = sorted(n for n in old if n in new and old[n].ndim == 2 and old[n].dtype != np.bool_ and old[n].dtype != np.uint8)
    entries = differing = 0
    largest = 0.0
    for name in names:
        a, b = old[name].astype(np.float64), new[name].astype(np.float64)
        entries += a.size
        differing += int(((a == 0) != (b == 0)).sum())
        largest = max(largest, float(np.abs(a - b).max()))
    print(json.dumps({"old": sys.argv[1], "new": sys.argv[2], "tensors": len(names), "entries": entries,
                      "zero_pattern_differs": differing, "max_abs_weight_difference": largest}))


if __name__ == "__main__":
    main()
