#!/usr/bin/env bash
# The main job: install what is missing, build, then open the workbench on the bundled demo
# model (stories260K). Without a display, run the same job through the CLI: describe the demo
# model, measure its perplexity on the bundled TinyStories text, prune it 50 % with SparseGPT
# and measure again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]]; then
  exec ./build/app/sparselab
fi
echo "demo: no display — running the demo job through sparselab-cli" >&2
./build/app/sparselab-cli info
./build/app/sparselab-cli eval --seqlen 256
out="$(mktemp -d)/stories260K-sparsegpt50"
./build/app/sparselab-cli prune resources/models/stories260K-hf \
  --calib resources/text/tinystories_calib.txt --nsamples 128 --seqlen 256 \
  --sparsity 0.5 --eval resources/text/tinystories_eval.txt --out "$out"
echo "demo: pruned model written to $out" >&2
