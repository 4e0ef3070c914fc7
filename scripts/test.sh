#!/usr/bin/env bash
# Installs what is missing, builds everything (GUI included) and runs every test with CTest.
# Tests that need ../shared/data (third-party references) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DSPARSELAB_TESTS=ON
# The benchmarks in bench/ are not tests, but they must keep building: one stopped compiling
# unnoticed when an engine header gained a function of the same name.
cmake --build build --target bench
# The .deb from the same build (seconds: it packs the already built binaries) and its lint;
# installing it into a clean root is scripts/check_deb_install.sh (minutes, by hand).
(cd build && cpack -G DEB >/dev/null && lintian --fail-on error sparselab_*.deb)
cd build
ctest --output-on-failure --timeout 1500 -j 1 "$@"
