/* alloy_encode_triangular_solve against cblas_strsm/cblas_dtrsm: all 16 variants (left or
 * right, upper or lower, transposed or not, unit diagonal or not) with alpha 1, -2.5 and
 * 0, f32 and f64, A and B row-major, column-major and padded (a column-major B, or a
 * row-major B solved from the right, goes through the workspace copy), sizes across the
 * 64-row block and narrow B (1 to 7 columns: the unblocked path), a broadcast over a
 * batched b, empty shapes. The triangle of A that is not used, and its diagonal when
 * unit_diagonal is set, hold NaN: they must never be read. With alpha 0 all of A is NaN
 * and X must be exactly 0. A zero on a non-unit diagonal gives non-finite values exactly
 * where trsm gives them. Checks: the forward error against cblas (A is well conditioned),
 * the scaled residual ||op(A) X - alpha B|| / (||A|| ||X|| k eps) <= 10 in float64, and
 * that nothing outside b's view and nothing of a's buffer changed. */
#include <cblas.h>

#define ORACLE_USE_CBLAS
#include "oracle.h"

#define RESID_BOUND 10.0

typedef struct tr_ctx {
    alloy_device *dev;
    alloy_queue *q;
    uint64_t seed;
    int index;
    double worst_resid, worst_fwd;
} tr_ctx;

static tr_ctx ctx_new(uint64_t seed)
{
    tr_ctx x;
    memset(&x, 0, sizeof x);
    x.dev = test_cpu_device(0);
    x.q = test_queue(x.dev);
    x.seed = test_seed(seed);
    return x;
}

static void ctx_free(tr_ctx *x)
{
    fprintf(stderr, "  %d cases; worst residual %.3g (bound %g), worst forward error %.3g k eps\n",
            x->index, x->worst_resid, RESID_BOUND, x->worst_fwd);
    ASSERT_OK(alloy_queue_destroy(x->q));
    ASSERT_OK(alloy_device_close(x->dev));
}

typedef struct tr_case {
    alloy_dtype dt;
    alloy_side side;
    alloy_uplo uplo;
    int trans, unit;
    double alpha;
    int abr, bbr;
    int64_t ash[3], bsh[3];
    int64_t m, n;
    int lay_a, lay_b;
    int64_t zero_diag; /* >= 0: A(z, z) = 0 (non-unit only) */
} tr_case;

static void describe(char *s, size_t cap, const tr_ctx *x, const tr_case *c)
{
    char ab[48] = "", bb[48] = "";
    for (int d = 0; d < c->abr; d++) {
        size_t l = strlen(ab);
        snprintf(ab + l, sizeof ab - l, "%lld x ", (long long)c->ash[d]);
    }
    for (int d = 0; d < c->bbr; d++) {
        size_t l = strlen(bb);
        snprintf(bb + l, sizeof bb - l, "%lld x ", (long long)c->bsh[d]);
    }
    int64_t k = c->side == ALLOY_LEFT ? c->m : c->n;
    snprintf(s, cap,
             "seed 0x%llx case %d: trsm %s %s %s%s%s alpha %g, a %s%lldx%lld %s, b %s%lldx%lld "
             "%s%s",
             (unsigned long long)x->seed, x->index, dtype_name(c->dt),
             c->side == ALLOY_LEFT ? "left" : "right", c->uplo == ALLOY_UPPER ? "upper" : "lower",
             c->trans ? " trans" : "", c->unit ? " unit" : "", c->alpha, ab, (long long)k,
             (long long)k, lay_name(c->lay_a), bb, (long long)c->m, (long long)c->n,
             lay_name(c->lay_b), c->zero_diag >= 0 ? " (a zero on the diagonal)" : "");
}

/* A well-conditioned triangle: |diagonal| in [1, 2) with random signs, off-diagonal
 * entries in [-1, 1)/k (so op(A) stays within a small factor of the identity's
 * condition). `full` gets the dense matrix with zeros outside the triangle (and 1 on a
 * unit diagonal); `poisoned` the same with NaN where alloy must not read. */
static void gen_triangle(test_rng *r, const tr_case *c, int64_t k, double *full, double *poisoned)
{
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
            int in = c->uplo == ALLOY_UPPER ? j > i : j < i;
            double v;
            if (i == j) {
                double d = 1 + fabs(rng_uniform(r));
                v = rng_uniform(r) < 0 ? -d : d;
                if (i == c->zero_diag)
                    v = 0;
            } else {
                v = in ? rng_uniform(r) / (double)k : 0;
            }
            if (c->dt == ALLOY_F32)
                v = (double)(float)v;
            full[i * k + j] = i == j && c->unit ? 1 : v;
            poisoned[i * k + j] = (in || (i == j && !c->unit)) ? v : NAN;
        }
}

/* cblas on one entry: b (m x n, row-major) becomes X. */
static void cblas_ref(const tr_case *c, int64_t k, const double *a, double *b)
{
    const int64_t m = c->m, n = c->n;
    if (m == 0 || n == 0)
        return;
    enum CBLAS_SIDE side = c->side == ALLOY_LEFT ? CblasLeft : CblasRight;
    enum CBLAS_UPLO uplo = c->uplo == ALLOY_UPPER ? CblasUpper : CblasLower;
    enum CBLAS_TRANSPOSE tr = c->trans ? CblasTrans : CblasNoTrans;
    enum CBLAS_DIAG diag = c->unit ? CblasUnit : CblasNonUnit;
    if (c->dt == ALLOY_F64) {
        cblas_dtrsm(CblasRowMajor, side, uplo, tr, diag, (int)m, (int)n, c->alpha, a, (int)k, b,
                    (int)n);
        return;
    }
    float *af = test_malloc((size_t)(k * k) * 4), *bf = test_malloc((size_t)(m * n) * 4);
    for (int64_t i = 0; i < k * k; i++)
        af[i] = (float)a[i];
    for (int64_t i = 0; i < m * n; i++)
        bf[i] = (float)b[i];
    cblas_strsm(CblasRowMajor, side, uplo, tr, diag, (int)m, (int)n, (float)c->alpha, af, (int)k,
                bf, (int)n);
    for (int64_t i = 0; i < m * n; i++)
        b[i] = (double)bf[i];
    free(af);
    free(bf);
}

/* The largest scaled residual of one entry, as a left solve: op'(A) Y = alpha C with
 * Y = X, C = B (left) or Y = X^T, C = B^T and op'(A) = op(A)^T (right). */
static double residual(const tr_case *c, int64_t k, const double *a, const double *x,
                       const double *b, double eps)
{
    const int64_t m = c->m, n = c->n, w = c->side == ALLOY_LEFT ? n : m;
    double *t = host_alloc(k * k), *y = host_alloc(k * w), *rhs = host_alloc(k * w);
    /* op(A), dense */
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++)
            t[i * k + j] = c->trans ? a[j * k + i] : a[i * k + j];
    if (c->side == ALLOY_RIGHT) {
        for (int64_t i = 0; i < k; i++) /* transpose op(A) */
            for (int64_t j = 0; j < i; j++) {
                double s = t[i * k + j];
                t[i * k + j] = t[j * k + i];
                t[j * k + i] = s;
            }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                y[j * w + i] = x[i * n + j];
                rhs[j * w + i] = c->alpha * b[i * n + j];
            }
    } else {
        for (int64_t i = 0; i < m * n; i++) {
            y[i] = x[i];
            rhs[i] = c->alpha * b[i];
        }
    }
    double res = ref_solve_residual(k, w, t, 0, y, rhs, eps);
    free(t);
    free(y);
    free(rhs);
    return res;
}

static void run_case(tr_ctx *x, test_rng *r, const tr_case *c)
{
    char what[320];
    x->index++;
    describe(what, sizeof what, x, c);
    const int64_t m = c->m, n = c->n, k = c->side == ALLOY_LEFT ? m : n;
    const size_t es = alloy_dtype_size(c->dt);
    size_t end;
    alloy_array a = lay_matrix(NULL, (size_t)rng_range(r, 0, 3) * es, c->dt, c->abr, c->ash, k, k,
                               c->lay_a, &end);
    alloy_buffer *abuf = poison_buffer(x->dev, end + 16);
    a = on_buffer(a, abuf);
    alloy_array b = lay_matrix(NULL, (size_t)rng_range(r, 0, 3) * es, c->dt, c->bbr, c->bsh, m, n,
                               c->lay_b, &end);
    alloy_buffer *bbuf = poison_buffer(x->dev, end + 16);
    b = on_buffer(b, bbuf);

    const int64_t ae = batch_entries(&a, 2), be = batch_entries(&b, 2);
    double **A = test_malloc(sizeof(double *) * (size_t)(ae + 1));
    double *poisoned = host_alloc(k * k);
    for (int64_t e = 0; e < ae; e++) {
        A[e] = host_alloc(k * k);
        gen_triangle(r, c, k, A[e], poisoned);
        if (c->alpha != 0)
            mat_put(&a, e, poisoned); /* with alpha 0, A stays all NaN */
    }
    double **B = test_malloc(sizeof(double *) * (size_t)(be + 1));
    for (int64_t e = 0; e < be; e++) {
        B[e] = host_alloc(m * n);
        host_random(r, c->dt, B[e], m * n);
        mat_put(&b, e, B[e]);
    }
    unsigned char *a0 = snapshot(abuf), *b0 = snapshot(bbuf);

    alloy_triangular_desc d = alloy_triangular_desc_default();
    ASSERT(d.alpha == 1.0 && d.side == ALLOY_LEFT && d.uplo == ALLOY_UPPER && !d.transpose &&
           !d.unit_diagonal);
    d.side = c->side;
    d.uplo = c->uplo;
    d.transpose = c->trans;
    d.unit_diagonal = c->unit;
    d.alpha = c->alpha;
    alloy_cmdbuf *cb = test_cmdbuf(x->q);
    alloy_status st = alloy_encode_triangular_solve(cb, &d, &a, &b);
    if (st != ALLOY_OK)
        FAIL_AT("%s: encode said %s: %s", what, alloy_status_string(st), alloy_last_error());
    test_commit_wait(cb);

    if (memcmp(a0, alloy_buffer_contents(abuf), alloy_buffer_size(abuf)) != 0)
        FAIL_AT("%s: a's buffer changed", what);
    const alloy_array *bv[1] = {&b};
    check_outside(bbuf, b0, bv, 1, what);

    const double eps = dtype_eps(c->dt);
    double *X = host_alloc(m * n), *R = host_alloc(m * n);
    for (int64_t e = 0; e < be; e++) {
        int64_t ai = bcast_entry(c->bbr, c->bsh, c->abr, c->ash, e);
        mat_get(&b, e, X);
        if (c->alpha == 0) {
            for (int64_t i = 0; i < m * n; i++)
                if (X[i] != 0)
                    FAIL_AT("%s, entry %lld: alpha 0 gave X[%lld] = %g, not 0", what, (long long)e,
                            (long long)i, X[i]);
            continue;
        }
        memcpy(R, B[e], (size_t)(m * n) * sizeof(double));
        cblas_ref(c, k, A[ai], R);
        if (c->zero_diag >= 0) {
            /* non-finite exactly where trsm's are; the finite values agree */
            for (int64_t i = 0; i < m * n; i++)
                if (!isfinite(X[i]) != !isfinite(R[i]))
                    FAIL_AT("%s, entry %lld: X[%lld] = %g but trsm gives %g", what, (long long)e,
                            (long long)i, X[i], R[i]);
            for (int64_t i = 0; i < m * n; i++)
                if (!isfinite(X[i]))
                    X[i] = R[i] = 0;
        } else if (!all_finite(X, m * n)) {
            FAIL_AT("%s, entry %lld: X holds NaN or infinity", what, (long long)e);
        }
        /* forward error per solution vector (columns when left, rows when right) */
        int64_t nv = c->side == ALLOY_LEFT ? n : m, len = k;
        for (int64_t v = 0; v < nv; v++) {
            double dmax = 0, xmax = 0;
            for (int64_t i = 0; i < len; i++) {
                int64_t at = c->side == ALLOY_LEFT ? i * n + v : v * n + i;
                double dd = fabs(X[at] - R[at]);
                if (dd > dmax)
                    dmax = dd;
                if (fabs(R[at]) > xmax)
                    xmax = fabs(R[at]);
            }
            double fe = xmax > 0 ? dmax / (xmax * (double)k * eps) : dmax;
            if (!(fe <= 20))
                FAIL_AT("%s, entry %lld: solution %lld differs from trsm's by %g k eps "
                        "(max |diff| %g, max |x| %g)",
                        what, (long long)e, (long long)v, fe, dmax, xmax);
            if (fe > x->worst_fwd)
                x->worst_fwd = fe;
        }
        if (c->zero_diag < 0) {
            double res = residual(c, k, A[ai], X, B[e], eps);
            if (!(res <= RESID_BOUND))
                FAIL_AT("%s, entry %lld: scaled residual %g", what, (long long)e, res);
            if (res > x->worst_resid)
                x->worst_resid = res;
        }
    }
    for (int64_t e = 0; e < ae; e++)
        free(A[e]);
    for (int64_t e = 0; e < be; e++)
        free(B[e]);
    free(A);
    free(B);
    free(poisoned);
    free(X);
    free(R);
    free(a0);
    free(b0);
    ASSERT_OK(alloy_buffer_destroy(abuf));
    ASSERT_OK(alloy_buffer_destroy(bbuf));
}

static tr_case tcase(alloy_dtype dt, int variant, double alpha, int64_t m, int64_t n, int lay_a,
                     int lay_b)
{
    tr_case c;
    memset(&c, 0, sizeof c);
    c.dt = dt;
    c.side = variant & 1 ? ALLOY_RIGHT : ALLOY_LEFT;
    c.uplo = variant & 2 ? ALLOY_LOWER : ALLOY_UPPER;
    c.trans = (variant >> 2) & 1;
    c.unit = (variant >> 3) & 1;
    c.alpha = alpha;
    c.m = m;
    c.n = n;
    c.lay_a = lay_a;
    c.lay_b = lay_b;
    c.zero_diag = -1;
    return c;
}

static const alloy_dtype dts[2] = {ALLOY_F32, ALLOY_F64};

/* Every variant with alpha 1 and -2.5 on shapes from 1x1 to 200x200, both sides of the
 * 64-row block and of the 8-column blocked/unblocked switch. */
TEST(all_variants)
{
    tr_ctx x = ctx_new(0x7253);
    test_rng r = {x.seed};
    static const int64_t shapes[][2] = {{1, 1},    {2, 3},   {5, 1},    {7, 7},   {13, 5},
                                        {63, 8},   {64, 64}, {65, 9},   {1, 65},  {3, 129},
                                        {130, 70}, {129, 7}, {200, 33}, {70, 200}};
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    static const double alphas[2] = {1.0, -2.5};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 16; v++)
            for (int ai = 0; ai < 2; ai++)
                for (int s = 0; s < ns; s++, i++) {
                    tr_case c = tcase(dts[di], v, alphas[ai], shapes[s][0], shapes[s][1],
                                      i % LAY_COUNT, (i / LAY_COUNT + s) % LAY_COUNT);
                    run_case(&x, &r, &c);
                }
    ctx_free(&x);
}

/* alpha 0: X = 0 exactly, and A (all NaN) is never read. */
TEST(alpha_zero_never_reads_a)
{
    tr_ctx x = ctx_new(0xa10);
    test_rng r = {x.seed};
    static const int64_t shapes[][2] = {{1, 1}, {5, 3}, {3, 70}, {70, 9}, {66, 66}};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 16; v++)
            for (int s = 0; s < 5; s++, i++) {
                tr_case c = tcase(dts[di], v, 0.0, shapes[s][0], shapes[s][1], i % LAY_COUNT,
                                  (i + s) % LAY_COUNT);
                run_case(&x, &r, &c);
                if (s == 2) {
                    c.bbr = 1;
                    c.bsh[0] = 3;
                    run_case(&x, &r, &c);
                }
            }
    ctx_free(&x);
}

/* k across the 64-row block (63 .. 129, 200) with 1 .. 7 columns (unblocked), 8, 9, 33
 * (blocked), on both sides, every layout. */
TEST(block_boundaries_and_narrow_b)
{
    tr_ctx x = ctx_new(0xb0b);
    test_rng r = {x.seed};
    static const int64_t ks[] = {63, 64, 65, 127, 128, 129, 200};
    static const int64_t ws[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 33};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int ki = 0; ki < 7; ki++)
            for (int wi = 0; wi < 10; wi++, i++) {
                int v = (i * 5 + wi) % 16; /* every variant comes round often */
                int left = !(v & 1);
                tr_case c = tcase(dts[di], v, wi % 2 ? -2.5 : 1.0, left ? ks[ki] : ws[wi],
                                  left ? ws[wi] : ks[ki], i % LAY_COUNT, (i / 3) % LAY_COUNT);
                run_case(&x, &r, &c);
                c = tcase(dts[di], v ^ 1, 1.0, left ? ws[wi] : ks[ki], left ? ks[ki] : ws[wi],
                          (i + 1) % LAY_COUNT, (i + 2) % LAY_COUNT);
                run_case(&x, &r, &c); /* the other side, so k is the wide dimension */
            }
    ctx_free(&x);
}

/* A broadcast over a batched B: a (K,K) with b (3,M,N); a (1,K,K) with b (2,3,M,N);
 * a (2,1,K,K) with b (2,3,M,N); and plain batches. */
TEST(broadcast_batched)
{
    tr_ctx x = ctx_new(0xbca57);
    test_rng r = {x.seed};
    static const int64_t shapes[][2] = {{5, 3}, {70, 6}, {9, 70}, {65, 40}};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 16; v++)
            for (int s = 0; s < 4; s++, i++) {
                if ((v + s) % 2)
                    continue; /* half the pairs: each variant still meets each shape kind */
                tr_case c = tcase(dts[di], v, s % 2 ? 1.0 : -2.5, shapes[s][0], shapes[s][1],
                                  i % LAY_COUNT, (i + 1) % LAY_COUNT);
                c.bbr = 1;
                c.bsh[0] = 3;
                run_case(&x, &r, &c);
                c.abr = 1;
                c.ash[0] = 1;
                c.bbr = 2;
                c.bsh[0] = 2;
                c.bsh[1] = 3;
                run_case(&x, &r, &c);
                c.abr = 2;
                c.ash[0] = 2;
                c.ash[1] = 1;
                run_case(&x, &r, &c);
                c.abr = c.bbr = 1;
                c.ash[0] = c.bsh[0] = 4;
                run_case(&x, &r, &c);
            }
    ctx_free(&x);
}

/* A zero on a non-unit diagonal: infinities or NaN exactly where trsm makes them. */
TEST(zero_diagonal_like_trsm)
{
    tr_ctx x = ctx_new(0x2e60);
    test_rng r = {x.seed};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 8; v++) /* the non-unit variants */
            for (int s = 0; s < 3; s++, i++) {
                static const int64_t shapes[3][2] = {{6, 2}, {2, 6}, {70, 70}};
                tr_case c = tcase(dts[di], v, 1.0, shapes[s][0], shapes[s][1], i % LAY_COUNT,
                                  (i + 2) % LAY_COUNT);
                int64_t k = c.side == ALLOY_LEFT ? c.m : c.n;
                c.zero_diag = s == 0 ? 0 : s == 1 ? k - 1 : k / 2;
                run_case(&x, &r, &c);
            }
    ctx_free(&x);
}

/* Empty shapes and batches: success, nothing written. */
TEST(empty)
{
    tr_ctx x = ctx_new(0xe);
    test_rng r = {x.seed};
    static const int64_t shapes[][2] = {{0, 0}, {0, 4}, {4, 0}};
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 16; v++)
            for (int s = 0; s < 3; s++) {
                tr_case c = tcase(dts[di], v, -2.5, shapes[s][0], shapes[s][1], v % LAY_COUNT,
                                  s % LAY_COUNT);
                run_case(&x, &r, &c);
                c = tcase(dts[di], v, 1.0, 3, 2, s % LAY_COUNT, v % LAY_COUNT);
                c.bbr = 1;
                c.bsh[0] = 0;
                run_case(&x, &r, &c);
            }
    ctx_free(&x);
}

TEST_LIST{
    TEST_ENTRY(all_variants),
    TEST_ENTRY(alpha_zero_never_reads_a),
    TEST_ENTRY(block_boundaries_and_narrow_b),
    TEST_ENTRY(broadcast_batched),
    TEST_ENTRY(zero_diagonal_like_trsm),
    TEST_ENTRY(empty),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
