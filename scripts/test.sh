#!/usr/bin/env bash
# The test command: install dependencies, configure, build, run every test.
#   scripts/test.sh            (the README's second command; CI runs exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake --preset default
cmake --build --preset default
ctest --preset default -j 2 "$@"
