"""numpy on alloy: a matmul and a solve through liballoy-blas, results checked, and the
adapter's own counters showing the calls reached alloy. Run it with the adapter preloaded:

    LD_PRELOAD=build/src/blas/liballoy-blas.so /usr/bin/python3 scripts/blas_numpy_demo.py

(scripts/blas-numpy-demo.sh does that, and installs Debian's python3-numpy if needed.)
Exits non-zero when a check fails or the calls did not reach alloy.
"""
import ctypes
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    calls = ctypes.CDLL(None).alloy_blas_calls  # the preloaded adapter's symbol
except AttributeError:
    sys.exit("liballoy-blas is not loaded: run with LD_PRELOAD=.../liballoy-blas.so")
calls.restype = ctypes.c_ulonglong
calls.argtypes = [ctypes.c_char_p]
ROUTINES = ("cblas_dgemm", "cblas_sgemm", "dgesv_")


def counts():
    return {r: calls(r.encode()) for r in ROUTINES}


def exact(x):
    """x in extended precision: numpy computes long double products without BLAS."""
    return x.astype(np.longdouble)


ok = True
rng = np.random.default_rng(2026)
before = counts()
print(f"numpy {np.__version__}, python {sys.version.split()[0]}")

# matmul, float64 and float32 (numpy calls cblas_dgemm / cblas_sgemm, row-major)
a = rng.standard_normal((300, 200))
b = rng.standard_normal((200, 150))
c = a @ b
err = float(np.max(np.abs(c - (exact(a) @ exact(b)))))
print(f"matmul f64 (300x200 @ 200x150): max |C - exact| = {err:.2e}")
ok &= err < 1e-12
a32, b32 = a.astype(np.float32), b.astype(np.float32)
c32 = a32 @ b32
err32 = float(np.max(np.abs(c32 - (exact(a32) @ exact(b32)))))
print(f"matmul f32 (300x200 @ 200x150): max |C - exact| = {err32:.2e}")
ok &= err32 < 1e-3

# solve (numpy.linalg.solve calls dgesv_)
m = rng.standard_normal((400, 400))
rhs = rng.standard_normal((400, 3))
x = np.linalg.solve(m, rhs)
r = exact(m) @ exact(x) - exact(rhs)
resid = float(np.max(np.abs(r)) / (np.max(np.abs(m)) * np.max(np.abs(x)) * m.shape[0]))
print(f"solve (400x400, 3 right-hand sides): scaled residual = {resid:.2e}")
ok &= resid < 1e-14

# the same matmul from 8 Python threads at once (numpy releases the GIL inside BLAS):
# every result bitwise equal to the one made alone
with ThreadPoolExecutor(max_workers=8) as pool:
    results = list(pool.map(lambda _: a @ b, range(32)))
same = sum(np.array_equal(res, c) for res in results)
print(f"8 threads, 32 matmuls: {same} of 32 bitwise equal to the single-thread result")
ok &= same == 32

after = counts()
delta = {k: after[k] - before[k] for k in ROUTINES}
print("calls that reached alloy: " + ", ".join(f"{k} {v}" for k, v in delta.items()))
ok &= delta["cblas_dgemm"] >= 33 and delta["cblas_sgemm"] >= 1 and delta["dgesv_"] >= 1

print("OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
