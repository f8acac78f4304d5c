#!/usr/bin/env bash
# clang-tidy and cppcheck over src/ (the library). Any finding fails; findings that are
# not bugs are justified in place (NOLINT / cppcheck-suppress with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh clang-tidy cppcheck cmake ninja-build build-essential
build=build/lint
# Hopper SASS alone is enough to generate the fatbin header the CUDA glue includes.
cmake -S . -B "$build" -G Ninja -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DALLOY_BUILD_TESTS=OFF \
  -DALLOY_CUDA=AUTO -DALLOY_CUDA_TARGETS=sm_90a \
  -DALLOY_BUILD_BENCH=OFF ${ALLOY_CMAKE_ARGS:-} >/dev/null
ninja -C "$build" >/dev/null # generated headers (the CUDA fatbin) must exist
files=$(find src -name '*.c' | grep -v -e "${ALLOY_LINT_EXCLUDE:-^$}" | sort)
echo "clang-tidy: $(echo "$files" | wc -l) files"
clang-tidy -p "$build" --quiet $files 2>&1 | grep -v "warnings generated" | tee "$build/clang-tidy.log"
if grep -qE "(warning|error):" "$build/clang-tidy.log"; then
  echo "clang-tidy: findings above"; exit 1
fi
echo "cppcheck:"
# invalidPointerCast is off: kernels do byte arithmetic on char * and cast back to the
# element type the bytes hold; the check is aimed at float <-> int reinterpretation.
cppcheck --quiet --error-exitcode=1 --inline-suppr --std=c11 \
  --enable=warning,performance,portability \
  --suppress=missingIncludeSystem --suppress=invalidPointerCast -I include -I src/core -D__x86_64__ \
  -i src/cuda/kernels ${ALLOY_LINT_CPPCHECK_ARGS:-} src
echo "lint: clean"
