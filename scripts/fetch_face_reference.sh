#!/usr/bin/env bash
# scripts/fetch_face_reference.sh DIR — install the face-api reference (Node) into DIR.
#
# Installs the npm packages pinned by tests/face/reference/package.json and
# package-lock.json (@vladmandic/face-api 1.7.15, @tensorflow/tfjs 4.22.0,
# @tensorflow/tfjs-backend-wasm 4.22.0, jpeg-js 0.4.4 and their dependencies, each at the
# locked version and integrity hash) into DIR/node_modules, with `npm ci --ignore-scripts`:
# no install scripts run, no native code is built; the wasm backend's .wasm files ship in
# the package. Needs node (>= 14; tested with 20) and npm, and the npm registry.
#
# DIR is usually a build tree folder (e.g. build/face-reference); the tests then run
#   node tests/face/reference/reference.js <command> --modules DIR ...
# A second run with the same pinned files does nothing (DIR/.softbio-stamp records them).
#
# Exit status: 0 installed (or already there), 1 npm failed, 2 usage or node/npm missing.
set -euo pipefail
if [[ $# -ne 1 || $1 == -* ]]; then
  echo "usage: $0 DIR   (installs the pinned face-api reference packages into DIR/node_modules)" >&2
  exit 2
fi
dir=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$here/tests/face/reference
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$0: $tool not found (Debian: apt-get install nodejs npm)" >&2
    exit 2
  fi
done
mkdir -p "$dir"
stamp=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ -f $dir/.softbio-stamp && $(cat "$dir/.softbio-stamp") == "$stamp" && -d $dir/node_modules/@vladmandic/face-api ]]; then
  echo "face-api reference already installed in $dir"
  exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dir/"
rm -f "$dir/.softbio-stamp"
if ! (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
  echo "$0: npm ci failed in $dir (is the npm registry reachable?)" >&2
  exit 1
fi
echo "$stamp" > "$dir/.softbio-stamp"
echo "face-api reference installed in $dir: $(cd "$dir" && node -p "['@vladmandic/face-api','@tensorflow/tfjs','@tensorflow/tfjs-backend-wasm','jpeg-js'].map(p => p + ' ' + require(p + '/package.json').version).join(', ')")"
