#!/usr/bin/env bash
# Runs the reference test programs every BLAS is judged by against liballoy-blas:
# Debian's libblas-test (xblat3s xblat3d xscblat3 xdcblat3, stock inputs) and
# liblapack-test (xlintsts xlintstd, stock inputs restricted to the GE path), with the
# adapter preloaded in front of the reference BLAS/LAPACK. Passes when every routine that
# alloy provides reports PASSED, no line reports a failure, a suspect result or an error,
# and the adapter's counters show the calls reached alloy. Prints the PASSED lines.
#
#   scripts/netlib-test.sh [path/to/liballoy-blas.so]
#
# Without a path it builds liballoy-blas in ${ALLOY_BUILD_DIR:-build/release} first.
#
# Missing packages are installed with apt-get (scripts/deps.sh) when running as root.
# Where they cannot be, the script exits 77 (ctest: skipped), or 1 when CI is set.
#
# Why the reference libraries and not the system's default (OpenBLAS on most machines):
# the CBLAS testers reference the reference CBLAS's RowMajorStrg flag, which OpenBLAS
# lacks (the programs do not start), and the routines alloy does not provide should be
# the reference's. The adapter's symbols come first either way (LD_PRELOAD).
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
  out="$(ninja -C "$build" alloy_blas 2>&1)" || { echo "$out"; echo "netlib-test: building liballoy-blas failed" >&2; exit 1; }
  lib="$build/src/blas/liballoy-blas.so"
fi
if [ ! -f "$lib" ]; then
  echo "netlib-test: $lib not found" >&2
  exit 1
fi
lib="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"

skip_or_fail() {
  echo "netlib-test: $*" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 77
}

multiarch="$(gcc -print-multiarch 2>/dev/null || true)"
[ -n "$multiarch" ] || multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || true)"
[ -n "$multiarch" ] || multiarch="$(uname -m)-linux-gnu"
blasdir="/usr/lib/$multiarch/blas"
lapackdir="/usr/lib/$multiarch/lapack"

if [ ! -x "$blasdir/xblat3s" ] || [ ! -x "$lapackdir/xlintsts" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    bash "$root/scripts/deps.sh" libblas-test liblapack-test libblas3 liblapack3 \
      || skip_or_fail "could not install libblas-test liblapack-test"
  else
    skip_or_fail "Debian's libblas-test and liblapack-test are not installed (apt-get install libblas-test liblapack-test)"
  fi
fi
for f in "$blasdir/libblas.so.3" "$lapackdir/liblapack.so.3" "$blasdir/xblat3s" "$blasdir/xblat3d" \
         "$blasdir/xscblat3" "$blasdir/xdcblat3" "$lapackdir/xlintsts" "$lapackdir/xlintstd"; do
  [ -e "$f" ] || skip_or_fail "missing $f"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/alloy-netlib.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# The stock LAPACK inputs up to the path list, then the GE path alone.
for p in s d; do
  sed -n '1,/error exits/p' "$lapackdir/${p}test.in" > "${p}ge.in"
  printf '%sGE   11               List types on next line if 0 < NTYPES < 11\n' \
    "$(echo "$p" | tr sd SD)" >> "${p}ge.in"
done

status=0
fail() { echo "FAIL: $*"; status=1; }

# run NAME PROGRAM INPUT REPORT: REPORT is the file the program writes its summary to.
run() {
  local name="$1" prog="$2" input="$3" report="$4"
  local t0 t1
  t0=$(date +%s%N)
  LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" \
  LD_LIBRARY_PATH="$blasdir:$lapackdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  ALLOY_BLAS_STATS=1 \
    timeout 900 "$prog" < "$input" > "$name.stdout" 2> "$name.stderr"
  local rc=$?
  t1=$(date +%s%N)
  [ "$report" = - ] && report="$name.stdout"
  echo "== $name ($(basename "$prog") < $(basename "$input"), $(awk -v ns=$((t1 - t0)) 'BEGIN{printf "%.2f", ns/1e9}') s)"
  [ $rc -eq 0 ] || fail "$name exited with status $rc"
  if [ ! -s "$report" ]; then
    fail "$name wrote no report ($report)"; cat "$name.stdout" "$name.stderr"; return
  fi
  # failures, suspects, errors: any such line that is not a PASSED line
  local bad
  bad=$(cat "$report" "$name.stdout" "$name.stderr" | grep -i -E 'fail|suspect|error|illegal|not detected|xerbla|\*\*\*|unable|insufficient' \
        | grep -v -i -E 'passed' | sort -u)
  if [ -n "$bad" ]; then
    fail "$name reports:"; echo "$bad" | head -40
  fi
  # the adapter must not have complained, and its calls must have reached alloy
  local stats
  stats=$(grep '^alloy-blas: .* calls reached alloy' "$name.stderr")
  if grep -v '^alloy-blas: .* calls reached alloy' "$name.stderr" | grep 'alloy-blas' >/dev/null; then
    fail "$name: the adapter reported errors:"; grep 'alloy-blas' "$name.stderr" | head -20
  fi
  if [ -z "$stats" ] || grep -q 'reached alloy: none' <<<"$stats"; then
    fail "$name: no call reached alloy (is $lib preloaded?)"
  else
    echo "$stats"
  fi
  cp "$report" "$name.report"
}

# expect NAME PATTERN...: each pattern must match a line of NAME's report; prints them.
expect() {
  local name="$1"; shift
  local pat
  for pat in "$@"; do
    if grep -E -q "$pat" "$name.report" 2>/dev/null; then
      grep -E "$pat" "$name.report" | sed 's/^ */  /'
    else
      fail "$name: no line matches /$pat/"
    fi
  done
}

run xblat3s "$blasdir/xblat3s" "$blasdir/sblat3.in" sblat3.out
expect xblat3s 'SGEMM +PASSED THE TESTS OF ERROR-EXITS' 'SGEMM +PASSED THE COMPUTATIONAL TESTS' \
               'STRSM +PASSED THE TESTS OF ERROR-EXITS' 'STRSM +PASSED THE COMPUTATIONAL TESTS' \
               'END OF TESTS'
run xblat3d "$blasdir/xblat3d" "$blasdir/dblat3.in" dblat3.out
expect xblat3d 'DGEMM +PASSED THE TESTS OF ERROR-EXITS' 'DGEMM +PASSED THE COMPUTATIONAL TESTS' \
               'DTRSM +PASSED THE TESTS OF ERROR-EXITS' 'DTRSM +PASSED THE COMPUTATIONAL TESTS' \
               'END OF TESTS'
for p in s d; do
  run "x${p}cblat3" "$blasdir/x${p}cblat3" "$blasdir/${p}in3" -
  for r in gemm trsm; do
    expect "x${p}cblat3" "cblas_${p}${r} +PASSED THE TESTS OF ERROR-EXITS" \
                         "cblas_${p}${r} +PASSED THE COLUMN-MAJOR COMPUTATIONAL TESTS" \
                         "cblas_${p}${r} +PASSED THE ROW-MAJOR +COMPUTATIONAL TESTS"
  done
  expect "x${p}cblat3" 'END OF TESTS'
done
for p in s d; do
  P=$(echo "$p" | tr sd SD)
  run "xlintst$p" "$lapackdir/xlintst$p" "${p}ge.in" -
  expect "xlintst$p" "${P}GE routines passed the tests of the error exits" \
                     "All tests for ${P}GE routines passed the threshold" \
                     "${P}GE drivers passed the tests of the error exits" \
                     "All tests for ${P}GE drivers +passed the threshold" 'End of tests'
  # the LAPACK routines alloy provides must have been the ones called
  for r in getrf getrs gesv; do
    grep -q " ${p}${r}_ [1-9]" "xlintst$p.stderr" || fail "xlintst$p: ${p}${r}_ did not reach alloy"
  done
done

if [ $status -eq 0 ]; then
  echo "netlib-test: PASSED (liballoy-blas: $lib)"
else
  echo "netlib-test: FAILED; outputs in $work"
  trap - EXIT
fi
exit $status
