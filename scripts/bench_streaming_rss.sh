#!/usr/bin/env bash
# Memory bound of streaming (issue 6): prunes synthetic Llama checkpoints with 7B-shaped blocks
# (hidden 4096, MLP 11008, F16 on disk; bench_synthetic_checkpoint) with 2 and with 8 blocks on
# the CPU with --stream, and reports each run's peak RSS from /usr/bin/time -v (and the memory
# planner's host estimate next to it). A benchmark, not a test: it takes a while on 2 cores.
#
#   scripts/bench_streaming_rss.sh BUILD_DIR WORK_DIR [BLOCKS...]   (default blocks: 2 8)
# Environment: NSAMPLES (8), SEQLEN (128), EXTRA (more prune options, e.g. "--threads 2").
# Output: one line per run, and WORK_DIR/results.txt. WORK_DIR needs ~2.5x the checkpoint size
# (checkpoint + exported copy + spill): about 9 GB for 8 blocks.
set -euo pipefail
build="$(cd "$1" && pwd)"
work="$2"
shift 2
blocks=("$@")
[[ ${#blocks[@]} -eq 0 ]] && blocks=(2 8)
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$work"
export TMPDIR="$work" # the spill folder of the streamed blocks goes there too
for n in "${blocks[@]}"; do
  model="$work/synthetic-7b-shaped-$n"
  [[ -d "$model" ]] || "$build/bench/bench_synthetic_checkpoint" "$model" --blocks "$n"
  rm -rf "$work/out-$n"
  plan="$("$build/app/sparselab-cli" plan "$model" --nsamples "${NSAMPLES:-8}" --seqlen "${SEQLEN:-128}" --stream --json \
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["host_bytes"])')"
  /usr/bin/time -v "$build/app/sparselab-cli" prune "$model" --calib "$root/resources/text/tinystories_calib.txt" \
      --out "$work/out-$n" --nsamples "${NSAMPLES:-8}" --seqlen "${SEQLEN:-128}" --stream --quiet ${EXTRA:-} \
      > "$work/prune-$n.log" 2> "$work/time-$n.log"
  rss_kb="$(grep 'Maximum resident set size' "$work/time-$n.log" | awk '{print $NF}')"
  wall="$(grep 'Elapsed (wall clock)' "$work/time-$n.log" | awk '{print $NF}')"
  line="blocks $n ${EXTRA:-(sparsegpt)}: peak RSS $((rss_kb / 1024)) MiB ($rss_kb kB), wall $wall, planner host estimate $((plan / 1048576)) MiB; $(tail -2 "$work/prune-$n.log" 2>/dev/null | tr "\n" " " || true)"
  echo "$line" | tee -a "$work/results.txt"
  rm -rf "$work/out-$n"
done
