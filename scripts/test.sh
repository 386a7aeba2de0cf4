#!/usr/bin/env bash
# The test command: install dependencies, configure, build, run every test.
#   scripts/test.sh            (the README's second command; CI runs exactly this)
#   scripts/test.sh -L unit    (extra arguments go to ctest: one tier, -R NAME, ...)
# Tiers (ctest labels, tests/CMakeLists.txt): unit (C++ only), converter (numpy), cli
# (Pillow + numpy), parity (PyTorch), consumer (outside builds), cuda. Without arguments
# every tier runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake --preset default
cmake --build --preset default
ctest --preset default -j 2 "$@"
