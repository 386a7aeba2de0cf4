#!/usr/bin/env bash
# scripts/rehearse_bare_gpu_machine.sh — run benchmarks/gpu_check.sh here as the bare GPU machine
# would: in a private mount namespace where Debian's -dev packages softbio uses are hidden
# (Eigen, nlohmann-json, doctest, stb: headers, CMake package files, pkg-config files; and
# Google Benchmark), so that only third_party/ (scripts/vendor_headers.sh) can provide them.
#
#   scripts/rehearse_bare_gpu_machine.sh              BUILD_ONLY=1: configure + build every target
#   scripts/rehearse_bare_gpu_machine.sh --full       the whole run (without a GPU its GPU tests
#                                                     report skipped = failed, timings are empty)
# Environment: BUILD_DIR (default build-gpu-rehearsal), OUT (default BUILD_DIR/results),
# BUILD_JOBS; anything else gpu_check.sh reads. Nothing outside the namespace changes.
#
# It first checks that the hidden headers really are invisible to the compiler, then runs a
# snapshot of gpu_check.sh (copied into BUILD_DIR: other people editing the script while it
# runs cannot break the run). Needs root or unprivileged user namespaces (unshare -rm).
#
# Rehearsals on the 2-core development machine (nvcc 13.0, CMake 3.25, no GPU, no libcuda):
#   2026-12-02, BUILD_ONLY=1 from an empty build folder: configure took Eigen3, nlohmann_json
#   and doctest from third_party/ (stb too: SOFTBIO_STB_INCLUDE_DIR = third_party/include) and
#   built all 9 targets (8 in tests/cuda + softbio-predict with --device cuda) in 443 s, and in
#   662 s with the final test set (2 cores shared with other builds).
#   2026-12-02, --full (SKIP_TUNE=1): the same build, then every step ran to the summary table:
#   the emulator test passed, the GPU tests reported skipped, test_predict_cli's CPU checks
#   passed and its SOFTBIO_REQUIRE_GPU check failed as it must without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [[ ${1:-} != --inside ]]; then
  mode=${1:-build-only}
  [[ $mode == build-only || $mode == --full ]] || { echo "usage: $0 [--full]" >&2; exit 2; }
  [[ -d third_party/include ]] || { echo "no third_party/: run scripts/vendor_headers.sh first" >&2; exit 2; }
  if [[ $(id -u) == 0 ]]; then ns=(unshare -m); else ns=(unshare -rm); fi
  exec "${ns[@]}" "$0" --inside "$mode"
fi

# ---- inside the namespace ---------------------------------------------------------------------
mode=$2
mount --make-rprivate / 2> /dev/null || true
empty=$(mktemp -d)
for d in /usr/include/eigen3 /usr/include/nlohmann /usr/include/doctest /usr/include/stb /usr/share/eigen3 \
         /usr/share/cmake/nlohmann_json /usr/lib/cmake/doctest /usr/lib/x86_64-linux-gnu/cmake/benchmark \
         /usr/include/benchmark; do
  if [[ -e $d ]]; then mount --bind "$empty" "$d"; echo "hidden: $d"; fi
done
for f in /usr/share/pkgconfig/eigen3.pc /usr/share/pkgconfig/nlohmann_json.pc; do
  if [[ -e $f ]]; then mount --bind /dev/null "$f"; echo "hidden: $f"; fi
done
visible=0
for h in Eigen/Core nlohmann/json.hpp doctest/doctest.h stb/stb_image.h; do
  if echo "#include <$h>" | g++ -x c++ -fsyntax-only -I/usr/include/eigen3 - 2> /dev/null; then
    echo "STILL VISIBLE: <$h>"; visible=1
  else
    echo "absent: <$h>"
  fi
done
(( visible == 0 )) || { echo "the system still provides a hidden header: not a rehearsal" >&2; exit 1; }

BUILD_DIR=${BUILD_DIR:-$ROOT/build-gpu-rehearsal}
mkdir -p "$BUILD_DIR"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
export BUILD_DIR
# gpu_check.sh cds to "$(dirname "$0")/..": the snapshot must sit one level below the root.
[[ $(dirname "$BUILD_DIR") == "$ROOT" ]] || { echo "BUILD_DIR must be a folder directly in $ROOT" >&2; exit 2; }
snapshot=$BUILD_DIR/gpu_check_snapshot.sh
cp benchmarks/gpu_check.sh "$snapshot"
if [[ $mode == build-only ]]; then export BUILD_ONLY=1; fi
echo "--- gpu_check.sh ($mode), build in $BUILD_DIR"
set +e
"$snapshot"
rc=$?
echo "gpu_check.sh exit $rc"
exit $rc
