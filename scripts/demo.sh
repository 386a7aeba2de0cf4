#!/usr/bin/env bash
# The main job: install dependencies, build, predict gender and age for the bundled
# face image (or for the images/directories given as arguments).
#   scripts/demo.sh                      (the README's first command)
#   scripts/demo.sh --model my.safetensors faces/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target softbio-predict
if (($# == 0)); then set -- data/astronaut.png; fi
exec build/examples/softbio-predict "$@"
