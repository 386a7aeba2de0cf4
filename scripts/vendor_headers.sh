#!/usr/bin/env bash
# scripts/vendor_headers.sh — copy softbio's header-only dependencies from this machine into
# third_party/ (git-ignored), for a machine that lacks Debian's -dev packages (the bare GPU
# machine of benchmarks/gpu_check.sh: nvcc, CMake, ninja and PyTorch, nothing else).
#
#   scripts/vendor_headers.sh            fill third_party/ from /usr (Debian's packages)
#   scripts/vendor_headers.sh --check    say what third_party/ holds, exit 1 if incomplete
#
# What it copies (and the Debian package it comes from):
#   include/eigen3/             + share/eigen3/cmake/          libeigen3-dev (3.4)
#   include/nlohmann/           + share/cmake/nlohmann_json/   nlohmann-json3-dev
#   include/doctest/            + lib/cmake/doctest/           doctest-dev
#   include/stb/                                               libstb-dev
# about 13 MB. The CMake package files come along so that find_package() works there as it
# does on this machine: Eigen's and nlohmann_json's locate their prefix relative to
# themselves; doctest's hard-codes /usr, and the copy is rewritten to do the same.
#
# How it is used: cmake/softbioDependencies.cmake looks in third_party/ for each package the
# system lacks (the system's copy wins when there is one), so nothing else changes: run
# this script here, carry third_party/ to the other machine (the device tool: carry
# ["third_party"]), configure as usual. Environment: SOFTBIO_VENDOR_FROM (default /usr).
# scripts/rehearse_bare_gpu_machine.sh checks it here: gpu_check.sh with those packages hidden.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=third_party
FROM=${SOFTBIO_VENDOR_FROM:-/usr}

# dest path | source path | Debian package
ITEMS=(
  "include/eigen3|include/eigen3|libeigen3-dev"
  "share/eigen3/cmake|share/eigen3/cmake|libeigen3-dev"
  "include/nlohmann|include/nlohmann|nlohmann-json3-dev"
  "share/cmake/nlohmann_json|share/cmake/nlohmann_json|nlohmann-json3-dev"
  "include/doctest|include/doctest|doctest-dev"
  "lib/cmake/doctest|lib/cmake/doctest|doctest-dev"
  "include/stb|include/stb|libstb-dev"
)

if [[ ${1:-} == --check ]]; then
  missing=0
  for item in "${ITEMS[@]}"; do
    IFS='|' read -r dst _ pkg <<< "$item"
    if [[ -d $DEST/$dst ]]; then echo "ok       $DEST/$dst"; else echo "MISSING  $DEST/$dst ($pkg)"; missing=1; fi
  done
  exit $missing
fi
[[ $# -eq 0 ]] || { echo "usage: $0 [--check]" >&2; exit 2; }

# Everything must be there before anything is copied.
missing=()
for item in "${ITEMS[@]}"; do
  IFS='|' read -r _ src pkg <<< "$item"
  [[ -d $FROM/$src ]] || missing+=("$FROM/$src (Debian: $pkg)")
done
if (( ${#missing[@]} )); then
  echo "vendor_headers.sh: this machine lacks what third_party/ should hold:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi

# Copy into a fresh folder, then swap it in: an interrupted run leaves the old copy intact.
tmp=$DEST.tmp.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
for item in "${ITEMS[@]}"; do
  IFS='|' read -r dst src _ <<< "$item"
  mkdir -p "$tmp/$(dirname "$dst")"
  cp -rL "$FROM/$src" "$tmp/$dst"
done
# doctest's targets file names its prefix absolutely ("/usr"): make it relative to the file.
sed -i 's|^set(_IMPORT_PREFIX "[^"]*")$|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
    "$tmp/lib/cmake/doctest/doctestTargets.cmake"
grep -q 'CMAKE_CURRENT_LIST_DIR}/../../..' "$tmp/lib/cmake/doctest/doctestTargets.cmake" \
  || { echo "vendor_headers.sh: could not make doctestTargets.cmake relocatable" >&2; exit 1; }
{
  echo "Header-only dependencies of softbio, copied by scripts/vendor_headers.sh from $FROM on $(hostname) at $(date -u +%FT%TZ)."
  echo "Used by cmake/softbioDependencies.cmake only for what the system lacks. Not part of the repository (git-ignored)."
  if command -v dpkg-query > /dev/null; then
    dpkg-query -W -f='${Package} ${Version}\n' libeigen3-dev nlohmann-json3-dev doctest-dev libstb-dev 2>/dev/null || true
  fi
} > "$tmp/README.txt"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
echo "vendor_headers.sh: $(du -sh "$DEST" | cut -f1) in $DEST/ (git-ignored; carry it to a machine without the -dev packages)"
