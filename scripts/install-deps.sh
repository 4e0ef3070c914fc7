#!/usr/bin/env bash
# Installs the Debian 12 packages SparseLab needs to build, test and run — only those
# that are missing, so a second run is quick. Run as root (or with sudo).
set -euo pipefail

packages=(
  cmake ninja-build g++ ccache pkg-config
  qt6-base-dev qt6-tools-dev qt6-svg-dev libqcustomplot-dev libgl-dev
  libtorch-dev libopenblas-dev
  libhdf5-dev nlohmann-json3-dev libsentencepiece-dev
  hdf5-tools python3-h5py
  xvfb xauth
  dpkg-dev file lintian            # the .deb (cpack's dpkg-shlibdeps) and its lint
  poppler-utils   # pdftotext/pdfinfo: the report tests read the PDF back
)
# scripts/fuzz.sh (libFuzzer) and scripts/check_deb_install.sh (clean Debian root):
# only with SPARSELAB_EXTRA_DEPS=1, CI does not need them.
if [[ ${SPARSELAB_EXTRA_DEPS:-0} == 1 ]]; then
  packages+=(clang-14 libclang-rt-14-dev debootstrap)
fi
# --reference-tools: what scripts/make_gptq_goldens.py and scripts/compare_llama_cpp.sh need
# (not the build or the tests).
if [[ "${1:-}" == "--reference-tools" ]]; then
  packages+=(python3-numpy python3-torch python3-sentencepiece python3-tqdm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present" >&2
fi
