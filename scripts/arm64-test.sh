#!/usr/bin/env bash
# The portable C path on arm64 (issue 4, part 6): installs Debian's cross compiler and
# qemu-user (apt-get, as root), cross-builds alloy with cmake/aarch64.cmake -- no CUDA, no
# oracle tests (OpenBLAS/LAPACKE are not installed for arm64), warnings as errors -- and
# runs the unit tests under qemu-aarch64 -L /usr/aarch64-linux-gnu.
#
# On arm64 the x86 microkernel files are left out by the root CMakeLists.txt, so every op
# runs the portable C kernels; the build log is checked for warnings too.
#
# What qemu-user cannot run, and is left out or narrowed:
#   install_test, blas_netlib, blas_numpy  run host programs against the arm64 library
#                                          (a build, LD_PRELOAD into x86 programs);
#   torture_huge_batch                     about 200 MB and many minutes under emulation;
#   test_misuse, test_blas_threads         every case except the fork ones, one by one:
#     qemu-user 7.2 answers madvise(MADV_WIPEONFORK) with 0 but does not wipe the page,
#     so alloy's fork guard cannot see the fork under emulation (on arm64 hardware it
#     does), and qemu aborts in guests that fork while threads run.
# ARM64_CTEST_ARGS adds ctest arguments (e.g. "-R torture"); ALLOY_ARM64_BUILD_DIR picks
# the build directory (default build-arm64).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ALLOY_ARM64_BUILD_DIR:-build-arm64}
bash scripts/deps.sh gcc-aarch64-linux-gnu qemu-user libc6-dev-arm64-cross cmake ninja-build
rm -rf "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64.cmake \
  -DCMAKE_BUILD_TYPE=Release -DALLOY_CUDA=OFF -DALLOY_REQUIRE_ORACLE=OFF \
  -DALLOY_BUILD_BENCH=OFF -DALLOY_WERROR=ON
ninja -C "$build" 2>&1 | tee "$build/build.log"
if grep -E -i 'warning:' "$build/build.log"; then
  echo "arm64-test.sh: the cross build has warnings" >&2
  exit 1
fi
# The library must hold no x86 kernel code on arm64: no AVX kernel object in the archive.
# (isa_x86.c's stubs, alloy__cpu_has_avx2_fma and friends, are there and say "no".) The
# list is read whole before grep sees it: `nm | grep -q` under pipefail was a race, since
# grep -q quits at the first match and a SIGPIPE'd nm then made the check pass.
members=$(aarch64-linux-gnu-ar t "$build/liballoy.a")
if grep -i 'avx' <<<"$members"; then
  echo "arm64-test.sh: liballoy.a for arm64 holds AVX kernel objects" >&2
  exit 1
fi
grep -q 'ukernel_portable' <<<"$members" || {
  echo "arm64-test.sh: liballoy.a for arm64 lacks the portable kernel" >&2
  exit 1
}
file -L "$build/liballoy.so" 2>/dev/null || true
echo "arm64-test.sh: running the tests under qemu-aarch64"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 1500 \
  -E '^(install_test|torture_huge_batch|blas_netlib|blas_numpy|test_misuse|test_blas_threads)$' \
  ${ARM64_CTEST_ARGS:-}
# The two programs with fork cases: every other case, one at a time.
qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
for prog in test_misuse test_blas_threads; do
  bin=$(find "$build" -type f -name "$prog" -print -quit)
  if [ -z "$bin" ]; then
    echo "arm64-test.sh: $prog was not built; skipping it"
    continue
  fi
  src=tests/$prog.c
  for case in $(sed -n 's/^ *TEST_ENTRY(\([A-Za-z0-9_]*\)).*/\1/p' "$src"); do
    case $case in *fork*) echo "arm64-test.sh: $prog $case: not run under qemu-user"; continue ;; esac
    "${qemu[@]}" "$bin" "$case" >"$build/$prog.$case.log" 2>&1 || {
      cat "$build/$prog.$case.log"
      echo "arm64-test.sh: $prog $case FAILED under qemu-aarch64" >&2
      exit 1
    }
    echo "arm64-test.sh: $prog $case passed"
  done
done
echo "arm64-test.sh: the arm64 (portable C) build passed"
