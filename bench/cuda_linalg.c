/* cuda_linalg: the CUDA backend's solvers through alloy's public API: a check against the
 * CPU backend on the same inputs, then timings to set beside cuSOLVER/cuBLAS.
 *
 *   cuda_linalg [reps]
 *
 * Check lines: "check <case> rel=<max |gpu - cpu| / max |cpu|> piv=<pivots that differ>
 * info=<infos that differ>". Timing lines, as cuda_bench's: "alloy <name> <ms> ms <rate>".
 * In-place ops are timed with the copy that restores their input in the same command
 * buffer (torch.linalg.lu_factor and solve_triangular copy their inputs too). */
#include "alloy.h"
#include "cuda_bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void fill(void *h, alloy_dtype t, size_t count, unsigned seed, double diag, int64_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (seed * 0x2545F4914F6CDD1Dull);
    for (size_t i = 0; i < count; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v = (double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0;
        if (diag != 0 && n > 0 && (int64_t)(i % (size_t)(n * n)) / n == (int64_t)(i % (size_t)n))
            v += diag; /* diagonally weighted triangles: well-conditioned solves */
        if (t == ALLOY_F32)
            ((float *)h)[i] = (float)v;
        else
            ((double *)h)[i] = v;
    }
}

typedef struct dev2 {
    alloy_device *dev;
    alloy_queue *q;
} dev2;

static alloy_buffer *buf(alloy_device *d, size_t bytes, const void *init)
{
    alloy_buffer *b = NULL;
    CHECK(alloy_buffer_create(d, bytes ? bytes : 1, ALLOY_MEMORY_DEVICE, &b));
    if (init && bytes)
        CHECK(alloy_buffer_write(b, 0, init, bytes));
    return b;
}

static void run(alloy_cmdbuf *cb)
{
    CHECK(alloy_cmdbuf_commit(cb));
    CHECK(alloy_cmdbuf_wait(cb));
    CHECK(alloy_cmdbuf_destroy(cb));
}

static double value(const void *p, alloy_dtype t, size_t i)
{
    return t == ALLOY_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* ---------------------------------------------------------------- checks */

/* lu_factor of batch x m x n on both devices (transposed view when `trans`). */
static void check_lu(dev2 *g, dev2 *c, alloy_dtype t, int64_t batch, int64_t m, int64_t n,
                     int trans, const char *name)
{
    size_t es = alloy_dtype_size(t), cnt = (size_t)(batch * m * n), mn = (size_t)(m < n ? m : n);
    void *h = malloc(cnt * es), *rg = malloc(cnt * es), *rc = malloc(cnt * es);
    int32_t *pg = malloc((size_t)batch * mn * 4 + 4), *pc = malloc((size_t)batch * mn * 4 + 4);
    int32_t *ig = malloc((size_t)batch * 4), *ic = malloc((size_t)batch * 4);
    fill(h, t, cnt, (unsigned)(m * 31 + n), 0, 0);
    dev2 *d2[2] = {g, c};
    void *res[2] = {rg, rc};
    int32_t *piv[2] = {pg, pc}, *inf[2] = {ig, ic};
    for (int k = 0; k < 2; k++) {
        alloy_buffer *a = buf(d2[k]->dev, cnt * es, h);
        alloy_buffer *p = buf(d2[k]->dev, (size_t)batch * mn * 4, NULL);
        alloy_buffer *in = buf(d2[k]->dev, (size_t)batch * 4, NULL);
        int64_t sa[3] = {batch, trans ? n : m, trans ? m : n}, sp[2] = {batch, (int64_t)mn};
        alloy_array A = alloy_array_contiguous(a, 0, t, 3, sa);
        if (trans)
            A = alloy_array_swap_dims(A, 1, 2);
        alloy_array P = alloy_array_contiguous(p, 0, ALLOY_I32, 2, sp);
        alloy_array I = alloy_array_contiguous(in, 0, ALLOY_I32, 1, &batch);
        alloy_cmdbuf *cb = NULL;
        CHECK(alloy_cmdbuf_create(d2[k]->q, &cb));
        CHECK(alloy_encode_lu_factor(cb, &A, &P, &I));
        run(cb);
        CHECK(alloy_buffer_read(a, 0, res[k], cnt * es));
        CHECK(alloy_buffer_read(p, 0, piv[k], (size_t)batch * mn * 4));
        CHECK(alloy_buffer_read(in, 0, inf[k], (size_t)batch * 4));
        alloy_buffer_destroy(a);
        alloy_buffer_destroy(p);
        alloy_buffer_destroy(in);
    }
    double md = 0, mx = 0;
    int nan = 0;
    for (size_t i = 0; i < cnt; i++) {
        double a = value(rg, t, i), b = value(rc, t, i);
        if (isnan(a) != isnan(b))
            nan++;
        md = fmax(md, fabs(a - b));
        mx = fmax(mx, fabs(b));
    }
    size_t pd = 0, id = 0;
    for (size_t i = 0; i < (size_t)batch * mn; i++)
        pd += pg[i] != pc[i];
    for (int64_t i = 0; i < batch; i++)
        id += ig[i] != ic[i];
    printf("check lu_%s rel=%.3g piv=%zu info=%zu nan=%d\n", name, md / (mx > 0 ? mx : 1), pd, id,
           nan);
    fflush(stdout);
    free(h), free(rg), free(rc), free(pg), free(pc), free(ig), free(ic);
}

/* triangular_solve variant on both devices: a (k x k, a broadcast), b batch x m x n. */
static void check_trsm(dev2 *g, dev2 *c, alloy_dtype t, int64_t batch, int64_t m, int64_t n,
                       alloy_triangular_desc d, const char *name)
{
    size_t es = alloy_dtype_size(t);
    int64_t k = d.side == ALLOY_LEFT ? m : n;
    size_t ca = (size_t)(k * k), cb_ = (size_t)(batch * m * n);
    void *ha = malloc(ca * es), *hb = malloc(cb_ * es), *rg = malloc(cb_ * es),
         *rc = malloc(cb_ * es);
    fill(ha, t, ca, 7, 4.0, k);
    for (size_t i = 0; i < ca; i++) /* scale off-diagonal down */
        if (i / (size_t)k != i % (size_t)k) {
            if (t == ALLOY_F32)
                ((float *)ha)[i] *= 0.1f;
            else
                ((double *)ha)[i] *= 0.1;
        }
    fill(hb, t, cb_, 9, 0, 0);
    dev2 *d2[2] = {g, c};
    void *res[2] = {rg, rc};
    for (int j = 0; j < 2; j++) {
        alloy_buffer *a = buf(d2[j]->dev, ca * es, ha), *b = buf(d2[j]->dev, cb_ * es, hb);
        int64_t sa[2] = {k, k}, sb[3] = {batch, m, n};
        alloy_array A = alloy_array_contiguous(a, 0, t, 2, sa);
        alloy_array B = alloy_array_contiguous(b, 0, t, 3, sb);
        alloy_cmdbuf *cb = NULL;
        CHECK(alloy_cmdbuf_create(d2[j]->q, &cb));
        CHECK(alloy_encode_triangular_solve(cb, &d, &A, &B));
        run(cb);
        CHECK(alloy_buffer_read(b, 0, res[j], cb_ * es));
        alloy_buffer_destroy(a);
        alloy_buffer_destroy(b);
    }
    double md = 0, mx = 0;
    for (size_t i = 0; i < cb_; i++) {
        md = fmax(md, fabs(value(rg, t, i) - value(rc, t, i)));
        mx = fmax(mx, fabs(value(rc, t, i)));
    }
    printf("check trsm_%s rel=%.3g\n", name, md / (mx > 0 ? mx : 1));
    fflush(stdout);
    free(ha), free(hb), free(rg), free(rc);
}

/* lu_factor then lu_solve on both devices; compares X. */
static void check_solve(dev2 *g, dev2 *c, alloy_dtype t, int64_t n, int64_t nrhs, int trans,
                        const char *name)
{
    size_t es = alloy_dtype_size(t);
    void *ha = malloc((size_t)(n * n) * es), *hb = malloc((size_t)(n * nrhs) * es);
    void *rg = malloc((size_t)(n * nrhs) * es), *rc = malloc((size_t)(n * nrhs) * es);
    fill(ha, t, (size_t)(n * n), 11, 0, 0);
    fill(hb, t, (size_t)(n * nrhs), 12, 0, 0);
    dev2 *d2[2] = {g, c};
    void *res[2] = {rg, rc};
    for (int j = 0; j < 2; j++) {
        alloy_buffer *a = buf(d2[j]->dev, (size_t)(n * n) * es, ha);
        alloy_buffer *b = buf(d2[j]->dev, (size_t)(n * nrhs) * es, hb);
        alloy_buffer *p = buf(d2[j]->dev, (size_t)n * 4, NULL), *in = buf(d2[j]->dev, 4, NULL);
        int64_t sa[2] = {n, n}, sb[2] = {n, nrhs};
        alloy_array A = alloy_array_contiguous(a, 0, t, 2, sa);
        alloy_array B = alloy_array_contiguous(b, 0, t, 2, sb);
        alloy_array P = alloy_array_contiguous(p, 0, ALLOY_I32, 1, &n);
        alloy_array I = alloy_array_contiguous(in, 0, ALLOY_I32, 0, NULL);
        alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
        d.transpose = trans;
        alloy_cmdbuf *cb = NULL;
        CHECK(alloy_cmdbuf_create(d2[j]->q, &cb));
        CHECK(alloy_encode_lu_factor(cb, &A, &P, &I));
        CHECK(alloy_encode_lu_solve(cb, &d, &A, &P, &B));
        run(cb);
        CHECK(alloy_buffer_read(b, 0, res[j], (size_t)(n * nrhs) * es));
        alloy_buffer_destroy(a), alloy_buffer_destroy(b), alloy_buffer_destroy(p);
        alloy_buffer_destroy(in);
    }
    double md = 0, mx = 0;
    for (size_t i = 0; i < (size_t)(n * nrhs); i++) {
        md = fmax(md, fabs(value(rg, t, i) - value(rc, t, i)));
        mx = fmax(mx, fabs(value(rc, t, i)));
    }
    printf("check solve_%s rel=%.3g\n", name, md / (mx > 0 ? mx : 1));
    fflush(stdout);
    free(ha), free(hb), free(rg), free(rc);
}

/* ---------------------------------------------------------------- timings */

typedef struct job {
    int kind; /* 0 lu_factor, 1 trsm, 2 lu_solve */
    alloy_array src, a, p, i, b, bsrc;
    alloy_triangular_desc td;
    alloy_lu_solve_desc sd;
} job;

static void encode(alloy_cmdbuf *cb, job *j)
{
    if (j->kind == 0) {
        CHECK(alloy_encode_copy(cb, &j->src, &j->a));
        CHECK(alloy_encode_lu_factor(cb, &j->a, &j->p, &j->i));
    } else if (j->kind == 1) {
        CHECK(alloy_encode_copy(cb, &j->bsrc, &j->b));
        CHECK(alloy_encode_triangular_solve(cb, &j->td, &j->a, &j->b));
    } else {
        CHECK(alloy_encode_copy(cb, &j->bsrc, &j->b));
        CHECK(alloy_encode_lu_solve(cb, &j->sd, &j->a, &j->p, &j->b));
    }
}

static double time_job(alloy_queue *q, job *j, int reps)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    for (int r = -1; r < reps; r++) {
        alloy_cmdbuf *cb = NULL;
        CHECK(alloy_cmdbuf_create(q, &cb));
        encode(cb, j);
        double t0 = now();
        run(cb);
        if (r >= 0)
            t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

static void time_lu(dev2 *g, alloy_dtype t, int64_t batch, int64_t n, const char *name, int reps)
{
    size_t es = alloy_dtype_size(t), cnt = (size_t)(batch * n * n);
    void *h = malloc(cnt * es);
    fill(h, t, cnt, 3, 0, 0);
    alloy_buffer *s = buf(g->dev, cnt * es, h), *a = buf(g->dev, cnt * es, NULL);
    alloy_buffer *p = buf(g->dev, (size_t)(batch * n) * 4, NULL);
    alloy_buffer *in = buf(g->dev, (size_t)batch * 4, NULL);
    free(h);
    int64_t sa[3] = {batch, n, n}, sp[2] = {batch, n};
    job j;
    memset(&j, 0, sizeof j);
    j.src = alloy_array_contiguous(s, 0, t, 3, sa);
    j.a = alloy_array_contiguous(a, 0, t, 3, sa);
    j.p = alloy_array_contiguous(p, 0, ALLOY_I32, 2, sp);
    j.i = alloy_array_contiguous(in, 0, ALLOY_I32, 1, &batch);
    double sec = time_job(g->q, &j, reps);
    double flops = (double)batch * 2.0 / 3.0 * (double)n * (double)n * (double)n;
    printf("alloy lu_%s %.4f ms %.2f TFLOPS\n", name, sec * 1e3, flops / sec * 1e-12);
    fflush(stdout);
    alloy_buffer_destroy(s), alloy_buffer_destroy(a), alloy_buffer_destroy(p);
    alloy_buffer_destroy(in);
}

static void time_trsm(dev2 *g, alloy_dtype t, int64_t n, int64_t nrhs, const char *name, int reps)
{
    size_t es = alloy_dtype_size(t);
    void *ha = malloc((size_t)(n * n) * es), *hb = malloc((size_t)(n * nrhs) * es);
    fill(ha, t, (size_t)(n * n), 5, 4.0, n);
    fill(hb, t, (size_t)(n * nrhs), 6, 0, 0);
    alloy_buffer *a = buf(g->dev, (size_t)(n * n) * es, ha);
    alloy_buffer *bs = buf(g->dev, (size_t)(n * nrhs) * es, hb);
    alloy_buffer *b = buf(g->dev, (size_t)(n * nrhs) * es, NULL);
    free(ha), free(hb);
    int64_t sa[2] = {n, n}, sb[2] = {n, nrhs};
    job j;
    memset(&j, 0, sizeof j);
    j.kind = 1;
    j.a = alloy_array_contiguous(a, 0, t, 2, sa);
    j.bsrc = alloy_array_contiguous(bs, 0, t, 2, sb);
    j.b = alloy_array_contiguous(b, 0, t, 2, sb);
    j.td = alloy_triangular_desc_default();
    j.td.uplo = ALLOY_LOWER;
    double sec = time_job(g->q, &j, reps);
    double flops = (double)n * (double)n * (double)nrhs;
    printf("alloy trsm_%s %.4f ms %.2f TFLOPS\n", name, sec * 1e3, flops / sec * 1e-12);
    fflush(stdout);
    alloy_buffer_destroy(a), alloy_buffer_destroy(bs), alloy_buffer_destroy(b);
}

static void time_getrs(dev2 *g, alloy_dtype t, int64_t n, int64_t nrhs, const char *name, int reps)
{
    size_t es = alloy_dtype_size(t);
    void *ha = malloc((size_t)(n * n) * es), *hb = malloc((size_t)(n * nrhs) * es);
    fill(ha, t, (size_t)(n * n), 5, 0, 0);
    fill(hb, t, (size_t)(n * nrhs), 6, 0, 0);
    alloy_buffer *a = buf(g->dev, (size_t)(n * n) * es, ha);
    alloy_buffer *bs = buf(g->dev, (size_t)(n * nrhs) * es, hb);
    alloy_buffer *b = buf(g->dev, (size_t)(n * nrhs) * es, NULL);
    alloy_buffer *p = buf(g->dev, (size_t)n * 4, NULL), *in = buf(g->dev, 4, NULL);
    free(ha), free(hb);
    int64_t sa[2] = {n, n}, sb[2] = {n, nrhs};
    job j;
    memset(&j, 0, sizeof j);
    j.kind = 2;
    j.a = alloy_array_contiguous(a, 0, t, 2, sa);
    j.p = alloy_array_contiguous(p, 0, ALLOY_I32, 1, &n);
    j.i = alloy_array_contiguous(in, 0, ALLOY_I32, 0, NULL);
    j.bsrc = alloy_array_contiguous(bs, 0, t, 2, sb);
    j.b = alloy_array_contiguous(b, 0, t, 2, sb);
    j.sd = alloy_lu_solve_desc_default();
    alloy_cmdbuf *cb = NULL; /* factor once */
    CHECK(alloy_cmdbuf_create(g->q, &cb));
    CHECK(alloy_encode_lu_factor(cb, &j.a, &j.p, &j.i));
    run(cb);
    double sec = time_job(g->q, &j, reps);
    printf("alloy getrs_%s %.4f ms %.2f TFLOPS\n", name, sec * 1e3,
           2.0 * (double)n * (double)n * (double)nrhs / sec * 1e-12);
    fflush(stdout);
    alloy_buffer_destroy(a), alloy_buffer_destroy(bs), alloy_buffer_destroy(b);
    alloy_buffer_destroy(p), alloy_buffer_destroy(in);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    int only_time = argc > 2 && !strcmp(argv[2], "time");
    /* "one <what> <n>": a single problem, for profilers (what: lu, trsm, getrs, blu) */
    const char *one = argc > 4 && !strcmp(argv[2], "one") ? argv[3] : NULL;
    int64_t one_n = one ? atoll(argv[4]) : 0;
    alloy_device_desc dd = alloy_device_desc_default();
    dd.backend = ALLOY_BACKEND_CUDA;
    dev2 g, c;
    if (alloy_device_open(&dd, &g.dev) != ALLOY_OK) {
        printf("SKIP: no CUDA device: %s\n", alloy_last_error());
        return 0;
    }
    dd.backend = ALLOY_BACKEND_CPU;
    CHECK(alloy_device_open(&dd, &c.dev));
    CHECK(alloy_queue_create(g.dev, &g.q));
    CHECK(alloy_queue_create(c.dev, &c.q));
    printf("# %s\n", alloy_device_name(g.dev));
    if (one) {
        if (!strcmp(one, "lu"))
            time_lu(&g, ALLOY_F32, 1, one_n, "one", reps);
        else if (!strcmp(one, "blu"))
            time_lu(&g, ALLOY_F32, 10000, one_n, "one", reps);
        else if (!strcmp(one, "trsm"))
            time_trsm(&g, ALLOY_F32, one_n, one_n, "one", reps);
        else
            time_getrs(&g, ALLOY_F32, one_n, 256, "one", reps);
        return 0;
    }
    if (!only_time && !one) {
        static const struct {
            int64_t b, m, n;
            int tr;
        } lc[] = {{1, 1, 1, 0},       {1, 7, 7, 0},     {3, 64, 64, 0},    {1, 200, 200, 1},
                  {1, 1000, 1000, 0}, {1, 300, 700, 0}, {1, 3000, 500, 1}, {2, 2049, 2049, 0},
                  {100, 64, 64, 0},   {5, 257, 300, 1}, {1, 700, 300, 0},  {1, 20000, 40, 0},
                  {1, 60000, 20, 0}};
        for (size_t i = 0; i < sizeof lc / sizeof lc[0]; i++)
            for (int t = 0; t < 2; t++) {
                char name[64];
                snprintf(name, sizeof name, "%s_%lldx%lldx%lld%s", t ? "f64" : "f32",
                         (long long)lc[i].b, (long long)lc[i].m, (long long)lc[i].n,
                         lc[i].tr ? "T" : "");
                check_lu(&g, &c, t ? ALLOY_F64 : ALLOY_F32, lc[i].b, lc[i].m, lc[i].n, lc[i].tr,
                         name);
            }
        for (int v = 0; v < 16; v++) {
            alloy_triangular_desc d = alloy_triangular_desc_default();
            d.side = (v & 1) ? ALLOY_RIGHT : ALLOY_LEFT;
            d.uplo = (v & 2) ? ALLOY_LOWER : ALLOY_UPPER;
            d.transpose = (v >> 2) & 1;
            d.unit_diagonal = (v >> 3) & 1;
            d.alpha = v % 3 == 0 ? 1.0 : v % 3 == 1 ? -2.5 : 0.0;
            char name[64];
            snprintf(name, sizeof name, "v%d_%s%s%s%s_a%g", v, (v & 1) ? "R" : "L",
                     (v & 2) ? "L" : "U", d.transpose ? "T" : "N", d.unit_diagonal ? "U" : "N",
                     d.alpha);
            check_trsm(&g, &c, v % 2 ? ALLOY_F64 : ALLOY_F32, 3, 300, 200, d, name);
        }
        check_solve(&g, &c, ALLOY_F32, 1000, 7, 0, "f32_1000_N");
        check_solve(&g, &c, ALLOY_F64, 1000, 7, 1, "f64_1000_T");
        check_solve(&g, &c, ALLOY_F64, 3000, 70, 0, "f64_3000_N");
    }
    time_lu(&g, ALLOY_F32, 1, 1024, "f32_1024", reps);
    time_lu(&g, ALLOY_F32, 1, 4096, "f32_4096", reps);
    time_lu(&g, ALLOY_F32, 1, 8192, "f32_8192", reps);
    time_lu(&g, ALLOY_F64, 1, 4096, "f64_4096", reps);
    time_lu(&g, ALLOY_F32, 10000, 32, "f32_10000x32", reps);
    time_lu(&g, ALLOY_F32, 10000, 64, "f32_10000x64", reps);
    time_lu(&g, ALLOY_F32, 1000, 128, "f32_1000x128", reps);
    time_trsm(&g, ALLOY_F32, 4096, 4096, "f32_4096", reps);
    time_trsm(&g, ALLOY_F32, 8192, 8192, "f32_8192", reps);
    time_getrs(&g, ALLOY_F32, 4096, 256, "f32_4096x256", reps);
    alloy_queue_destroy(g.q);
    alloy_queue_destroy(c.q);
    alloy_device_close(g.dev);
    alloy_device_close(c.dev);
    return 0;
}
