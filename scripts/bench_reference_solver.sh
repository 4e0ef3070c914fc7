#!/usr/bin/env bash
# Side-by-side timing of one layer's SparseGPT: SparseLab's bench_solve_layer against the
# published reference (IST-DASLab/sparsegpt, class SparseGPT: add_batch + fasterprune), on the
# same shapes (random square layers, --tokens calibration tokens in sequences of --seqlen).
#
# The reference is third-party code and is not part of this project: point --sparsegpt at a
# checkout of https://github.com/IST-DASLab/sparsegpt (a folder holding sparsegpt.py and
# quant.py) or at a bare clone (its files are read with `git show HEAD:...`). It runs with the
# system python3 + torch (CPU); two shims only: a stand-in `transformers` module (sparsegpt.py
# imports it for an isinstance check against Conv1D) and a no-op torch.cuda.synchronize (it
# calls it unconditionally). Its own prints go to stderr.
#
# Output: JSON lines on stdout, {"impl": "sparselab" | "reference", "size": n, "hessian_s": …,
# "solve_s": …, "total_s": …, …}, one per size and implementation.
#
# usage: scripts/bench_reference_solver.sh --sparsegpt DIR [--bench BUILD/bench/bench_solve_layer]
#            [--threads N] [--sizes 1024,2048,4096] [--tokens 8192] [--seqlen 2048]
#            [--sparsity 0.5] [--only sparselab|reference]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sparsegpt=""
bench=""
threads="$(nproc)"
sizes="1024,2048,4096"
tokens=8192
seqlen=2048
sparsity=0.5
only=""
python="${PYTHON:-/usr/bin/python3}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --sparsegpt) sparsegpt="$2"; shift 2 ;;
        --bench) bench="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --tokens) tokens="$2"; shift 2 ;;
        --seqlen) seqlen="$2"; shift 2 ;;
        --sparsity) sparsity="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "bench_reference_solver.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

# Both sides get the same thread counts: LibTorch/OpenMP and OpenBLAS's own pool.
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"

if [[ "$only" != "reference" ]]; then
    if [[ -z "$bench" ]]; then
        for candidate in "$here"/../build*/bench/bench_solve_layer; do
            [[ -x "$candidate" ]] && bench="$candidate" && break
        done
    fi
    if [[ -z "$bench" || ! -x "$bench" ]]; then
        echo "bench_reference_solver.sh: bench_solve_layer not found; build it with 'ninja -C BUILD bench' or pass --bench" >&2
        exit 2
    fi
    "$bench" --sizes "$sizes" --tokens "$tokens" --seqlen "$seqlen" --threads "$threads" --sparsity "$sparsity" \
        | sed 's/^{/{"impl": "sparselab", /'
fi

[[ "$only" == "sparselab" ]] && exit 0
if [[ -z "$sparsegpt" ]]; then
    echo "bench_reference_solver.sh: --sparsegpt DIR (a checkout or bare clone of IST-DASLab/sparsegpt) is required" >&2
    exit 2
fi
"$python" - "$here/../bench" "$(cd "$sparsegpt" && pwd)" "$threads" "$sizes" "$tokens" "$seqlen" "$sparsity" <<'PY'
import contextlib, json, sys, time
import torch

bench, source, threads, sizes, tokens, seqlen, sparsity = sys.argv[1:]
threads, tokens, seqlen, sparsity = int(threads), int(tokens), int(seqlen), float(sparsity)
sys.path.insert(0, bench)
from sparsegpt_reference import import_sparsegpt  # noqa: E402
SparseGPT = import_sparsegpt(source)

torch.set_num_threads(threads)
for n in (int(s) for s in sizes.split(",")):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(tokens, n, generator=g)
    layer = torch.nn.Linear(n, n, bias=False)
    layer.weight.data = torch.randn(n, n, generator=g) * 0.02
    gpt = SparseGPT(layer)
    with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
        t0 = time.perf_counter()
        for s in range(0, tokens, seqlen):  # one calibration sequence per call, as opt.py's hooks
            gpt.add_batch(x[s:s + seqlen].unsqueeze(0), None)
        hessian = time.perf_counter() - t0
        t0 = time.perf_counter()
        gpt.fasterprune(sparsity, blocksize=128, percdamp=0.01)
        solve = time.perf_counter() - t0
    sp = (layer.weight.data == 0).float().mean().item()
    print(json.dumps({"impl": "reference", "size": n, "tokens": tokens, "threads": torch.get_num_threads(),
                      "hessian_s": round(hessian, 4), "solve_s": round(solve, 4),
                      "total_s": round(hessian + solve, 4), "sparsity": round(sp, 6)}), flush=True)
PY
