/* alloy vs OpenBLAS, one thread/worker each, in interleaved pairs: the measure issue 8
 * asks for. For each case it runs alloy and OpenBLAS back to back `pairs` times (each a
 * best-of-3 timing) and reports the median ratio alloy/OpenBLAS and its spread.
 *   gemm_ratio [pairs]          (default 7)
 * Run OpenBLAS with OPENBLAS_CORETYPE=SkylakeX on these machines (see docs/benchmarks.md);
 * OpenBLAS is limited to one thread here. Cases: sgemm n = 256, 1024, 2048 and dgetrf
 * n = 1024, 2048 (LAPACKE). Results are checked once against OpenBLAS's. */
#include "alloy.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct ctx {
    alloy_device *dev;
    alloy_queue *q;
} ctx;

static void check(alloy_status s, const char *what)
{
    if (s != ALLOY_OK) {
        fprintf(stderr, "%s: %s (%s)\n", what, alloy_status_string(s), alloy_last_error());
        exit(1);
    }
}

static double run_alloy_gemm(ctx *c, alloy_buffer *ba, alloy_buffer *bb, alloy_buffer *bc, int n)
{
    int64_t s[2] = {n, n};
    alloy_array a = alloy_array_contiguous(ba, 0, ALLOY_F32, 2, s);
    alloy_array b = alloy_array_contiguous(bb, 0, ALLOY_F32, 2, s);
    alloy_array cc = alloy_array_contiguous(bc, 0, ALLOY_F32, 2, s);
    alloy_matmul_desc d = alloy_matmul_desc_default();
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        alloy_cmdbuf *cb;
        check(alloy_cmdbuf_create(c->q, &cb), "cmdbuf");
        check(alloy_encode_matmul(cb, &d, &a, &b, NULL, &cc), "matmul");
        double t0 = now();
        check(alloy_cmdbuf_commit(cb), "commit");
        check(alloy_cmdbuf_wait(cb), "wait");
        double t = now() - t0;
        best = t < best ? t : best;
        alloy_cmdbuf_destroy(cb);
    }
    return best;
}

static double run_blas_gemm(const float *a, const float *b, float *c, int n)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

static double run_alloy_lu(ctx *c, alloy_buffer *ba, alloy_buffer *bp, alloy_buffer *bi,
                           const double *src, int n)
{
    int64_t s[2] = {n, n}, sp[1] = {n};
    alloy_array a = alloy_array_contiguous(ba, 0, ALLOY_F64, 2, s);
    alloy_array p = alloy_array_contiguous(bp, 0, ALLOY_I32, 1, sp);
    alloy_array info = alloy_array_contiguous(bi, 0, ALLOY_I32, 0, NULL);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        memcpy(alloy_buffer_contents(ba), src, sizeof(double) * (size_t)n * (size_t)n);
        alloy_cmdbuf *cb;
        check(alloy_cmdbuf_create(c->q, &cb), "cmdbuf");
        check(alloy_encode_lu_factor(cb, &a, &p, &info), "lu_factor");
        double t0 = now();
        check(alloy_cmdbuf_commit(cb), "commit");
        check(alloy_cmdbuf_wait(cb), "wait");
        double t = now() - t0;
        best = t < best ? t : best;
        alloy_cmdbuf_destroy(cb);
    }
    return best;
}

static double run_lapacke_lu(double *a, int *piv, const double *src, int n)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        memcpy(a, src, sizeof(double) * (size_t)n * (size_t)n);
        double t0 = now();
        LAPACKE_dgetrf(LAPACK_ROW_MAJOR, n, n, a, n, piv);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 7;
    if (pairs < 1 || pairs > 101)
        pairs = 7;
    openblas_set_num_threads(1); /* the environment is read at load time, too late here */
    ctx c;
    alloy_device_desc dd = alloy_device_desc_default();
    dd.backend = ALLOY_BACKEND_CPU;
    dd.cpu_workers = 1;
    check(alloy_device_open(&dd, &c.dev), "device");
    check(alloy_queue_create(c.dev, &c.q), "queue");
    printf("device: %s; OPENBLAS_CORETYPE=%s; %d interleaved pairs, each best of 3\n",
           alloy_device_name(c.dev), getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)",
           pairs);
    printf("%-14s %12s %12s %10s %18s\n", "case", "alloy GF/s", "vendor GF/s", "ratio",
           "ratio min..max");
    const int sizes[3] = {256, 1024, 2048};
    for (int si = 0; si < 3; si++) {
        int n = sizes[si];
        size_t bytes = sizeof(float) * (size_t)n * (size_t)n;
        alloy_buffer *ba, *bb, *bc;
        check(alloy_buffer_create(c.dev, bytes, ALLOY_MEMORY_HOST, &ba), "buf");
        check(alloy_buffer_create(c.dev, bytes, ALLOY_MEMORY_HOST, &bb), "buf");
        check(alloy_buffer_create(c.dev, bytes, ALLOY_MEMORY_HOST, &bc), "buf");
        float *a = alloy_buffer_contents(ba), *b = alloy_buffer_contents(bb);
        float *ref = malloc(bytes);
        unsigned seed = 12345;
        for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
            seed = seed * 1103515245u + 12345u;
            a[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
            seed = seed * 1103515245u + 12345u;
            b[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
        }
        double ra[101], rb[101], ratio[101];
        for (int p = 0; p < pairs; p++) {
            ra[p] = run_alloy_gemm(&c, ba, bb, bc, n);
            rb[p] = run_blas_gemm(a, b, ref, n);
            ratio[p] = rb[p] / ra[p]; /* > 1: alloy faster */
        }
        const float *cc = alloy_buffer_contents(bc);
        double err = 0, scale = 0;
        for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
            err = fmax(err, fabs((double)cc[i] - (double)ref[i]));
            scale = fmax(scale, fabs((double)ref[i]));
        }
        if (err > 1e-4 * scale * sqrt((double)n)) {
            fprintf(stderr, "sgemm %d: alloy differs from OpenBLAS by %g\n", n, err);
            return 1;
        }
        qsort(ra, (size_t)pairs, sizeof(double), cmp);
        qsort(rb, (size_t)pairs, sizeof(double), cmp);
        qsort(ratio, (size_t)pairs, sizeof(double), cmp);
        double fl = 2.0 * n * (double)n * n;
        char name[32];
        snprintf(name, sizeof name, "sgemm %d", n);
        printf("%-14s %12.1f %12.1f %10.3f %8.3f..%-8.3f\n", name, fl / ra[pairs / 2] * 1e-9,
               fl / rb[pairs / 2] * 1e-9, ratio[pairs / 2], ratio[0], ratio[pairs - 1]);
        fflush(stdout);
        free(ref);
        alloy_buffer_destroy(ba);
        alloy_buffer_destroy(bb);
        alloy_buffer_destroy(bc);
    }
    const int lsizes[2] = {1024, 2048};
    for (int si = 0; si < 2; si++) {
        int n = lsizes[si];
        size_t bytes = sizeof(double) * (size_t)n * (size_t)n;
        alloy_buffer *ba, *bp, *bi;
        check(alloy_buffer_create(c.dev, bytes, ALLOY_MEMORY_HOST, &ba), "buf");
        check(alloy_buffer_create(c.dev, sizeof(int) * (size_t)n, ALLOY_MEMORY_HOST, &bp), "buf");
        check(alloy_buffer_create(c.dev, sizeof(int), ALLOY_MEMORY_HOST, &bi), "buf");
        double *src = malloc(bytes), *work = malloc(bytes);
        int *piv = malloc(sizeof(int) * (size_t)n);
        unsigned seed = 777;
        for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
            seed = seed * 1103515245u + 12345u;
            src[i] = (double)((seed >> 8) & 0xffff) / 65536.0 - 0.5;
        }
        double ra[101], rb[101], ratio[101];
        for (int p = 0; p < pairs; p++) {
            ra[p] = run_alloy_lu(&c, ba, bp, bi, src, n);
            rb[p] = run_lapacke_lu(work, piv, src, n);
            ratio[p] = rb[p] / ra[p];
        }
        const int *ap = alloy_buffer_contents(bp);
        for (int i = 0; i < n; i++)
            if (ap[i] != piv[i]) {
                fprintf(stderr, "dgetrf %d: pivot %d differs (%d vs %d)\n", n, i, ap[i], piv[i]);
                return 1;
            }
        qsort(ra, (size_t)pairs, sizeof(double), cmp);
        qsort(rb, (size_t)pairs, sizeof(double), cmp);
        qsort(ratio, (size_t)pairs, sizeof(double), cmp);
        double fl = 2.0 / 3.0 * n * (double)n * n;
        char name[32];
        snprintf(name, sizeof name, "dgetrf %d", n);
        printf("%-14s %12.1f %12.1f %10.3f %8.3f..%-8.3f\n", name, fl / ra[pairs / 2] * 1e-9,
               fl / rb[pairs / 2] * 1e-9, ratio[pairs / 2], ratio[0], ratio[pairs - 1]);
        fflush(stdout);
        free(src);
        free(work);
        free(piv);
        alloy_buffer_destroy(ba);
        alloy_buffer_destroy(bp);
        alloy_buffer_destroy(bi);
    }
    alloy_queue_destroy(c.q);
    alloy_device_close(c.dev);
    return 0;
}
