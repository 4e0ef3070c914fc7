#!/usr/bin/env bash
# One thread or all of them? Times the same work with --threads 1 and --threads N (default 2,
# this machine's cores), interleaved, REPEAT times each, and prints the medians and the ratio
# 1-thread / N-thread (above 1: the extra threads help):
#   - the whole prune of a model (SparseGPT 50 %, 128 × 256 calibration; the JSON's "seconds":
#     calibration forward passes, Hessians, solves — no loading, no perplexity), on the demo
#     (stories260K, hidden 64), TinyStories-656K (hidden 128, from ../shared when present) and
#     synthetic Llama-shaped models of hidden 256, 512 and 1024 (4 blocks, MLP 2.7× hidden,
#     written by bench_synthetic_checkpoint; 32 × 256 calibration for the two largest);
#   - one layer's Hessian + solve (bench_solve_layer) at 256² … 2048², 8192 tokens.
# The numbers decide the engine's default thread count (core/util/engine_threads.h).
#
#   bash bench/bench_threads.sh [BUILD_DIR] [N=2] [REPEAT=3]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"; n="${2:-2}"; repeat="${3:-3}"
cli="$build/app/sparselab-cli"; solve="$build/bench/bench_solve_layer"; synth="$build/bench/bench_synthetic_checkpoint"
for tool in "$cli" "$solve" "$synth"; do [ -x "$tool" ] || { echo "error: $tool not built" >&2; exit 2; }; done
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
calib="$here/resources/text/tinystories_calib.txt"
models=("stories260K (hidden 64)|$here/resources/models/stories260K-hf|128")
shared="$here/../shared/data/models/tinystories-656k-hf"
[ -d "$shared" ] && models+=("TinyStories-656K (hidden 128)|$shared|128")
for hidden in 256 512 1024; do
    "$synth" "$work/synthetic-$hidden" --blocks 4 --hidden "$hidden" --intermediate $((hidden * 11 / 4)) \
        --heads $((hidden / 64)) --vocab 512 > /dev/null
    nsamples=128; [ "$hidden" -ge 512 ] && nsamples=32
    models+=("synthetic (hidden $hidden, 4 blocks)|$work/synthetic-$hidden|$nsamples")
done
echo "uptime before: $(uptime)"
: > "$work/rows"
for i in $(seq "$repeat"); do
    for entry in "${models[@]}"; do
        IFS='|' read -r name model nsamples <<< "$entry"
        for threads in 1 "$n"; do
            rm -rf "$work/out"
            seconds=$("$cli" prune "$model" --calib "$calib" --nsamples "$nsamples" --seqlen 256 --sparsity 0.5 \
                --threads "$threads" --out "$work/out" --json --quiet | tail -1 \
                | python3 -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
            printf '%s\t%s\t%s\n' "prune $name, $nsamples × 256" "$threads" "$seconds" >> "$work/rows"
        done
    done
    for size in 256 512 1024 2048; do
        for threads in 1 "$n"; do
            seconds=$("$solve" --sizes "$size" --tokens 8192 --threads "$threads" | tail -1 \
                | python3 -c "import json,sys; print(json.load(sys.stdin)['total_s'])")
            printf '%s\t%s\t%s\n' "layer ${size}², 8192 tokens" "$threads" "$seconds" >> "$work/rows"
        done
    done
done
echo "uptime after: $(uptime)"
python3 - "$work/rows" "$n" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
n = sys.argv[2]
order = []
for r in rows:
    if r[0] not in order:
        order.append(r[0])
print(f"| work | 1 thread (median s) | {n} threads (median s) | 1 / {n} | runs |")
print("|---|---|---|---|---|")
for name in order:
    one = [float(r[2]) for r in rows if r[0] == name and r[1] == "1"]
    many = [float(r[2]) for r in rows if r[0] == name and r[1] == n]
    a, b = statistics.median(one), statistics.median(many)
    print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.2f} | {len(one)} |")
PY
