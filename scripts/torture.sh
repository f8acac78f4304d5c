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
# Options after the defaults override them (see the comment at the top of tests/torture.c).
# Environment:
#   TORTURE_THREADS, TORTURE_SECONDS, TORTURE_OPS   the same as -t, -s, -n
#   TORTURE_SANITIZE=thread|address   build with clang under TSan or ASan+UBSan (slower:
#                                     give -s or -n); build dir build-torture-tsan/-asan
#   ALLOY_TORTURE_BUILD_DIR           build directory (default build-torture)
set -euo pipefail
cd "$(dirname "$0")/.."
san=${TORTURE_SANITIZE:-}
flags=""
case "$san" in
  "") build=${ALLOY_TORTURE_BUILD_DIR:-build-torture} ;;
  thread) build=${ALLOY_TORTURE_BUILD_DIR:-build-torture-tsan}; flags="-fsanitize=thread -g"; export CC=${CC:-clang} ;;
  address) build=${ALLOY_TORTURE_BUILD_DIR:-build-torture-asan}
           flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
           export CC=${CC:-clang} ;;
  *) echo "torture.sh: TORTURE_SANITIZE must be thread or address" >&2; exit 2 ;;
esac
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DALLOY_CUDA=OFF \
  -DALLOY_BUILD_BENCH=OFF -DALLOY_REQUIRE_ORACLE=OFF -DCMAKE_C_FLAGS="$flags" >/dev/null
ninja -C "$build" torture_short >/dev/null
prog=("$build/tests/torture")
if [ "$san" = thread ]; then
  # TSan cannot map its shadow memory with some ASLR layouts.
  prog=(setarch "$(uname -m)" -R "$build/tests/torture")
fi
echo "torture.sh: running ${prog[*]}" >&2
exec "${prog[@]}" --long -t "${TORTURE_THREADS:-16}" -s "${TORTURE_SECONDS:-3600}" \
  -n "${TORTURE_OPS:-1000000}" --progress 10 "$@"
