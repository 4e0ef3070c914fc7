#!/usr/bin/env bash
# Prepares gpu-bundle/ (git-ignored), the small dependencies a GPU machine without network
# lacks, to be carried there with the working tree (scripts/gpu_check.sh uses it):
#   gpu-bundle/deb/usr/...      Debian packages unpacked with `apt-get download` + `dpkg -x`:
#                               nlohmann-json3-dev (header only; CMake config under
#                               usr/share/cmake/nlohmann_json) — pass gpu-bundle/deb/usr in
#                               CMAKE_PREFIX_PATH;
#   gpu-bundle/reference/       the published SparseGPT solver (IST-DASLab/sparsegpt:
#                               sparsegpt.py, quant.py, LICENSE) for the side-by-side benchmark
#                               (bench/reference_sparsegpt_block.py), from a local clone given
#                               as $1 or $SPARSEGPT_REPO (a bare git directory or a checkout).
# Re-running replaces the folder. Needs apt-get (Debian) and git.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$root/gpu-bundle"
repo="${1:-${SPARSEGPT_REPO:-}}"
rm -rf "$bundle"
mkdir -p "$bundle/deb" "$bundle/reference" "$bundle/debs"
(cd "$bundle/debs" && apt-get download nlohmann-json3-dev)
for deb in "$bundle"/debs/*.deb; do
  dpkg -x "$deb" "$bundle/deb"
done
rm -rf "$bundle/debs"
test -f "$bundle/deb/usr/include/nlohmann/json.hpp"
if [[ -n "$repo" ]]; then
  if [[ -d "$repo/.git" ]]; then gitdir="$repo/.git"; else gitdir="$repo"; fi
  commit="$(git --git-dir="$gitdir" rev-parse HEAD)"
  for f in sparsegpt.py quant.py LICENSE; do
    git --git-dir="$gitdir" show "HEAD:$f" > "$bundle/reference/$f"
  done
  echo "IST-DASLab/sparsegpt $commit" > "$bundle/reference/SOURCE"
else
  echo "note: no IST-DASLab/sparsegpt clone given; the reference benchmark will be skipped" >&2
fi
du -sh "$bundle"
