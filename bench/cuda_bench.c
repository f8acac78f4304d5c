/* cuda_bench: the CUDA backend's headline numbers through alloy's public API.
 *
 *   cuda_bench [reps]
 *
 * Each measurement encodes `batch` identical ops into one command buffer, commits it and
 * waits; time per op is the wall clock of that over batch (so launch gaps count, as they
 * do for a caller), the median of `reps` such runs after a warm-up. Inputs are random
 * (never zeros: they run faster than real data). Prints one line per problem:
 *   alloy <name> <ms per op> <TFLOPS or GB/s>
 * scripts/gpu-check.sh runs it beside PyTorch on the same GPU. */
#include "alloy.h"
#include "cuda_bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Random storage of dtype t (values in [-1, 1)). */
static alloy_buffer *random_buffer(alloy_device *dev, alloy_dtype t, size_t count, unsigned seed)
{
    size_t es = alloy_dtype_size(t);
    unsigned char *h = malloc(count * es);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
    for (size_t i = 0; i < count; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        float f = (float)((double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0);
        if (t == ALLOY_F32)
            memcpy(h + i * 4, &f, 4);
        else if (t == ALLOY_F64) {
            double d = f;
            memcpy(h + i * 8, &d, 8);
        } else { /* bf16 / f16 with 7 significant bits: exact either way */
            uint32_t u;
            memcpy(&u, &f, 4);
            u &= 0xffff0000u;
            uint16_t b = (uint16_t)(u >> 16);
            if (t == ALLOY_F16) {
                uint32_t e = (u >> 23) & 0xff;
                b = (uint16_t)((u >> 16) & 0x8000u);
                if (e >= 113)
                    b |= (uint16_t)(((e - 112) << 10) | ((u >> 13) & 0x3ff));
            }
            memcpy(h + i * 2, &b, 2);
        }
    }
    alloy_buffer *b = NULL;
    CHECK(alloy_buffer_create(dev, count * es, ALLOY_MEMORY_DEVICE, &b));
    CHECK(alloy_buffer_write(b, 0, h, count * es));
    free(h);
    return b;
}

typedef void (*encode_fn)(alloy_cmdbuf *cb, void *ctx);

/* Median seconds per op over reps runs of `batch` ops in one command buffer. */
static double time_ops(alloy_queue *q, encode_fn enc, void *ctx, int batch, int reps)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        alloy_cmdbuf *cb = NULL;
        CHECK(alloy_cmdbuf_create(q, &cb));
        for (int i = 0; i < batch; i++)
            enc(cb, ctx);
        double t0 = now();
        CHECK(alloy_cmdbuf_commit(cb));
        CHECK(alloy_cmdbuf_wait(cb));
        double t1 = now();
        CHECK(alloy_cmdbuf_destroy(cb));
        if (r >= 0)
            t[r] = (t1 - t0) / batch;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

typedef struct mm {
    alloy_array a, b, c;
    alloy_matmul_desc d;
} mm;

static void enc_mm(alloy_cmdbuf *cb, void *p)
{
    mm *m = p;
    CHECK(alloy_encode_matmul(cb, &m->d, &m->a, &m->b, NULL, &m->c));
}

static void bench_matmul(alloy_device *dev, alloy_queue *q, const char *name, alloy_dtype t,
                         alloy_dtype tc, int tf32, int64_t M, int64_t N, int64_t K, int b_kmajor,
                         int reps)
{
    alloy_buffer *a = random_buffer(dev, t, (size_t)(M * K), 1);
    alloy_buffer *b = random_buffer(dev, t, (size_t)(K * N), 2);
    alloy_buffer *c = NULL;
    CHECK(alloy_buffer_create(dev, (size_t)(M * N) * alloy_dtype_size(tc), ALLOY_MEMORY_DEVICE, &c));
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, sbt[2] = {N, K}, sc[2] = {M, N};
    mm m;
    m.a = alloy_array_contiguous(a, 0, t, 2, sa);
    /* b_kmajor: B given as an (N, K) weight used transposed, as Linear does */
    m.b = b_kmajor ? alloy_array_swap_dims(alloy_array_contiguous(b, 0, t, 2, sbt), 0, 1)
                   : alloy_array_contiguous(b, 0, t, 2, sb);
    m.c = alloy_array_contiguous(c, 0, tc, 2, sc);
    m.d = alloy_matmul_desc_default();
    m.d.allow_tf32 = tf32;
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int batch = flops > 1e11 ? 10 : flops > 1e9 ? 50 : 200;
    double s = time_ops(q, enc_mm, &m, batch, reps);
    printf("alloy matmul_%s %.4f ms %.1f TFLOPS\n", name, s * 1e3, flops / s * 1e-12);
    fflush(stdout);
    CHECK(alloy_buffer_destroy(a));
    CHECK(alloy_buffer_destroy(b));
    CHECK(alloy_buffer_destroy(c));
}

typedef struct ln {
    alloy_array x, y, g, b;
    alloy_norm_desc d;
} ln;

static void enc_ln(alloy_cmdbuf *cb, void *p)
{
    ln *l = p;
    CHECK(alloy_encode_layer_norm(cb, &l->d, &l->x, &l->g, &l->b, &l->y, NULL, NULL));
}

static void bench_norm(alloy_device *dev, alloy_queue *q, const char *name, alloy_dtype t,
                       int64_t rows, int64_t d, int reps)
{
    alloy_buffer *x = random_buffer(dev, t, (size_t)(rows * d), 3);
    alloy_buffer *gb = random_buffer(dev, t, (size_t)(2 * d), 4);
    alloy_buffer *y = NULL;
    CHECK(alloy_buffer_create(dev, (size_t)(rows * d) * alloy_dtype_size(t), ALLOY_MEMORY_DEVICE, &y));
    int64_t sh[2] = {rows, d};
    ln l;
    l.x = alloy_array_contiguous(x, 0, t, 2, sh);
    l.y = alloy_array_contiguous(y, 0, t, 2, sh);
    l.g = alloy_array_contiguous(gb, 0, t, 1, &d);
    l.b = alloy_array_contiguous(gb, (size_t)d * alloy_dtype_size(t), t, 1, &d);
    l.d = alloy_norm_desc_default();
    double bytes = 2.0 * (double)(rows * d) * (double)alloy_dtype_size(t);
    double s = time_ops(q, enc_ln, &l, 50, reps);
    printf("alloy layer_norm_%s %.4f ms %.0f GB/s\n", name, s * 1e3, bytes / s * 1e-9);
    fflush(stdout);
    CHECK(alloy_buffer_destroy(x));
    CHECK(alloy_buffer_destroy(gb));
    CHECK(alloy_buffer_destroy(y));
}

typedef struct cp {
    alloy_array s, d;
} cp;

static void enc_cp(alloy_cmdbuf *cb, void *p)
{
    cp *c = p;
    CHECK(alloy_encode_copy(cb, &c->s, &c->d));
}

static void bench_copy(alloy_device *dev, alloy_queue *q, const char *name, alloy_dtype ts,
                       alloy_dtype td, int64_t n, int transpose, int reps)
{
    alloy_buffer *s = random_buffer(dev, ts, (size_t)(n * n), 5);
    alloy_buffer *d = NULL;
    CHECK(alloy_buffer_create(dev, (size_t)(n * n) * alloy_dtype_size(td), ALLOY_MEMORY_DEVICE, &d));
    int64_t sh[2] = {n, n};
    cp c;
    c.s = alloy_array_contiguous(s, 0, ts, 2, sh);
    if (transpose)
        c.s = alloy_array_swap_dims(c.s, 0, 1);
    c.d = alloy_array_contiguous(d, 0, td, 2, sh);
    double bytes = (double)(n * n) * (double)(alloy_dtype_size(ts) + alloy_dtype_size(td));
    double t = time_ops(q, enc_cp, &c, 20, reps);
    printf("alloy copy_%s %.4f ms %.0f GB/s\n", name, t * 1e3, bytes / t * 1e-9);
    fflush(stdout);
    CHECK(alloy_buffer_destroy(s));
    CHECK(alloy_buffer_destroy(d));
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    alloy_device_desc dd = alloy_device_desc_default();
    dd.backend = ALLOY_BACKEND_CUDA;
    alloy_device *dev = NULL;
    alloy_status st = alloy_device_open(&dd, &dev);
    if (st == ALLOY_ERR_NO_DEVICE) {
        printf("SKIP: no CUDA device: %s\n", alloy_last_error());
        return 0;
    }
    CHECK(st);
    printf("device %s\n", alloy_device_name(dev));
    alloy_queue *q = NULL;
    CHECK(alloy_queue_create(dev, &q));
    bench_matmul(dev, q, "bf16_4096", ALLOY_BF16, ALLOY_BF16, 0, 4096, 4096, 4096, 0, reps);
    bench_matmul(dev, q, "bf16_4096_bT", ALLOY_BF16, ALLOY_BF16, 0, 4096, 4096, 4096, 1, reps);
    bench_matmul(dev, q, "bf16_8192", ALLOY_BF16, ALLOY_BF16, 0, 8192, 8192, 8192, 0, reps);
    bench_matmul(dev, q, "f16_4096", ALLOY_F16, ALLOY_F16, 0, 4096, 4096, 4096, 0, reps);
    bench_matmul(dev, q, "tf32_4096", ALLOY_F32, ALLOY_F32, 1, 4096, 4096, 4096, 0, reps);
    bench_matmul(dev, q, "f32_4096", ALLOY_F32, ALLOY_F32, 0, 4096, 4096, 4096, 0, reps);
    bench_matmul(dev, q, "f64_2048", ALLOY_F64, ALLOY_F64, 0, 2048, 2048, 2048, 0, reps);
    bench_matmul(dev, q, "bf16_64x4096x4096", ALLOY_BF16, ALLOY_BF16, 0, 64, 4096, 4096, 1, reps);
    bench_matmul(dev, q, "bf16_1x4096x4096", ALLOY_BF16, ALLOY_BF16, 0, 1, 4096, 4096, 1, reps);
    bench_norm(dev, q, "bf16_8192x8192", ALLOY_BF16, 8192, 8192, reps);
    bench_norm(dev, q, "f32_65536x1024", ALLOY_F32, 65536, 1024, reps);
    bench_copy(dev, q, "f32_8192sq", ALLOY_F32, ALLOY_F32, 8192, 0, reps);
    bench_copy(dev, q, "f32_to_bf16_8192sq", ALLOY_F32, ALLOY_BF16, 8192, 0, reps);
    bench_copy(dev, q, "f32_transpose_8192sq", ALLOY_F32, ALLOY_F32, 8192, 1, reps);
    CHECK(alloy_queue_destroy(q));
    CHECK(alloy_device_close(dev));
    return 0;
}
