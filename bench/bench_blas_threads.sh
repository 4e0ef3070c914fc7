#!/usr/bin/env bash
# Does OpenBLAS's own thread pool matter? Debian's LibTorch calls OpenBLAS (pthreads build),
# whose threads `--threads` (at::set_num_threads) does not set. Runs the same command with
# OPENBLAS_NUM_THREADS unset and set to the --threads value, interleaved, REPEAT times each,
# and prints the median prune, recovery and allocation-search seconds of each. Since
# util/engine_threads.h, --threads sets OpenBLAS's pool too, so on a current build the two rows
# should agree; run it on an older build to see the difference it made.
#
#   bash bench/bench_blas_threads.sh [BUILD_DIR] [THREADS=1] [REPEAT=3]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"; threads="${2:-1}"; repeat="${3:-3}"
cli="$build/app/sparselab-cli"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
echo "uptime before: $(uptime)"
for i in $(seq "$repeat"); do
    for mode in default matched; do
        rm -rf "$work/out"
        if [ "$mode" = matched ]; then export OPENBLAS_NUM_THREADS="$threads"; else unset OPENBLAS_NUM_THREADS; fi
        "$cli" prune "$here/resources/models/stories260K-hf" --calib "$here/resources/text/tinystories_calib.txt" \
            --seqlen 256 --sparsity 0.5 --recover 60 --recover-heldout 0 --threads "$threads" --out "$work/out" \
            --json --quiet | tail -1 | python3 -c "import json,sys; r=json.load(sys.stdin); print('$mode', r['seconds'], r['recovery']['seconds'], end=' ')" >> "$work/rows"
        "$cli" allocate "$here/resources/models/stories260K-hf" --method search --calib "$here/resources/text/tinystories_calib.txt" \
            --seqlen 256 --budget-sparsity 0.5 --generations 8 --threads "$threads" --out "$work/search.json" \
            --json --quiet | tail -1 | python3 -c "import json,sys; r=json.load(sys.stdin); print(r['search_seconds'])" >> "$work/rows"
    done
done
unset OPENBLAS_NUM_THREADS
echo "uptime after: $(uptime)"
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for mode in ("default", "matched"):
    p = [float(r[1]) for r in rows if r[0] == mode]; q = [float(r[2]) for r in rows if r[0] == mode]
    a = [float(r[3]) for r in rows if r[0] == mode]
    print(f"{mode:8s} OpenBLAS threads: prune median {statistics.median(p):.2f} s, recovery (60 steps) median {statistics.median(q):.2f} s, "
          f"allocation search (8 generations) median {statistics.median(a):.2f} s  (runs: {len(p)})")
PY
