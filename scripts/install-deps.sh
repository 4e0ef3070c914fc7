#!/usr/bin/env bash
# Installs the Debian 12 packages SparseLab needs to build, test and run — only those
# that are missing, so a second run is quick. Run as root (or with sudo).
set -euo pipefail

packages=(
  cmake ninja-build g++ ccache pkg-config
  qt6-base-dev qt6-tools-dev libqcustomplot-dev libgl-dev
  libtorch-dev libopenblas-dev
  libhdf5-dev nlohmann-json3-dev libsentencepiece-dev
  hdf5-tools python3-h5py
  xvfb xauth
  poppler-utils   # pdftotext/pdfinfo: the report tests read the PDF back
)

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
