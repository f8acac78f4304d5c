/* alloy_encode_lu_factor and alloy_encode_lu_solve against LAPACKE (dgetrf/sgetrf,
 * dgetrs/sgetrs, dgecon/sgecon): pivots equal to LAPACK's on well-conditioned random
 * inputs, info equal to LAPACK's on exactly singular ones (zero column, repeated row, zero
 * matrix) with the factorization completed and nothing non-finite made, and scaled
 * residuals ||PA - LU|| / (||A|| n eps) and ||op(A) X - B|| / (||A|| ||X|| n eps) below 10
 * (computed in float64 for f32 too) on random, Hilbert (ill-conditioned), empty, 1x1,
 * tall, wide, batched and broadcast inputs, f32 and f64, row-major, column-major and
 * padded layouts (the column-major ones go through the workspace copy), sizes around the
 * block sizes, A X = B and A^T X = B, 1 to 300 right-hand sides. Every check also makes
 * sure nothing outside the output views changed and the inputs did not change at all. */
#include <cblas.h>
#include <lapacke.h>

#define ORACLE_USE_CBLAS
#include "oracle.h"

#define RESID_BOUND 10.0

typedef struct lu_ctx {
    alloy_device *dev;
    alloy_queue *q;
    uint64_t seed;
    int index;
    double worst_factor, worst_solve; /* largest residuals seen, for the log */
} lu_ctx;

static lu_ctx ctx_new(uint64_t seed)
{
    lu_ctx x;
    memset(&x, 0, sizeof x);
    x.dev = test_cpu_device(0);
    x.q = test_queue(x.dev);
    x.seed = test_seed(seed);
    return x;
}

static void ctx_free(lu_ctx *x)
{
    fprintf(stderr, "  %d cases; worst scaled residuals: factor %.3g, solve %.3g (bound %g)\n",
            x->index, x->worst_factor, x->worst_solve, RESID_BOUND);
    ASSERT_OK(alloy_queue_destroy(x->q));
    ASSERT_OK(alloy_device_close(x->dev));
}

/* ---------------------------------------------------------------- inputs */

enum {
    GEN_RANDOM,     /* uniform in [-1, 1): well conditioned in practice */
    GEN_HILBERT,    /* 1 / (i + j + 1): cond ~ e^(3.5 n) */
    GEN_ZERO_COL,   /* random, column `param` zero */
    GEN_REPEAT_ROW, /* random, row `param` equal to row 0, both led by 2 */
    GEN_ZERO,       /* all zeros */
    GEN_DIAG_DOM    /* random plus n on the diagonal */
};

static const char *gen_name(int g)
{
    static const char *const names[] = {"random",       "hilbert", "zero column",
                                        "repeated row", "zero",    "diagonally dominant"};
    return names[g];
}

static void gen_matrix(test_rng *r, alloy_dtype dt, int gen, int64_t param, int64_t m, int64_t n,
                       double *a)
{
    switch (gen) {
    case GEN_HILBERT:
        ASSERT(m == n);
        host_hilbert(dt, n, a);
        return;
    case GEN_ZERO:
        for (int64_t i = 0; i < m * n; i++)
            a[i] = 0;
        return;
    default: break;
    }
    host_random(r, dt, a, m * n);
    if (gen == GEN_ZERO_COL)
        for (int64_t i = 0; i < m; i++)
            a[i * n + param] = 0;
    if (gen == GEN_REPEAT_ROW) {
        /* Row 0 leads column 0 with 2 (the largest entry, so every getrf takes it as the
         * first pivot) and row `param` repeats it: the repeat's multiplier is 2 * (1/2) = 1
         * exactly, its update leaves an exactly zero row, and U(n,n) = 0 in any order of
         * operations. (With an arbitrary repeated row, whether U(n,n) comes out exactly 0
         * is a matter of rounding: LAPACK and alloy each miss it on about half of random
         * 6x6 f32 cases, on different ones, so info could not be compared.) */
        a[0] = 2;
        for (int64_t j = 0; j < n; j++)
            a[param * n + j] = a[j];
    }
    if (gen == GEN_DIAG_DOM)
        for (int64_t i = 0; i < m && i < n; i++)
            a[i * n + i] += (double)(dt == ALLOY_F32 ? (float)n : n);
}

/* LAPACK's getrf (through LAPACKE, row-major) of the m x n matrix a: lu, 1-based pivots,
 * and its info. */
static int lapack_getrf(alloy_dtype dt, int64_t m, int64_t n, const double *a, double *lu,
                        int32_t *piv)
{
    int64_t mn = m < n ? m : n;
    memcpy(lu, a, (size_t)(m * n) * sizeof(double));
    if (mn == 0)
        return 0;
    lapack_int *ip = test_malloc((size_t)mn * sizeof(lapack_int));
    lapack_int info;
    if (dt == ALLOY_F64) {
        info =
            LAPACKE_dgetrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)n, lu, (lapack_int)n, ip);
    } else {
        float *f = test_malloc((size_t)(m * n) * sizeof(float));
        for (int64_t i = 0; i < m * n; i++)
            f[i] = (float)a[i];
        info = LAPACKE_sgetrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)n, f, (lapack_int)n, ip);
        for (int64_t i = 0; i < m * n; i++)
            lu[i] = (double)f[i];
        free(f);
    }
    ASSERT(info >= 0);
    for (int64_t i = 0; i < mn; i++)
        piv[i] = (int32_t)ip[i];
    free(ip);
    return (int)info;
}

/* ---------------------------------------------------------------- lu_factor */

typedef struct factor_case {
    alloy_dtype dt;
    int br;
    int64_t bshape[3];
    int64_t m, n;
    int lay;
    int gen;
    int64_t param;
    int cmp_pivots; /* pivots must equal LAPACK's */
} factor_case;

static void describe_factor(char *s, size_t cap, const lu_ctx *x, const factor_case *c)
{
    char batch[64] = "";
    for (int d = 0; d < c->br; d++) {
        size_t l = strlen(batch);
        snprintf(batch + l, sizeof batch - l, "%lld x ", (long long)c->bshape[d]);
    }
    snprintf(s, cap, "seed 0x%llx case %d: lu_factor %s %s%lldx%lld %s %s (param %lld)",
             (unsigned long long)x->seed, x->index, dtype_name(c->dt), batch, (long long)c->m,
             (long long)c->n, lay_name(c->lay), gen_name(c->gen), (long long)c->param);
}

static void run_factor(lu_ctx *x, test_rng *r, const factor_case *c)
{
    char what[256];
    x->index++;
    describe_factor(what, sizeof what, x, c);
    const int64_t m = c->m, n = c->n, mn = m < n ? m : n;
    const size_t es = alloy_dtype_size(c->dt);
    size_t aoff = (size_t)rng_range(r, 0, 3) * es, end;
    alloy_array a = lay_matrix(NULL, aoff, c->dt, c->br, c->bshape, m, n, c->lay, &end);
    alloy_buffer *abuf = poison_buffer(x->dev, end + 24);
    a = on_buffer(a, abuf);
    /* every other case: pivots and info strided */
    alloy_array p = x->index % 2
                        ? lay_vector(NULL, 4, ALLOY_I32, c->br, c->bshape, mn, &end)
                        : lay_vector_strided(NULL, 4, ALLOY_I32, c->br, c->bshape, mn, 3, &end);
    alloy_buffer *pbuf = poison_buffer(x->dev, end + 8);
    p = on_buffer(p, pbuf);
    alloy_array info = x->index % 2
                           ? lay_vector(NULL, 8, ALLOY_I32, c->br, c->bshape, -1, &end)
                           : lay_vector_strided(NULL, 8, ALLOY_I32, c->br, c->bshape, -1, 2, &end);
    alloy_buffer *ibuf = poison_buffer(x->dev, end + 8);
    info = on_buffer(info, ibuf);

    const int64_t entries = batch_entries(&a, 2);
    double **host = test_malloc(sizeof(double *) * (size_t)(entries > 0 ? entries : 1));
    for (int64_t b = 0; b < entries; b++) {
        host[b] = host_alloc(m * n);
        gen_matrix(r, c->dt, c->gen, c->param, m, n, host[b]);
        mat_put(&a, b, host[b]);
    }
    unsigned char *a0 = snapshot(abuf), *p0 = snapshot(pbuf), *i0 = snapshot(ibuf);

    alloy_cmdbuf *cb = test_cmdbuf(x->q);
    alloy_status st = alloy_encode_lu_factor(cb, &a, &p, &info);
    if (st != ALLOY_OK)
        FAIL_AT("%s: encode said %s: %s", what, alloy_status_string(st), alloy_last_error());
    test_commit_wait(cb);

    const alloy_array *av[1] = {&a}, *pv[1] = {&p}, *iv[1] = {&info};
    check_outside(abuf, a0, av, 1, what);
    check_outside(pbuf, p0, pv, 1, what);
    check_outside(ibuf, i0, iv, 1, what);

    double *lu = host_alloc(m * n), *lref = host_alloc(m * n);
    int32_t *piv = test_malloc((size_t)(mn > 0 ? mn : 1) * 4);
    int32_t *pref = test_malloc((size_t)(mn > 0 ? mn : 1) * 4);
    const double eps = dtype_eps(c->dt);
    for (int64_t b = 0; b < entries; b++) {
        mat_get(&a, b, lu);
        ivec_get(&p, b, piv, mn);
        int32_t got_info;
        memcpy(&got_info, elem_at(&info, 0, b, 0, 0), 4);
        int want_info = lapack_getrf(c->dt, m, n, host[b], lref, pref);
        if (got_info != want_info)
            FAIL_AT("%s, entry %lld: info %d, LAPACK's %d", what, (long long)b, got_info,
                    want_info);
        for (int64_t i = 0; i < mn; i++)
            if (piv[i] < i + 1 || piv[i] > m)
                FAIL_AT("%s, entry %lld: pivots[%lld] = %d is outside %lld..%lld", what,
                        (long long)b, (long long)i, piv[i], (long long)(i + 1), (long long)m);
        if (c->cmp_pivots)
            for (int64_t i = 0; i < mn; i++)
                if (piv[i] != pref[i])
                    FAIL_AT("%s, entry %lld: pivots[%lld] = %d, LAPACK's %d", what, (long long)b,
                            (long long)i, piv[i], pref[i]);
        if (!all_finite(lu, m * n))
            FAIL_AT("%s, entry %lld: the factors hold NaN or infinity", what, (long long)b);
        /* partial pivoting: every multiplier of L is at most 1 in magnitude */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < i && j < n; j++)
                if (fabs(lu[i * n + j]) > 1 + 4 * eps)
                    FAIL_AT("%s, entry %lld: |L(%lld,%lld)| = %g > 1", what, (long long)b,
                            (long long)i, (long long)j, fabs(lu[i * n + j]));
        double res = ref_lu_residual(m, n, host[b], lu, piv, eps);
        double lres = ref_lu_residual(m, n, host[b], lref, pref, eps);
        if (!(res <= RESID_BOUND))
            FAIL_AT("%s, entry %lld: ||PA - LU|| / (||A|| n eps) = %g (LAPACK's %g)", what,
                    (long long)b, res, lres);
        if (res > x->worst_factor)
            x->worst_factor = res;
        free(host[b]);
    }
    free(host);
    free(lu);
    free(lref);
    free(piv);
    free(pref);
    free(a0);
    free(p0);
    free(i0);
    ASSERT_OK(alloy_buffer_destroy(abuf));
    ASSERT_OK(alloy_buffer_destroy(pbuf));
    ASSERT_OK(alloy_buffer_destroy(ibuf));
}

static const alloy_dtype dts[2] = {ALLOY_F32, ALLOY_F64};
static const int64_t sq_sizes[] = {1, 2, 3, 63, 64, 65, 127, 128, 129, 200, 300, 513};
#define NSQ ((int)(sizeof sq_sizes / sizeof sq_sizes[0]))

static factor_case fcase(alloy_dtype dt, int64_t m, int64_t n, int lay, int gen, int64_t param)
{
    factor_case c;
    memset(&c, 0, sizeof c);
    c.dt = dt;
    c.m = m;
    c.n = n;
    c.lay = lay;
    c.gen = gen;
    c.param = param;
    /* Hilbert matrices make near ties: f32 n = 9 already picks another pivot than LAPACK
     * (both valid); the residual is what counts there. */
    c.cmp_pivots = gen != GEN_HILBERT;
    return c;
}

/* Square random matrices across the block sizes, every layout, pivots equal LAPACK's. */
TEST(factor_square_sizes)
{
    lu_ctx x = ctx_new(0x10f4c7);
    test_rng r = {x.seed};
    for (int di = 0; di < 2; di++)
        for (int si = 0; si < NSQ; si++) {
            int64_t n = sq_sizes[si];
            /* row-major (in place) and one of the others (a workspace copy) for each size */
            factor_case c = fcase(dts[di], n, n, LAY_ROW, GEN_RANDOM, 0);
            run_factor(&x, &r, &c);
            c.lay = 1 + (si + di) % 3;
            run_factor(&x, &r, &c);
        }
    ctx_free(&x);
}

/* Tall (m > n) and wide (m < n) matrices. */
TEST(factor_rectangular)
{
    lu_ctx x = ctx_new(0x7a11);
    test_rng r = {x.seed};
    static const int64_t shapes[][2] = {{2, 1},    {1, 2},    {65, 1},    {1, 65},    {100, 37},
                                        {37, 100}, {130, 64}, {64, 130},  {300, 129}, {129, 300},
                                        {513, 65}, {65, 513}, {200, 199}, {199, 200}};
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    for (int di = 0; di < 2; di++)
        for (int s = 0; s < ns; s++) {
            factor_case c =
                fcase(dts[di], shapes[s][0], shapes[s][1], (s + di) % LAY_COUNT, GEN_RANDOM, 0);
            run_factor(&x, &r, &c);
        }
    ctx_free(&x);
}

/* Batches: many small, a few medium, rank-2 batch dims, across layouts. */
TEST(factor_batched)
{
    lu_ctx x = ctx_new(0xba7c4);
    test_rng r = {x.seed};
    for (int di = 0; di < 2; di++)
        for (int lay = 0; lay < LAY_COUNT; lay++) {
            factor_case c = fcase(dts[di], 33, 33, lay, GEN_RANDOM, 0);
            c.br = 1;
            c.bshape[0] = 5;
            run_factor(&x, &r, &c);
            c = fcase(dts[di], 8, 8, lay, GEN_RANDOM, 0);
            c.br = 1;
            c.bshape[0] = 200;
            run_factor(&x, &r, &c);
            c = fcase(dts[di], 17, 17, lay, GEN_RANDOM, 0);
            c.br = 2;
            c.bshape[0] = 3;
            c.bshape[1] = 2;
            run_factor(&x, &r, &c);
            c = fcase(dts[di], 130, 70, lay, GEN_RANDOM, 0);
            c.br = 1;
            c.bshape[0] = 3;
            run_factor(&x, &r, &c);
            c = fcase(dts[di], 5, 9, lay, GEN_RANDOM, 0);
            c.br = 3;
            c.bshape[0] = 2;
            c.bshape[1] = 1;
            c.bshape[2] = 3;
            run_factor(&x, &r, &c);
        }
    ctx_free(&x);
}

/* 0x0, 0xn, mx0 (info 0 is still written), empty batches (nothing is written), 1x1. */
TEST(factor_empty_and_1x1)
{
    lu_ctx x = ctx_new(0xe4);
    test_rng r = {x.seed};
    static const int64_t shapes[][2] = {{0, 0}, {0, 5}, {5, 0}, {1, 1}, {1, 3}, {3, 1}};
    for (int di = 0; di < 2; di++)
        for (int s = 0; s < 6; s++)
            for (int lay = 0; lay < LAY_COUNT; lay++) {
                factor_case c = fcase(dts[di], shapes[s][0], shapes[s][1], lay, GEN_RANDOM, 0);
                run_factor(&x, &r, &c);
                c.br = 1;
                c.bshape[0] = 3;
                run_factor(&x, &r, &c);
                c.bshape[0] = 0; /* no matrices at all */
                run_factor(&x, &r, &c);
                c.br = 2;
                c.bshape[0] = 2;
                c.bshape[1] = 0;
                run_factor(&x, &r, &c);
            }
    /* Empty batches of matrices large enough that each entry's panel would be factored in
     * a padded copy: the copy's workspace is sized per entry, never divided by the count. */
    for (int di = 0; di < 2; di++) {
        factor_case c = fcase(dts[di], 300, 300, LAY_ROW, GEN_RANDOM, 0);
        c.br = 1;
        c.bshape[0] = 0;
        run_factor(&x, &r, &c);
        c = fcase(dts[di], 2000, 40, LAY_COL, GEN_RANDOM, 0);
        c.br = 2;
        c.bshape[0] = 3;
        c.bshape[1] = 0;
        run_factor(&x, &r, &c);
    }
    /* 1x1 zero: info 1, pivot 1, the zero stays */
    for (int di = 0; di < 2; di++) {
        factor_case c = fcase(dts[di], 1, 1, LAY_ROW, GEN_ZERO, 0);
        run_factor(&x, &r, &c);
        c = fcase(dts[di], 3, 1, LAY_COL, GEN_ZERO, 0);
        run_factor(&x, &r, &c);
        c = fcase(dts[di], 1, 3, LAY_ROW_PAD, GEN_ZERO, 0);
        run_factor(&x, &r, &c);
    }
    ctx_free(&x);
}

/* Exactly singular matrices: info equals LAPACK's (the first exactly zero U(k,k)), the
 * pivots equal LAPACK's, P A = L U still holds, and no NaN or infinity appears. Zero
 * columns at the first, a middle and the last position, inside the first panel and in
 * later ones (n > 128 factors in panels of 64). */
TEST(factor_singular)
{
    lu_ctx x = ctx_new(0x5196);
    test_rng r = {x.seed};
    static const int64_t ns[] = {2, 6, 17, 64, 65, 150, 300};
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 7; k++) {
            int64_t n = ns[k];
            int lay = (k + di) % LAY_COUNT;
            int64_t cols[4] = {0, n / 2, n - 1, n > 100 ? 100 : n / 3};
            for (int j = 0; j < 4; j++) {
                factor_case c = fcase(dts[di], n, n, lay, GEN_ZERO_COL, cols[j]);
                run_factor(&x, &r, &c);
            }
            int64_t rows[3] = {1, n / 2 > 0 ? n / 2 : 1, n - 1};
            for (int j = 0; j < 3; j++) {
                factor_case c = fcase(dts[di], n, n, lay, GEN_REPEAT_ROW, rows[j]);
                run_factor(&x, &r, &c);
            }
            factor_case c = fcase(dts[di], n, n, lay, GEN_ZERO, 0);
            run_factor(&x, &r, &c);
            /* rectangular and batched singular ones */
            c = fcase(dts[di], n + 7, n, lay, GEN_ZERO_COL, n / 2);
            run_factor(&x, &r, &c);
            c = fcase(dts[di], n, n + 7, lay, GEN_ZERO_COL, n - 1);
            run_factor(&x, &r, &c);
            c = fcase(dts[di], n, n, lay, GEN_ZERO_COL, n / 3);
            c.br = 1;
            c.bshape[0] = 3;
            run_factor(&x, &r, &c);
        }
    ctx_free(&x);
}

/* Hilbert matrices up to n = 12 (cond ~ 1e16): the residual stays at rounding level. */
TEST(factor_hilbert)
{
    lu_ctx x = ctx_new(0x4117);
    test_rng r = {x.seed};
    for (int di = 0; di < 2; di++)
        for (int64_t n = 1; n <= 12; n++) {
            factor_case c = fcase(dts[di], n, n, (int)(n % LAY_COUNT), GEN_HILBERT, 0);
            run_factor(&x, &r, &c);
        }
    ctx_free(&x);
}

/* ---------------------------------------------------------------- lu_solve */

typedef struct solve_case {
    alloy_dtype dt;
    int lbr, bbr; /* batch ranks of lu (and pivots) and of b */
    int64_t lshape[3], bshape[3];
    int64_t n, nrhs;
    int lay_lu, lay_b;
    int trans;
    int gen;
    int alloy_factors; /* 0: LAPACK's factors; 1: lu_factor in the same command buffer */
} solve_case;

static void describe_solve(char *s, size_t cap, const lu_ctx *x, const solve_case *c)
{
    char lb[64] = "", bb[64] = "";
    for (int d = 0; d < c->lbr; d++) {
        size_t l = strlen(lb);
        snprintf(lb + l, sizeof lb - l, "%lld x ", (long long)c->lshape[d]);
    }
    for (int d = 0; d < c->bbr; d++) {
        size_t l = strlen(bb);
        snprintf(bb + l, sizeof bb - l, "%lld x ", (long long)c->bshape[d]);
    }
    snprintf(s, cap,
             "seed 0x%llx case %d: lu_solve %s%s lu %s(%lld)^2 %s, b %s%lldx%lld %s, %s, %s "
             "factors",
             (unsigned long long)x->seed, x->index, dtype_name(c->dt), c->trans ? " A^T X = B" : "",
             lb, (long long)c->n, lay_name(c->lay_lu), bb, (long long)c->n, (long long)c->nrhs,
             lay_name(c->lay_b), gen_name(c->gen), c->alloy_factors ? "alloy's" : "LAPACK's");
}

/* rcond of A (1-norm; inf-norm for A^T) from LAPACK's factors. */
static double lapack_rcond(alloy_dtype dt, int trans, int64_t n, const double *a, const double *lu)
{
    if (n == 0)
        return 1;
    char norm = trans ? 'I' : '1';
    double anorm = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < n; j++)
            s += fabs(trans ? a[i * n + j] : a[j * n + i]);
        if (s > anorm)
            anorm = s;
    }
    if (dt == ALLOY_F64) {
        double rc = 0;
        ASSERT_EQ(
            LAPACKE_dgecon(LAPACK_ROW_MAJOR, norm, (lapack_int)n, lu, (lapack_int)n, anorm, &rc),
            0);
        return rc;
    }
    float *f = test_malloc((size_t)(n * n) * sizeof(float)), rc = 0;
    for (int64_t i = 0; i < n * n; i++)
        f[i] = (float)lu[i];
    ASSERT_EQ(
        LAPACKE_sgecon(LAPACK_ROW_MAJOR, norm, (lapack_int)n, f, (lapack_int)n, (float)anorm, &rc),
        0);
    free(f);
    return (double)rc;
}

/* LAPACK's getrs with LAPACK's factors: X (n x nrhs) in place of b. */
static void lapack_getrs(alloy_dtype dt, int trans, int64_t n, int64_t nrhs, const double *lu,
                         const int32_t *piv, double *b)
{
    if (n == 0 || nrhs == 0)
        return;
    lapack_int *ip = test_malloc((size_t)n * sizeof(lapack_int));
    for (int64_t i = 0; i < n; i++)
        ip[i] = piv[i];
    char t = trans ? 'T' : 'N';
    if (dt == ALLOY_F64) {
        double *l = host_alloc(n * n);
        memcpy(l, lu, (size_t)(n * n) * sizeof(double));
        ASSERT_EQ(LAPACKE_dgetrs(LAPACK_ROW_MAJOR, t, (lapack_int)n, (lapack_int)nrhs, l,
                                 (lapack_int)n, ip, b, (lapack_int)nrhs),
                  0);
        free(l);
    } else {
        float *l = test_malloc((size_t)(n * n) * 4), *f = test_malloc((size_t)(n * nrhs) * 4);
        for (int64_t i = 0; i < n * n; i++)
            l[i] = (float)lu[i];
        for (int64_t i = 0; i < n * nrhs; i++)
            f[i] = (float)b[i];
        ASSERT_EQ(LAPACKE_sgetrs(LAPACK_ROW_MAJOR, t, (lapack_int)n, (lapack_int)nrhs, l,
                                 (lapack_int)n, ip, f, (lapack_int)nrhs),
                  0);
        for (int64_t i = 0; i < n * nrhs; i++)
            b[i] = (double)f[i];
        free(l);
        free(f);
    }
    free(ip);
}

static void run_solve(lu_ctx *x, test_rng *r, const solve_case *c)
{
    char what[320];
    x->index++;
    describe_solve(what, sizeof what, x, c);
    const int64_t n = c->n, k = c->nrhs;
    const size_t es = alloy_dtype_size(c->dt);
    size_t end;
    alloy_array lu = lay_matrix(NULL, (size_t)rng_range(r, 0, 2) * es, c->dt, c->lbr, c->lshape, n,
                                n, c->lay_lu, &end);
    alloy_buffer *lbuf = poison_buffer(x->dev, end + 16);
    lu = on_buffer(lu, lbuf);
    alloy_array p = x->index % 2
                        ? lay_vector(NULL, 0, ALLOY_I32, c->lbr, c->lshape, n, &end)
                        : lay_vector_strided(NULL, 0, ALLOY_I32, c->lbr, c->lshape, n, 2, &end);
    alloy_buffer *pbuf = poison_buffer(x->dev, end + 4);
    p = on_buffer(p, pbuf);
    alloy_array info = lay_vector(NULL, 0, ALLOY_I32, c->lbr, c->lshape, -1, &end);
    alloy_buffer *ibuf = poison_buffer(x->dev, end + 4);
    info = on_buffer(info, ibuf);
    alloy_array b = lay_matrix(NULL, (size_t)rng_range(r, 0, 2) * es, c->dt, c->bbr, c->bshape, n,
                               k, c->lay_b, &end);
    alloy_buffer *bbuf = poison_buffer(x->dev, end + 16);
    b = on_buffer(b, bbuf);

    const int64_t lentries = batch_entries(&lu, 2), bentries = batch_entries(&b, 2);
    double **A = test_malloc(sizeof(double *) * (size_t)(lentries + 1));
    double **LU = test_malloc(sizeof(double *) * (size_t)(lentries + 1));
    int32_t **P = test_malloc(sizeof(int32_t *) * (size_t)(lentries + 1));
    for (int64_t e = 0; e < lentries; e++) {
        A[e] = host_alloc(n * n);
        LU[e] = host_alloc(n * n);
        P[e] = test_malloc((size_t)(n > 0 ? n : 1) * 4);
        gen_matrix(r, c->dt, c->gen, 0, n, n, A[e]);
        int info_l = lapack_getrf(c->dt, n, n, A[e], LU[e], P[e]);
        ASSERT_EQ(info_l, 0);
        if (c->alloy_factors) {
            mat_put(&lu, e, A[e]);
        } else {
            mat_put(&lu, e, LU[e]);
            ivec_put(&p, e, P[e], n);
        }
    }
    double **B = test_malloc(sizeof(double *) * (size_t)(bentries + 1));
    for (int64_t e = 0; e < bentries; e++) {
        B[e] = host_alloc(n * k);
        host_random(r, c->dt, B[e], n * k);
        mat_put(&b, e, B[e]);
    }
    unsigned char *l0 = snapshot(lbuf), *p0 = snapshot(pbuf), *b0 = snapshot(bbuf);

    alloy_cmdbuf *cb = test_cmdbuf(x->q);
    alloy_status st;
    if (c->alloy_factors) {
        st = alloy_encode_lu_factor(cb, &lu, &p, &info);
        if (st != ALLOY_OK)
            FAIL_AT("%s: lu_factor encode said %s: %s", what, alloy_status_string(st),
                    alloy_last_error());
    }
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    ASSERT_EQ(d.transpose, 0);
    d.transpose = c->trans;
    st = alloy_encode_lu_solve(cb, &d, &lu, &p, &b);
    if (st != ALLOY_OK)
        FAIL_AT("%s: encode said %s: %s", what, alloy_status_string(st), alloy_last_error());
    test_commit_wait(cb);

    const alloy_array *bv[1] = {&b};
    check_outside(bbuf, b0, bv, 1, what);
    if (!c->alloy_factors) {
        /* lu and pivots are inputs: not one byte of their buffers changes */
        if (memcmp(l0, alloy_buffer_contents(lbuf), alloy_buffer_size(lbuf)) != 0)
            FAIL_AT("%s: lu's buffer changed", what);
        if (memcmp(p0, alloy_buffer_contents(pbuf), alloy_buffer_size(pbuf)) != 0)
            FAIL_AT("%s: pivots' buffer changed", what);
    }

    const double eps = dtype_eps(c->dt);
    double *X = host_alloc(n * k), *XL = host_alloc(n * k);
    for (int64_t e = 0; e < bentries; e++) {
        int64_t le = bcast_entry(c->bbr, c->bshape, c->lbr, c->lshape, e);
        mat_get(&b, e, X);
        if (!all_finite(X, n * k))
            FAIL_AT("%s, entry %lld: X holds NaN or infinity", what, (long long)e);
        double res = ref_solve_residual(n, k, A[le], c->trans, X, B[e], eps);
        if (!(res <= RESID_BOUND))
            FAIL_AT("%s, entry %lld (lu entry %lld): ||op(A) X - B|| / (||A|| ||X|| n eps) = %g",
                    what, (long long)e, (long long)le, res);
        if (res > x->worst_solve)
            x->worst_solve = res;
        if (!c->alloy_factors && c->gen != GEN_HILBERT && n > 0 && k > 0) {
            /* against LAPACK's getrs on the same factors: the forward error bound */
            memcpy(XL, B[e], (size_t)(n * k) * sizeof(double));
            lapack_getrs(c->dt, c->trans, n, k, LU[le], P[le], XL);
            double rcond = lapack_rcond(c->dt, c->trans, n, A[le], LU[le]);
            double dn = 0, xn = 0;
            for (int64_t j = 0; j < k; j++) {
                double dc = 0, xc = 0;
                for (int64_t i = 0; i < n; i++) {
                    dc += fabs(X[i * k + j] - XL[i * k + j]);
                    xc += fabs(XL[i * k + j]);
                }
                if (dc > dn)
                    dn = dc;
                if (xc > xn)
                    xn = xc;
            }
            double bound = 4 * RESID_BOUND * (double)n * eps / rcond;
            if (!(dn <= bound * xn))
                FAIL_AT("%s, entry %lld: ||X - X_lapack||_1 / ||X_lapack||_1 = %g > %g (rcond %g)",
                        what, (long long)e, dn / xn, bound, rcond);
        }
    }
    if (c->alloy_factors)
        for (int64_t e = 0; e < lentries; e++) {
            int32_t inf;
            memcpy(&inf, elem_at(&info, 0, e, 0, 0), 4);
            ASSERT_EQ(inf, 0);
        }
    for (int64_t e = 0; e < lentries; e++) {
        free(A[e]);
        free(LU[e]);
        free(P[e]);
    }
    for (int64_t e = 0; e < bentries; e++)
        free(B[e]);
    free(A);
    free(LU);
    free(P);
    free(B);
    free(X);
    free(XL);
    free(l0);
    free(p0);
    free(b0);
    ASSERT_OK(alloy_buffer_destroy(lbuf));
    ASSERT_OK(alloy_buffer_destroy(pbuf));
    ASSERT_OK(alloy_buffer_destroy(ibuf));
    ASSERT_OK(alloy_buffer_destroy(bbuf));
}

static solve_case scase(alloy_dtype dt, int64_t n, int64_t nrhs, int lay_lu, int lay_b, int trans)
{
    solve_case c;
    memset(&c, 0, sizeof c);
    c.dt = dt;
    c.n = n;
    c.nrhs = nrhs;
    c.lay_lu = lay_lu;
    c.lay_b = lay_b;
    c.trans = trans;
    c.gen = GEN_RANDOM;
    return c;
}

/* Single systems across the block sizes, 1, 7 and 300 right-hand sides, A X = B and
 * A^T X = B, layouts of lu and b cycling through all pairs. */
TEST(solve_sizes_and_rhs)
{
    lu_ctx x = ctx_new(0x501e);
    test_rng r = {x.seed};
    static const int64_t rhs[3] = {1, 7, 300};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int si = 0; si < NSQ; si++)
            for (int t = 0; t < 2; t++)
                for (int ri = 0; ri < 3; ri++, i++) {
                    solve_case c = scase(dts[di], sq_sizes[si], rhs[ri], i % LAY_COUNT,
                                         (i / LAY_COUNT) % LAY_COUNT, t);
                    run_solve(&x, &r, &c);
                }
    ctx_free(&x);
}

/* Batched systems and broadcast factors: lu (N,N) with b (4,N,K); lu (1,N,N) with
 * b (3,N,K); lu (3,1,N,N) with b (3,2,N,K); lu (2,N,N) with b (3,2,N,K); plain batches. */
TEST(solve_batched_and_broadcast)
{
    lu_ctx x = ctx_new(0xb40ad);
    test_rng r = {x.seed};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int t = 0; t < 2; t++) {
            static const int64_t ns[3] = {8, 33, 70};
            for (int ni = 0; ni < 3; ni++, i++) {
                int64_t n = ns[ni], k = ni == 1 ? 5 : ni == 2 ? 40 : 1;
                int ll = i % LAY_COUNT, bl = (i + 1 + t) % LAY_COUNT;
                solve_case c = scase(dts[di], n, k, ll, bl, t);
                c.bbr = 1;
                c.bshape[0] = 4;
                run_solve(&x, &r, &c); /* lu (N,N) */
                c.lbr = 1;
                c.lshape[0] = 1;
                c.bshape[0] = 3;
                run_solve(&x, &r, &c); /* lu (1,N,N) */
                c.lbr = 2;
                c.lshape[0] = 3;
                c.lshape[1] = 1;
                c.bbr = 2;
                c.bshape[0] = 3;
                c.bshape[1] = 2;
                run_solve(&x, &r, &c); /* lu (3,1,N,N) */
                c.lbr = 1;
                c.lshape[0] = 2;
                run_solve(&x, &r, &c); /* lu (2,N,N) with b (3,2,N,K) */
                c.lbr = 1;
                c.lshape[0] = 5;
                c.bbr = 1;
                c.bshape[0] = 5;
                run_solve(&x, &r, &c); /* 5 x (N,N) */
            }
            solve_case c = scase(dts[di], 8, 3, i % LAY_COUNT, (i + 2) % LAY_COUNT, t);
            c.lbr = c.bbr = 1;
            c.lshape[0] = c.bshape[0] = 200;
            run_solve(&x, &r, &c);
            c = scase(dts[di], 17, 17, (i + 1) % LAY_COUNT, i % LAY_COUNT, t);
            c.lbr = c.bbr = 2;
            c.lshape[0] = c.bshape[0] = 3;
            c.lshape[1] = c.bshape[1] = 2;
            run_solve(&x, &r, &c);
        }
    ctx_free(&x);
}

/* Hilbert systems up to n = 12: backward stable, so the residual stays small although
 * X itself is far from the exact solution. */
TEST(solve_hilbert)
{
    lu_ctx x = ctx_new(0x4b);
    test_rng r = {x.seed};
    for (int di = 0; di < 2; di++)
        for (int64_t n = 2; n <= 12; n++)
            for (int t = 0; t < 2; t++) {
                solve_case c = scase(dts[di], n, n % 3 == 0 ? 7 : 1, (int)(n % LAY_COUNT),
                                     (int)((n + t) % LAY_COUNT), t);
                c.gen = GEN_HILBERT;
                run_solve(&x, &r, &c);
            }
    ctx_free(&x);
}

/* lu_factor then lu_solve in one command buffer (the solve sees the factors just made),
 * batched, both transposes, across the blocked sizes. */
TEST(solve_after_factor_same_cmdbuf)
{
    lu_ctx x = ctx_new(0xfac5);
    test_rng r = {x.seed};
    static const int64_t ns[] = {1, 5, 64, 65, 129, 200};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int ni = 0; ni < 6; ni++)
            for (int t = 0; t < 2; t++, i++) {
                solve_case c =
                    scase(dts[di], ns[ni], ni % 2 ? 9 : 2, i % LAY_COUNT, (i + 3) % LAY_COUNT, t);
                c.alloy_factors = 1;
                if (ns[ni] < 100) {
                    c.lbr = c.bbr = 1;
                    c.lshape[0] = c.bshape[0] = 3;
                }
                run_solve(&x, &r, &c);
            }
    ctx_free(&x);
}

/* Empty systems: n = 0, no right-hand sides, no batch entries. Success, nothing written. */
TEST(solve_empty)
{
    lu_ctx x = ctx_new(0xe5);
    test_rng r = {x.seed};
    for (int di = 0; di < 2; di++)
        for (int t = 0; t < 2; t++) {
            solve_case c = scase(dts[di], 0, 3, LAY_ROW, LAY_COL, t);
            run_solve(&x, &r, &c);
            c = scase(dts[di], 5, 0, LAY_COL, LAY_ROW, t);
            run_solve(&x, &r, &c);
            c = scase(dts[di], 1, 1, LAY_ROW_PAD, LAY_COL_PAD, t);
            run_solve(&x, &r, &c);
            c = scase(dts[di], 4, 2, LAY_ROW, LAY_ROW, t);
            c.lbr = c.bbr = 1;
            c.lshape[0] = c.bshape[0] = 0;
            run_solve(&x, &r, &c);
            c.lshape[0] = 1; /* lu (1,N,N) broadcast to an empty batch */
            run_solve(&x, &r, &c);
        }
    ctx_free(&x);
}

TEST_LIST{
    TEST_ENTRY(factor_square_sizes), TEST_ENTRY(factor_rectangular),
    TEST_ENTRY(factor_batched),      TEST_ENTRY(factor_empty_and_1x1),
    TEST_ENTRY(factor_singular),     TEST_ENTRY(factor_hilbert),
    TEST_ENTRY(solve_sizes_and_rhs), TEST_ENTRY(solve_batched_and_broadcast),
    TEST_ENTRY(solve_hilbert),       TEST_ENTRY(solve_after_factor_same_cmdbuf),
    TEST_ENTRY(solve_empty),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
