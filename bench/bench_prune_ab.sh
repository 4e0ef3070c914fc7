#!/usr/bin/env bash
# Two builds of sparselab-cli side by side on a large model's prune: wall, user and system time,
# peak RSS, the phases the CLI reports, and whether the pruned weights are the same. For a
# change to the engine's memory or forward passes: the build before it against the build after.
#
# The model: bench_synthetic_checkpoint's TinyLlama-1.1B shapes (hidden 2048, MLP 5632, 32 heads
# / 4 KV heads, vocab 32000, F16) with 4 blocks (0.6 GB, made once in WORK_DIR). The run:
# `sparselab-cli prune --stream`, SparseGPT 50 %, 16 × 512 calibration tokens from the bundled
# TinyStories text — bench_tinyllama_stream.sh's settings on a model a fifth as deep.
#
# With --passive, a third variant: the old build with OMP_WAIT_POLICY=PASSIVE (libgomp's threads
# sleep at once after each element-wise operation instead of spinning against the next
# product's OpenBLAS threads) — for a change to how the engine spends LibTorch's pool
# (util/engine_threads.h; bench_forward_threads.sh runs this).
#
# Interleaved rounds (old, new[, old-passive]). Per run one JSON line (wall/user/system
# seconds and peak RSS from GNU time; --json phase_seconds: forward, hessian, solve, block_io,
# export); then the medians per variant, and whether the new build's pruned weights equal
# the old build's (bench/compare_pruned.py on every shard). `uptime` before and after on stderr.
#
# usage: bench/bench_prune_ab.sh --old CLI --new CLI --work DIR [--rounds 4] [--passive]
#        (the checkpoint generator is taken from the new CLI's build: ../bench/bench_synthetic_checkpoint)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
old="" new="" work="" rounds=4 variants=(old new)
while (($#)); do
    case "$1" in
        --old) old="$2"; shift 2 ;;
        --new) new="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --passive) variants=(old new old-passive); shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "bench_prune_ab.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ -x "$old" && -x "$new" && -n "$work" ]] || { echo "bench_prune_ab.sh: needs --old CLI --new CLI --work DIR" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "bench_prune_ab.sh: needs GNU time (apt-get install time)" >&2; exit 2; }
gen="$(cd "$(dirname "$new")/.." && pwd)/bench/bench_synthetic_checkpoint"
[[ -x "$gen" ]] || { echo "bench_prune_ab.sh: build bench_synthetic_checkpoint beside the new CLI first" >&2; exit 2; }
python="${PYTHON:-/usr/bin/python3}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
export TMPDIR="$work" # the streamed blocks' spill
model="$work/tinyllama-shaped-4-blocks"
[[ -d "$model" ]] || "$gen" "$model" --blocks 4 --hidden 2048 --intermediate 5632 --heads 32 --kv-heads 4 --vocab 32000 >&2
calib="$root/resources/text/tinystories_calib.txt"
results="$work/prune-ab.jsonl"
: > "$results"
echo "uptime before: $(uptime)" >&2
for ((i = 1; i <= rounds; ++i)); do
    for variant in "${variants[@]}"; do
        cli="$old"; [[ "$variant" == new ]] && cli="$new"
        envs=()
        [[ "$variant" == old-passive ]] && envs=(OMP_WAIT_POLICY=PASSIVE)
        rm -rf "$work/out-$variant"
        env "${envs[@]}" /usr/bin/time -o "$work/time.txt" -f '%e %U %S %M' "$cli" prune "$model" --calib "$calib" \
            --out "$work/out-$variant" --nsamples 16 --seqlen 512 --sparsity 0.5 --stream --json --quiet > "$work/prune.json"
        "$python" - "$work/prune.json" "$work/time.txt" "$i" "$variant" <<'PY' | tee -a "$results"
import json, sys
phases = json.load(open(sys.argv[1]))["phase_seconds"]
wall, user, system, rss_kb = open(sys.argv[2]).read().split()[-4:]
print(json.dumps({"round": int(sys.argv[3]), "variant": sys.argv[4], "wall": float(wall), "user": float(user),
                  "system": float(system), "peak_rss_gb": round(int(rss_kb) / 2**20, 3),
                  **{k: round(v, 3) for k, v in phases.items()}}))
PY
    done
done
echo "uptime after: $(uptime)" >&2
"$python" - "$results" "${variants[@]}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for variant in sys.argv[2:]:
    mine = [r for r in rows if r["variant"] == variant]
    keys = [k for k in mine[0] if k not in ("round", "variant")]
    print(json.dumps({"variant": variant, "runs": len(mine),
                      **{k + "_median": round(statistics.median(r[k] for r in mine), 3) for k in keys}}))
PY
same=true
for shard in "$work/out-old"/model*.safetensors; do
    name="$(basename "$shard")"
    "$python" "$here/compare_pruned.py" "$shard" "$work/out-new/$name" \
        | "$python" -c 'import json, sys; d = json.load(sys.stdin); sys.exit(0 if d["zero_pattern_differs"] == 0 and d["max_abs_weight_difference"] == 0 else 1)' \
        || same=false
done
echo "{\"new_weights_equal_old\": $same}"
