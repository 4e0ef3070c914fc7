"""The published SparseGPT solver (IST-DASLab/sparsegpt, class SparseGPT in sparsegpt.py), imported
unchanged for the side-by-side benchmarks (bench/bench_solve_layer_vs_reference.sh,
scripts/bench_reference_solver.sh). It is third-party code and not part of this project.

    from sparsegpt_reference import import_sparsegpt
    SparseGPT = import_sparsegpt(DIR)   # DIR: a checkout holding sparsegpt.py and quant.py, or a
                                        # bare clone (read with `git show HEAD:...`)

Two shims only, for a CPU machine without `transformers`: a stand-in `transformers` module
(sparsegpt.py imports it for an isinstance check against Conv1D) and a no-op
torch.cuda.synchronize (fasterprune calls it unconditionally).
"""
import os
import subprocess
import sys
import tempfile
import types

import torch


def import_sparsegpt(source):
    if os.path.isfile(os.path.join(source, "sparsegpt.py")):
        folder = source
    else:
        folder = tempfile.mkdtemp(prefix="sparsegpt-reference-")
        for name in ("sparsegpt.py", "quant.py"):
            text = subprocess.run(["git", "--git-dir", source, "show", "HEAD:" + name], check=True,
                                  capture_output=True).stdout
            with open(os.path.join(folder, name), "wb") as f:
                f.write(text)

    class Conv1D(torch.nn.Module):  # stand-in: only used for isinstance checks
        pass

    try:
        import transformers  # noqa: F401
    except ImportError:
        sys.modules["transformers"] = types.SimpleNamespace(Conv1D=Conv1D)
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None
    sys.path.insert(0, folder)
    from sparsegpt import SparseGPT  # noqa: E402
    return SparseGPT
