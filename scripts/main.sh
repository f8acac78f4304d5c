#!/usr/bin/env bash
# The README's main job: installs what the build needs, builds alloy (Release) and runs
# alloy-bench's fixed demo on the default device (the GPU when there is one, else the
# CPU): threads, each with its own queue, encode a matmul and a layer_norm concurrently in
# three modes (alloy lock-free, behind one global mutex, the vendor library), every result
# verified, then one line saying what ran and that every result matched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build-essential cmake ninja-build pkg-config libopenblas-dev \
  liblapacke-dev
build=${ALLOY_BUILD_DIR:-build/release}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ALLOY_CMAKE_ARGS:-} >/dev/null
ninja -C "$build" alloy-bench
"$build/bench/alloy-bench" --demo "$@"
