#!/usr/bin/env bash
# Two builds of sparselab-cli on the same solve-layer problems: for a change to the engine that
# should not change its floats, whether it did. Each case runs `solve-layer` with each build
# (the same options and threads) and compares the outputs with bench/compare_pruned.py: the
# entries whose zero pattern differs and the largest weight difference, one line per case.
#
# Problems (made once in WORK_DIR with numpy, seeds fixed): bench_solve_layer_vs_reference.sh's
# two (weight N(0, 0.02²), inputs N(0, 1), 4 × 2048 tokens, seed n; 2048 and 4096 columns), and
# eight with correlated inputs (X + 0.5·X·M, X and M normal, M/√n) whose shapes leave partial
# row tiles, partial column blocks and a block narrower than 8 columns (520, 1003 columns; 250,
# 333 and 700 rows), and small products from few rows (40 × 600, 100 × 777). Cases: unstructured
# 50 % and 2:4 on the first six, unstructured on one and two threads on the last two, joint
# 4-bit, GPTQ with groups and act-order, static groups with 4:8 and 3 bits, fp16 scales; one and
# two threads at 2048/4096.
#
# usage: bench/compare_builds_solve_layer.sh OLD_CLI NEW_CLI [WORK_DIR]   (default: a temp dir)
# Needs python3-numpy. Output: one line per case on stdout.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,16p' "$0"; exit 2; }
old="$1"
new="$2"
work="${3:-}"
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-/usr/bin/python3}"
"$python" -c 'import numpy' 2>/dev/null || { echo "compare_builds_solve_layer.sh: needs python3-numpy" >&2; exit 2; }
if [[ -z "$work" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/out"

"$python" - "$work" "$here" <<'PY'
import os, sys
import numpy as np
work = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from solve_layer_problem import random_layer, write_problem  # noqa: E402

def write(path, weight, inputs):
    if not os.path.exists(path):
        write_problem(path, weight, inputs)

for n in (2048, 4096):
    write(f"{work}/problem-{n}.safetensors", *random_layer(n))
for n, seed, rows in ((520, 7, 333), (1003, 8, 250), (1024, 1, 1000), (1536, 5, 1536), (2048, 3, 700),
                      (3072, 6, 3072), (600, 9, 40), (777, 10, 100)):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, n), dtype=np.float32) * np.float32(0.02)).astype(np.float32)
    x = rng.standard_normal((4 * 2048, n), dtype=np.float32)
    m = rng.standard_normal((n, n), dtype=np.float32) / np.float32(np.sqrt(n))
    x = (x + np.float32(0.5) * (x @ m)).astype(np.float32).reshape(4, 2048, n)
    write(f"{work}/p-{n}-{seed}.safetensors", w, x)
PY

run() { # name threads problem options...
    local name="$1" threads="$2" problem="$3"
    shift 3
    for build in old new; do
        local cli="$old"
        [[ "$build" == new ]] && cli="$new"
        OMP_NUM_THREADS="$threads" "$cli" solve-layer --problem "$work/$problem.safetensors" \
            --out "$work/out/$build-$name.safetensors" "$@" > /dev/null 2>&1 \
            || { echo "$name: the $build build failed" >&2; exit 1; }
    done
    echo "$name (threads $threads: $*) $("$python" "$here/compare_pruned.py" "$work/out/old-$name.safetensors" \
        "$work/out/new-$name.safetensors" | "$python" -c 'import json, sys; d = json.load(sys.stdin)
print("zero_pattern_differs", d["zero_pattern_differs"], "of", d["entries"], "max_abs_weight_difference",
      d["max_abs_weight_difference"])')"
    rm -f "$work/out/old-$name.safetensors" "$work/out/new-$name.safetensors"
}

for p in p-520-7 p-1003-8 p-1024-1 p-1536-5 p-2048-3 p-3072-6; do
    run "$p-unstructured" 2 "$p" --sparsity 0.5
    run "$p-2of4" 2 "$p" --nm 2:4
done
for p in p-600-9 p-777-10; do
    run "$p-unstructured-1thread" 1 "$p" --sparsity 0.5
    run "$p-unstructured" 2 "$p" --sparsity 0.5
done
run p-1003-8-joint4 1 p-1003-8 --sparsity 0.5 --bits 4
run p-1003-8-gptq 2 p-1003-8 --sparsity 0 --bits 4 --group 128 --act-order
run p-1024-1-static 2 p-1024-1 --nm 4:8 --bits 3 --group 64 --static-groups
run p-1536-5-fp16 2 p-1536-5 --sparsity 0.6 --bits 4 --group 32 --sym --fp16-scale
run 2048-1thread 1 problem-2048 --sparsity 0.5
run 2048-2threads 2 problem-2048 --sparsity 0.5
run 2048-2of4 2 problem-2048 --nm 2:4
run 2048-joint4 2 problem-2048 --sparsity 0.5 --bits 4 --group 128
run 4096-1thread 1 problem-4096 --sparsity 0.5
run 4096-2threads 2 problem-4096 --sparsity 0.5
