#!/usr/bin/env bash
# Pictures of the workbench for the documentation: starts sparselab under Xvfb on the bundled
# demo model, runs 50 % SparseGPT (then magnitude and Wanda, so Results overlays three runs),
# exports the SparseGPT run to a temporary folder, and saves a PNG of every view into
# docs/screenshots/ (model, calibration, plan, evaluation, run, live, results, export, log,
# and the whole window as workbench.png). Then the workbench mid-run (the live view filling in)
# as it opens on a 1366 × 768 and a 1920 × 1080 screen: midrun-1366x768.png, midrun-1920x1080.png,
# the 1366 × 768 layout at 200 % scale (a 2732 × 1536 screen, QT_SCALE_FACTOR=2):
# midrun-1366x768@2x.png, and a run recovering after pruning: recovery-1366x768.png.
# The user's settings are neither read nor changed.
#
# Usage: scripts/screenshots.sh [BUILD_DIR] [OUT_DIR]
#   BUILD_DIR  default: build (falls back to build-gui)      OUT_DIR  default: docs/screenshots
# Environment: SPARSELAB_SCREENSHOT_ARGS — extra arguments (e.g. "--dark").
#              QT_SCALE_FACTOR — e.g. 2 for 200 % pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
[[ -x "$build/app/sparselab" ]] || build=build-gui
out="${2:-docs/screenshots}"
app="$build/app/sparselab"
if [[ ! -x "$app" ]]; then
  echo "screenshots: $app not found; build it first (ninja -C $build sparselab)" >&2
  exit 2
fi
if ! command -v xvfb-run >/dev/null; then
  echo "screenshots: xvfb-run not found (apt-get install xvfb)" >&2
  exit 2
fi
mkdir -p "$out"
# shellcheck disable=SC2086
xvfb-run -a -s "-screen 0 1600x1000x24" \
  "$app" --screenshots "$out" ${SPARSELAB_SCREENSHOT_ARGS:-} resources/models/stories260K-hf
# Mid-run, in the default layout, at the screen sizes of a small laptop and a desktop.
for screen in 1366x768 1920x1080; do
  # shellcheck disable=SC2086
  SPARSELAB_SCREENSHOT_MIDRUN="midrun-$screen" xvfb-run -a -s "-screen 0 ${screen}x24" \
    "$app" --screenshots "$out" ${SPARSELAB_SCREENSHOT_ARGS:-} resources/models/stories260K-hf
done
# The small laptop's layout at 200 %: every text and the per-layer chart must stay readable.
# shellcheck disable=SC2086
QT_SCALE_FACTOR=2 SPARSELAB_SCREENSHOT_MIDRUN="midrun-1366x768@2x" xvfb-run -a -s "-screen 0 2732x1536x24" \
  "$app" --screenshots "$out" ${SPARSELAB_SCREENSHOT_ARGS:-} resources/models/stories260K-hf
# Recovery after pruning, half-way: the training curve beside the heat-map (1366 × 768).
# shellcheck disable=SC2086
SPARSELAB_SCREENSHOT_MIDRUN="recovery-1366x768" SPARSELAB_SCREENSHOT_RECOVERY=1 xvfb-run -a -s "-screen 0 1366x768x24" \
  "$app" --screenshots "$out" ${SPARSELAB_SCREENSHOT_ARGS:-} resources/models/stories260K-hf
for png in "$out"/*.png; do
  size=$(stat -c %s "$png")
  printf '%8d bytes  %s\n' "$size" "$png"
  if (( size > 150000 )); then
    echo "screenshots: warning: $png is larger than 150 KB" >&2
  fi
done
