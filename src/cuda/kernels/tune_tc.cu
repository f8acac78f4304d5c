/* A development tool, not part of the library: times tile shapes of the tensor-core matmul
 * (matmul_tc.cuh) on a bf16 row-major product, to choose the "L" tiles in params.h.
 * `tune_tc [name]` runs the variants whose name contains `name` only (for ncu).
 * scripts/gpu-check.sh builds and runs it with nvcc (the runtime API is fine here: this
 * program is not liballoy). Every variant must give bitwise the same C: each element is
 * the same chain of m16n8k16 steps over k in order, whatever the tiles. */
#include "matmul_tc.cuh"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            printf("%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

template <int BM, int BN, int WM, int WN, int BK, int ST, int MINB, bool DB>
__global__ void __launch_bounds__(WM *WN * 32, MINB) variant(const alloy_cu_matmul_params p)
{
    alloy_cu_mm_tc<true, true, false, true, BM, BN, WM, WN, BK, ST, DB>(p);
}

static std::vector<uint16_t> reference;
static const char *only; /* argv[1]: run the variants whose name contains it (for ncu) */

template <int BM, int BN, int WM, int WN, int BK, int ST, int MINB = 1, bool DB = false>
static void run(const char *name, alloy_cu_matmul_params p, void *c, size_t cbytes)
{
    if (only && !strstr(name, only))
        return;
    const int smem = ALLOY_CU_TC_SMEM(BM, BN, BK, ST);
    auto k = variant<BM, BN, WM, WN, BK, ST, MINB, DB>;
    if (cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess) {
        printf("variant %-28s skipped (%d bytes of shared memory)\n", name, smem);
        cudaGetLastError();
        return;
    }
    p.tiles_m = (p.m + BM - 1) / BM;
    p.tiles_n = (p.n + BN - 1) / BN;
    dim3 grid((unsigned)(p.tiles_m * p.tiles_n), 1), block(WM * WN * 32);
    CK(cudaMemset(c, 0xff, cbytes));
    k<<<grid, block, smem>>>(p);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> out(cbytes / 2);
    CK(cudaMemcpy(out.data(), c, cbytes, cudaMemcpyDeviceToHost));
    int same = 1;
    if (reference.empty())
        reference = out;
    else
        same = memcmp(out.data(), reference.data(), cbytes) == 0;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    std::vector<float> ms;
    for (int r = 0; r < 7; r++) {
        cudaEventRecord(e0);
        for (int i = 0; i < 10; i++)
            k<<<grid, block, smem>>>(p);
        cudaEventRecord(e1);
        CK(cudaEventSynchronize(e1));
        float t;
        cudaEventElapsedTime(&t, e0, e1);
        ms.push_back(t / 10);
    }
    std::sort(ms.begin(), ms.end());
    double flops = 2.0 * p.m * p.n * p.k;
    printf("variant %-28s M=N=K=%-5lld %.4f ms %6.1f TFLOPS %s\n", name, (long long)p.m, ms[3],
           flops / ms[3] * 1e-9, same ? "same bits" : "DIFFERENT BITS");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    only = argc > 1 ? argv[1] : NULL;
    for (int64_t n : {4096, 8192}) {
        if (only && n != 4096)
            break;
        size_t bytes = (size_t)n * n * 2;
        std::vector<uint16_t> h(n * n);
        uint64_t x = 88172645463325252ull;
        for (auto &v : h) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            float f = (float)((double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0);
            uint32_t u;
            memcpy(&u, &f, 4);
            v = (uint16_t)(u >> 16);
        }
        void *a, *b, *c;
        CK(cudaMalloc(&a, bytes));
        CK(cudaMalloc(&b, bytes));
        CK(cudaMalloc(&c, bytes));
        CK(cudaMemcpy(a, h.data(), bytes, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(b, h.data(), bytes, cudaMemcpyHostToDevice));
        alloy_cu_matmul_params p;
        memset(&p, 0, sizeof p);
        p.m = p.n = p.k = n;
        p.a = (uint64_t)a;
        p.b = (uint64_t)b;
        p.c = (uint64_t)c;
        p.a_rs = n;
        p.a_cs = 1;
        p.b_rs = n;
        p.b_cs = 1;
        p.c_rs = n;
        p.c_cs = 1;
        p.c_dtype = ALLOY_CU_BF16;
        p.alpha = 1.0;
        p.batch.count = 1;
        reference.clear();
        run<128, 256, 2, 4, 32, 3>("128x256x32 s3 w2x4", p, c, bytes);
        run<128, 256, 2, 4, 64, 4>("128x256x64 s4 w2x4", p, c, bytes);
        run<128, 256, 2, 4, 64, 4, 1, true>("128x256x64 s4 w2x4 db", p, c, bytes);
        run<128, 256, 2, 4, 64, 3, 1, true>("128x256x64 s3 w2x4 db", p, c, bytes);
        run<128, 256, 2, 4, 32, 4, 1, true>("128x256x32 s4 w2x4 db", p, c, bytes);
        run<128, 128, 2, 2, 64, 4, 2, true>("128x128x64 s4 w2x2 2cta db", p, c, bytes);
        run<128, 128, 2, 2, 32, 4, 2, true>("128x128x32 s4 w2x2 2cta db", p, c, bytes);
        run<128, 128, 2, 4, 64, 3, 1, true>("128x128x64 s3 w2x4 db", p, c, bytes);
        run<128, 128, 2, 4, 32, 4, 2, true>("128x128x32 s4 w2x4 2cta db", p, c, bytes);
        run<256, 128, 4, 2, 64, 3, 1, true>("256x128x64 s3 w4x2 db", p, c, bytes);
        CK(cudaFree(a));
        CK(cudaFree(b));
        CK(cudaFree(c));
    }
    return 0;
}
