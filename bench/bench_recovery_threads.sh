#!/usr/bin/env bash
# One thread against two for recovery on the demo: the same `prune … --recover 60` (KL, no
# held-out windows) with --threads 1 and --threads 2, interleaved, REPEAT times each; prints
# the median training seconds of each and their ratio.
#
#   bash bench/bench_recovery_threads.sh [BUILD_DIR] [REPEAT=3]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"; repeat="${2:-3}"
cli="$build/app/sparselab-cli"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
echo "uptime before: $(uptime)"
for i in $(seq "$repeat"); do
    for threads in 1 2; do
        rm -rf "$work/out"
        "$cli" prune "$here/resources/models/stories260K-hf" --calib "$here/resources/text/tinystories_calib.txt" \
            --seqlen 256 --sparsity 0.5 --recover 60 --recover-heldout 0 --threads "$threads" --out "$work/out" \
            --json --quiet | tail -1 | python3 -c "import json,sys; print($threads, json.load(sys.stdin)['recovery']['seconds'])" >> "$work/rows"
    done
done
echo "uptime after: $(uptime)"
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
m = {t: statistics.median(float(r[1]) for r in rows if r[0] == t) for t in ("1", "2")}
print(f"60 KL steps: --threads 1 median {m['1']:.2f} s, --threads 2 median {m['2']:.2f} s; 2 threads / 1 thread = {m['2']/m['1']:.2f}")
PY
