#!/usr/bin/env bash
# A model with TinyLlama-1.1B's shapes, pruned on this machine: wall time, peak RSS and where
# the time went, and what 128 × 2048 calibration would take.
#
# The checkpoint is synthetic (bench_synthetic_checkpoint: 22 blocks, hidden 2048, MLP 5632,
# 32 heads / 4 KV heads, vocab 32000, F16, N(0, 0.02²) weights, the demo's tokenizer), made once
# in WORK_DIR (2.2 GB). The run: `sparselab-cli prune --stream`, SparseGPT 50 %, 16 × 512
# calibration tokens from the bundled TinyStories text, under /usr/bin/time -v; its --json
# gives the phases (forward passes, Hessians, solves, block I/O, export).
#
# Peak RSS is also given split (sampled): anonymous memory, which the planner estimates, and
# file pages of the memory-mapped checkpoint, which count in RSS but are reclaimable.
#
# Projection to 128 × 2048 tokens (32× the tokens): the solves and block I/O do not depend on
# the calibration size; Hessians grow with the tokens (×32); the forward passes grow with the
# tokens and, for attention's scores, with the window length: per token and block the passes
# cost 2·P + 2·(P − P_down) FLOPs (P = the block's linear weights; the collecting pass skips the
# down projection's product) plus 2 × 4·seqlen·hidden for QKᵀ and AV, so the factor is
# 32 · F(2048) / F(512) with F(s) = 2P + 2(P − P_down) + 8·s·h. Memory at that size is the planner's estimate
# (`sparselab-cli plan … --stream`), printed beside the measured peak.
#
#   bench/bench_tinyllama_stream.sh WORK_DIR [BUILD_DIR]    (BUILD_DIR default: build)
# Needs ~5 GB in WORK_DIR (checkpoint, export, spill). Output: a summary JSON line on stdout
# and in WORK_DIR/tinyllama-result.json; `uptime` before and after on stderr.
set -euo pipefail
work="$1"
build="$(cd "${2:-build}" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$build/app/sparselab-cli"
gen="$build/bench/bench_synthetic_checkpoint"
[[ -x "$cli" && -x "$gen" ]] || { echo "bench_tinyllama_stream.sh: build sparselab-cli and bench_synthetic_checkpoint first (ninja -C $build sparselab-cli bench_synthetic_checkpoint)" >&2; exit 2; }
mkdir -p "$work"
work="$(cd "$work" && pwd)"
export TMPDIR="$work" # the streamed blocks' spill goes here too
model="$work/tinyllama-1.1b-shaped"
[[ -d "$model" ]] || "$gen" "$model" --blocks 22 --hidden 2048 --intermediate 5632 --heads 32 --kv-heads 4 --vocab 32000
rm -rf "$work/out"
"$cli" plan "$model" --nsamples 128 --seqlen 2048 --stream --json > "$work/plan-128x2048.json"
"$cli" plan "$model" --nsamples 16 --seqlen 512 --stream --json > "$work/plan-16x512.json"
echo "uptime before: $(uptime)" >&2
/usr/bin/time -v "$cli" prune "$model" --calib "$root/resources/text/tinystories_calib.txt" --out "$work/out" \
    --nsamples 16 --seqlen 512 --sparsity 0.5 --stream --json --quiet ${EXTRA:-} > "$work/prune.json" 2> "$work/time.txt" &
timer=$!
# Peak RSS split into anonymous memory (what the run allocates) and file pages (the mapped
# checkpoint's pages it has read, which the kernel can drop under pressure): /proc status,
# sampled every 0.2 s.
anon_peak=0 file_peak=0
while kill -0 "$timer" 2>/dev/null; do
    pid="$(pgrep -P "$timer" | head -1 || true)"
    if [[ -n "$pid" && -r "/proc/$pid/status" ]]; then
        read -r anon file < <(awk '/^RssAnon:/{a=$2} /^RssFile:/{f=$2} END{print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
        (( anon > anon_peak )) && anon_peak=$anon
        (( file > file_peak )) && file_peak=$file
    fi
    sleep 0.2
done
wait "$timer"
echo "$anon_peak $file_peak" > "$work/rss-split.txt"
echo "uptime after: $(uptime)" >&2
rm -rf "$work/out"
python3 - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
prune = json.load(open(f"{work}/prune.json"))
time_text = open(f"{work}/time.txt").read()
def field(label):
    return re.search(re.escape(label) + r":\s*(.+)", time_text).group(1).strip()
wall_parts = [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
wall = sum(p * 60 ** i for i, p in enumerate(reversed(wall_parts)))
peak_mb = int(field("Maximum resident set size (kbytes)")) / 1024
anon_kb, file_kb = (int(x) for x in open(f"{work}/rss-split.txt").read().split())
phases = prune["phase_seconds"]
hidden, mlp, kv = 2048, 5632, 256
params = 2 * hidden * hidden + 2 * kv * hidden + 3 * mlp * hidden  # one block's linear weights
attention = lambda seqlen: 4 * seqlen * hidden
last = mlp * hidden  # the down projection: the collecting pass skips its product
per_token = lambda seqlen: 2 * params + 2 * (params - last) + 2 * attention(seqlen)  # both passes of a block
forward_factor = 32 * per_token(2048) / per_token(512)
projected = {"forward": phases["forward"] * forward_factor, "hessian": phases["hessian"] * 32,
             "solve": phases["solve"], "block_io": phases["block_io"], "export": phases["export"]}
plan_big = json.load(open(f"{work}/plan-128x2048.json"))
plan_small = json.load(open(f"{work}/plan-16x512.json"))
result = {"model": "TinyLlama-1.1B-shaped (synthetic, F16)", "calibration": "16 x 512", "sparsity": 0.5,
          "wall_s": round(wall, 1), "prune_s": round(prune["seconds"], 1), "peak_rss_mb": round(peak_mb),
          "peak_rss_anon_mb": round(anon_kb / 1024), "peak_rss_file_mb": round(file_kb / 1024),
          "planner_host_mb_16x512": round(plan_small["host_bytes"] / 2**20),
          "phases_s": {k: round(v, 1) for k, v in phases.items()},
          "linear_sparsity": prune["linear_sparsity"],
          "projection_128x2048": {"forward_factor": round(forward_factor, 2),
                                  "phases_s": {k: round(v) for k, v in projected.items()},
                                  "total_s": round(sum(projected.values())),
                                  "planner_host_mb": round(plan_big["host_bytes"] / 2**20)}}
text = json.dumps(result)
open(f"{work}/tinyllama-result.json", "w").write(text + "\n")
print(text)
PY
