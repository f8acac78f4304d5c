#!/usr/bin/env bash
# The CUDA backend's check on a machine with a GPU, in one go:
#   1. build (Release, with the CUDA backend; oracle programs skipped: no LAPACKE there),
#   2. the whole test suite (GPU tests run on the GPU; the cross-backend test uses alloy's
#      CPU backend as its oracle),
#   3. compute-sanitizer: memcheck on the CUDA tests, racecheck and synccheck on small shapes
#      (where it cannot attach, it says so instead of failing),
#   4. benchmarks: bench/cuda_bench.c and bench/cuda_linalg.c, and the same problems through
#      PyTorch (cuBLAS, cuSOLVER), side by side.
# Prints a summary last. Logs go to <build>/gpu-check-logs, and as one tarball to $OUT when
# that is set (the device tool's folder, which returns a few files only).
#
# Environment: GPU_CHECK_BUILD (build dir, default build-gpu), GPU_CHECK_QUICK=1 (sm_90a
# SASS only: faster builds while iterating), GPU_CHECK_STEPS (default "build test sanitize
# gputest ctest sanitize bench"; also "tune": tensor-core tile variants; gputest = the CUDA
# tests, ctest = all the other tests; "profile" with "tune": ncu on the variants named in
# GPU_CHECK_PROFILE, separated by '|'),
# GPU_CHECK_SANITIZER_TIMEOUT (seconds per sanitizer run, default 240).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${GPU_CHECK_BUILD:-build-gpu}
steps=${GPU_CHECK_STEPS:-build gputest ctest sanitize bench}
san_timeout=${GPU_CHECK_SANITIZER_TIMEOUT:-240}
logs=$build/gpu-check-logs
rm -rf "$logs"
mkdir -p "$logs" "$build"
summary=()
note() { summary+=("$1"); echo "== $1"; }
has() { case " $steps " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | head -2
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
nvcc --version | tail -1

# ------------------------------------------------------------------ build
if has build; then
  t0=$(date +%s)
  targets=all
  [ "${GPU_CHECK_QUICK:-0}" = 1 ] && targets=sm_90a
  if cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DALLOY_REQUIRE_ORACLE=OFF \
       -DALLOY_CUDA=ON -DALLOY_CUDA_TARGETS=$targets -DALLOY_WERROR=OFF >"$logs/configure.log" 2>&1 &&
     ninja -C "$build" >"$logs/build.log" 2>&1; then
    note "build: ok ($targets, $(( $(date +%s) - t0 )) s)"
  else
    tail -40 "$logs/configure.log" "$logs/build.log"
    note "build: FAILED (see build.log)"
    printf '%s\n' "${summary[@]}"
    [ -n "${OUT:-}" ] && tar czf "$OUT/gpu-check-logs.tgz" -C "$build" gpu-check-logs
    exit 1
  fi
  cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude bench/cuda_bench.c "$build/liballoy.a" \
     -lpthread -ldl -lm -o "$build/cuda_bench" || note "cuda_bench: build FAILED"
  cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude bench/cuda_linalg.c "$build/liballoy.a" \
     -lpthread -ldl -lm -o "$build/cuda_linalg" || note "cuda_linalg: build FAILED"
fi

# ------------------------------------------------------------------ tests
fail=0
if has gputest; then
  t0=$(date +%s)
  for t in test_cuda test_cross_backend test_cuda_linalg; do
    if "$build/tests/$t" >"$logs/$t.log" 2>&1; then
      note "$t: ok ($(grep -c '^\[  OK  \]' "$logs/$t.log") cases)"
    else
      tail -25 "$logs/$t.log"
      note "$t: FAILED: $(grep -m1 -E 'assertion|expected|differs|failed|FAIL' "$logs/$t.log")"
      fail=1
    fi
  done
  grep -h -E '^  |^GPU' "$logs"/test_cuda.log "$logs"/test_cross_backend.log \
    "$logs"/test_cuda_linalg.log 2>/dev/null | head -30
  # The threading contract on the GPU: 16 threads, all six op families, each result bitwise
  # equal to the same op run alone; --strict: no family may be refused.
  if "$build/tests/torture" --backend cuda --strict --long -t 16 -s "${GPU_CHECK_TORTURE_SECONDS:-120}" \
       >"$logs/torture-cuda.log" 2>&1; then
    note "torture (GPU, 16 threads, all six families): $(tail -1 "$logs/torture-cuda.log")"
  else
    tail -15 "$logs/torture-cuda.log"
    note "torture (GPU): FAILED: $(tail -1 "$logs/torture-cuda.log")"
    fail=1
  fi
  note "CUDA tests took $(( $(date +%s) - t0 )) s"
fi
if has ctest; then
  t0=$(date +%s)
  if ctest --test-dir "$build" -j 8 --timeout 300 --output-on-failure -E 'test_cuda|test_cross_backend|test_cuda_linalg' \
       >"$logs/ctest.log" 2>&1; then
    note "ctest (all other tests): $(grep -E 'tests passed' "$logs/ctest.log")"
  else
    grep -E 'tests passed|Failed|\(Failed\)|\(Subprocess' "$logs/ctest.log" | head -20
    note "ctest (all other tests): FAILED: $(grep -E 'tests passed' "$logs/ctest.log")"
    fail=1
  fi
  note "ctest took $(( $(date +%s) - t0 )) s"
fi

# ------------------------------------------------------------------ compute-sanitizer
# tool name, program, test case (or "" for all); small shapes throughout.
sanitize() {
  local tool=$1 prog=$2 case=$3 log="$logs/sanitize-$1-$2${3:+-$3}.log"
  local extra=()
  # the tests provoke API errors on purpose (bad pointers, refused contexts): memory only
  [ "$tool" = memcheck ] && extra=(--leak-check full --report-api-errors no)
  ALLOY_TEST_SMALL=1 timeout "$san_timeout" compute-sanitizer --tool "$tool" --error-exitcode 86 \
    "${extra[@]}" "$build/tests/$prog" $case >"$log" 2>&1
  local rc=$?
  local errs
  errs=$(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | sed 's/========= //')
  if grep -q -E 'Device not supported|Unable to find injection|Target application terminated before first instrumented|not supported on this platform|Error: No attachable|Failed to initialize' "$log"; then
    note "sanitizer $tool $prog $case: could not attach: $(grep -m1 -E 'Device not supported|Unable|terminated|not supported|No attachable|Failed' "$log")"
  elif [ $rc = 124 ]; then
    note "sanitizer $tool $prog $case: timed out after ${san_timeout}s (${errs:-no summary})"
  elif [ $rc = 0 ]; then
    note "sanitizer $tool $prog $case: clean (${errs:-no summary})"
  else
    grep -m 12 -E '=========' "$log"
    note "sanitizer $tool $prog $case: FAILED rc=$rc (${errs:-see log})"
    fail=1
  fi
}
if has sanitize; then
  if command -v compute-sanitizer >/dev/null; then
    t0=$(date +%s)
    sanitize memcheck test_cuda ""
    sanitize memcheck test_cross_backend ""
    sanitize memcheck test_cuda_linalg ""
    sanitize racecheck test_cross_backend matmul_random_small
    sanitize racecheck test_cuda_linalg lu_factor_rectangular
    sanitize racecheck test_cuda_linalg lu_factor_batched
    if [ "${GPU_CHECK_QUICK:-0}" != 1 ]; then
      sanitize racecheck test_cross_backend layer_norm_rows
      sanitize synccheck test_cross_backend matmul_tiles_and_layouts
    fi
    note "sanitizers took $(( $(date +%s) - t0 )) s"
  else
    note "sanitizers: compute-sanitizer is not on this machine; skipped"
  fi
fi

# ------------------------------------------------------------------ tile variants (tuning)
if has tune; then
  if nvcc -O3 -std=c++17 -fmad=false -gencode arch=compute_90a,code=sm_90a \
       -Isrc/cuda/kernels -o "$build/tune_tc" src/cuda/kernels/tune_tc.cu >"$logs/tune-build.log" 2>&1; then
    "$build/tune_tc" 2>&1 | tee "$logs/tune.log"
    if has profile && command -v ncu >/dev/null; then
      IFS='|' read -ra plist <<<"${GPU_CHECK_PROFILE:-128x256x32 s3 w2x4|128x256x64 s4 w2x4 db}"
      for v in "${plist[@]}"; do
        ncu --clock-control none --launch-count 1 --section SpeedOfLight \
          --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
          --section WarpStateStats --section SchedulerStats --section Occupancy \
          --section InstructionStats "$build/tune_tc" "$v" >"$logs/ncu-${v// /_}.log" 2>&1
        echo "== ncu: $v"
        grep -E 'SM Busy|Issue Slots Busy|Executed Ipc A|Warp Cycles Per Issued|Achieved Occupancy|Theoretical Occupancy|Registers Per|Shared Memory Configuration|L1/TEX Hit|Mem Busy|Max Bandwidth|No Eligible|Eligible Warps|Active Warps Per|Bank|Duration|SM Frequency|Compute \(SM\) Throughput|Memory Throughput|stall|Stall|One or More' "$logs/ncu-${v// /_}.log" | head -40
      done
    fi
  else
    tail -20 "$logs/tune-build.log"
    note "tune_tc: build FAILED"
  fi
fi

# ------------------------------------------------------------------ benchmarks
if has bench; then
  "$build/cuda_bench" 15 2>&1 | tee "$logs/bench-alloy.log"
  "$build/cuda_linalg" 7 time 2>&1 | tee -a "$logs/bench-alloy.log"
  python3 - <<'PY' 2>&1 | tee "$logs/bench-torch.log"
import statistics, torch
torch.backends.cuda.matmul.allow_tf32 = False
def bench(fn, reps=15, inner=10):
    fn(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(inner): fn()
        e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / inner)
    return statistics.median(ts)
def rnd(*shape, dtype):
    return (torch.rand(*shape, device="cuda", dtype=torch.float32) * 2 - 1).to(dtype)
def mm(name, dt, m, n, k, bt=False, tf32=False):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = rnd(m, k, dtype=dt); b = rnd(n, k, dtype=dt).t() if bt else rnd(k, n, dtype=dt)
    ms = bench(lambda: a @ b)
    print(f"torch matmul_{name} {ms:.4f} ms {2*m*n*k/ms*1e-9:.1f} TFLOPS", flush=True)
def ln(name, dt, r, d):
    x = rnd(r, d, dtype=dt); w = rnd(d, dtype=dt); b = rnd(d, dtype=dt)
    ms = bench(lambda: torch.nn.functional.layer_norm(x, (d,), w, b))
    print(f"torch layer_norm_{name} {ms:.4f} ms {2*r*d*x.element_size()/ms*1e-6:.0f} GB/s", flush=True)
def cp(name, ds, dd, n, transpose=False):
    x = rnd(n, n, dtype=ds)
    fn = (lambda: x.t().contiguous()) if transpose else (lambda: x.to(dd)) if ds != dd else (lambda: x.clone())
    ms = bench(fn)
    es = torch.empty(0, dtype=dd).element_size()
    print(f"torch copy_{name} {ms:.4f} ms {n*n*(x.element_size()+es)/ms*1e-6:.0f} GB/s", flush=True)
mm("bf16_4096", torch.bfloat16, 4096, 4096, 4096)
mm("bf16_4096_bT", torch.bfloat16, 4096, 4096, 4096, bt=True)
mm("bf16_8192", torch.bfloat16, 8192, 8192, 8192)
mm("f16_4096", torch.float16, 4096, 4096, 4096)
mm("tf32_4096", torch.float32, 4096, 4096, 4096, tf32=True)
mm("f32_4096", torch.float32, 4096, 4096, 4096)
mm("f64_2048", torch.float64, 2048, 2048, 2048)
mm("bf16_64x4096x4096", torch.bfloat16, 64, 4096, 4096, bt=True)
mm("bf16_1x4096x4096", torch.bfloat16, 1, 4096, 4096, bt=True)
ln("bf16_8192x8192", torch.bfloat16, 8192, 8192)
ln("f32_65536x1024", torch.float32, 65536, 1024)
cp("f32_8192sq", torch.float32, torch.float32, 8192)
cp("f32_to_bf16_8192sq", torch.float32, torch.bfloat16, 8192)
cp("f32_transpose_8192sq", torch.float32, torch.float32, 8192, transpose=True)
PY
  python3 bench/torch_linalg.py 7 2>&1 | tee -a "$logs/bench-torch.log"
  python3 - "$logs/bench-alloy.log" "$logs/bench-torch.log" <<'PY' | tee "$logs/bench-summary.txt"
import sys
rows = {}
for path, who in ((sys.argv[1], "alloy"), (sys.argv[2], "torch")):
    for line in open(path):
        p = line.split()
        if len(p) == 6 and p[0] == who:
            rows.setdefault(p[1], {})[who] = (float(p[2]), float(p[4]), p[5])
print(f"{'problem':28s} {'alloy ms':>10s} {'torch ms':>10s} {'alloy':>10s} {'torch':>10s} unit   alloy/torch")
for k, v in rows.items():
    a = v.get("alloy"); t = v.get("torch")
    if a and t:
        print(f"{k:28s} {a[0]:10.4f} {t[0]:10.4f} {a[1]:10.1f} {t[1]:10.1f} {a[2]:6s} {a[1]/t[1]:6.2f}")
PY
fi

echo
echo "==================== gpu-check summary"
printf '%s\n' "${summary[@]}" | tee "$logs/summary.txt"
[ -f "$logs/bench-summary.txt" ] && cat "$logs/bench-summary.txt"
[ -n "${OUT:-}" ] && tar czf "$OUT/gpu-check-logs.tgz" -C "$build" gpu-check-logs
exit $fail
