#!/usr/bin/env bash
# tests/face/make_face_data.sh REFERENCE_DIR — regenerate tests/face/data/ with the face-api reference.
#
# REFERENCE_DIR holds the npm packages (scripts/fetch_face_reference.sh REFERENCE_DIR).
# Runs tests/face/reference/reference.js on data/astronaut.png (decoded with Pillow: the
# PNG's exact RGB pixels, which stb_image decodes identically) and writes, for the C++
# parity tests that must run without Node:
#   astronaut_pipeline.json                      the whole face-api chain at 416 px
#                                                (boxes, scores, 68 landmarks, age, gender)
#   astronaut_detector320_input.npy  [1,320,320,3]   the detector alone: pixel-domain input
#   astronaut_detector320_output.npy [1,10,10,25]    (padded right/bottom, resized to 320)
#   astronaut_face0_landmark68_input.npy  [1,112,112,3]  the landmark net alone, on the
#   astronaut_face0_landmark68_output.npy [1,136]        crop of face 0's detection box
#   astronaut_face0_age_gender_input.npy  [1,112,112,3]  the age/gender net alone, on the
#   astronaut_face0_age_gender_age.npy    [1]            crop of face 0's aligned rect
#   astronaut_face0_age_gender_gender_logits.npy [1,2]
# See tests/face/data/README.md and docs/FACE_MODELS.md §11 for what each tensor is.
set -euo pipefail
if [[ $# -ne 1 ]]; then echo "usage: $0 REFERENCE_DIR" >&2; exit 2; fi
ref=$(cd "$1" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$here/tests/face/data
python=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
reference=(node "$here/tests/face/reference/reference.js")
"$python" -c 'import sys; from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB"); open(sys.argv[2], "wb").write(im.tobytes()); print(*im.size)' \
  "$here/data/astronaut.png" "$work/astronaut.rgb" > "$work/size"
read -r width height < "$work/size"
"${reference[@]}" pipeline --modules "$ref" --rgb "$work/astronaut.rgb" --width "$width" --height "$height" \
  --dump-dir "$work/dump" > "$work/pipeline.json"
"${reference[@]}" net --modules "$ref" --net tiny_face_detector --rgb "$work/astronaut.rgb" --width "$width" \
  --height "$height" --size 320 --out "$work/det320_" > /dev/null
mkdir -p "$out"
# The JSON without the machine-dependent parts (Node's version, the dump list).
"$python" -c 'import json, sys
d = json.load(open(sys.argv[1]))
d.pop("dumped", None)
d["versions"].pop("node", None)
d["image"]["file"] = "data/astronaut.png"
open(sys.argv[2], "w").write(json.dumps(d, indent=1) + "\n")' "$work/pipeline.json" "$out/astronaut_pipeline.json"
cp "$work/det320_input.npy" "$out/astronaut_detector320_input.npy"
cp "$work/det320_output.npy" "$out/astronaut_detector320_output.npy"
for f in landmark68_input landmark68_output age_gender_input age_gender_age age_gender_gender_logits; do
  cp "$work/dump/face0_$f.npy" "$out/astronaut_face0_$f.npy"
done
du -ch "$out"/*.npy | tail -1
