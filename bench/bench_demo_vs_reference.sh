#!/usr/bin/env bash
# The demo prune, SparseLab against the published SparseGPT pipeline, side by side in one run.
#
# SparseLab: `sparselab-cli prune` of the bundled demo model (stories260K, 128 × 256 calibration
# windows, 50 %), timed from outside with /usr/bin/time: start-up, reading the model and text,
# tokenizing, the forward passes, Hessians, solves and writing the pruned model.
# Reference: IST-DASLab/sparsegpt's llama_sequential with its SparseGPT class, unchanged, on a
# plain-torch stand-in of the model (bench/reference_demo_pipeline.py), timed in-process from
# reading the weights to the pruned weights: no start-up, no tokenizing, no writing. At torch's
# default threads (one on Debian's python3-torch here) and at 2 threads, each with OpenBLAS's
# own kernels and with the kernels SparseLab chose (OPENBLAS_CORETYPE), as
# bench_solve_layer_vs_reference.sh does.
#
# Both draw the same windows (same tokenizer, Python's random with the same seed); the first run
# checks that: the reference's dense and pruned perplexities must equal SparseLab's, and the
# pruned projections are compared (mask agreement, largest weight difference).
# Interleaved runs, medians. One JSON line per measurement on stdout, then the summary.
#
# usage: bench/bench_demo_vs_reference.sh --sparsegpt DIR [--cli build/app/sparselab-cli] [--runs 3]
# DIR: a checkout of https://github.com/IST-DASLab/sparsegpt, or a bare clone.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cli="$root/build/app/sparselab-cli"
sparsegpt=""
runs=3
python=/usr/bin/python3 # Debian's, with python3-torch and python3-sentencepiece
while (($#)); do
    case "$1" in
        --sparsegpt) sparsegpt="$2"; shift 2 ;;
        --cli) cli="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "bench_demo_vs_reference.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ -n "$sparsegpt" ]] || { echo "bench_demo_vs_reference.sh: --sparsegpt DIR is required" >&2; exit 2; }
sparsegpt="$(cd "$sparsegpt" && pwd)"
model="$root/resources/models/stories260K-hf"
calib="$root/resources/text/tinystories_calib.txt"
eval_text="$root/resources/text/tinystories_eval.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

coretype="$("$cli" version | sed -n 's/^BLAS: OpenBLAS \([A-Za-z0-9]*\) kernels (OpenBLAS had picked.*/\1/p')"
echo "SparseLab's BLAS: $("$cli" version | sed -n 's/^BLAS: //p')" >&2

# The check: same windows, same result.
"$cli" prune "$model" --calib "$calib" --nsamples 128 --seqlen 256 --sparsity 0.5 --eval "$eval_text" \
    --out "$work/check" --json > "$work/check.json"
"$python" "$here/reference_demo_pipeline.py" --reference "$sparsegpt" --model "$model" --calib "$calib" \
    --eval "$eval_text" --out "$work/reference.safetensors" > "$work/reference-check.json" 2>/dev/null
"$python" - "$work/check.json" "$work/reference-check.json" "$work/check/model.safetensors" "$work/reference.safetensors" \
    "$here" <<'PY' >&2
import json, sys
sys.path.insert(0, sys.argv[5])
from sparsegpt_reference import read_safetensors
ours, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
a, b = read_safetensors(sys.argv[3]), read_safetensors(sys.argv[4])
agree = [float(((a[k] == 0) == (b[k] == 0)).mean()) for k in b]
diff = max(float(abs(a[k] - b[k]).max()) for k in b)
print(json.dumps({"check": "same windows, same prune", "sparselab_ppl": [ours["perplexity_before"], ours["perplexity_after"]],
                  "reference_ppl": [ref["dense_ppl"], ref["pruned_ppl"]], "tensors": len(b),
                  "mask_agreement_min": round(min(agree), 6), "max_abs_weight_diff": diff}))
PY

echo "uptime before: $(uptime)" >&2
results="$work/results.jsonl"
for ((run = 1; run <= runs; ++run)); do
    /usr/bin/time -o "$work/time.txt" -f '%e %U %S %R %M' \
        "$cli" prune "$model" --calib "$calib" --nsamples 128 --seqlen 256 --sparsity 0.5 \
        --out "$work/out-$run" --json > /dev/null
    read -r wall user sys minor rss < "$work/time.txt"
    echo "{\"run\": $run, \"impl\": \"sparselab\", \"wall_s\": $wall, \"user_s\": $user, \"system_s\": $sys, \"minor_faults\": $minor, \"max_rss_mb\": $((rss / 1024))}" \
        | tee -a "$results"
    rm -rf "$work/out-$run"
    for threads in 0 2; do
        for core in default $coretype; do
            if [[ $core == default ]]; then blas=(env); else blas=(env "OPENBLAS_CORETYPE=$core"); fi
            "${blas[@]}" "$python" "$here/reference_demo_pipeline.py" --reference "$sparsegpt" --model "$model" \
                --calib "$calib" --eval "$eval_text" --threads "$threads" --skip-eval 2>/dev/null \
                | sed "s/^{/{\"run\": $run, /" | tee -a "$results"
        done
    done
done
echo "uptime after: $(uptime)" >&2

"$python" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ours = statistics.median(r["wall_s"] for r in rows if r["impl"] == "sparselab")
summary = {"sparselab_wall_s": ours}
for threads, core in sorted({(r["threads"], r["coretype"]) for r in rows if r["impl"] == "reference"}):
    ref = statistics.median(r["prune_s"] for r in rows if r["impl"] == "reference" and r["threads"] == threads
                            and r["coretype"] == core)
    key = f"{threads}t" if core == "default" else f"{threads}t_{core}"
    summary[f"reference_{key}_prune_s"] = ref
    summary[f"speedup_vs_reference_{key}"] = round(ref / ours, 2)
print(json.dumps({"summary": summary, "runs": max(r["run"] for r in rows)}))
PY
