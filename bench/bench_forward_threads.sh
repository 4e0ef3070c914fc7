#!/usr/bin/env bash
# LibTorch's OpenMP threads during a large model's prune: two builds of sparselab-cli side by
# side, and the old one again with OMP_WAIT_POLICY=PASSIVE (libgomp's threads sleep at once
# after each element-wise operation instead of spinning against the next product's OpenBLAS
# threads). For a change to how the engine spends LibTorch's pool (util/engine_threads.h,
# setEngineThreads): the build before it against the build after it.
#
# bench_prune_ab.sh with --passive and 5 rounds by default: the 4-block TinyLlama-shaped model,
# `sparselab-cli prune --stream`, 16 × 512 tokens, interleaved; see that script for the output.
#
# usage: bench/bench_forward_threads.sh --old CLI --new CLI --work DIR [--rounds 5]
set -euo pipefail
exec "$(cd "$(dirname "$0")" && pwd)/bench_prune_ab.sh" --passive --rounds 5 "$@"
