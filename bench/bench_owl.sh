#!/usr/bin/env bash
# OWL against uniform sparsity (docs/allocation.md): for each model and average sparsity S,
# the evaluation perplexity (all windows of tinystories_eval.txt at 256 tokens — held-out
# text, never the calibration text) of SparseGPT with uniform S, SparseGPT with OWL's
# per-block sparsities (λ = 0.08, M = 5; average exactly S), and uniform Wanda for reference.
# Calibration: 128 windows of 256 tokens from tinystories_calib.txt (seed 0).
#
#   bash bench/bench_owl.sh [BUILD_DIR] [OUT.json]
#
# One sparselab-cli process per row, --threads 1 (faster than 2 on these tiny models, docs/recovery.md). Needs ../shared/data for TinyStories-656K
# (skipped, and said so, when absent). About 10 minutes on the project's 2-core machine.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
out="${2:-$here/bench/results/owl-$(date -u +%Y-%m-%d).json}"
cli="$build/app/sparselab-cli"
[ -x "$cli" ] || { echo "error: $cli not built" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
calib="$here/resources/text/tinystories_calib.txt"
eval_text="$here/resources/text/tinystories_eval.txt"
models=("stories260K|$here/resources/models/stories260K-hf")
shared="$here/../shared/data/models/tinystories-656k-hf"
if [ -d "$shared" ]; then models+=("TinyStories-656K|$shared"); else echo "note: $shared absent; TinyStories-656K skipped"; fi
common=(--calib "$calib" --nsamples 128 --seqlen 256 --threads 1 --quiet --json)

echo "uptime before: $(uptime)"
: > "$out.tmp"
for entry in "${models[@]}"; do
    name="${entry%%|*}"; model="${entry#*|}"
    for s in 0.5 0.6 0.7; do
        "$cli" allocate "$model" --method owl --budget-sparsity "$s" --eval "$eval_text" --out "$work/owl.json" \
            "${common[@]}" > "$work/owl.out"
        "$cli" prune "$model" --method wanda --sparsity "$s" --eval "$eval_text" --out "$work/wanda" \
            "${common[@]}" > "$work/wanda.out"
        rm -rf "$work/wanda"
        python3 - "$name" "$s" "$work/owl.out" "$work/wanda.out" >> "$out.tmp" <<'PY'
import json, sys
name, s, owl, wanda = sys.argv[1:]
o = json.loads(open(owl).read().strip().splitlines()[-1])
w = json.loads(open(wanda).read().strip().splitlines()[-1])
m = o["measured"]
print(json.dumps({"model": name, "sparsity": float(s), "dense": m["dense_perplexity"],
                  "uniform_sparsegpt": m["uniform"]["perplexity"], "uniform_linear_sparsity": m["uniform"]["linear_sparsity"],
                  "owl_sparsegpt": m["owl"]["perplexity"], "owl_linear_sparsity": m["owl"]["linear_sparsity"],
                  "uniform_wanda": w["perplexity_after"], "owl_blocks": o["blocks"]}))
PY
    done
done
mv "$out.tmp" "$out"
echo "uptime after: $(uptime)"
echo "wrote $out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | S | dense | uniform SparseGPT | OWL + SparseGPT | OWL vs uniform | uniform Wanda | OWL block sparsities |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    change = 100 * (r["owl_sparsegpt"] / r["uniform_sparsegpt"] - 1)
    blocks = " ".join(f"{b['sparsity']:.3f}" for b in r["owl_blocks"])
    print(f"| {r['model']} | {r['sparsity']:.0%} | {r['dense']:.4f} | {r['uniform_sparsegpt']:.2f} "
          f"({r['uniform_linear_sparsity']:.4f}) | {r['owl_sparsegpt']:.2f} ({r['owl_linear_sparsity']:.4f}) "
          f"| {change:+.1f} % | {r['uniform_wanda']:.2f} | {blocks} |")
PY
