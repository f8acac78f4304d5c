#!/usr/bin/env bash
# Fuzzes every encode function for a bounded time (issue 4, part 5).
#
# Builds tests/fuzz_encode with clang: libFuzzer + AddressSanitizer + UndefinedBehavior-
# Sanitizer, the library itself instrumented too (coverage for libFuzzer, ASan/UBSan
# checks inside alloy), in build-fuzz/ (ALLOY_FUZZ_BUILD_DIR). Then:
#   1. replays the committed corpus tests/fuzz_corpus (seed inputs, and regress_* inputs
#      that reproduce bugs the fuzzer found), naming every input that fails;
#   2. fuzzes for FUZZ_SECONDS (default 60) from that corpus (new inputs go to a scratch
#      corpus in the build directory, not into the repository), in libFuzzer's fork mode
#      so that one finding does not end the run: every crash, hang (an input running
#      longer than FUZZ_TIMEOUT seconds, default 5), leak or sanitizer report is saved
#      under build-fuzz/fuzz-artifacts/ and the run goes on;
#   3. prints the number of executions run, and each distinct finding.
# The exit status is 0 only when the corpus replays clean and the fuzzing found nothing.
# A saved input replays with: build-fuzz/tests/fuzz_encode FILE
# (FUZZ_ENCODE_VERBOSE=1 prints what it encodes).
#
# Environment: FUZZ_SECONDS, FUZZ_TIMEOUT, ALLOY_FUZZ_BUILD_DIR, CC (default clang).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
timeout_s=${FUZZ_TIMEOUT:-5}
build=${ALLOY_FUZZ_BUILD_DIR:-build-fuzz}
export CC=${CC:-clang}
if ! command -v "$CC" >/dev/null; then
  echo "fuzz.sh: $CC not found; install clang (apt-get install clang)" >&2
  exit 2
fi
flags="-fsanitize=address,undefined -fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DALLOY_CUDA=OFF \
  -DALLOY_BUILD_BENCH=OFF -DALLOY_REQUIRE_ORACLE=OFF -DALLOY_FUZZ=ON \
  -DCMAKE_C_FLAGS="$flags" >/dev/null
ninja -C "$build" fuzz_encode >/dev/null
fuzzer="$build/tests/fuzz_encode"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0

# 1. The committed corpus, one input at a time.
bad=0
for f in tests/fuzz_corpus/*; do
  if ! out=$("$fuzzer" -runs=0 -timeout="$timeout_s" "$f" 2>&1); then
    why=$(echo "$out" | grep -m1 -E 'runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|contract broken' || true)
    echo "fuzz.sh: corpus input $(basename "$f") FAILS: ${why:-see $fuzzer $f}"
    bad=$((bad + 1))
  fi
done
n=$(ls tests/fuzz_corpus | wc -l)
if [ "$bad" -gt 0 ]; then
  echo "fuzz.sh: $bad of $n corpus inputs fail"
  status=1
else
  echo "fuzz.sh: the $n corpus inputs replay clean"
fi

# 2. Fuzzing, bounded.
corpus="$build/fuzz-corpus"
artifacts="$build/fuzz-artifacts"
rm -rf "$artifacts"
mkdir -p "$corpus" "$artifacts"
cp tests/fuzz_corpus/* "$corpus"/
log="$build/fuzz.log"
echo "fuzz.sh: fuzzing alloy's encode functions for ${secs} s"
set +e
(cd "$build" && "$(pwd)/tests/fuzz_encode" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
  -ignore_ooms=1 -max_total_time="$secs" -timeout="$timeout_s" -rss_limit_mb=4096 \
  -max_len=2048 -artifact_prefix="$(pwd)/fuzz-artifacts/" fuzz-corpus) >"$log" 2>&1
set -e

# 3. What happened.
execs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#')
cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 || true)
found=$(ls "$artifacts" | wc -l)
echo "fuzz.sh: ${execs:-0} executions in ${secs} s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs, $found inputs saved for findings"
if [ "$found" -gt 0 ]; then
  status=1
  echo "fuzz.sh: distinct findings (replay an input with $fuzzer FILE):"
  for f in $(ls -d "$artifacts"/* | head -40); do
    why=$("$fuzzer" -runs=0 -timeout="$timeout_s" "$f" 2>&1 | grep -m1 -E 'runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|contract broken' || true)
    echo "${why:-no report on replay} | $(basename "$f")"
  done | sed -E 's/^==[0-9]+==//; s/[0-9]{4,} \* [0-9]+|[0-9]+ \* [0-9]{4,}/N * M/' |
    sort | awk -F' \\| ' '{n[$1]++; if (!($1 in ex)) ex[$1] = $2} END {for (k in n) printf "  %4d x %s (e.g. %s)\n", n[k], k, ex[k]}'
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz.sh: FAILED"
  exit 1
fi
echo "fuzz.sh: no crash, hang, leak or sanitizer report"
