#!/usr/bin/env bash
# Installs the Debian packages softbio's build, tests, demo and benchmarks need.
# Runs apt-get only when something is missing (uses sudo when not root).
#   clang, libclang-rt-dev, libomp-dev   the libFuzzer targets (tests/fuzz: clang with
#                                        libFuzzer and the sanitizer runtimes, and clang's
#                                        OpenMP runtime); on Debian 12 they bring clang-14,
#                                        libclang-rt-14-dev and libomp-14-dev
#   python3-hypothesis                   mutated checkpoints against the converter's
#                                        unpickler (tests/python/test_unpickler_mutations.py)
#   time                                 GNU time: peak RSS of softbio-predict in
#                                        benchmarks/e2e_compare.py --predict
#   nodejs, npm                          the face-api reference (tests/face/reference: the
#                                        original JavaScript, fetched from the npm registry
#                                        at test time) and the ONNX Runtime benchmark anchor;
#                                        skipped when node and npm are already on PATH (a
#                                        NodeSource nodejs bundles its own npm and conflicts
#                                        with Debian's npm package)
# ThreadSanitizer and AddressSanitizer/UBSan for g++ come with build-essential (libtsan2,
# libasan8, libubsan1).
set -euo pipefail
packages=(build-essential cmake libeigen3-dev nlohmann-json3-dev libstb-dev doctest-dev libbenchmark-dev
          python3 python3-numpy python3-torch python3-torchvision python3-pil python3-hypothesis
          clang libclang-rt-dev libomp-dev time)
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "softbio: installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y "${missing[@]}"
fi
