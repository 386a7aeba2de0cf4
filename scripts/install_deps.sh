#!/usr/bin/env bash
# Installs the Debian packages softbio's build, tests, demo and benchmarks need.
# Runs apt-get only when something is missing (uses sudo when not root).
set -euo pipefail
packages=(build-essential cmake libeigen3-dev nlohmann-json3-dev libstb-dev doctest-dev libbenchmark-dev
          python3 python3-numpy python3-torch python3-torchvision python3-pil)
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
