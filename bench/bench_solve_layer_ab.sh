#!/usr/bin/env bash
# Two builds of bench_solve_layer side by side: per phase (Hessian, factorisation, column loop,
# statistics' trace; --breakdown 1) on the same random layers, interleaved round by round, so
# that drift of the machine falls on both. One JSON line per build, round, size and thread count
# (the benchmark's own line with "build" and "round" added), then the medians per build.
#
# usage: bench/bench_solve_layer_ab.sh --old BIN --new BIN [--rounds 5] [--sizes 2048,4096]
#                                      [--threads 1,2] [--tokens 8192] [--repeat 5] [--out FILE]
# BIN: a bench_solve_layer executable (`ninja bench_solve_layer`; copy the old one aside first).
# The medians are printed on stderr; --out also writes the JSON lines to FILE.
set -euo pipefail
old=""; new=""; rounds=5; sizes=2048,4096; threads=1,2; tokens=8192; repeat=5; out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --old) old="$2"; shift 2 ;;
    --new) new="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --tokens) tokens="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "bench_solve_layer_ab.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for bin in "$old" "$new"; do
  if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "bench_solve_layer_ab.sh: --old and --new must name bench_solve_layer executables" >&2; exit 2
  fi
done
lines=$(mktemp); trap 'rm -f "$lines"' EXIT
echo "uptime before: $(uptime)" >&2
for round in $(seq "$rounds"); do
  for t in ${threads//,/ }; do
    for build in old new; do
      bin=$old; [[ $build == new ]] && bin=$new
      "$bin" --sizes "$sizes" --tokens "$tokens" --repeat "$repeat" --threads "$t" --breakdown 1 |
        sed "s/^{/{\"build\": \"$build\", \"round\": $round, /" >> "$lines"
    done
  done
done
[[ -n "$out" ]] && cp "$lines" "$out"
cat "$lines"
python3 - "$lines" >&2 <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# rest_s and solve_rest_of_sgemm: builds from 2026-12-07 on (the column loop timed on its own);
# an older build's loop_s is the solve's remainder, which its rest is part of (nan here).
keys = ["solve_s", "hinv_s", "loop_s", "trace_s", "rest_s", "hessian_of_sgemm", "hinv_of_sgemm", "loop_of_sgemm",
        "trace_of_sgemm", "solve_rest_of_sgemm", "sgemm_gflops"]
groups = {}
for r in rows:
    groups.setdefault((r["size"], r["threads"], r["build"]), []).append(r)
print("medians: size threads build " + " ".join(keys))
for (size, t, build), rs in sorted(groups.items()):
    print(size, t, build, " ".join("%.4g" % statistics.median(r.get(k, float("nan")) for r in rs) for k in keys))
PY
