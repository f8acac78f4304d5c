/* alloy vs OpenBLAS, one thread/worker each, in interleaved pairs: the measure issue 8
 * asks for. For each case it runs alloy and OpenBLAS back to back `pairs` times (each the
 * best of 3 timings, more for small products) and reports the median ratio
 * OpenBLAS time / alloy time (above 1: alloy faster) and its spread.
 *   gemm_ratio [pairs] [shapes|scaling]  (default 7 pairs)
 * Run OpenBLAS with OPENBLAS_CORETYPE=SkylakeX on these machines (see docs/benchmarks.md);
 * OpenBLAS is limited to one thread here. Cases: sgemm and dgemm n = 256, 1024, 2048, dgetrf and
 * sgetrf n = 1024, 2048 (LAPACKE), strsm and dtrsm (left, lower) 1024 x 256 and 2048 x 2048; with
 * `shapes`, skinny and small sgemm shapes instead; with `scaling`, alloy alone: one worker
 * against all of them on sgemm 64, 128, 256, 1024, 2048 (the ratio is the speedup). Results are
 * checked once against OpenBLAS's (scaling: the two devices' bits against each other).
 * ALLOY_BENCH_KERNEL=avx2 (or portable, avx512) forces alloy's microkernel set. */
#include "alloy.h"
#include "bench_util.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ctx {
    alloy_device *dev;
    alloy_queue *q;
} ctx;

/* The inputs' values: a linear congruential sequence mapped to [-0.5, 0.5). */
static double next_value(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (double)((*seed >> 8) & 0xffff) / 65536.0 - 0.5;
}

/* Element i of an f64 (f64 set) or f32 array, stored from a double. */
static void put(void *p, int f64, size_t i, double v)
{
    if (f64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

static double get(const void *p, int f64, size_t i)
{
    return f64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

/* Largest |got - want| over n floats (f64: doubles); *scale: the largest |want|. */
static double max_diff(int f64, const void *got, const void *want, size_t n, double *scale)
{
    double err = 0;
    *scale = 0;
    for (size_t i = 0; i < n; i++) {
        double w = get(want, f64, i);
        err = fmax(err, fabs(get(got, f64, i) - w));
        *scale = fmax(*scale, fabs(w));
    }
    return err;
}

/* One table row from the pairs' times (ra: alloy's, rb: the vendor's; both get sorted):
 * median GFLOPS of each side, and the median and spread of vendor time / alloy time. */
static void report(const char *name, double flops, double *ra, double *rb, int pairs)
{
    double ratio[101];
    for (int p = 0; p < pairs; p++)
        ratio[p] = rb[p] / ra[p]; /* > 1: alloy faster */
    qsort(ra, (size_t)pairs, sizeof(double), cmp);
    qsort(rb, (size_t)pairs, sizeof(double), cmp);
    qsort(ratio, (size_t)pairs, sizeof(double), cmp);
    printf("%-20s %12.1f %12.1f %10.3f %8.3f..%-8.3f\n", name, flops / ra[pairs / 2] * 1e-9,
           flops / rb[pairs / 2] * 1e-9, ratio[pairs / 2], ratio[0], ratio[pairs - 1]);
    fflush(stdout);
}

/* Timings per side of one pair: the best of this many. */
static int gemm_reps(int m, int n, int k)
{
    double fl = 2.0 * m * (double)n * k;
    int r = fl >= 1e8 ? 3 : (int)(3e8 / fl);
    return r < 3 ? 3 : r > 200 ? 200 : r;
}

static double run_alloy_gemm(ctx *c, int f64, alloy_buffer *ba, alloy_buffer *bb, alloy_buffer *bc,
                             int m, int n, int k)
{
    int64_t sa[2] = {m, k}, sb[2] = {k, n}, sc[2] = {m, n};
    const alloy_dtype t = f64 ? ALLOY_F64 : ALLOY_F32;
    alloy_array a = alloy_array_contiguous(ba, 0, t, 2, sa);
    alloy_array b = alloy_array_contiguous(bb, 0, t, 2, sb);
    alloy_array cc = alloy_array_contiguous(bc, 0, t, 2, sc);
    alloy_matmul_desc d = alloy_matmul_desc_default();
    double best = 1e30;
    for (int r = 0, reps = gemm_reps(m, n, k); r < reps; r++) {
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

static double run_blas_gemm(int f64, const void *a, const void *b, void *c, int m, int n, int k)
{
    double best = 1e30;
    for (int r = 0, reps = gemm_reps(m, n, k); r < reps; r++) {
        double t0 = now();
        if (f64)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, a, k, b, n, 0.0, c,
                        n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f,
                        c, n);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

/* One sgemm (dgemm for f64) row: C (m x n) = A (m x k) B (k x n), row-major, alloy's C
 * and OpenBLAS's in buffers from the same allocator. Returns nonzero when the results
 * differ. */
static int gemm_case(ctx *c, int f64, int m, int n, int k, int pairs)
{
    const size_t es = f64 ? sizeof(double) : sizeof(float);
    size_t as = es * (size_t)m * (size_t)k, bs = es * (size_t)k * (size_t)n,
           cs = es * (size_t)m * (size_t)n;
    alloy_buffer *ba, *bb, *bc, *br;
    check(alloy_buffer_create(c->dev, as, ALLOY_MEMORY_HOST, &ba), "buf");
    check(alloy_buffer_create(c->dev, bs, ALLOY_MEMORY_HOST, &bb), "buf");
    check(alloy_buffer_create(c->dev, cs, ALLOY_MEMORY_HOST, &bc), "buf");
    check(alloy_buffer_create(c->dev, cs, ALLOY_MEMORY_HOST, &br), "buf");
    void *a = alloy_buffer_contents(ba), *b = alloy_buffer_contents(bb);
    void *ref = alloy_buffer_contents(br);
    unsigned seed = 12345;
    for (size_t i = 0; i < (size_t)m * (size_t)k; i++)
        put(a, f64, i, next_value(&seed));
    for (size_t i = 0; i < (size_t)k * (size_t)n; i++)
        put(b, f64, i, next_value(&seed));
    double ra[101], rb[101];
    for (int p = 0; p < pairs; p++) {
        ra[p] = run_alloy_gemm(c, f64, ba, bb, bc, m, n, k);
        rb[p] = run_blas_gemm(f64, a, b, ref, m, n, k);
    }
    double scale;
    double err = max_diff(f64, alloy_buffer_contents(bc), ref, (size_t)m * (size_t)n, &scale);
    int bad = err > (f64 ? 1e-12 : 1e-4) * scale * sqrt((double)k);
    const char p = f64 ? 'd' : 's';
    if (bad)
        fprintf(stderr, "%cgemm %dx%dx%d: alloy differs from OpenBLAS by %g\n", p, m, n, k, err);
    char name[48];
    if (m == n && n == k)
        snprintf(name, sizeof name, "%cgemm %d", p, n);
    else
        snprintf(name, sizeof name, "%cgemm %dx%dx%d", p, m, n, k);
    report(name, 2.0 * m * (double)n * k, ra, rb, pairs);
    alloy_buffer_destroy(ba);
    alloy_buffer_destroy(bb);
    alloy_buffer_destroy(bc);
    alloy_buffer_destroy(br);
    return bad;
}

/* LU of an n x n matrix of dtype dt (F32 or F64), restored from src before each run. */
static double run_alloy_lu(ctx *c, alloy_buffer *ba, alloy_buffer *bp, alloy_buffer *bi,
                           const void *src, int n, alloy_dtype dt)
{
    int64_t s[2] = {n, n}, sp[1] = {n};
    alloy_array a = alloy_array_contiguous(ba, 0, dt, 2, s);
    alloy_array p = alloy_array_contiguous(bp, 0, ALLOY_I32, 1, sp);
    alloy_array info = alloy_array_contiguous(bi, 0, ALLOY_I32, 0, NULL);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        memcpy(alloy_buffer_contents(ba), src, alloy_dtype_size(dt) * (size_t)n * (size_t)n);
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

static double run_lapacke_lu(void *a, int *piv, const void *src, int n, alloy_dtype dt)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        memcpy(a, src, alloy_dtype_size(dt) * (size_t)n * (size_t)n);
        double t0 = now();
        if (dt == ALLOY_F64)
            LAPACKE_dgetrf(LAPACK_ROW_MAJOR, n, n, a, n, piv);
        else
            LAPACKE_sgetrf(LAPACK_ROW_MAJOR, n, n, a, n, piv);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

/* One getrf row; nonzero when a pivot differs from LAPACKE's. */
static int getrf_case(ctx *c, int n, alloy_dtype dt, int pairs)
{
    const size_t es = alloy_dtype_size(dt), bytes = es * (size_t)n * (size_t)n;
    alloy_buffer *ba, *bp, *bi;
    check(alloy_buffer_create(c->dev, bytes, ALLOY_MEMORY_HOST, &ba), "buf");
    check(alloy_buffer_create(c->dev, sizeof(int) * (size_t)n, ALLOY_MEMORY_HOST, &bp), "buf");
    check(alloy_buffer_create(c->dev, sizeof(int), ALLOY_MEMORY_HOST, &bi), "buf");
    void *src = malloc(bytes), *work = malloc(bytes);
    int *piv = malloc(sizeof(int) * (size_t)n);
    if (!src || !work || !piv) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    unsigned seed = 777;
    for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
        double v = next_value(&seed);
        if (dt == ALLOY_F64)
            ((double *)src)[i] = v;
        else
            ((float *)src)[i] = (float)v;
    }
    double ra[101], rb[101];
    for (int p = 0; p < pairs; p++) {
        ra[p] = run_alloy_lu(c, ba, bp, bi, src, n, dt);
        rb[p] = run_lapacke_lu(work, piv, src, n, dt);
    }
    const char *name0 = dt == ALLOY_F64 ? "dgetrf" : "sgetrf";
    /* f64 pivots must equal LAPACKE's (alloy's pivot search is i?amax's); in f32 a
     * near-tie can round the other way in a different product order, and the rest then
     * follows another path (tests/test_lu checks the factorization itself). */
    const int *ap = alloy_buffer_contents(bp);
    int bad = 0, differ = 0, first = -1;
    for (int i = 0; i < n; i++)
        if (ap[i] != piv[i]) {
            differ++;
            first = first < 0 ? i : first;
        }
    if (differ && dt == ALLOY_F64) {
        fprintf(stderr, "%s %d: pivot %d differs (%d vs %d)\n", name0, n, first, ap[first],
                piv[first]);
        bad = 1;
    }
    char name[32];
    snprintf(name, sizeof name, "%s %d", name0, n);
    report(name, 2.0 / 3.0 * n * (double)n * n, ra, rb, pairs);
    if (differ && dt != ALLOY_F64)
        printf("  (%s: %d pivots differ from LAPACKE's, from row %d on: an f32 near-tie)\n", name,
               differ, first);
    fflush(stdout);
    free(src);
    free(work);
    free(piv);
    alloy_buffer_destroy(ba);
    alloy_buffer_destroy(bp);
    alloy_buffer_destroy(bi);
    return bad;
}

/* One trsm row (strsm, or dtrsm for f64): X = L^-1 B for a lower-triangular m x m L and
 * B m x n, left side. */
static int trsm_case(ctx *c, int f64, int m, int n, int pairs)
{
    const size_t es = f64 ? sizeof(double) : sizeof(float);
    const size_t as = es * (size_t)m * (size_t)m, bs = es * (size_t)m * (size_t)n;
    alloy_buffer *ba, *bb, *br;
    check(alloy_buffer_create(c->dev, as, ALLOY_MEMORY_HOST, &ba), "buf");
    check(alloy_buffer_create(c->dev, bs, ALLOY_MEMORY_HOST, &bb), "buf");
    check(alloy_buffer_create(c->dev, bs, ALLOY_MEMORY_HOST, &br), "buf");
    void *a = alloy_buffer_contents(ba), *x = alloy_buffer_contents(bb);
    void *ref = alloy_buffer_contents(br), *b0 = malloc(bs);
    if (!b0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    unsigned seed = 4242;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double v = next_value(&seed);
            put(a, f64, (size_t)i * m + j, i == j ? 2.0 : j < i ? v / m : 0.0);
        }
    for (size_t i = 0; i < (size_t)m * (size_t)n; i++)
        put(b0, f64, i, next_value(&seed));
    int64_t sa[2] = {m, m}, sb[2] = {m, n};
    const alloy_dtype t = f64 ? ALLOY_F64 : ALLOY_F32;
    alloy_array A = alloy_array_contiguous(ba, 0, t, 2, sa);
    alloy_array X = alloy_array_contiguous(bb, 0, t, 2, sb);
    alloy_triangular_desc d = alloy_triangular_desc_default();
    d.side = ALLOY_LEFT;
    d.uplo = ALLOY_LOWER;
    double ra[101], rb[101];
    for (int p = 0; p < pairs; p++) {
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            memcpy(x, b0, bs);
            alloy_cmdbuf *cb;
            check(alloy_cmdbuf_create(c->q, &cb), "cmdbuf");
            check(alloy_encode_triangular_solve(cb, &d, &A, &X), "triangular_solve");
            double t0 = now();
            check(alloy_cmdbuf_commit(cb), "commit");
            check(alloy_cmdbuf_wait(cb), "wait");
            double el = now() - t0;
            best = el < best ? el : best;
            alloy_cmdbuf_destroy(cb);
        }
        ra[p] = best;
        best = 1e30;
        for (int r = 0; r < 3; r++) {
            memcpy(ref, b0, bs);
            double t0 = now();
            if (f64)
                cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, m, n,
                            1.0, a, m, ref, n);
            else
                cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, m, n,
                            1.0f, a, m, ref, n);
            double el = now() - t0;
            best = el < best ? el : best;
        }
        rb[p] = best;
    }
    double scale;
    double err = max_diff(f64, x, ref, (size_t)m * (size_t)n, &scale);
    int bad = err > (f64 ? 1e-12 : 1e-4) * scale * sqrt((double)m);
    char name[48];
    snprintf(name, sizeof name, "%ctrsm %dx%d", f64 ? 'd' : 's', m, n);
    if (bad)
        fprintf(stderr, "%s: alloy differs from OpenBLAS by %g\n", name, err);
    report(name, (double)m * m * n, ra, rb, pairs);
    free(b0);
    alloy_buffer_destroy(ba);
    alloy_buffer_destroy(bb);
    alloy_buffer_destroy(br);
    return bad;
}

/* sgemm n^3 on a one-worker device against one with every worker, interleaved: the
 * speedup (one-worker time / all-workers time) and its spread. The products must agree
 * bit for bit. */
static int scaling_case(ctx *one, ctx *all, int n, int pairs)
{
    size_t bytes = sizeof(float) * (size_t)n * (size_t)n;
    alloy_buffer *b1[3], *b2[3];
    for (int i = 0; i < 3; i++) {
        check(alloy_buffer_create(one->dev, bytes, ALLOY_MEMORY_HOST, &b1[i]), "buf");
        check(alloy_buffer_create(all->dev, bytes, ALLOY_MEMORY_HOST, &b2[i]), "buf");
    }
    unsigned seed = 12345;
    for (int i = 0; i < 2; i++) {
        float *x = alloy_buffer_contents(b1[i]);
        for (size_t e = 0; e < (size_t)n * (size_t)n; e++)
            x[e] = (float)next_value(&seed);
        memcpy(alloy_buffer_contents(b2[i]), x, bytes);
    }
    double ra[101], rb[101];
    /* a pause before each side lets the other device's workers finish polling and sleep
     * (on two cores they would otherwise take one from the side being timed) */
    const struct timespec pause = {0, 20 * 1000 * 1000};
    for (int p = 0; p < pairs; p++) {
        nanosleep(&pause, NULL);
        ra[p] = run_alloy_gemm(all, 0, b2[0], b2[1], b2[2], n, n, n);
        nanosleep(&pause, NULL);
        rb[p] = run_alloy_gemm(one, 0, b1[0], b1[1], b1[2], n, n, n);
    }
    int bad = memcmp(alloy_buffer_contents(b1[2]), alloy_buffer_contents(b2[2]), bytes) != 0;
    if (bad)
        fprintf(stderr, "sgemm %d: one worker and all workers differ\n", n);
    char name[48];
    snprintf(name, sizeof name, "sgemm %d", n);
    report(name, 2.0 * n * (double)n * n, ra, rb, pairs);
    for (int i = 0; i < 3; i++) {
        alloy_buffer_destroy(b1[i]);
        alloy_buffer_destroy(b2[i]);
    }
    return bad;
}

static void open_ctx(ctx *c, int workers)
{
    alloy_device_desc dd = alloy_device_desc_default();
    dd.backend = ALLOY_BACKEND_CPU;
    dd.cpu_workers = workers;
    dd.cpu_kernel = bench_kernel();
    check(alloy_device_open(&dd, &c->dev), "device");
    check(alloy_queue_create(c->dev, &c->q), "queue");
}

static void close_ctx(ctx *c)
{
    alloy_queue_destroy(c->q);
    alloy_device_close(c->dev);
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 7;
    if (pairs < 1 || pairs > 101)
        pairs = 7;
    openblas_set_num_threads(1); /* the environment is read at load time, too late here */
    ctx c;
    open_ctx(&c, 1);
    if (argc > 2 && strcmp(argv[2], "scaling") == 0) {
        ctx all;
        open_ctx(&all, 0);
        printf("devices: %s against %s; %d interleaved pairs, each the best of 3 or more\n",
               alloy_device_name(c.dev), alloy_device_name(all.dev), pairs);
        printf("%-20s %12s %12s %10s %18s\n", "case", "all GF/s", "one GF/s", "speedup",
               "speedup min..max");
        const int sizes[5] = {64, 128, 256, 1024, 2048};
        int bad = 0;
        for (int si = 0; si < 5; si++)
            bad |= scaling_case(&c, &all, sizes[si], pairs);
        close_ctx(&all);
        close_ctx(&c);
        return bad;
    }
    printf("device: %s; OPENBLAS_CORETYPE=%s; %d interleaved pairs, each the best of 3 or more\n",
           alloy_device_name(c.dev),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)", pairs);
    printf("%-20s %12s %12s %10s %18s\n", "case", "alloy GF/s", "vendor GF/s", "ratio",
           "ratio min..max");
    if (argc > 2 && strcmp(argv[2], "shapes") == 0) {
        /* M x N x K: skinny N (a matrix times a few vectors), skinny M (few tokens through
         * a layer), small squares */
        static const int shapes[][3] = {
            {1024, 1, 1024}, {1024, 4, 1024}, {1024, 8, 1024}, {1024, 16, 1024}, {1024, 48, 1024},
            {4096, 1, 4096}, {4096, 8, 4096}, {1, 4096, 4096}, {8, 1024, 1024},  {64, 1024, 1024},
            {64, 64, 64},    {100, 100, 100}, {300, 300, 300}};
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            if (gemm_case(&c, 0, shapes[i][0], shapes[i][1], shapes[i][2], pairs))
                return 1;
        alloy_queue_destroy(c.q);
        alloy_device_close(c.dev);
        return 0;
    }
    const int sizes[3] = {256, 1024, 2048};
    for (int si = 0; si < 3; si++)
        if (gemm_case(&c, 0, sizes[si], sizes[si], sizes[si], pairs))
            return 1;
    for (int si = 0; si < 3; si++)
        if (gemm_case(&c, 1, sizes[si], sizes[si], sizes[si], pairs))
            return 1;
    const int lsizes[2] = {1024, 2048};
    for (int si = 0; si < 2; si++)
        if (getrf_case(&c, lsizes[si], ALLOY_F64, pairs))
            return 1;
    for (int si = 0; si < 2; si++)
        if (getrf_case(&c, lsizes[si], ALLOY_F32, pairs))
            return 1;
    for (int f64 = 0; f64 < 2; f64++)
        if (trsm_case(&c, f64, 1024, 256, pairs) || trsm_case(&c, f64, 2048, 2048, pairs))
            return 1;
    alloy_queue_destroy(c.q);
    alloy_device_close(c.dev);
    return 0;
}
