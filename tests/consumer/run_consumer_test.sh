#!/usr/bin/env bash
# Builds tests/consumer (main.cpp, a program of its own, and examples/minimal.cpp) as an
# outside project, each way softbio can be consumed, and runs both programs:
#   subdirectory: add_subdirectory(<softbio source>)
#   package:      cmake --install softbio to a temporary prefix, then find_package(softbio)
#   plain:        no CMake for the consumer: g++ -I<softbio source>/include, then the same
#                 against an installed prefix (g++ -I<prefix>/include); the include
#                 directory is all a user needs besides Eigen, OpenMP, nlohmann-json and stb
# usage: run_consumer_test.sh subdirectory|package|plain SOFTBIO_SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"

# cmake --install softbio (the library only) to $work/prefix, and check what it holds:
# the kernels as real files under include/softbio/kernels (the source tree reaches them
# through a symlink), without the CUDA development drivers (kernels/cuda/dev).
install_prefix() {
  cmake -S "$src" -B "$work/softbio-build" -DSOFTBIO_BUILD_TESTS=OFF -DSOFTBIO_BUILD_BENCHMARKS=OFF \
        -DSOFTBIO_BUILD_EXAMPLES=OFF -DSOFTBIO_CUDA=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix"
  cmake --install "$work/softbio-build"
  local kernels="$work/prefix/include/softbio/kernels"
  local problems=()
  [[ -d $kernels && ! -L $kernels ]] || problems+=("$kernels is not a real directory")
  [[ -f $kernels/cpu/conv2d.hpp && ! -L $kernels/cpu/conv2d.hpp ]] || problems+=("no file $kernels/cpu/conv2d.hpp")
  [[ ! -e $kernels/cuda/dev ]] || problems+=("$kernels/cuda/dev is installed (development drivers)")
  local links
  links=$(find "$work/prefix/include" -type l)
  [[ -z $links ]] || problems+=("symbolic links installed: $links")
  if ((${#problems[@]})); then
    printf 'FAIL: installed prefix: %s\n' "${problems[@]}" >&2
    exit 1
  fi
}

# run DIR: the consumer writes a small synthetic model, minimal predicts the bundled image with it.
run() {
  "$1/consumer" "$1/model.safetensors"
  "$1/minimal" "$1/model.safetensors" "$src/data/astronaut.png"
}

case $mode in
  subdirectory)
    cmake -S "$src/tests/consumer" -B "$work/build" -DSOFTBIO_MODE=subdirectory -DSOFTBIO_SOURCE_DIR="$src" \
          -DCMAKE_BUILD_TYPE=Release
    ;;
  package)
    install_prefix
    cmake -S "$src/tests/consumer" -B "$work/build" -DSOFTBIO_MODE=package -DCMAKE_PREFIX_PATH="$work/prefix" \
          -DCMAKE_BUILD_TYPE=Release
    ;;
  plain)
    # What the README's no-CMake line gives a user; stb is found as <stb/stb_image.h> in
    # /usr/include and nlohmann-json in /usr/include (Debian's libstb-dev, nlohmann-json3-dev).
    cxx=${CXX:-g++}
    flags=(-std=c++17 -O2 -fopenmp)
    install_prefix
    for where in source:"$src/include" prefix:"$work/prefix/include"; do
      root=${where#*:} out="$work/plain-${where%%:*}"
      mkdir -p "$out"
      echo "plain build against $root: $cxx ${flags[*]} -I$root -I/usr/include/eigen3"
      "$cxx" "${flags[@]}" -I"$root" -I/usr/include/eigen3 "$src/tests/consumer/main.cpp" -o "$out/consumer" &
      consumer_pid=$!
      "$cxx" "${flags[@]}" -I"$root" -I/usr/include/eigen3 "$src/examples/minimal.cpp" -o "$out/minimal" &
      minimal_pid=$!
      failed=0
      wait "$consumer_pid" || failed=1
      wait "$minimal_pid" || failed=1
      ((failed == 0)) || { echo "FAIL: plain build against $root" >&2; exit 1; }
      run "$out"
    done
    exit 0
    ;;
  *)
    echo "usage: $0 subdirectory|package|plain SOFTBIO_SOURCE_DIR WORK_DIR" >&2
    exit 2
    ;;
esac
cmake --build "$work/build" -j 2
run "$work/build"
