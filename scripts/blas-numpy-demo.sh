#!/usr/bin/env bash
# numpy on alloy: runs scripts/blas_numpy_demo.py with Debian's python3-numpy
# (/usr/bin/python3) and liballoy-blas preloaded (docs/blas.md shows its output).
#
#   scripts/blas-numpy-demo.sh [path/to/liballoy-blas.so]
#
# Without a path it builds liballoy-blas in ${ALLOY_BUILD_DIR:-build/release} first.
#
# Installs python3-numpy with apt-get (scripts/deps.sh) when running as root; where it
# cannot, exits 77 (ctest: skipped), or 1 when CI is set.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lib="${1:-}"
if [ -z "$lib" ]; then
  # No library given: build (or bring up to date) the one of the Release build.
  build="${ALLOY_BUILD_DIR:-build/release}"
  case "$build" in /*) ;; *) build="$root/$build" ;; esac
  if [ ! -f "$build/build.ninja" ]; then
    bash "$root/scripts/deps.sh" build-essential cmake ninja-build pkg-config libopenblas-dev \
      liblapacke-dev || exit 1
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ALLOY_CMAKE_ARGS:-} >/dev/null || exit 1
  fi
  out="$(ninja -C "$build" alloy_blas 2>&1)" || { echo "$out"; echo "blas-numpy-demo: building liballoy-blas failed" >&2; exit 1; }
  lib="$build/src/blas/liballoy-blas.so"
fi
if [ ! -f "$lib" ]; then
  echo "blas-numpy-demo: $lib not found" >&2
  exit 1
fi
lib="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    bash "$root/scripts/deps.sh" python3-numpy || { echo "could not install python3-numpy" >&2; [ -n "${CI:-}" ] && exit 1; exit 77; }
  else
    echo "blas-numpy-demo: /usr/bin/python3 has no numpy (apt-get install python3-numpy)" >&2
    [ -n "${CI:-}" ] && exit 1
    exit 77
  fi
fi
LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" /usr/bin/python3 "$root/scripts/blas_numpy_demo.py"
