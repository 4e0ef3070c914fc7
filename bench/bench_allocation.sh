#!/usr/bin/env bash
# Allocation at the same average sparsity (docs/allocation.md): for each model and average
# linear sparsity S, the evaluation perplexity of
#   - SparseGPT with uniform S,
#   - SparseGPT with OWL's per-block sparsities (λ = 0.08, M = 5),
#   - SparseGPT with the levels of the end-to-end search (allocation/search.h),
#   - Wanda with uniform S, for reference,
# every perplexity on all windows of tinystories_eval.txt at 256 tokens (held-out text, never
# the calibration text). Calibration: 128 windows of 256 tokens from tinystories_calib.txt
# (seed 0); the search's fitness uses the first 32 of them. Each model is made by the real
# sequential pipeline from its recipe (`allocate --eval` prunes a fresh copy per recipe).
# Then bytes budgets, sparsity and bits searched together, against the best uniform level that
# fits and the DP allocator (see below). Also the search's cost: database and search seconds
# per run, and the database alone at 7, 13 and 25 levels on stories260K (how it grows).
#
#   [PART=all|sparsity|bytes] bash bench/bench_allocation.sh [BUILD_DIR] [OUT.json] [GENERATIONS=150]
#
# One sparselab-cli process per row, --threads 1 (faster than 2 on these tiny models,
# docs/recovery.md). Needs ../shared/data for TinyStories-656K (skipped, and said so, when
# absent). About an hour on the project's 2-core machine.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
out="${2:-$here/bench/results/allocation-$(date -u +%Y-%m-%d).json}"
generations="${3:-150}"
part="${PART:-all}"   # all, sparsity or bytes
cli="$build/app/sparselab-cli"
[ -x "$cli" ] || { echo "error: $cli not built" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
calib="$here/resources/text/tinystories_calib.txt"
eval_text="$here/resources/text/tinystories_eval.txt"
demo="$here/resources/models/stories260K-hf"
models=("stories260K|$demo")
shared="$here/../shared/data/models/tinystories-656k-hf"
if [ -d "$shared" ]; then models+=("TinyStories-656K|$shared"); else echo "note: $shared absent; TinyStories-656K skipped"; fi
common=(--calib "$calib" --nsamples 128 --seqlen 256 --threads 1 --quiet --json)

echo "uptime before: $(uptime)"
: > "$out.tmp"
for entry in "${models[@]}"; do
    name="${entry%%|*}"; model="${entry#*|}"
    for s in 0.5 0.6 0.7; do
        [ "$part" = bytes ] && continue
        start=$(date +%s.%N)
        "$cli" allocate "$model" --method search --budget-sparsity "$s" --generations "$generations" \
            --eval "$eval_text" --out "$work/search.json" "${common[@]}" > "$work/search.out"
        wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
        "$cli" prune "$model" --method wanda --sparsity "$s" --eval "$eval_text" --out "$work/wanda" \
            "${common[@]}" > "$work/wanda.out"
        rm -rf "$work/wanda"
        python3 - "$name" "$s" "$wall" "$work/search.out" "$work/wanda.out" >> "$out.tmp" <<'PY'
import json, sys
name, s, wall, search, wanda = sys.argv[1:]
o = json.loads(open(search).read().strip().splitlines()[-1])
w = json.loads(open(wanda).read().strip().splitlines()[-1])
m = o["measured"]
print(json.dumps({"model": name, "sparsity": float(s), "dense": m["dense_perplexity"],
                  "uniform_sparsegpt": m["uniform"]["perplexity"], "uniform_linear_sparsity": m["uniform"]["linear_sparsity"],
                  "owl_sparsegpt": m["owl"]["perplexity"], "owl_linear_sparsity": m["owl"]["linear_sparsity"],
                  "search_sparsegpt": m["search"]["perplexity"], "search_linear_sparsity": m["search"]["linear_sparsity"],
                  "uniform_wanda": w["perplexity_after"],
                  "uniform_kl": o["uniform_kl"], "search_kl": o["search_kl"], "generations": o["generations"],
                  "layers": len(o["layers"]), "levels": len(o["levels"]),
                  "database_seconds": o["database_seconds"], "search_seconds": o["search_seconds"],
                  "allocate_wall_seconds": float(wall),
                  "profile": [{"name": l["name"], "sparsity": l["sparsity"]} for l in o["layers"]],
                  "history": [[h["generation"], h["kl"]] for h in o["history"]]}))
PY
    done
done
# Bytes budgets, sparsity and bits searched together (levels 0 … 0.9 by 0.1 × 16, 8, 4 bits):
# every parameter outside the linear layers at fp16 plus a share F of the linear layers' fp16
# bytes. Beside the search: the best uniform level that fits (its start) and the DP allocator
# over the same scan (the database's reconstruction errors) at the same budget.
for entry in "${models[@]}"; do
    name="${entry%%|*}"; model="${entry#*|}"
    sizes=$("$cli" info "$model" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["parameters"], d["linear_parameters"])')
    params="${sizes% *}"; linear="${sizes#* }"
    for f in 0.25 0.18; do
        [ "$part" = sparsity ] && continue
        budget=$(python3 -c "print(int(2 * ($params - $linear) + $f * 2 * $linear))")
        start=$(date +%s.%N)
        "$cli" allocate "$model" --method search --budget-bytes "$budget" --generations "$generations" \
            --eval "$eval_text" --out "$work/bytes.json" "${common[@]}" > "$work/bytes.out"
        wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
        python3 - "$name" "$f" "$budget" "$wall" "$work/bytes.out" >> "$out.tmp" <<'PY'
import json, sys
name, f, budget, wall, path = sys.argv[1:]
o = json.loads(open(path).read().strip().splitlines()[-1])
m = o["measured"]
bits = {}
for l in o["layers"]:
    bits[l["bits"]] = bits.get(l["bits"], 0) + l["weights"]
total = sum(bits.values())
print(json.dumps({"bytes_budget": int(budget), "fraction": float(f), "model": name, "dense": m["dense_perplexity"],
                  "uniform_level": o["uniform"], "uniform": m["uniform"], "dp": m["dp"], "search": m["search"],
                  "search_bits_share": {str(k): v / total for k, v in sorted(bits.items(), reverse=True)},
                  "search_average_sparsity": o["average_sparsity"], "uniform_kl": o["uniform_kl"],
                  "search_kl": o["search_kl"], "generations": o["generations"], "layers": len(o["layers"]),
                  "levels": len(o["levels"]), "database_seconds": o["database_seconds"],
                  "search_seconds": o["search_seconds"], "allocate_wall_seconds": float(wall)}))
PY
    done
done
# How the database grows with the number of levels (no search: --generations 0).
for levels in 3 6 12; do
    "$cli" allocate "$demo" --method search --budget-sparsity 0.5 --level-step 0.03 --levels "$levels" \
        --generations 0 --out "$work/db.json" "${common[@]}" > "$work/db.out"
    python3 - "$work/db.out" >> "$out.tmp" <<'PY'
import json, sys
o = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(json.dumps({"database_only": True, "levels": len(o["levels"]), "layers": len(o["layers"]),
                  "database_seconds": o["database_seconds"], "database_bytes": o["database_bytes"]}))
PY
done
mv "$out.tmp" "$out"
echo "uptime after: $(uptime)"
echo "wrote $out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | S | dense | uniform SparseGPT | OWL + SparseGPT | search + SparseGPT | search vs uniform | search vs OWL | uniform Wanda |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("database_only") or r.get("bytes_budget"):
        continue
    vs_u = 100 * (r["search_sparsegpt"] / r["uniform_sparsegpt"] - 1)
    vs_o = 100 * (r["search_sparsegpt"] / r["owl_sparsegpt"] - 1)
    print(f"| {r['model']} | {r['sparsity']:.0%} | {r['dense']:.4f} | {r['uniform_sparsegpt']:.2f} "
          f"({r['uniform_linear_sparsity']:.4f}) | {r['owl_sparsegpt']:.2f} ({r['owl_linear_sparsity']:.4f}) "
          f"| {r['search_sparsegpt']:.2f} ({r['search_linear_sparsity']:.4f}) | {vs_u:+.1f} % | {vs_o:+.1f} % "
          f"| {r['uniform_wanda']:.2f} |")
print()
print("| model | budget | layers | levels | generations | calibration KL uniform → search | database s | search s | s per generation | allocate --eval wall s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("database_only"):
        continue
    per = r["search_seconds"] / max(1, r["generations"])
    budget = f"{r['sparsity']:.0%}" if "sparsity" in r else f"{r['bytes_budget']:,} B"
    print(f"| {r['model']} | {budget} | {r['layers']} | {r['levels']} | {r['generations']} | "
          f"{r['uniform_kl']:.4f} → {r['search_kl']:.4f} | {r['database_seconds']:.1f} | {r['search_seconds']:.1f} | "
          f"{per:.2f} | {r['allocate_wall_seconds']:.0f} |")
print()
print("| model | budget (bytes; linear share of fp16) | best uniform that fits | DP allocator | search | search vs DP | search vs uniform | search: bits by share, average sparsity |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if not r.get("bytes_budget"):
        continue
    u, d, s = r["uniform"], r["dp"], r["search"]
    lvl = r["uniform_level"]
    bits = ", ".join(f"{b}: {100 * v:.0f} %" for b, v in r["search_bits_share"].items())
    print(f"| {r['model']} | {r['bytes_budget']:,} ({r['fraction']:.2f}) | {u['perplexity']:.2f} ({lvl['sparsity']:.1f} / {lvl['bits']} bits; {u['model_bytes']:,} B) "
          f"| {d['perplexity']:.2f} ({d['model_bytes']:,} B) | {s['perplexity']:.2f} ({s['model_bytes']:,} B) "
          f"| {100 * (s['perplexity'] / d['perplexity'] - 1):+.1f} % | {100 * (s['perplexity'] / u['perplexity'] - 1):+.1f} % "
          f"| {bits}; {r['search_average_sparsity']:.3f} |")
print()
print("| levels (stories260K, 35 layers) | database s | database MiB |")
print("|---|---|---|")
for r in rows:
    if r.get("database_only"):
        print(f"| {r['levels']} | {r['database_seconds']:.2f} | {r['database_bytes'] / 2**20:.1f} |")
PY
