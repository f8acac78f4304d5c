"""cuSOLVER / cuBLAS through PyTorch for the problems bench/cuda_linalg.c times.

Prints "torch <name> <ms> ms <TFLOPS> TFLOPS" lines in cuda_linalg's format: the median
of `reps` CUDA-event timings of `inner` calls each. lu_factor and solve_triangular return
new tensors, so their time includes the copy of the input, as alloy's lines do."""
import statistics
import sys

import torch

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 7


def bench(fn, inner=3):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(inner):
            fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / inner)
    return statistics.median(ts)


def rnd(*shape, dtype=torch.float32):
    return torch.rand(*shape, device="cuda", dtype=dtype) * 2 - 1


def lu(name, dtype, batch, n):
    a = rnd(batch, n, n, dtype=dtype) if batch > 1 else rnd(n, n, dtype=dtype)
    ms = bench(lambda: torch.linalg.lu_factor(a))
    print(f"torch lu_{name} {ms:.4f} ms {batch * 2 / 3 * n ** 3 / ms * 1e-9:.2f} TFLOPS", flush=True)


def trsm(name, n, nrhs):
    a = rnd(n, n) * 0.1 + 4 * torch.eye(n, device="cuda")
    a = torch.tril(a)
    b = rnd(n, nrhs)
    ms = bench(lambda: torch.linalg.solve_triangular(a, b, upper=False))
    print(f"torch trsm_{name} {ms:.4f} ms {n * n * nrhs / ms * 1e-9:.2f} TFLOPS", flush=True)


def getrs(name, n, nrhs):
    lu_, piv = torch.linalg.lu_factor(rnd(n, n))
    b = rnd(n, nrhs)
    ms = bench(lambda: torch.linalg.lu_solve(lu_, piv, b))
    print(f"torch getrs_{name} {ms:.4f} ms {2 * n * n * nrhs / ms * 1e-9:.2f} TFLOPS", flush=True)


lu("f32_1024", torch.float32, 1, 1024)
lu("f32_4096", torch.float32, 1, 4096)
lu("f32_8192", torch.float32, 1, 8192)
lu("f64_4096", torch.float64, 1, 4096)
lu("f32_10000x32", torch.float32, 10000, 32)
lu("f32_10000x64", torch.float32, 10000, 64)
lu("f32_1000x128", torch.float32, 1000, 128)
trsm("f32_4096", 4096, 4096)
trsm("f32_8192", 8192, 8192)
getrs("f32_4096x256", 4096, 256)
