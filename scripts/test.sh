#!/usr/bin/env bash
# The test command: install dependencies, configure, build, run every test; then the C++
# suite once more under AddressSanitizer + UndefinedBehaviorSanitizer.
#   scripts/test.sh            (the README's second command; CI runs exactly this)
#   scripts/test.sh -L unit    (extra arguments go to the main ctest: one tier, -R NAME, ...;
#                               the sanitizer stage is then left out unless SOFTBIO_SANITIZE=1)
# Stages:
#   1. the default preset (build/): every tier, ctest labels of tests/CMakeLists.txt: unit
#      (C++ only), converter (numpy; + hypothesis for the mutated checkpoints), cli (Pillow
#      + numpy), parity (PyTorch), consumer (outside builds), cuda, fuzz (each libFuzzer
#      target for SOFTBIO_FUZZ_SECONDS, default 60; clang), sanitize (ThreadSanitizer)
#   2. the sanitize preset (build-sanitize/): tiers unit and cli built with
#      -fsanitize=address,undefined (CMakePresets.json says what is left out and why)
# Both stages run even when the first fails; the exit status is non-zero if either did.
# Environment: SOFTBIO_SANITIZE=0|1 leaves out / forces stage 2; SOFTBIO_FUZZ_SECONDS=N.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
status=0
stage() { echo "softbio test.sh: $1 took $(($(date +%s) - $2)) s"; }

t0=$(date +%s)
cmake --preset default ${SOFTBIO_FUZZ_SECONDS:+-DSOFTBIO_FUZZ_SECONDS=$SOFTBIO_FUZZ_SECONDS}
cmake --build --preset default
stage "configure + build (default)" "$t0"
t1=$(date +%s)
ctest --preset default -j 2 "$@" || status=$?
stage "ctest (default)" "$t1"

sanitize=${SOFTBIO_SANITIZE:-}
if [[ -z $sanitize ]]; then
  sanitize=$(($# == 0))
fi
if [[ $sanitize == 1 ]]; then
  t2=$(date +%s)
  cmake --preset sanitize
  cmake --build --preset sanitize
  stage "configure + build (sanitize)" "$t2"
  t3=$(date +%s)
  ctest --preset sanitize || status=$?
  stage "ctest (sanitize: ASan + UBSan)" "$t3"
fi
stage "scripts/test.sh" "$t0"
exit $status
