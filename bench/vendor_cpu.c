/* The CPU vendor: OpenBLAS (and the LAPACK inside it) loaded with dlopen, so the bench
 * builds and runs where it is absent. Any OpenBLAS works: Debian's libopenblas.so.0 (the
 * default), or numpy's bundled scipy-openblas (ILP64, symbols like scipy_sgemm_64_),
 * given with --blas PATH or ALLOY_BENCH_BLAS. The Fortran interface is used throughout
 * (column-major; integers by pointer, 32- or 64-bit as the library was built), with one
 * BLAS thread per application thread (OPENBLAS_NUM_THREADS=1 in the child's environment,
 * and openblas_set_num_threads(1)). Runs only in the vendor child process. */
#include "bench.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*gemm_fn)(const char *, const char *, const void *, const void *, const void *,
                        const void *, const void *, const void *, const void *, const void *,
                        const void *, void *, const void *);
typedef void (*getrf_fn)(const void *, const void *, void *, const void *, void *, void *);
typedef void (*getrs_fn)(const char *, const void *, const void *, const void *, const void *,
                         const void *, void *, const void *, void *);
typedef void (*trsm_fn)(const char *, const char *, const char *, const char *, const void *,
                        const void *, const void *, const void *, const void *, void *,
                        const void *);
typedef void (*set_threads_fn)(int);
typedef char *(*text_fn)(void);

typedef struct blas {
    void *h;
    int ilp64;
    char prefix[16], suffix[8];
    gemm_fn sgemm, dgemm, sbgemm;
    getrf_fn sgetrf, dgetrf;
    getrs_fn sgetrs, dgetrs;
    trsm_fn strsm, dtrsm;
} blas;

/* Integers passed by pointer in the library's width. */
typedef struct bint {
    int32_t i32;
    int64_t i64;
} bint;
static const void *I(const blas *b, bint *x, int64_t v)
{
    x->i32 = (int32_t)v;
    x->i64 = v;
    return b->ilp64 ? (const void *)&x->i64 : (const void *)&x->i32;
}

static void *sym(const blas *b, const char *base)
{
    char name[96];
    snprintf(name, sizeof name, "%s%s%s", b->prefix, base, b->suffix);
    return dlsym(b->h, name);
}

/* Function pointers from dlsym: POSIX guarantees the conversion; C does not, hence memcpy. */
#define LOAD(b, field, base)                                                                       \
    do {                                                                                           \
        void *p_ = sym(b, base);                                                                   \
        memcpy(&(b)->field, &p_, sizeof p_);                                                       \
    } while (0)

static int cpu_init(const vendor_options *o, void **lib, char *desc, size_t dlen, char *err,
                    size_t elen)
{
    const char *path = o->blas && *o->blas ? o->blas : "libopenblas.so.0";
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, elen, "cannot load OpenBLAS '%s' (%s); give --blas PATH", path, dlerror());
        return BENCH_NA;
    }
    blas *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, elen, "out of memory");
        return BENCH_FAIL;
    }
    b->h = h;
    /* Plain (Debian), 64_ (ILP64 builds), scipy_..64_ (numpy's scipy-openblas). */
    static const char *const pre[] = {"", "scipy_", "", "scipy_"}, *const suf[] = {"", "64_", "64_", ""};
    int found = 0;
    for (int i = 0; i < 4 && !found; i++) {
        snprintf(b->prefix, sizeof b->prefix, "%s", pre[i]);
        snprintf(b->suffix, sizeof b->suffix, "%s", suf[i]);
        found = sym(b, "sgemm_") != NULL;
    }
    if (!found) {
        snprintf(err, elen, "'%s' has no sgemm_ (nor a 64_ / scipy_ variant): not a BLAS", path);
        dlclose(h);
        free(b);
        return BENCH_NA;
    }
    LOAD(b, sgemm, "sgemm_");
    LOAD(b, dgemm, "dgemm_");
    LOAD(b, sbgemm, "sbgemm_");
    LOAD(b, sgetrf, "sgetrf_");
    LOAD(b, dgetrf, "dgetrf_");
    LOAD(b, sgetrs, "sgetrs_");
    LOAD(b, dgetrs, "dgetrs_");
    LOAD(b, strsm, "strsm_");
    LOAD(b, dtrsm, "dtrsm_");
    set_threads_fn set_threads;
    text_fn config, corename;
    void *p = sym(b, "openblas_set_num_threads");
    memcpy(&set_threads, &p, sizeof p);
    p = sym(b, "openblas_get_config");
    memcpy(&config, &p, sizeof p);
    p = sym(b, "openblas_get_corename");
    memcpy(&corename, &p, sizeof p);
    const char *cfg = config ? config() : "";
    b->ilp64 = strcmp(b->suffix, "64_") == 0 || strstr(cfg, "USE64BITINT") != NULL;
    if (set_threads)
        set_threads(1);
    snprintf(desc, dlen, "%s: %s; core %s; %s integers; %s", path, cfg && *cfg ? cfg : "OpenBLAS",
             corename ? corename() : "?", b->ilp64 ? "64-bit" : "32-bit",
             set_threads ? "1 BLAS thread per app thread" : "OPENBLAS_NUM_THREADS=1");
    *lib = b;
    return BENCH_OK;
}

static int cpu_supports(void *lib, const problem *p, char *impl, size_t len)
{
    blas *b = lib;
    alloy_dtype t = p->spec.dtype;
    int d = t == ALLOY_F64;
    switch (p->spec.op) {
    case OP_MATMUL:
        if (t == ALLOY_F32 || t == ALLOY_F64) {
            snprintf(impl, len, "OpenBLAS %cgemm_", d ? 'd' : 's');
            return BENCH_OK;
        }
        if (t == ALLOY_BF16 && b->sbgemm) {
            snprintf(impl, len, "OpenBLAS sbgemm_ (bf16 in, f32 out)");
            return BENCH_OK;
        }
        snprintf(impl, len, "this OpenBLAS has no %s GEMM", dtype_name(t));
        return BENCH_NA;
    case OP_LAYER_NORM:
        if (t == ALLOY_F32 || t == ALLOY_F64) {
            snprintf(impl, len, "plain C loop, one thread (no BLAS/LAPACK routine does layer norm)");
            return BENCH_OK;
        }
        snprintf(impl, len, "no vendor layer norm for %s", dtype_name(t));
        return BENCH_NA;
    case OP_LU_FACTOR:
        if (d ? !b->dgetrf : !b->sgetrf)
            break;
        snprintf(impl, len, "OpenBLAS/LAPACK %cgetrf_", d ? 'd' : 's');
        return BENCH_OK;
    case OP_LU_SOLVE:
        if (d ? !b->dgetrs : !b->sgetrs)
            break;
        snprintf(impl, len, "OpenBLAS/LAPACK %cgetrs_", d ? 'd' : 's');
        return BENCH_OK;
    case OP_TRIANGULAR_SOLVE:
        if (d ? !b->dtrsm : !b->strsm)
            break;
        snprintf(impl, len, "OpenBLAS %ctrsm_", d ? 'd' : 's');
        return BENCH_OK;
    case OP_COPY: snprintf(impl, len, "memcpy"); return BENCH_OK;
    default: break;
    }
    snprintf(impl, len, "the library lacks the routine");
    return BENCH_NA;
}

/* ---------------------------------------------------------------- contexts */

typedef struct cpu_ctx {
    blas *b;
    const problem *p;
    int mutex_mode;
    pthread_mutex_t global;
    int colmajor;
    void *layout[MAX_OPERANDS]; /* masters in the vendor's layout (NULL: p's own) */
    void *ipiv;                 /* lu_solve's pivots in the library's integer width */
} cpu_ctx;

static const void *master(const cpu_ctx *c, int i)
{
    return c->layout[i] ? c->layout[i] : c->p->opd[i].host;
}

static void cpu_ctx_destroy(void *ctx)
{
    cpu_ctx *c = ctx;
    if (!c)
        return;
    for (int i = 0; i < MAX_OPERANDS; i++)
        free(c->layout[i]);
    free(c->ipiv);
    pthread_mutex_destroy(&c->global);
    free(c);
}

static void *cpu_ctx_create(void *lib, const problem *p, int mutex_mode)
{
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->b = lib;
    c->p = p;
    c->mutex_mode = mutex_mode;
    pthread_mutex_init(&c->global, NULL);
    c->colmajor = op_vendor_colmajor(p->spec.op);
    for (int i = 0; i < p->n && c->colmajor; i++)
        if (p->opd[i].host && p->opd[i].rank >= 2 && p->opd[i].dtype != ALLOY_I32 &&
            !(c->layout[i] = operand_colmajor(&p->opd[i]))) {
            cpu_ctx_destroy(c);
            return NULL;
        }
    if (p->spec.op == OP_LU_SOLVE) {
        const operand *pv = &p->opd[1];
        size_t n = pv->bytes / 4;
        c->ipiv = malloc(n * 8);
        if (!c->ipiv) {
            cpu_ctx_destroy(c);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            int32_t v = ((const int32_t *)pv->host)[i];
            if (c->b->ilp64)
                ((int64_t *)c->ipiv)[i] = v;
            else
                ((int32_t *)c->ipiv)[i] = v;
        }
    }
    return c;
}

typedef struct cpu_thread {
    cpu_ctx *c;
    void *buf[MAX_OPERANDS];
    int owned[MAX_OPERANDS];
    void *ipiv;    /* lu_factor: pivots in the library's width */
    int32_t *piv32, *info32;
    int64_t info;
} cpu_thread;

static int v_window_begin(void *ctx, int threads, char *err, size_t len)
{
    (void)ctx, (void)threads, (void)err, (void)len;
    return BENCH_OK;
}
static void v_window_end(void *ctx) { (void)ctx; }

static size_t out_bytes(const cpu_ctx *c, int i)
{
    const operand *o = &c->p->opd[i];
    if (c->p->spec.op == OP_MATMUL && o->dtype == ALLOY_BF16) /* sbgemm writes f32 */
        return o->bytes * 2;
    return o->bytes;
}

static int v_thread_setup(void *ctx, int tid, void **state, char *err, size_t len)
{
    cpu_ctx *c = ctx;
    const problem *p = c->p;
    (void)tid;
    cpu_thread *t = calloc(1, sizeof *t);
    *state = t;
    if (!t)
        goto oom;
    t->c = c;
    for (int i = 0; i < p->n; i++) {
        const operand *o = &p->opd[i];
        /* shared weights, and lu_solve's pivots (the ctx's ipiv is what is read) */
        if (o->role == ROLE_WEIGHT && (p->spec.shared || o->dtype == ALLOY_I32)) {
            t->buf[i] = (void *)master(c, i); /* read only */
            continue;
        }
        size_t n = out_bytes(c, i);
        if (!(t->buf[i] = malloc(n)))
            goto oom;
        t->owned[i] = 1;
        if (o->host)
            memcpy(t->buf[i], master(c, i), o->bytes);
    }
    if (p->spec.op == OP_LU_FACTOR) {
        size_t n = (size_t)(p->spec.batch * p->spec.dim[0]);
        t->ipiv = malloc(n * 8);
        t->piv32 = malloc(n * 4);
        t->info32 = malloc((size_t)p->spec.batch * 4);
        if (!t->ipiv || !t->piv32 || !t->info32)
            goto oom;
    }
    return BENCH_OK;
oom:
    snprintf(err, len, "out of host memory");
    return BENCH_FAIL;
}

/* One row of layer norm in the row's precision: what a framework's plain CPU loop does. */
static void layer_norm_rows(const problem *p, const void *x, const void *g, const void *bt, void *y)
{
    int64_t rows = p->spec.batch * p->spec.dim[0], D = p->spec.dim[1];
    if (p->spec.dtype == ALLOY_F64) {
        for (int64_t r = 0; r < rows; r++) {
            const double *xr = (const double *)x + r * D;
            double *yr = (double *)y + r * D, mean = 0, var = 0;
            for (int64_t j = 0; j < D; j++)
                mean += xr[j];
            mean /= (double)D;
            for (int64_t j = 0; j < D; j++)
                var += (xr[j] - mean) * (xr[j] - mean);
            double rstd = 1.0 / sqrt(var / (double)D + 1e-5);
            for (int64_t j = 0; j < D; j++)
                yr[j] = (xr[j] - mean) * rstd * ((const double *)g)[j] + ((const double *)bt)[j];
        }
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = (const float *)x + r * D;
        float *yr = (float *)y + r * D, mean = 0, var = 0;
        for (int64_t j = 0; j < D; j++)
            mean += xr[j];
        mean /= (float)D;
        for (int64_t j = 0; j < D; j++)
            var += (xr[j] - mean) * (xr[j] - mean);
        float rstd = 1.0f / sqrtf(var / (float)D + 1e-5f);
        for (int64_t j = 0; j < D; j++)
            yr[j] = (xr[j] - mean) * rstd * ((const float *)g)[j] + ((const float *)bt)[j];
    }
}

static int run_op(cpu_thread *t, char *err, size_t len)
{
    cpu_ctx *c = t->c;
    const blas *b = c->b;
    const problem *p = c->p;
    const row_spec *s = &p->spec;
    int d = s->dtype == ALLOY_F64;
    size_t e = alloy_dtype_size(s->dtype);
    bint x[6];
    for (int i = 0; i < p->n; i++) /* restore in-place operands */
        if (p->opd[i].role == ROLE_INOUT)
            memcpy(t->buf[i], master(c, i), p->opd[i].bytes);
    switch (s->op) {
    case OP_MATMUL: {
        /* Row-major C = A B is column-major C^T = B^T A^T: swap the operands. */
        int64_t M = s->dim[0], N = s->dim[1], K = s->dim[2];
        double one = 1, zero = 0;
        float onef = 1, zerof = 0;
        gemm_fn f = d ? b->dgemm : s->dtype == ALLOY_BF16 ? b->sbgemm : b->sgemm;
        size_t ce = s->dtype == ALLOY_BF16 ? 4 : e;
        for (int64_t m = 0; m < s->batch; m++)
            f("N", "N", I(b, &x[0], N), I(b, &x[1], M), I(b, &x[2], K),
              d ? (const void *)&one : (const void *)&onef,
              (const char *)t->buf[1] + (size_t)(m * K * N) * e, I(b, &x[3], N),
              (const char *)t->buf[0] + (size_t)(m * M * K) * e, I(b, &x[4], K),
              d ? (const void *)&zero : (const void *)&zerof,
              (char *)t->buf[2] + (size_t)(m * M * N) * ce, I(b, &x[5], N));
        break;
    }
    case OP_LAYER_NORM: layer_norm_rows(p, t->buf[0], t->buf[1], t->buf[2], t->buf[3]); break;
    case OP_LU_FACTOR: {
        int64_t n = s->dim[0];
        size_t iw = b->ilp64 ? 8 : 4;
        for (int64_t m = 0; m < s->batch; m++) {
            (d ? b->dgetrf : b->sgetrf)(I(b, &x[0], n), I(b, &x[1], n),
                                        (char *)t->buf[0] + (size_t)(m * n * n) * e,
                                        I(b, &x[2], n), (char *)t->ipiv + (size_t)(m * n) * iw,
                                        b->ilp64 ? (void *)&x[3].i64 : (void *)&x[3].i32);
            t->info32[m] = b->ilp64 ? (int32_t)x[3].i64 : x[3].i32;
        }
        break;
    }
    case OP_LU_SOLVE: {
        int64_t n = s->dim[0], nrhs = s->dim[1];
        size_t iw = b->ilp64 ? 8 : 4;
        for (int64_t m = 0; m < s->batch; m++) {
            (d ? b->dgetrs : b->sgetrs)("N", I(b, &x[0], n), I(b, &x[1], nrhs),
                                        (const char *)t->buf[0] + (size_t)(m * n * n) * e,
                                        I(b, &x[2], n), (const char *)c->ipiv + (size_t)(m * n) * iw,
                                        (char *)t->buf[2] + (size_t)(m * n * nrhs) * e,
                                        I(b, &x[3], n),
                                        b->ilp64 ? (void *)&x[4].i64 : (void *)&x[4].i32);
            int64_t info = b->ilp64 ? x[4].i64 : x[4].i32;
            if (info != 0) {
                snprintf(err, len, "getrs info = %lld", (long long)info);
                return BENCH_FAIL;
            }
        }
        break;
    }
    case OP_TRIANGULAR_SOLVE: {
        int64_t M = s->dim[0], N = s->dim[1];
        double one = 1;
        float onef = 1;
        for (int64_t m = 0; m < s->batch; m++)
            (d ? b->dtrsm : b->strsm)("L", "L", "N", "N", I(b, &x[0], M), I(b, &x[1], N),
                                      d ? (const void *)&one : (const void *)&onef,
                                      (const char *)t->buf[0] + (size_t)(m * M * M) * e,
                                      I(b, &x[2], M), (char *)t->buf[1] + (size_t)(m * M * N) * e,
                                      I(b, &x[3], M));
        break;
    }
    case OP_COPY: memcpy(t->buf[1], t->buf[0], p->opd[0].bytes); break;
    default: snprintf(err, len, "unknown op"); return BENCH_FAIL;
    }
    return BENCH_OK;
}

static int v_op(void *state, char *err, size_t len)
{
    cpu_thread *t = state;
    if (!t->c->mutex_mode)
        return run_op(t, err, len);
    pthread_mutex_lock(&t->c->global);
    int r = run_op(t, err, len);
    pthread_mutex_unlock(&t->c->global);
    return r;
}

static int v_drain(void *state, char *err, size_t len)
{
    (void)state, (void)err, (void)len;
    return BENCH_OK; /* BLAS calls return when done */
}

static int v_fetch(void *state, out_view *views, char *err, size_t len)
{
    cpu_thread *t = state;
    cpu_ctx *c = t->c;
    const problem *p = c->p;
    (void)err, (void)len;
    for (int i = 0; i < p->n; i++) {
        const operand *o = &p->opd[i];
        if (o->role != ROLE_OUTPUT && o->role != ROLE_INOUT)
            continue;
        alloy_dtype dt = p->spec.op == OP_MATMUL && o->dtype == ALLOY_BF16 ? ALLOY_F32 : o->dtype;
        views[i] = (out_view){t->buf[i], out_bytes(c, i), dt, c->colmajor};
    }
    if (p->spec.op == OP_LU_FACTOR) {
        size_t n = (size_t)(p->spec.batch * p->spec.dim[0]);
        for (size_t i = 0; i < n; i++)
            t->piv32[i] = c->b->ilp64 ? (int32_t)((int64_t *)t->ipiv)[i] : ((int32_t *)t->ipiv)[i];
        views[1] = (out_view){t->piv32, n * 4, ALLOY_I32, 0};
        views[2] = (out_view){t->info32, (size_t)p->spec.batch * 4, ALLOY_I32, 0};
    }
    return BENCH_OK;
}

static void v_thread_teardown(void *state)
{
    cpu_thread *t = state;
    for (int i = 0; i < MAX_OPERANDS; i++)
        if (t->owned[i])
            free(t->buf[i]);
    free(t->ipiv);
    free(t->piv32);
    free(t->info32);
    free(t);
}

static const impl_vtable cpu_vt = {v_window_begin, v_window_end, v_thread_setup, v_op,
                                   v_drain,        v_fetch,      v_thread_teardown};

const vendor_backend vendor_cpu_backend = {cpu_init, cpu_supports, cpu_ctx_create,
                                           cpu_ctx_destroy, &cpu_vt};
