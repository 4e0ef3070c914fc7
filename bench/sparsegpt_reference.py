"""The published SparseGPT code (IST-DASLab/sparsegpt), imported unchanged for the side-by-side
benchmarks (bench/bench_solve_layer_vs_reference.sh, bench/bench_demo_vs_reference.sh,
scripts/bench_reference_solver.sh). It is third-party code and not part of this project.

    from sparsegpt_reference import import_sparsegpt, import_llama, read_safetensors
    SparseGPT = import_sparsegpt(DIR)   # DIR: a checkout holding sparsegpt.py and quant.py, or a
                                        # bare clone (read with `git show HEAD:...`)
    llama = import_llama(DIR)           # llama.py (llama_sequential), with its imports

Shims only, for a CPU machine without `transformers`: a stand-in `transformers` module
(sparsegpt.py imports it for an isinstance check against Conv1D) and no-op torch.cuda.synchronize
and empty_cache (fasterprune and llama_sequential call them unconditionally).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch


def _reference_folder(source, names):
    """A folder holding the reference's files `names`: `source` itself when it is a checkout,
    else a temporary folder they are copied into from the bare clone `source`."""
    if all(os.path.isfile(os.path.join(source, name)) for name in names):
        return source
    folder = tempfile.mkdtemp(prefix="sparsegpt-reference-")
    for name in names:
        text = subprocess.run(["git", "--git-dir", source, "show", "HEAD:" + name], check=True,
                              capture_output=True).stdout
        with open(os.path.join(folder, name), "wb") as f:
            f.write(text)
    return folder


def _install_shims(folder):
    class Conv1D(torch.nn.Module):  # stand-in: only used for isinstance checks
        pass

    try:
        import transformers  # noqa: F401
    except ImportError:
        sys.modules["transformers"] = types.SimpleNamespace(Conv1D=Conv1D)
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None
        torch.cuda.empty_cache = lambda *args, **kwargs: None
    sys.path.insert(0, folder)


def import_sparsegpt(source):
    _install_shims(_reference_folder(source, ("sparsegpt.py", "quant.py")))
    from sparsegpt import SparseGPT  # noqa: E402
    return SparseGPT


def import_llama(source):
    _install_shims(_reference_folder(source, ("llama.py", "sparsegpt.py", "quant.py", "modelutils.py")))
    import llama  # noqa: E402
    return llama


def read_safetensors(path):
    """Every tensor of a safetensors file as a numpy array (F32 or U8)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        base = 8 + size
        out = {}
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            start, end = meta["data_offsets"]
            f.seek(base + start)
            dtype = {"F32": np.float32, "U8": np.uint8}[meta["dtype"]]
            out[name] = np.frombuffer(f.read(end - start), dtype=dtype).reshape(meta["shape"])
        return out
