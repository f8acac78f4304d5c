#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds alloy (Release, with
# the CUDA backend when nvcc is present) and runs the whole suite with ctest.
# GPU tests print a SKIP line and pass on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build-essential cmake ninja-build pkg-config binutils \
  libopenblas-dev liblapacke-dev
build=${ALLOY_BUILD_DIR:-build/release}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ALLOY_CMAKE_ARGS:-} >/dev/null
ninja -C "$build"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" ${ALLOY_CTEST_ARGS:-}
