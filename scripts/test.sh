#!/usr/bin/env bash
# Installs what is missing, builds everything (GUI included) and runs every test with CTest.
# Tests that need ../shared/data (third-party references) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DSPARSELAB_TESTS=ON
cd build
ctest --output-on-failure --timeout 1500 -j 1 "$@"
