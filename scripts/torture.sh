#!/usr/bin/env bash
# The long torture run of the threading contract (issue 4, part 1).
#
# Builds alloy (Release, or under a sanitizer) and runs tests/torture with its long
# defaults: 16 threads running a random mix of every op, dtype and shape family until
# 1,000,000 operations have been checked or 60 minutes have passed, whichever comes first,
# with progress on stderr every 10 s, the huge-batch phase included. Every result is
# compared bit for bit with the same op run alone on a quiet device. The last line is the
# summary: "torture: ops=N threads=T mismatches=0 failures=0 ..."; the exit status is 0
# only when mismatches and failures are both 0.
#
# usage: scripts/torture.sh [TORTURE OPTIONS...]
#   e.g. scripts/torture.sh -t 32 -s 600        32 threads, at most 10 minutes
#        scripts/torture.sh -n 5000000 -s 0     5M ops, no time limit
#        scripts/torture.sh --seed 0x1234       replay a run's specs (seed printed at start)
#        scripts/torture.sh --backend cuda -t 16 -s 60   the same on CUDA device 0
#        scripts/torture.sh --backend cuda --strict      ... where an op the CUDA backend does
#                                               not run yet is a failure, not "unsupported="
# Options after the defaults override them (see the comment at the top of tests/torture.c).
# --backend cuda (or --backend=cuda) builds with the CUDA backend (-DALLOY_CUDA=ON: nvcc
# needed) in its own build dir, build-torture-cuda; without a GPU the run prints
# "SKIP: no CUDA device: ..." and exits 0. --backend and --strict go on to tests/torture.
# Environment:
#   TORTURE_THREADS, TORTURE_SECONDS, TORTURE_OPS   the same as -t, -s, -n
#   TORTURE_SANITIZE=thread|address   build with clang under TSan or ASan+UBSan (slower:
#                                     give -s or -n); build dir build-torture-tsan/-asan
#   ALLOY_TORTURE_BUILD_DIR           build directory (default build-torture, or
#                                     build-torture-cuda with --backend cuda)
#   TORTURE_CUDA_TARGETS=all|sm_90a   with --backend cuda: ALLOY_CUDA_TARGETS (default all;
#                                     sm_90a builds Hopper SASS alone, quicker)
set -euo pipefail
cd "$(dirname "$0")/.."
san=${TORTURE_SANITIZE:-}
flags=""
# --backend cuda anywhere in the options: a build with the CUDA backend (the options
# themselves go to tests/torture unchanged).
backend=cpu
prev=""
for a in "$@"; do
  case "$a" in
    --backend=*) backend=${a#--backend=} ;;
    *) [ "$prev" = --backend ] && backend=$a ;;
  esac
  prev=$a
done
case "$backend" in
  cpu) cuda=(-DALLOY_CUDA=OFF); suffix="" ;;
  cuda) cuda=(-DALLOY_CUDA=ON "-DALLOY_CUDA_TARGETS=${TORTURE_CUDA_TARGETS:-all}"); suffix=-cuda ;;
  *) echo "torture.sh: --backend must be cpu or cuda" >&2; exit 2 ;;
esac
# tests/torture takes "--backend cuda", not "--backend=cuda"
args=()
for a in "$@"; do
  case "$a" in
    --backend=*) args+=(--backend "${a#--backend=}") ;;
    *) args+=("$a") ;;
  esac
done
case "$san" in
  "") build=${ALLOY_TORTURE_BUILD_DIR:-build-torture$suffix} ;;
  thread) build=${ALLOY_TORTURE_BUILD_DIR:-build-torture-tsan$suffix}; flags="-fsanitize=thread -g"; export CC=${CC:-clang} ;;
  address) build=${ALLOY_TORTURE_BUILD_DIR:-build-torture-asan$suffix}
           flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
           export CC=${CC:-clang} ;;
  *) echo "torture.sh: TORTURE_SANITIZE must be thread or address" >&2; exit 2 ;;
esac
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda[@]}" \
  -DALLOY_BUILD_BENCH=OFF -DALLOY_REQUIRE_ORACLE=OFF -DCMAKE_C_FLAGS="$flags" >/dev/null
ninja -C "$build" torture_short >/dev/null
prog=("$build/tests/torture")
if [ "$san" = thread ]; then
  # TSan cannot map its shadow memory with some ASLR layouts.
  prog=(setarch "$(uname -m)" -R "$build/tests/torture")
fi
echo "torture.sh: running ${prog[*]}" >&2
exec "${prog[@]}" --long -t "${TORTURE_THREADS:-16}" -s "${TORTURE_SECONDS:-3600}" \
  -n "${TORTURE_OPS:-1000000}" --progress 10 ${args[@]+"${args[@]}"}
