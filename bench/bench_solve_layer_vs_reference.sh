#!/usr/bin/env bash
# One layer's SparseGPT, whole process against the published reference, side by side in one run.
#
# SparseLab: `sparselab-cli solve-layer` as a user runs it: start-up, reading the problem file,
# the Hessian from the inputs, the solve, the statistics and writing the result, timed from
# outside with /usr/bin/time (wall, user and system CPU, page faults, peak RSS), at its default
# threads (every core for a layer this size).
# Reference: IST-DASLab/sparsegpt's class SparseGPT (sparsegpt.py, run unchanged with Debian's
# python3-torch), timed in-process and without start-up or reading: add_batch once per
# calibration sequence, as its opt.py/llama.py hooks do, then fasterprune(sparsity,
# blocksize=128, percdamp=0.01). Once at torch's default threads (one here) and once with
# torch.set_num_threads(2). Where SparseLab replaced OpenBLAS's kernels for this CPU
# (`sparselab-cli version` says so; util/cpu_kernels.h), the reference also runs at both
# thread counts with OPENBLAS_CORETYPE set to the same kernels ("coretype" in its rows), so the
# comparison is also made at equal arithmetic.
#
# Both read the same problem file: weight [n, n] ~ N(0, 0.02²), inputs [tokens/seqlen, seqlen,
# n] ~ N(0, 1) (F32, seed n), so both form H = (2/N)·Σ XᵀX over the same N sequences. The masks
# are compared (the share of mask entries on which the two agree).
# Order: per run, per size, SparseLab then the reference at 1 thread then at 2 threads
# (interleaved); medians over --runs. Output: one JSON line per measurement on stdout, then a
# summary JSON (medians and ratios) as the last line; `uptime` before and after on stderr.
#
# usage: bench/bench_solve_layer_vs_reference.sh --sparsegpt DIR [--cli build/app/sparselab-cli]
#            [--sizes 2048,4096] [--tokens 8192] [--seqlen 2048] [--runs 3] [--sparsity 0.5]
# DIR: a checkout of https://github.com/IST-DASLab/sparsegpt, or a bare clone (read with
# `git show HEAD:…`). It is third-party code and not part of this project.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sparsegpt=""
cli="$here/../build/app/sparselab-cli"
sizes="2048,4096"
tokens=8192
seqlen=2048
runs=3
sparsity=0.5
python="${PYTHON:-/usr/bin/python3}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sparsegpt) sparsegpt="$2"; shift 2 ;;
        --cli) cli="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        --tokens) tokens="$2"; shift 2 ;;
        --seqlen) seqlen="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --sparsity) sparsity="$2"; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "bench_solve_layer_vs_reference.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -n "$sparsegpt" ]] || { echo "bench_solve_layer_vs_reference.sh: --sparsegpt DIR is required" >&2; exit 2; }
[[ -x "$cli" ]] || { echo "bench_solve_layer_vs_reference.sh: $cli not built (ninja -C build sparselab-cli)" >&2; exit 2; }
(( tokens % seqlen == 0 )) || { echo "bench_solve_layer_vs_reference.sh: --tokens must be a multiple of --seqlen" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sparsegpt="$(cd "$sparsegpt" && pwd)"

# Problem files (bench/solve_layer_problem.py: the same bytes as the other benchmarks' for a size).
IFS=, read -ra problem_sizes <<< "$sizes"
for n in "${problem_sizes[@]}"; do
    "$python" "$here/solve_layer_problem.py" "$work/problem-$n.safetensors" "$n" "$tokens" "$seqlen"
done

cat > "$work/reference.py" <<'PY'
import contextlib, json, os, struct, sys, time
import numpy as np
import torch
work, n, threads, sparsity, here, source = sys.argv[1:7]
n, threads, sparsity = int(n), int(threads), float(sparsity)
sys.path.insert(0, here)
from sparsegpt_reference import import_sparsegpt, read_safetensors  # noqa: E402
SparseGPT = import_sparsegpt(source)
if threads > 0:
    torch.set_num_threads(threads)

problem = read_safetensors(f"{work}/problem-{n}.safetensors")
layer = torch.nn.Linear(n, n, bias=False)
layer.weight.data = torch.from_numpy(problem["weight"].copy())
inputs = torch.from_numpy(problem["inputs"].copy())
gpt = SparseGPT(layer)
with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):
    t0 = time.perf_counter()
    for s in range(inputs.shape[0]):
        gpt.add_batch(inputs[s].unsqueeze(0), None)
    hessian = time.perf_counter() - t0
    t0 = time.perf_counter()
    gpt.fasterprune(sparsity, blocksize=128, percdamp=0.01)
    solve = time.perf_counter() - t0
mask = (layer.weight.data == 0).numpy()
ours = read_safetensors(f"{work}/out-{n}.safetensors")["mask"].astype(bool)
print(json.dumps({"impl": "reference", "size": n, "threads": torch.get_num_threads(),
                  "coretype": os.environ.get("OPENBLAS_CORETYPE") or "default",
                  "hessian_s": round(hessian, 4), "solve_s": round(solve, 4), "total_s": round(hessian + solve, 4),
                  "sparsity": round(float(mask.mean()), 6),
                  "mask_agreement": round(float((mask == ours).mean()), 6)}), flush=True)
PY

# The kernels SparseLab runs when it replaced OpenBLAS's choice ("" when it kept it).
coretype="$("$cli" version | sed -n 's/^BLAS: OpenBLAS \([A-Za-z0-9]*\) kernels (OpenBLAS had picked.*/\1/p')"
echo "SparseLab's BLAS: $("$cli" version | sed -n 's/^BLAS: //p')" >&2
echo "uptime before: $(uptime)" >&2
results="$work/results.jsonl"
IFS=, read -ra size_list <<< "$sizes"
for ((run = 1; run <= runs; ++run)); do
    for n in "${size_list[@]}"; do
        /usr/bin/time -o "$work/time.txt" -f '%e %U %S %R %F %M' \
            "$cli" solve-layer --problem "$work/problem-$n.safetensors" --out "$work/out-$n.safetensors" \
            --sparsity "$sparsity" --json --quiet > "$work/cli.json"
        read -r wall user sys minor major rss < "$work/time.txt"
        "$python" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(json.dumps({"impl": "sparselab", "size": int(sys.argv[2]), "run": int(sys.argv[3]), "wall_s": float(sys.argv[4]), "user_s": float(sys.argv[5]), "system_s": float(sys.argv[6]), "minor_faults": int(sys.argv[7]), "major_faults": int(sys.argv[8]), "max_rss_mb": round(int(sys.argv[9]) / 1024, 1), "solve_s": j["seconds"], "sparsity": j["sparsity"]}))' \
            "$work/cli.json" "$n" "$run" "$wall" "$user" "$sys" "$minor" "$major" "$rss" | tee -a "$results"
        for threads in 0 2; do
            for core in default $coretype; do
                # "default": the environment as given (OpenBLAS reads even an empty OPENBLAS_CORETYPE).
                if [[ $core == default ]]; then blas=(env); else blas=(env "OPENBLAS_CORETYPE=$core"); fi
                "${blas[@]}" "$python" "$work/reference.py" "$work" "$n" "$threads" "$sparsity" "$here" "$sparsegpt" \
                    2>/dev/null | sed "s/^{/{\"run\": $run, /" | tee -a "$results"
            done
        done
    done
done
echo "uptime after: $(uptime)" >&2

"$python" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
summary = {}
for n in sorted({r["size"] for r in rows}):
    ours = [r for r in rows if r["size"] == n and r["impl"] == "sparselab"]
    med = lambda rs, key: statistics.median(r[key] for r in rs)
    entry = {"sparselab_wall_s": med(ours, "wall_s"), "sparselab_user_s": med(ours, "user_s"),
             "sparselab_system_s": med(ours, "system_s"), "sparselab_minor_faults": med(ours, "minor_faults"),
             "sparselab_max_rss_mb": med(ours, "max_rss_mb")}
    kinds = sorted({(r["threads"], r.get("coretype", "default")) for r in rows if r["impl"] == "reference"})
    for threads, core in kinds:
        ref = [r for r in rows if r["size"] == n and r["impl"] == "reference" and r["threads"] == threads
               and r.get("coretype", "default") == core]
        key = f"{threads}t" if core == "default" else f"{threads}t_{core}"
        entry[f"reference_{key}_total_s"] = med(ref, "total_s")
        entry[f"reference_{key}_hessian_s"] = med(ref, "hessian_s")
        entry[f"reference_{key}_solve_s"] = med(ref, "solve_s")
        entry[f"speedup_vs_reference_{key}"] = round(med(ref, "total_s") / entry["sparselab_wall_s"], 2)
        entry["mask_agreement_min"] = min(r["mask_agreement"] for r in rows if r["size"] == n and r["impl"] == "reference")
    summary[str(n)] = entry
print(json.dumps({"summary": summary, "runs": max(r["run"] for r in rows)}))
PY
