#!/usr/bin/env bash
# Two builds of sparselab-cli, `solve-layer` as whole processes, in interleaved pairs: for a
# change whose cost or gain lies outside the solve's timed phases (start-up, reading, fresh
# memory, writing the output), which bench_solve_layer_ab.sh does not see. Each pair runs the
# old build then the new one (the order alternates from pair to pair, so that neither always
# runs on the memory the other just gave back) on the same problem, timed with /usr/bin/time
# (wall, user and system CPU, minor faults, peak RSS). The two outputs of the last pair are
# compared tensor by tensor (the headers hold each run's seconds, so the files differ).
#
# Problem: bench/solve_layer_problem.py's random layer, as bench_solve_layer_vs_reference.sh's
# (weight [n, n] ~ N(0, 0.02²), inputs [tokens / 2048, 2048, n] ~ N(0, 1), F32, seed n), 50 %,
# the CLI's default threads.
#
# usage: bench/bench_solve_layer_process_ab.sh --old CLI --new CLI [--size 4096] [--tokens 8192]
#                                              [--pairs 8] [--out FILE]
# Output: one JSON line per run on stdout (and in FILE with --out), then a summary line: the
# medians per build and the median of the paired ratios new/old; `uptime` before and after on
# stderr. Needs python3-numpy.
set -euo pipefail
old=""; new=""; size=4096; tokens=8192; pairs=8; out=""
python="${PYTHON:-/usr/bin/python3}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --old) old="$2"; shift 2 ;;
        --new) new="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --tokens) tokens="$2"; shift 2 ;;
        --pairs) pairs="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "bench_solve_layer_process_ab.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -x "$old" && -x "$new" ]] || { echo "bench_solve_layer_process_ab.sh: --old and --new must be sparselab-cli executables" >&2; exit 2; }
(( tokens % 2048 == 0 )) || { echo "bench_solve_layer_process_ab.sh: --tokens must be a multiple of 2048" >&2; exit 2; }
"$python" -c 'import numpy' 2>/dev/null || { echo "bench_solve_layer_process_ab.sh: needs python3-numpy" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$python" "$here/solve_layer_problem.py" "$work/problem.safetensors" "$size" "$tokens"

run() { # build label, pair number
    local cli="$1" label="$2" pair="$3"
    /usr/bin/time -f '%e %U %S %R %M' -o "$work/time" \
        "$cli" solve-layer --problem "$work/problem.safetensors" --out "$work/out-$label.safetensors" \
        --sparsity 0.5 --quiet
    read -r wall user sys faults rss < "$work/time"
    echo "{\"build\": \"$label\", \"pair\": $pair, \"size\": $size, \"tokens\": $tokens, \"wall_s\": $wall, \"user_s\": $user, \"system_s\": $sys, \"minor_faults\": $faults, \"max_rss_mb\": $(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')}"
}

echo "uptime before: $(uptime)" >&2
results="$work/results.jsonl"
for ((p = 1; p <= pairs; ++p)); do
    if (( p % 2 )); then
        run "$old" old "$p"; run "$new" new "$p"
    else
        run "$new" new "$p"; run "$old" old "$p"
    fi
done | tee "$results"
echo "uptime after: $(uptime)" >&2

"$python" "$here/compare_pruned.py" "$work/out-old.safetensors" "$work/out-new.safetensors" >&2 || true
"$python" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {b: {r["pair"]: r for r in rows if r["build"] == b} for b in ("old", "new")}
summary = {}
for key in ("wall_s", "user_s", "system_s", "minor_faults", "max_rss_mb"):
    for b in ("old", "new"):
        summary[f"{b}_{key}"] = round(statistics.median(r[key] for r in by[b].values()), 3)
ratios = [by["new"][p]["wall_s"] / by["old"][p]["wall_s"] for p in by["old"] if p in by["new"]]
summary["median_paired_ratio_new_over_old"] = round(statistics.median(ratios), 3)
summary["pairs"] = len(ratios)
print(json.dumps({"summary": summary}))
PY
[[ -z "$out" ]] || cp "$results" "$out"
