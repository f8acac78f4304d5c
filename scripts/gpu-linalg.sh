#!/usr/bin/env bash
# The GPU solvers on a machine with a GPU: build (sm_90a only), the check of bench/cuda_linalg.c
# against the CPU backend, then alloy and cuSOLVER/cuBLAS (through PyTorch) side by side.
# Usage: scripts/gpu-linalg.sh [reps] [time]   (time: skip the checks)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${GPU_CHECK_BUILD:-build-gpu}
reps=${1:-7}
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DALLOY_REQUIRE_ORACLE=OFF \
    -DALLOY_CUDA=ON -DALLOY_CUDA_TARGETS=sm_90a -DALLOY_WERROR=OFF >/dev/null || exit 1
fi
ninja -C "$build" alloy >"$build/linalg-build.log" 2>&1 || { tail -30 "$build/linalg-build.log"; exit 1; }
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude bench/cuda_linalg.c "$build/liballoy.a" \
  -lpthread -ldl -lm -o "$build/cuda_linalg" || exit 1
"$build/cuda_linalg" "$reps" ${2:-} 2>&1 | tee "$build/linalg-alloy.log"
python3 bench/torch_linalg.py "$reps" 2>&1 | tee "$build/linalg-torch.log"
python3 - "$build/linalg-alloy.log" "$build/linalg-torch.log" <<'PY'
import sys
rows = {}
for path, who in ((sys.argv[1], "alloy"), (sys.argv[2], "torch")):
    for line in open(path):
        p = line.split()
        if len(p) == 6 and p[0] == who:
            rows.setdefault(p[1], {})[who] = float(p[2])
print(f"{'problem':<22} {'alloy ms':>10} {'vendor ms':>10} {'alloy/vendor speed':>19}")
for k, v in rows.items():
    a, t = v.get("alloy"), v.get("torch")
    r = f"{t / a:.2f}" if a and t else "-"
    print(f"{k:<22} {a if a else '-':>10} {t if t else '-':>10} {r:>19}")
PY
