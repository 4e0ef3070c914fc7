#!/usr/bin/env bash
# Prepares gpu-bundle/ (git-ignored), what a GPU machine without network lacks, to be carried
# there with the working tree (scripts/gpu_check.sh uses it):
#   gpu-bundle/deb/usr/...      Debian packages unpacked with `apt-get download` + `dpkg -x`:
#                               nlohmann-json3-dev (header only; CMake config under
#                               usr/share/cmake/nlohmann_json) and libhdf5-dev + libhdf5-103-1
#                               (headers and libhdf5_serial; the workspace store needs them);
#                               gpu_check.sh passes gpu-bundle/deb/usr in CMAKE_PREFIX_PATH and
#                               HDF5_ROOT=gpu-bundle/deb/usr/lib/x86_64-linux-gnu/hdf5/serial;
#   gpu-bundle/lib/             the shared libraries libhdf5_serial needs beyond glibc (libsz,
#                               libaec, libcurl-gnutls and its closure, as `ldd` lists them on
#                               this Debian machine), for the linker and LD_LIBRARY_PATH there;
#   gpu-bundle/reference/       the published SparseGPT solver (IST-DASLab/sparsegpt:
#                               sparsegpt.py, quant.py, LICENSE) for the side-by-side benchmark
#                               (bench/reference_sparsegpt_block.py), from a local clone given
#                               as $1 or $SPARSEGPT_REPO (a bare git directory or a checkout);
#   gpu-bundle/e2e/             the end-to-end run's tokenizer (GPT-2's tokenizer.json) and
#                               calibration text (WikiText-2 test + Tiny Shakespeare), from
#                               ../shared/data (see its README for sources and licenses).
# Re-running replaces the folder. Needs apt-get (Debian), git, and libhdf5-dev installed here
# (scripts/install-deps.sh) for the ldd closure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$root/gpu-bundle"
shared="${SPARSELAB_SHARED_DATA_DIR:-$root/../shared/data}"
repo="${1:-${SPARSEGPT_REPO:-}}"
rm -rf "$bundle"
mkdir -p "$bundle/deb" "$bundle/reference" "$bundle/debs" "$bundle/lib" "$bundle/e2e"
(cd "$bundle/debs" && apt-get download nlohmann-json3-dev libhdf5-dev libhdf5-103-1)
for deb in "$bundle"/debs/*.deb; do
  dpkg -x "$deb" "$bundle/deb"
done
rm -rf "$bundle/debs" "$bundle/deb/usr/share/doc"
# Static archives and the C++/Fortran bindings are not used: the tree that travels stays small.
find "$bundle/deb" \( -name '*.a' -o -name '*fortran*' -o -name '*_cpp*' -o -name '*.mod' \) -exec rm -rf {} +
test -f "$bundle/deb/usr/include/nlohmann/json.hpp"
test -f "$bundle/deb/usr/include/hdf5/serial/hdf5.h"
hdf5_so="$bundle/deb/usr/lib/x86_64-linux-gnu/libhdf5_serial.so.103"
test -e "$hdf5_so"
# The libraries libhdf5_serial pulls in, except glibc's own (the GPU machine has a newer glibc).
ldd "$hdf5_so" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libresolv|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
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
if [[ -d "$shared" ]]; then
  cp "$shared/tokenizers/gpt2/tokenizer.json" "$bundle/e2e/tokenizer.json"
  cat "$shared/text/wikitext-2-raw/wiki.test.raw" "$shared/text/tinyshakespeare/"*.txt > "$bundle/e2e/calib.txt"
else
  echo "note: no shared data at $shared; the end-to-end run will be skipped" >&2
fi
du -sh "$bundle"
