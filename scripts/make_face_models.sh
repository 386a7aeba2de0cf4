#!/usr/bin/env bash
# scripts/make_face_models.sh [--package-dir DIR] [OUT_DIR]
#
# Fetches the npm package @vladmandic/face-api 1.7.15 (MIT) with `npm pack`, checks it
# against the integrity hash pinned in tests/face/reference/package-lock.json, and converts
# its three TF.js networks into softbio files (weights_converter/tfjs.py):
#   OUT_DIR/faceapi_tiny_face_detector.safetensors   from model/tiny_face_detector_model
#   OUT_DIR/faceapi_landmark68.safetensors           from model/face_landmark_68_model
#   OUT_DIR/faceapi_age_gender.safetensors           from model/age_gender_model
#   OUT_DIR/LICENSE-face-api.txt                     the package's MIT notice
# OUT_DIR defaults to data/models. The output is a pure function of the package: running
# this again gives the same bytes (tests/python/test_tfjs_converter.py checks the
# committed files against a fresh conversion).
#
# --package-dir DIR converts an already unpacked copy of the package instead (a folder
# holding package.json, LICENSE and model/, e.g. node_modules/@vladmandic/face-api from
# scripts/fetch_face_reference.sh); nothing is downloaded then.
#
# Needs: npm (unless --package-dir), tar, and a Python 3 with numpy ($PYTHON, default
# /usr/bin/python3 when it exists, else python3).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
package_dir=
out=$here/data/models
while [[ $# -gt 0 ]]; do
  case $1 in
    --package-dir) package_dir=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "$0: unknown option $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
python=${PYTHON:-}
if [[ -z $python ]]; then
  if [[ -x /usr/bin/python3 ]]; then python=/usr/bin/python3; else python=python3; fi
fi
package=@vladmandic/face-api
version=1.7.15
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ -z $package_dir ]]; then
  command -v npm >/dev/null 2>&1 || { echo "$0: npm not found (Debian: apt-get install npm)" >&2; exit 2; }
  want=$("$python" -c 'import json, sys
lock = json.load(open(sys.argv[1]))
print(lock["packages"]["node_modules/@vladmandic/face-api"]["integrity"])' "$here/tests/face/reference/package-lock.json")
  (cd "$work" && npm pack --silent --json "$package@$version" > pack.json)
  got=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$work/pack.json")
  tarball=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["filename"])' "$work/pack.json")
  if [[ $got != "$want" ]]; then
    echo "$0: $package@$version integrity $got differs from the pinned $want" >&2
    exit 1
  fi
  tar -xzf "$work/$tarball" -C "$work"
  package_dir=$work/package
fi
have=$("$python" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["name"] + "@" + d["version"])' \
       "$package_dir/package.json")
if [[ $have != "$package@$version" ]]; then
  echo "$0: $package_dir holds $have, expected $package@$version" >&2
  exit 1
fi

mkdir -p "$out"
for pair in tiny_face_detector_model:faceapi_tiny_face_detector face_landmark_68_model:faceapi_landmark68 \
            age_gender_model:faceapi_age_gender; do
  model=${pair%%:*}
  name=${pair##*:}
  (cd "$here" && "$python" -m weights_converter.convert --tfjs -q \
     "$package_dir/model/$model-weights_manifest.json" -o "$out/$name.safetensors.tmp")
  mv "$out/$name.safetensors.tmp" "$out/$name.safetensors"
done
{
  echo "The files faceapi_tiny_face_detector.safetensors, faceapi_landmark68.safetensors and"
  echo "faceapi_age_gender.safetensors in this folder hold the trained weights of the npm package"
  echo "$package $version (https://github.com/vladmandic/face-api), files model/tiny_face_detector_model*,"
  echo "model/face_landmark_68_model* and model/age_gender_model*, decoded to float32 by"
  echo "scripts/make_face_models.sh (weights_converter/tfjs.py). They are distributed under the"
  echo "package's licence, reproduced here from its LICENSE file:"
  echo
  cat "$package_dir/LICENSE"
} > "$out/LICENSE-face-api.txt"
echo "wrote $out: $(cd "$out" && ls faceapi_*.safetensors LICENSE-face-api.txt | tr '\n' ' ')"
