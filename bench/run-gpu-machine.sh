#!/usr/bin/env bash
# alloy-bench on the GPU machine: its 16-core CPU and its H100 in one go.
#
#   bench/run-gpu-machine.sh [OUT_DIR]          (default: bench/results/gpu-machine)
#
# Builds alloy-bench (in $ALLOY_BUILD_DIR, default build-gpu-bench/; extra CMake flags in
# $ALLOY_CMAKE_ARGS), then runs three sets, each writing NAME.txt (the tables as printed),
# NAME.md and NAME.json, and PNG scaling curves under OUT_DIR/plots:
#   cpu       every op on the CPU device, threads 1..32, vs numpy's OpenBLAS (1 BLAS
#             thread per app thread; the machine has no OpenBLAS dev packages)
#   gpu-gemm  64x1024x1024 f16 on the H100, the ANCHORS concurrency table: lockfree, mutex,
#             cuBLAS (one handle + stream per thread), cuBLAS behind a global mutex
#   gpu-ops   every op on the H100 vs cuBLAS/cuSOLVER
# About 25 minutes. QUICK=1 shortens every window (a smoke test of the whole path, ~5 min).
# The vendor libraries are found at run time: numpy's bundled OpenBLAS ($ALLOY_BENCH_BLAS
# overrides) and the CUDA libraries of the python nvidia-* wheels plus /usr/local/cuda
# ($ALLOY_BENCH_CUDA_LIBDIRS overrides).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/bench/results/gpu-machine}
build=${ALLOY_BUILD_DIR:-$top/build-gpu-bench}
py=${PYTHON:-python3}
mkdir -p "$out"

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
# shellcheck disable=SC2086
cmake -S "$top" -B "$build" ${gen[@]+"${gen[@]}"} -DCMAKE_BUILD_TYPE=Release -DALLOY_BUILD_TESTS=OFF \
    ${ALLOY_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" --target alloy-bench -j "$(nproc)"
bench=$build/bench/alloy-bench

blas=${ALLOY_BENCH_BLAS:-$("$py" - <<'PY' 2>/dev/null || true
import glob, os
import numpy
d = os.path.dirname(numpy.__file__)
libs = sorted(glob.glob(os.path.join(d, "..", "numpy.libs", "lib*openblas*.so*")) +
              glob.glob(os.path.join(d, ".libs", "lib*openblas*.so*")))
print(os.path.realpath(libs[0]) if libs else "")
PY
)}
[ -n "$blas" ] || blas=libopenblas.so.0
cudadirs=${ALLOY_BENCH_CUDA_LIBDIRS:-$("$py" - <<'PY' 2>/dev/null || true
import glob, importlib.util
s = importlib.util.find_spec("nvidia")
locs = list(s.submodule_search_locations) if s else []
print(":".join(p for l in locs for p in sorted(glob.glob(l + "/*/lib"))))
PY
)}
echo "run-gpu-machine: OpenBLAS for the CPU vendor rows: $blas"
echo "run-gpu-machine: CUDA library directories: ${cudadirs:-none found, using /usr/local/cuda/lib64 and the loader path}"

timing=(--repeats 5 --window 0.3)
[ "${QUICK:-0}" = 1 ] && timing=(--repeats 2 --window 0.05)

run() { # NAME ARGS...: one alloy-bench run, its tables, JSON and plots
    local name=$1
    shift
    echo "run-gpu-machine: $name: alloy-bench $*"
    local rc=0
    "$bench" "$@" "${timing[@]}" --json "$out/$name.json" --md "$out/$name.md" |
        tee "$out/$name.txt" || rc=$?
    if "$py" -c 'import matplotlib' 2>/dev/null; then
        "$py" "$top/bench/plot.py" "$out/$name.json" -o "$out/plots" >/dev/null
    fi
    return $rc
}

status=0
run cpu --device cpu --blas "$blas" \
    --matmul 64x1024x1024,1024x1024x1024 --layer-norm 4096x1024 --lu-factor 1024 \
    --lu-solve 1024x256 --triangular-solve 1024x256 --copy 16777216 || status=1
run gpu-gemm --device cuda --cuda-libdir "$cudadirs" --matmul 64x1024x1024 --dtypes f16 \
    --modes lockfree,mutex,vendor,vendor-mutex --weights private,shared --sync each,end || status=1
run gpu-ops --device cuda --cuda-libdir "$cudadirs" --dtypes f32,bf16 --sync each \
    --matmul 64x1024x1024,4096x4096x4096 --layer-norm 4096x1024,65536x1024 \
    --lu-factor 1024,4096 --lu-solve 4096x256 --triangular-solve 4096x4096 \
    --copy 1048576,67108864 || status=1
echo "run-gpu-machine: results in $out (exit status $status: nonzero when a result was wrong)"
exit $status
