#!/usr/bin/env bash
# Builds alloy and its tests with clang under a sanitizer and runs the suite (CPU only;
# GPU tests skip). Usage: scripts/sanitize.sh thread|address
#   thread:  ThreadSanitizer (under setarch -R when the kernel's ASLR breaks TSan's map)
#   address: AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer, with the kernels'
#            prefetch hints turned into reads (ALLOY_PREFETCH_CHECK) so a hint past its
#            object is reported; the GEMM-heavy tests run again with the AVX2 kernels forced
# Any report fails: no suppressions for alloy's own code.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh thread|address}
bash scripts/deps.sh clang libclang-rt-14-dev build-essential cmake ninja-build pkg-config \
  binutils libopenblas-dev liblapacke-dev
extra=()
case "$kind" in
  thread) flags="-fsanitize=thread" ;;
  address) flags="-fsanitize=address,undefined -fno-sanitize-recover=all"
           extra=(-DALLOY_PREFETCH_CHECK=ON) ;;
  *) echo "unknown sanitizer $kind"; exit 2 ;;
esac
build=build/$kind
CC=clang cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$flags -fno-omit-frame-pointer -g" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS="$flags" -DALLOY_CUDA=OFF \
  -DALLOY_BUILD_BENCH=OFF "${extra[@]}" ${ALLOY_CMAKE_ARGS:-} >/dev/null
ninja -C "$build"
export OPENBLAS_NUM_THREADS=1 ALLOY_TEST_SMALL=1
# allocator_may_return_null: tests ask for absurd sizes and expect ALLOY_ERR_OUT_OF_MEMORY.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 allocator_may_return_null=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 strict_string_checks=1 allocator_may_return_null=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"
run=()
if [ "$kind" = thread ]; then
  # TSan needs a low-entropy address space on recent kernels; try without first.
  if ! "$build/tests/test_api" >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
    run=(setarch "$(uname -m)" -R)
    echo "running under setarch -R (TSan and this kernel's ASLR)"
  fi
fi
# The install test rebuilds alloy without sanitizers; it proves nothing more here.
"${run[@]}" ctest --test-dir "$build" --output-on-failure -j 2 -E 'install|no_writable_globals' \
  ${ALLOY_CTEST_ARGS:-}
if [ "$kind" = address ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  # the default run took the best kernel set (AVX-512 where there is one); AVX2's too
  ALLOY_TEST_KERNEL=avx2 ctest --test-dir "$build" --output-on-failure -j 2 \
    -R '^test_(matmul|lu|trsm|linalg_concurrency)$'
fi
