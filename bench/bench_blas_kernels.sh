#!/usr/bin/env bash
# sgemm on one thread with the OpenBLAS kernels this machine's OpenBLAS picks by itself, and
# with each core type given in OPENBLAS_CORETYPE (default: SkylakeX Haswell), side by side:
# numpy's float32 matmul (Debian's numpy calls the same libblas.so.3 as LibTorch), n × n × n,
# interleaved over --runs runs, best of 3 calls within a run, the median over runs. Shows what
# util/cpu_kernels.h's choice is worth here. One JSON line per measurement, a summary last;
# the CPU model and `uptime` on stderr.
#
# usage: bench/bench_blas_kernels.sh [--sizes 1024,2048] [--runs 5] [--cores "SkylakeX Haswell"]
set -euo pipefail
sizes="1024,2048"
runs=5
cores="SkylakeX Haswell"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --cores) cores="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "bench_blas_kernels.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
python="${PYTHON:-/usr/bin/python3}"
"$python" -c 'import numpy' 2>/dev/null || { echo "bench_blas_kernels.sh: needs python3-numpy" >&2; exit 2; }
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))" >&2
echo "uptime before: $(uptime)" >&2
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
measure='
import ctypes, json, os, sys, time
import numpy as np
core = "default"
for name in ("libopenblas.so.0", "libblas.so.3"):
    try:
        lib = ctypes.CDLL(name)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
        break
    except (OSError, AttributeError):
        pass
for n in (int(s) for s in sys.argv[1].split(",")):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    best = 1e9
    for _ in range(3):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    print(json.dumps({"size": n, "asked": os.environ.get("OPENBLAS_CORETYPE") or "default", "kernels": core,
                      "run": int(sys.argv[2]), "gflops": round(2 * n ** 3 / best / 1e9, 1)}), flush=True)
'
for ((run = 1; run <= runs; ++run)); do
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$python" -c "$measure" "$sizes" "$run" | tee -a "$results"
    for core in $cores; do
        OPENBLAS_CORETYPE="$core" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$python" -c "$measure" "$sizes" "$run" | tee -a "$results"
    done
done
echo "uptime after: $(uptime)" >&2
"$python" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
summary = {}
for n in sorted({r["size"] for r in rows}):
    for asked in dict.fromkeys(r["asked"] for r in rows):
        sel = [r for r in rows if r["size"] == n and r["asked"] == asked]
        summary[f"{n}/{asked}"] = {"kernels": sel[0]["kernels"], "gflops_median": statistics.median(r["gflops"] for r in sel)}
print(json.dumps({"summary": summary, "runs": max(r["run"] for r in rows)}))
PY
