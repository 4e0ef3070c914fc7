#!/usr/bin/env bash
# Recovery benchmark (docs/recovery.md): for each model and pruning method, the evaluation
# perplexity of the dense model, of the pruned model, and after recovery with each loss; the
# recovery's wall time; the nonzero linear weights before and after (they must be equal).
#
#   bash bench/bench_recovery.sh [BUILD_DIR] [OUT.json]
#
# Runs `sparselab-cli prune … --recover …` once per row (one process at a time, --threads 1:
# on these tiny models a second thread makes a recovery step slower, not faster — the 50 % KL
# row took 281 s of recovery with --threads 2 against about 110 s with one; the matrices are
# 64–128 wide and the threads mostly wait for each other). Writes one JSON object per row to OUT.json (default
# bench/results/recovery-<date>.json) and prints a Markdown table. Needs ../shared/data for
# the TinyStories-656K rows (skipped, and said so, when it is absent). About 25 minutes on
# the project's 2-core machine. Report `uptime` with the figures: the script prints it
# before and after.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
out="${2:-$here/bench/results/recovery-$(date -u +%Y-%m-%d).json}"
cli="$build/app/sparselab-cli"
[ -x "$cli" ] || { echo "error: $cli not built (cmake --build $build --target sparselab-cli)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

calib="$here/resources/text/tinystories_calib.txt"
eval_text="$here/resources/text/tinystories_eval.txt"
demo="$here/resources/models/stories260K-hf"
shared="$here/../shared/data/models/tinystories-656k-hf"

# Recovery settings (the CLI's defaults but for the steps): KL 600 steps over the whole
# model; block 120 steps per block. Batches of 8 of the 128 × 256 calibration windows,
# lr 2e-3 with cosine decay, 16 held-out windows of the calibration text.
kl_args=(--recover 600 --recover-loss kl)
block_args=(--recover 120 --recover-loss block)

echo "uptime before: $(uptime)"
: > "$out.tmp"
row() { # model-name model-dir method-label loss-label prune-args... -- recover-args...
    local name="$1" model="$2" method="$3" loss="$4"; shift 4
    local args=() rec=()
    while [ "$1" != "--" ]; do args+=("$1"); shift; done; shift
    rec=("$@")
    local dir="$work/out-$RANDOM"
    local started=$(date +%s.%N)
    "$cli" prune "$model" --calib "$calib" --eval "$eval_text" --seqlen 256 --nsamples 128 --threads 1 \
        --out "$dir" --json --quiet "${args[@]}" "${rec[@]}" > "$work/row.json"
    local ended=$(date +%s.%N)
    python3 - "$name" "$method" "$loss" "$work/row.json" "$started" "$ended" >> "$out.tmp" <<'EOF'
import json, sys
name, method, loss, path, t0, t1 = sys.argv[1:]
r = json.loads(open(path).read().strip().splitlines()[-1])
rec = r.get("recovery", {})
print(json.dumps({
    "model": name, "method": method, "loss": loss,
    "perplexity_dense": r["perplexity_before"],
    "perplexity_pruned": rec.get("perplexity_pruned", r["perplexity_after"]),
    "perplexity_recovered": r["perplexity_after"] if rec else None,
    "recovery_seconds": rec.get("seconds"), "steps_run": rec.get("steps_run"),
    "stopped_by": rec.get("stopped_by"), "best_step": rec.get("best_step"),
    "nonzero_before": rec.get("nonzero_before"), "nonzero_after": rec.get("nonzero_after"),
    "linear_sparsity": r["linear_sparsity"], "process_seconds": float(t1) - float(t0)}))
EOF
    rm -rf "$dir"
}

models=("stories260K|$demo")
if [ -d "$shared" ]; then models+=("TinyStories-656K|$shared"); else echo "note: $shared absent; TinyStories-656K rows skipped"; fi
for entry in "${models[@]}"; do
    name="${entry%%|*}"; model="${entry#*|}"
    methods=("sparsegpt 50%|--sparsity 0.5")
    if [ "$name" = "stories260K" ]; then
        methods+=("sparsegpt 70%|--sparsity 0.7" "sparsegpt 2:4|--nm 2:4" "magnitude 50%|--method magnitude --sparsity 0.5")
    fi
    for m in "${methods[@]}"; do
        label="${m%%|*}"; read -r -a pargs <<< "${m#*|}"
        row "$name" "$model" "$label" kl "${pargs[@]}" -- "${kl_args[@]}"
        row "$name" "$model" "$label" block "${pargs[@]}" -- "${block_args[@]}"
    done
done
mv "$out.tmp" "$out"
echo "uptime after: $(uptime)"
echo "wrote $out"
python3 - "$out" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | pruned by | loss | dense | pruned | recovered | gap closed | recovery s | nonzero before = after |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    d, p, a = r["perplexity_dense"], r["perplexity_pruned"], r["perplexity_recovered"]
    closed = (math.log(p) - math.log(a)) / (math.log(p) - math.log(d))
    same = "yes" if r["nonzero_before"] == r["nonzero_after"] else "NO"
    print(f"| {r['model']} | {r['method']} | {r['loss']} | {d:.4f} | {p:.2f} | {a:.2f} | {100*closed:.1f} % "
          f"| {r['recovery_seconds']:.0f} | {same} ({r['nonzero_after']}) |")
EOF
