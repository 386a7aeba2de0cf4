#!/usr/bin/env bash
# Builds tests/consumer as an outside project, both ways softbio can be consumed:
#   subdirectory: add_subdirectory(<softbio source>)
#   package:      cmake --install softbio to a temporary prefix, then find_package(softbio)
# usage: run_consumer_test.sh subdirectory|package SOFTBIO_SOURCE_DIR WORK_DIR
set -euo pipefail
mode=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
if [[ $mode == subdirectory ]]; then
  cmake -S "$src/tests/consumer" -B "$work/build" -DSOFTBIO_MODE=subdirectory -DSOFTBIO_SOURCE_DIR="$src" -DCMAKE_BUILD_TYPE=Release
else
  cmake -S "$src" -B "$work/softbio-build" -DSOFTBIO_BUILD_TESTS=OFF -DSOFTBIO_BUILD_BENCHMARKS=OFF \
        -DSOFTBIO_BUILD_EXAMPLES=OFF -DSOFTBIO_CUDA=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix"
  cmake --install "$work/softbio-build"
  test -f "$work/prefix/include/softbio/kernels/cpu/conv2d.hpp"
  cmake -S "$src/tests/consumer" -B "$work/build" -DSOFTBIO_MODE=package -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$work/build" -j 2
"$work/build/consumer" "$work/model.safetensors"
"$work/build/minimal" "$work/model.safetensors" "$src/data/astronaut.png"
