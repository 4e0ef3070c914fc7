#!/usr/bin/env bash
# Two builds of sparselab-cli on the demo prune, side by side: the bundled stories260K,
# 128 × 256 calibration windows, SparseGPT 50 %, no evaluation — the prune of
# bench_demo_vs_reference.sh. For a change to the engine: the build before it (e.g. a clean
# clone at the previous commit) against the build after it.
#
# Interleaved runs (old, new, old, new, …). Per run one JSON line: the whole process's wall time
# (/usr/bin/time) and the forward passes' seconds as the CLI reports them ("time:" line), and
# whether the pruned weights are byte-identical to the old build's. Then the medians.
#
# usage: bench/bench_demo_ab.sh --old CLI --new CLI [--runs 7]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
old="" new="" runs=7
while (($#)); do
    case "$1" in
        --old) old="$2"; shift 2 ;;
        --new) new="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench_demo_ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ -x "$old" && -x "$new" ]] || { echo "bench_demo_ab.sh: --old and --new must be sparselab-cli binaries" >&2; exit 2; }
model="$root/resources/models/stories260K-hf"
calib="$root/resources/text/tinystories_calib.txt"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "uptime before: $(uptime)" >&2
for ((i = 1; i <= runs; ++i)); do
    for which in old new; do
        cli="$old"; [[ "$which" == new ]] && cli="$new"
        rm -rf "$work/$which"
        /usr/bin/time -f "%e" -o "$work/wall" "$cli" prune "$model" --calib "$calib" --nsamples 128 --seqlen 256 \
            --sparsity 0.5 --out "$work/$which" > "$work/log" 2>&1
        forward="$(sed -n 's/^time: forward passes \([0-9.]*\) s.*/\1/p' "$work/log")"
        same=null
        [[ "$which" == new ]] && { cmp -s "$work/old/model.safetensors" "$work/new/model.safetensors" && same=true || same=false; }
        echo "{\"run\": $i, \"build\": \"$which\", \"wall_s\": $(cat "$work/wall"), \"forward_s\": ${forward:-null}, \"weights_identical\": $same}"
    done
done | tee "$work/lines"
python3 - "$work/lines" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
med = {b: {k: statistics.median(r[k] for r in rows if r["build"] == b) for k in ("wall_s", "forward_s")} for b in ("old", "new")}
print(json.dumps({"summary": med, "wall_ratio_old_over_new": round(med["old"]["wall_s"] / med["new"]["wall_s"], 3),
                  "weights_identical": all(r["weights_identical"] for r in rows if r["build"] == "new"), "runs": len(rows) // 2}))
PY
echo "uptime after: $(uptime)" >&2
