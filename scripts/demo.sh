#!/usr/bin/env bash
# The main job: install dependencies, build, find the faces in the bundled photo and
# predict their gender and age with face-api's trained networks (data/models), or do the
# same for the photos/directories given as arguments.
#   scripts/demo.sh                              (the README's first command)
#   scripts/demo.sh --annotate out/ photos/      (also draw boxes, landmarks, labels)
#   scripts/demo.sh --model my.safetensors faces/   (your model on face crops)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target softbio-predict
if (($# == 0)); then set -- data/astronaut.png; fi
exec build/examples/softbio-predict "$@"
