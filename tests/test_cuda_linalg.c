/* lu_factor, lu_solve and triangular_solve on a CUDA device, f32 and f64, against trusted
 * references. The GPU machine has no LAPACK, so the oracles are float64 math done here and
 * alloy's own CPU backend (itself checked against LAPACK by test_lu and test_trsm) run on
 * the very same bytes:
 *
 *   lu_factor         pivots and info equal the CPU backend's (where the two part at a
 *                     pivot step, the rows they chose must tie to rounding: both are valid
 *                     partial pivoting); ||P A - L U|| / (||A|| max(m, n) eps) small in
 *                     float64 (on sampled rows and columns for the largest matrices); no
 *                     multiplier above 1; nothing non-finite, singular inputs included; the
 *                     same input factored twice gives the same bits.
 *   lu_solve          ||op(A) X - B|| / (||A|| ||X|| n eps) small, with factors from the CPU
 *                     backend, from the GPU in the same command buffer, or made up here
 *                     (L, U and a pivot vector, so lu and pivots can broadcast separately);
 *                     pivots outside 1..n fail the command buffer, name lu_solve, leave b
 *                     unchanged and skip the ops after it; the queue goes on.
 *   triangular_solve  all 16 variants against a float64 substitution (forward error) and
 *                     the residual; the triangle that is not used, and a unit diagonal,
 *                     hold NaN; alpha == 0 gives exact zeros with A and B all NaN.
 *
 * Every case uses strided, transposed (alloy_array_swap_dims), padded and offset views in
 * buffers poisoned with 0xff, and checks that no byte outside the output views changed
 * and that the inputs did not change. Also: 16 threads with a queue each on one GPU give
 * results bitwise equal to the same work run alone, and misuse gets the same encode
 * statuses on the GPU as on the CPU. A first case shows each oracle a wrong answer.
 *
 * No CUDA device: prints "SKIP: no CUDA device: <reason>" and passes.
 * ALLOY_TEST_SMALL=1 shrinks the problems (compute-sanitizer runs).
 * ALLOY_TEST_FAKE_GPU=cpu puts a second CPU device in the GPU's place: a check of this
 * program's own oracles and bounds on a machine without a GPU (the CPU backend is trusted,
 * so every case must pass there). */
#include "oracle.h"

#include <pthread.h>

/* Scaled residuals (LAPACK's dget01 and dget02 measures). A correct backward-stable
 * factorization or solve gives O(1); a wrong pivot or a wrong element gives 1e3 and up. */
#define RESID_BOUND 16.0
/* triangular_solve: |X - X_ref|_max / (|X_ref|_max k eps) per solution vector; the test's
 * triangles have condition numbers of a few units. */
#define FWD_BOUND 16.0

/* ---------------------------------------------------------------- environment */

static int small_run(void)
{
    const char *s = getenv("ALLOY_TEST_SMALL");
    return s && *s && *s != '0';
}

static int fake_gpu(void)
{
    const char *s = getenv("ALLOY_TEST_FAKE_GPU");
    return s && strcmp(s, "cpu") == 0;
}

static alloy_status open_gpu(alloy_device **out)
{
    alloy_device_desc d = alloy_device_desc_default();
    if (fake_gpu()) {
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_workers = 3; /* another worker count than the reference device */
    } else {
        d.backend = ALLOY_BACKEND_CUDA;
    }
    return alloy_device_open(&d, out);
}

typedef struct env {
    alloy_device *cpu, *gpu;
    alloy_queue *qc, *qg;
    int small;
    unsigned serial; /* picks the GPU memory kind of each new buffer */
} env;

static env env_open(void)
{
    env e;
    memset(&e, 0, sizeof e);
    e.cpu = test_cpu_device(0);
    ASSERT_OK(open_gpu(&e.gpu));
    e.qc = test_queue(e.cpu);
    e.qg = test_queue(e.gpu);
    e.small = small_run();
    return e;
}

static void env_close(env *e)
{
    ASSERT_OK(alloy_queue_destroy(e->qc));
    ASSERT_OK(alloy_queue_destroy(e->qg));
    ASSERT_OK(alloy_device_close(e->cpu));
    ASSERT_OK(alloy_device_close(e->gpu));
}

/* ---------------------------------------------------------------- buffers on both sides
 *
 * A twin is one buffer image in three places: `h`, a CPU-device buffer where the inputs
 * are written with oracle.h's helpers (and where the CPU backend runs the same op); `g`,
 * the GPU buffer, uploaded from h before any run; `back`, a CPU-device buffer that
 * receives the GPU's bytes after the run so the same helpers can read them. GPU device
 * memory is not host-visible, so this is how oracle.h's view helpers reach it. */

typedef struct twin {
    alloy_buffer *h, *g, *back;
    unsigned char *init; /* the image before any run */
    size_t bytes;
} twin;

static twin twin_new(env *e, size_t bytes)
{
    twin t;
    memset(&t, 0, sizeof t);
    t.bytes = bytes ? bytes : 1;
    t.h = poison_buffer(e->cpu, t.bytes);
    t.back = poison_buffer(e->cpu, t.bytes);
    /* Every fourth small buffer is pinned host memory: the kernels must not assume device
     * memory. (Large ones stay on the device: an LU streaming over PCIe would be slow.) */
    alloy_memory where =
        (e->serial++ % 4 == 3 && t.bytes <= (1u << 20)) ? ALLOY_MEMORY_HOST : ALLOY_MEMORY_DEVICE;
    ASSERT_OK(alloy_buffer_create(e->gpu, t.bytes, where, &t.g));
    return t;
}

static void twin_upload(twin *t)
{
    free(t->init);
    t->init = snapshot(t->h);
    ASSERT_OK(alloy_buffer_write(t->g, 0, t->init, t->bytes));
}

static void twin_download(twin *t)
{
    ASSERT_OK(alloy_buffer_read(t->g, 0, alloy_buffer_contents(t->back), t->bytes));
}

/* The GPU buffer still holds exactly the uploaded image (an input must not change). */
static void twin_check_unchanged(const twin *t, const char *what, const char *name)
{
    unsigned char *now = test_malloc(t->bytes);
    ASSERT_OK(alloy_buffer_read(t->g, 0, now, t->bytes));
    for (size_t i = 0; i < t->bytes; i++)
        if (now[i] != t->init[i])
            FAIL_AT("%s: byte %zu of %s's %zu-byte GPU buffer changed (an input)", what, i, name,
                    t->bytes);
    free(now);
}

static void twin_free(twin *t)
{
    ASSERT_OK(alloy_buffer_destroy(t->h));
    ASSERT_OK(alloy_buffer_destroy(t->g));
    ASSERT_OK(alloy_buffer_destroy(t->back));
    free(t->init);
    memset(t, 0, sizeof *t);
}

static void check_encode(alloy_status s, const char *what, const char *where)
{
    if (s != ALLOY_OK)
        FAIL_AT("%s: %s encode said %s: %s", what, where, alloy_status_string(s),
                alloy_last_error());
}

static void finish(alloy_cmdbuf *cb, const char *what, const char *where)
{
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    alloy_status s = alloy_cmdbuf_wait(cb);
    if (s != ALLOY_OK)
        FAIL_AT("%s: %s run failed: %s: %s", what, where, alloy_status_string(s),
                alloy_cmdbuf_error(cb));
    ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
}

/* ---------------------------------------------------------------- layouts
 * oracle.h's four (row-major, column-major, each padded), and two built with
 * alloy_array_swap_dims: a row-major (..., n, m) array seen transposed, and (one batch
 * dim) a row-major (m, B, n) array with its first two dims swapped, so the matrices of
 * the batch interleave row by row (batch stride < row stride). */

enum { LAY_SWAPPED = LAY_COUNT, LAY_INTERLEAVED, LAY_ALL };

static const char *layout_name(int lay)
{
    if (lay == LAY_SWAPPED)
        return "swapped";
    if (lay == LAY_INTERLEAVED)
        return "interleaved";
    return lay_name(lay);
}

/* A (bsh..., m, n) view at byte `offset` of a buffer still to be named (on_buffer);
 * *end: the bytes the buffer needs. */
static alloy_array matrix_view(size_t offset, alloy_dtype dt, int br, const int64_t *bsh, int64_t m,
                               int64_t n, int lay, size_t *end)
{
    if (lay < LAY_COUNT)
        return lay_matrix(NULL, offset, dt, br, bsh, m, n, lay, end);
    int64_t sh[ALLOY_MAX_RANK];
    alloy_array a;
    if (lay == LAY_INTERLEAVED && br == 1) {
        sh[0] = m;
        sh[1] = bsh[0];
        sh[2] = n;
        a = alloy_array_contiguous(NULL, offset, dt, 3, sh);
        *end = offset + (size_t)alloy_array_count(&a) * alloy_dtype_size(dt);
        return alloy_array_swap_dims(a, 0, 1);
    }
    for (int d = 0; d < br; d++)
        sh[d] = bsh[d];
    sh[br] = n;
    sh[br + 1] = m;
    a = alloy_array_contiguous(NULL, offset, dt, br + 2, sh);
    *end = offset + (size_t)alloy_array_count(&a) * alloy_dtype_size(dt);
    return alloy_array_swap_dims(a, br, br + 1);
}

static void batch_text(char *s, size_t cap, int br, const int64_t *sh)
{
    s[0] = 0;
    for (int d = 0; d < br; d++) {
        size_t l = strlen(s);
        snprintf(s + l, cap - l, "%lld x ", (long long)sh[d]);
    }
}

static int64_t prod(int br, const int64_t *sh)
{
    int64_t p = 1;
    for (int d = 0; d < br; d++)
        p *= sh[d];
    return p;
}

/* ---------------------------------------------------------------- inputs */

enum {
    GEN_RANDOM,     /* uniform in [-1, 1): well conditioned in practice */
    GEN_ZERO_COL,   /* random, column `param` zero: info = param + 1 */
    GEN_ZERO_ROW,   /* random, row `param` zero: it stays zero, info = n (square) */
    GEN_REPEAT_ROW, /* random, row `param` equal to row 0, both led by 2 */
    GEN_ZERO        /* all zeros: info 1 */
};

static const char *gen_name(int g)
{
    static const char *const names[] = {"random", "zero column", "zero row", "repeated row",
                                        "zero"};
    return names[g];
}

static void gen_matrix(test_rng *r, alloy_dtype dt, int gen, int64_t param, int64_t m, int64_t n,
                       double *a)
{
    if (gen == GEN_ZERO) {
        for (int64_t i = 0; i < m * n; i++)
            a[i] = 0;
        return;
    }
    host_random(r, dt, a, m * n);
    if (gen == GEN_ZERO_COL)
        for (int64_t i = 0; i < m; i++)
            a[i * n + param] = 0;
    if (gen == GEN_ZERO_ROW)
        for (int64_t j = 0; j < n; j++)
            a[param * n + j] = 0;
    if (gen == GEN_REPEAT_ROW) {
        /* Row 0 leads column 0 with 2 and row `param` repeats it: whichever of the two is
         * the first pivot, the other's multiplier is exactly 1 and its update leaves an
         * exactly zero row, so U(n,n) = 0 in any order of operations. (An arbitrary
         * repeated row comes out exactly singular or not by rounding: test_lu says why.) */
        a[0] = 2;
        for (int64_t j = 0; j < n; j++)
            a[param * n + j] = a[j];
    }
}

/* ---------------------------------------------------------------- LU reference checks */

/* Element (i, j) of L U for packed factors lu (m x n, mn = min(m, n)). */
static double lu_product_at(const double *lu, int64_t n, int64_t mn, int64_t i, int64_t j)
{
    int64_t top = i < j ? i : j;
    if (top > mn - 1)
        top = mn - 1;
    double s = 0;
    for (int64_t p = 0; p <= top; p++) {
        double l = p < i ? lu[i * n + p] : 1.0; /* p == i: the unit diagonal */
        s += l * lu[p * n + j];
    }
    return s;
}

/* ||P A - L U|| on a sample of `samples` columns (1-norm, over ||A||_1) and as many rows
 * (inf-norm, over ||A||_inf), each over max(m, n) eps; the largest. For matrices whose
 * full float64 product would cost seconds. */
static double lu_residual_sampled(int64_t m, int64_t n, const double *a, const double *lu,
                                  const int32_t *piv, double eps, test_rng *r, int samples)
{
    const int64_t mn = m < n ? m : n;
    if (m == 0 || n == 0)
        return 0;
    int64_t *perm = test_malloc((size_t)m * sizeof(int64_t));
    for (int64_t i = 0; i < m; i++)
        perm[i] = i;
    for (int64_t k = 0; k < mn; k++) {
        int64_t p = piv[k] - 1, t = perm[k];
        perm[k] = perm[p];
        perm[p] = t;
    }
    double n1 = ref_norm1(m, n, a), ninf = 0;
    for (int64_t i = 0; i < m; i++) {
        double s = 0;
        for (int64_t j = 0; j < n; j++)
            s += fabs(a[i * n + j]);
        if (s > ninf)
            ninf = s;
    }
    const double scale = (double)(m > n ? m : n) * eps;
    double worst = 0;
    for (int s = 0; s < samples; s++) {
        int64_t j = s == 0 ? 0 : s == 1 ? n - 1 : (int64_t)(rng_next(r) % (uint64_t)n);
        double rn = 0;
        for (int64_t i = 0; i < m; i++)
            rn += fabs(lu_product_at(lu, n, mn, i, j) - a[perm[i] * n + j]);
        double v = rn == 0 ? 0 : rn / ((n1 > 0 ? n1 : 1) * scale);
        if (!(v <= worst))
            worst = v;
        int64_t i = s == 0 ? 0 : s == 1 ? m - 1 : (int64_t)(rng_next(r) % (uint64_t)m);
        rn = 0;
        for (int64_t jj = 0; jj < n; jj++)
            rn += fabs(lu_product_at(lu, n, mn, i, jj) - a[perm[i] * n + jj]);
        v = rn == 0 ? 0 : rn / ((ninf > 0 ? ninf : 1) * scale);
        if (!(v <= worst))
            worst = v;
    }
    free(perm);
    return worst;
}

/* Compares the GPU's pivots pg with the CPU backend's pc for one matrix. 0: equal. 1: they
 * part at step *at where the two candidate rows tie to within tol: both are valid partial
 * pivoting (another order of rounding may pick either). The tie is read off the CPU's
 * factors luc: the row the GPU picked at step k is followed through the CPU's later swaps
 * to its final place f, and its multiplier |L(f, k)| = |a_gpu / a_cpu| must be ~1.
 * -1: a real difference. */
static int pivots_compare(int64_t m, int64_t n, const int32_t *pc, const int32_t *pg,
                          const double *luc, double tol, int64_t *at)
{
    const int64_t mn = m < n ? m : n;
    int64_t k = 0;
    while (k < mn && pc[k] == pg[k])
        k++;
    *at = k;
    if (k == mn)
        return 0;
    int64_t pos = (int64_t)pg[k] - 1, s = (int64_t)pc[k] - 1;
    if (pos < k || pos >= m)
        return -1;
    if (pos == k)
        pos = s;
    for (int64_t j = k + 1; j < mn; j++) {
        s = (int64_t)pc[j] - 1;
        if (pos == j)
            pos = s;
        else if (pos == s)
            pos = j;
    }
    return fabs(luc[pos * n + k]) >= 1 - tol ? 1 : -1;
}

typedef struct tally {
    int cases;
    int64_t mats;
    double worst, worst2;
    int ties, reruns;
    int64_t same; /* lu_factor: matrices bitwise equal to the CPU backend's (for the log) */
} tally;

/* ---------------------------------------------------------------- lu_factor */

typedef struct fcase {
    alloy_dtype dt;
    int br;
    int64_t bsh[3];
    int64_t m, n;
    int lay;
    int gen;
    int64_t param;
    int64_t only; /* >= 0: only this batch entry is made by `gen`, the others random */
    int twice;    /* factor again on the GPU: the same bits */
} fcase;

static fcase fcase_make(alloy_dtype dt, int64_t m, int64_t n, int lay)
{
    fcase c;
    memset(&c, 0, sizeof c);
    c.dt = dt;
    c.m = m;
    c.n = n;
    c.lay = lay;
    c.gen = GEN_RANDOM;
    c.only = -1;
    return c;
}

static void run_factor(env *e, test_rng *r, const fcase *c, tally *t)
{
    char what[320], bt[64];
    t->cases++;
    batch_text(bt, sizeof bt, c->br, c->bsh);
    snprintf(what, sizeof what, "lu_factor case %d: %s %s%lldx%lld %s, %s (param %lld)", t->cases,
             dtype_name(c->dt), bt, (long long)c->m, (long long)c->n, layout_name(c->lay),
             gen_name(c->gen), (long long)c->param);
    const int64_t m = c->m, n = c->n, mn = m < n ? m : n;
    const size_t es = alloy_dtype_size(c->dt);
    size_t end;
    alloy_array a =
        matrix_view((size_t)rng_range(r, 0, 3) * es, c->dt, c->br, c->bsh, m, n, c->lay, &end);
    twin ta = twin_new(e, end + 64);
    /* every other case: pivots and info strided, at an offset */
    const int strided = t->cases % 2;
    alloy_array p = strided ? lay_vector_strided(NULL, 4, ALLOY_I32, c->br, c->bsh, mn, 3, &end)
                            : lay_vector(NULL, 4, ALLOY_I32, c->br, c->bsh, mn, &end);
    twin tp = twin_new(e, end + 16);
    alloy_array in = strided ? lay_vector_strided(NULL, 8, ALLOY_I32, c->br, c->bsh, -1, 2, &end)
                             : lay_vector(NULL, 8, ALLOY_I32, c->br, c->bsh, -1, &end);
    twin ti = twin_new(e, end + 16);

    const int64_t entries = batch_entries(&a, 2);
    double *host = host_alloc(entries * m * n);
    alloy_array ah = on_buffer(a, ta.h);
    for (int64_t b = 0; b < entries; b++) {
        int gen = c->only < 0 || c->only == b ? c->gen : GEN_RANDOM;
        gen_matrix(r, c->dt, gen, c->param, m, n, host + b * m * n);
        mat_put(&ah, b, host + b * m * n);
    }
    twin_upload(&ta);
    twin_upload(&tp);
    twin_upload(&ti);

    /* the GPU */
    alloy_array ag = on_buffer(a, ta.g), pg = on_buffer(p, tp.g), ig = on_buffer(in, ti.g);
    alloy_cmdbuf *cb = test_cmdbuf(e->qg);
    check_encode(alloy_encode_lu_factor(cb, &ag, &pg, &ig), what, "gpu");
    finish(cb, what, "gpu");
    twin_download(&ta);
    twin_download(&tp);
    twin_download(&ti);
    if (c->twice) { /* the same input again: the same bits, every byte of every buffer */
        twin *all[3] = {&ta, &tp, &ti};
        for (int i = 0; i < 3; i++)
            ASSERT_OK(alloy_buffer_write(all[i]->g, 0, all[i]->init, all[i]->bytes));
        cb = test_cmdbuf(e->qg);
        check_encode(alloy_encode_lu_factor(cb, &ag, &pg, &ig), what, "gpu");
        finish(cb, what, "gpu (again)");
        for (int i = 0; i < 3; i++) {
            unsigned char *again = test_malloc(all[i]->bytes);
            ASSERT_OK(alloy_buffer_read(all[i]->g, 0, again, all[i]->bytes));
            if (memcmp(again, alloy_buffer_contents(all[i]->back), all[i]->bytes) != 0)
                FAIL_AT("%s: factoring the same input twice gave different %s bytes", what,
                        i == 0   ? "a"
                        : i == 1 ? "pivots"
                                 : "info");
            free(again);
        }
        t->reruns++;
    }
    /* the CPU backend on the same bytes */
    alloy_array ph = on_buffer(p, tp.h), ih = on_buffer(in, ti.h);
    cb = test_cmdbuf(e->qc);
    check_encode(alloy_encode_lu_factor(cb, &ah, &ph, &ih), what, "cpu");
    finish(cb, what, "cpu");

    /* nothing outside the output views changed */
    alloy_array ab = on_buffer(a, ta.back), pb = on_buffer(p, tp.back), ib = on_buffer(in, ti.back);
    const alloy_array *av[1] = {&ab}, *pv[1] = {&pb}, *iv[1] = {&ib};
    check_outside(ta.back, ta.init, av, 1, what);
    check_outside(tp.back, tp.init, pv, 1, what);
    check_outside(ti.back, ti.init, iv, 1, what);

    const double eps = dtype_eps(c->dt);
    double tol = 16 * (double)(m > n ? m : n) * eps;
    if (tol > 1e-2)
        tol = 1e-2;
    double *lug = host_alloc(m * n), *luc = host_alloc(m * n);
    int32_t *pgv = test_malloc((size_t)(mn > 0 ? mn : 1) * 4);
    int32_t *pcv = test_malloc((size_t)(mn > 0 ? mn : 1) * 4);
    const int full = (double)m * (double)n * (double)mn <= 1.5e8;
    for (int64_t b = 0; b < entries; b++) {
        const double *A = host + b * m * n;
        mat_get(&ab, b, lug);
        mat_get(&ah, b, luc);
        ivec_get(&pb, b, pgv, mn);
        ivec_get(&ph, b, pcv, mn);
        int32_t info_g, info_c;
        memcpy(&info_g, elem_at(&ib, 0, b, 0, 0), 4);
        memcpy(&info_c, elem_at(&ih, 0, b, 0, 0), 4);
        if (info_g != info_c)
            FAIL_AT("%s, entry %lld: info %d, the CPU backend's %d", what, (long long)b, info_g,
                    info_c);
        int gen = c->only < 0 || c->only == b ? c->gen : GEN_RANDOM;
        if (gen != GEN_RANDOM && m == n && n > 0 && info_g == 0)
            FAIL_AT("%s, entry %lld: an exactly singular matrix gave info 0", what, (long long)b);
        for (int64_t i = 0; i < mn; i++)
            if (pgv[i] < i + 1 || pgv[i] > m)
                FAIL_AT("%s, entry %lld: pivots[%lld] = %d is outside %lld..%lld", what,
                        (long long)b, (long long)i, pgv[i], (long long)(i + 1), (long long)m);
        int64_t at;
        int pc = pivots_compare(m, n, pcv, pgv, luc, tol, &at);
        if (pc < 0)
            FAIL_AT("%s, entry %lld: pivots[%lld] = %d, the CPU backend's %d (not a tie)", what,
                    (long long)b, (long long)at, pgv[at], pcv[at]);
        if (pc > 0)
            t->ties++;
        if (!all_finite(lug, m * n))
            FAIL_AT("%s, entry %lld: the factors hold NaN or infinity", what, (long long)b);
        if (pc == 0 && memcmp(lug, luc, (size_t)(m * n) * sizeof(double)) == 0)
            t->same++;
        /* partial pivoting: no multiplier above 1 in magnitude */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < i && j < n; j++)
                if (fabs(lug[i * n + j]) > 1 + 4 * eps)
                    FAIL_AT("%s, entry %lld: |L(%lld,%lld)| = %g > 1", what, (long long)b,
                            (long long)i, (long long)j, fabs(lug[i * n + j]));
        double res = full ? ref_lu_residual(m, n, A, lug, pgv, eps)
                          : lu_residual_sampled(m, n, A, lug, pgv, eps, r, 24);
        if (!(res <= RESID_BOUND))
            FAIL_AT("%s, entry %lld: ||PA - LU|| / (||A|| n eps) = %g", what, (long long)b, res);
        if (res > t->worst)
            t->worst = res;
        t->mats++;
    }
    free(lug);
    free(luc);
    free(pgv);
    free(pcv);
    free(host);
    twin_free(&ta);
    twin_free(&tp);
    twin_free(&ti);
}

static void factor_report(const char *name, const tally *t)
{
    fprintf(stderr,
            "  %s: %d cases, %lld matrices, max scaled residual %.3g (bound %g), %d pivot "
            "near-ties, %d bitwise reruns, %lld matrices bitwise equal to the CPU's\n",
            name, t->cases, (long long)t->mats, t->worst, RESID_BOUND, t->ties, t->reruns,
            (long long)t->same);
}

static const alloy_dtype dts[2] = {ALLOY_F32, ALLOY_F64};
static const int64_t sizes[] = {0,  1,  2,  3,   7,   16,  17,  31,  32,  33,
                                63, 64, 65, 127, 128, 129, 200, 257, 513, 1024};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

/* Square matrices of every size, f32 and f64, 2048 in f32; the largest factored twice. */
TEST(lu_factor_square)
{
    env e = env_open();
    test_rng r = {test_seed(0x6f11)};
    tally t;
    memset(&t, 0, sizeof t);
    for (int di = 0; di < 2; di++) {
        for (int si = 0; si < NSIZES; si++) {
            int64_t n = sizes[si];
            if (e.small && n > 129)
                continue;
            fcase c = fcase_make(dts[di], n, n, (si + di) % LAY_ALL);
            c.twice = n >= 513 || n == 65;
            run_factor(&e, &r, &c, &t);
            if (n <= 257 && c.lay != LAY_ROW) { /* and the contiguous fast path */
                c.lay = LAY_ROW;
                c.twice = 0;
                run_factor(&e, &r, &c, &t);
            }
        }
    }
    if (!e.small) {
        fcase c = fcase_make(ALLOY_F32, 2048, 2048, LAY_ROW);
        c.twice = 1;
        run_factor(&e, &r, &c, &t);
    }
    factor_report("lu_factor square", &t);
    env_close(&e);
}

/* Tall (m > n) and wide (m < n) matrices, empty ones included. */
TEST(lu_factor_rectangular)
{
    env e = env_open();
    test_rng r = {test_seed(0x7ec7)};
    tally t;
    memset(&t, 0, sizeof t);
    static const int64_t shapes[][2] = {
        {0, 5},    {5, 0},     {2, 1},     {1, 2},      {1, 129},   {129, 1},   {3, 7},
        {7, 3},    {17, 16},   {16, 17},   {33, 31},    {31, 33},   {65, 63},   {63, 65},
        {129, 64}, {64, 129},  {200, 127}, {127, 200},  {257, 128}, {128, 257}, {513, 65},
        {65, 513}, {300, 299}, {299, 300}, {1024, 200}, {200, 1024}};
    const int ns = (int)(sizeof shapes / sizeof shapes[0]);
    for (int di = 0; di < 2; di++)
        for (int s = 0; s < ns; s++) {
            if (e.small && (shapes[s][0] > 129 || shapes[s][1] > 129))
                continue;
            fcase c = fcase_make(dts[di], shapes[s][0], shapes[s][1], (s + 3 * di) % LAY_ALL);
            run_factor(&e, &r, &c, &t);
        }
    factor_report("lu_factor rectangular", &t);
    env_close(&e);
}

/* Batches: many small matrices, medium ones, 2-d and 3-d batch shapes, interleaved
 * matrices, empty batches; each in f32 and f64. */
TEST(lu_factor_batched)
{
    env e = env_open();
    test_rng r = {test_seed(0xba7c)};
    tally t;
    memset(&t, 0, sizeof t);
    const int sm = e.small;
    const struct {
        int br;
        int64_t b0, b1, b2, m, n;
        int lay;
    } bs[] = {
        {1, sm ? 40 : 1000, 0, 0, 32, 32, LAY_ROW},
        {1, sm ? 20 : 1000, 0, 0, 64, 64, LAY_COL},
        {1, sm ? 4 : 300, 0, 0, 128, 128, LAY_ROW_PAD},
        {1, sm ? 2 : 20, 0, 0, sm ? 100 : 300, sm ? 100 : 300, LAY_ROW},
        {2, 3, 4, 0, 17, 17, LAY_COL_PAD},
        {3, 2, 1, 3, 5, 9, LAY_SWAPPED},
        {1, 7, 0, 0, 33, 33, LAY_INTERLEAVED},
        {1, 9, 0, 0, 40, 24, LAY_INTERLEAVED},
        {1, 50, 0, 0, 3, 3, LAY_ROW},
        {1, 0, 0, 0, 4, 4, LAY_ROW}, /* no matrices at all */
        {1, 3, 0, 0, 0, 0, LAY_COL}, /* info 0 is still written */
        {2, 2, 0, 0, 5, 5, LAY_ROW}, /* an empty 2-d batch */
        {1, 3, 0, 0, 5, 0, LAY_ROW_PAD},
    };
    const int nb = (int)(sizeof bs / sizeof bs[0]);
    for (int di = 0; di < 2; di++)
        for (int i = 0; i < nb; i++) {
            fcase c = fcase_make(dts[di], bs[i].m, bs[i].n, bs[i].lay);
            c.br = bs[i].br;
            c.bsh[0] = bs[i].b0;
            c.bsh[1] = bs[i].b1;
            c.bsh[2] = bs[i].b2;
            c.twice = i == 1 || i == 2; /* batched determinism */
            run_factor(&e, &r, &c, &t);
        }
    factor_report("lu_factor batched", &t);
    env_close(&e);
}

/* Exactly singular matrices: info equals the CPU backend's (and is > 0), the pivots equal
 * its (LAPACK's rule: among exactly zero candidates the first row, no swap), nothing
 * non-finite is made, and P A = L U still holds. Zero columns first, in the middle and
 * last, zero rows, repeated rows, zero matrices, and one singular matrix in a batch. */
TEST(lu_factor_singular)
{
    env e = env_open();
    test_rng r = {test_seed(0x5196)};
    tally t;
    memset(&t, 0, sizeof t);
    static const int64_t ns[] = {1, 2, 7, 33, 64, 65, 129, 257};
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 8; k++) {
            int64_t n = ns[k];
            if (e.small && n > 65)
                continue;
            int lay = (k + di) % LAY_ALL;
            int64_t cols[3] = {0, n / 2, n - 1};
            for (int ci = 0; ci < 3; ci++) {
                fcase c = fcase_make(dts[di], n, n, lay);
                c.gen = GEN_ZERO_COL;
                c.param = cols[ci];
                run_factor(&e, &r, &c, &t);
            }
            fcase c = fcase_make(dts[di], n, n, (lay + 1) % LAY_ALL);
            c.gen = GEN_ZERO_ROW;
            c.param = n / 3;
            run_factor(&e, &r, &c, &t);
            if (n >= 2) {
                c.gen = GEN_REPEAT_ROW;
                c.param = n - 1 - n / 4;
                run_factor(&e, &r, &c, &t);
            }
            c.gen = GEN_ZERO;
            run_factor(&e, &r, &c, &t);
        }
    for (int di = 0; di < 2; di++) {
        fcase c = fcase_make(dts[di], 20, 20, LAY_ROW);
        c.br = 1;
        c.bsh[0] = 6;
        c.gen = GEN_ZERO_COL;
        c.param = 11;
        c.only = 3;
        run_factor(&e, &r, &c, &t);
        c = fcase_make(dts[di], 12, 12, LAY_INTERLEAVED);
        c.br = 1;
        c.bsh[0] = 5;
        c.gen = GEN_ZERO;
        c.only = 4;
        run_factor(&e, &r, &c, &t);
        c = fcase_make(dts[di], 9, 5, LAY_COL); /* tall with a zero column */
        c.gen = GEN_ZERO_COL;
        c.param = 2;
        run_factor(&e, &r, &c, &t);
    }
    factor_report("lu_factor singular", &t);
    env_close(&e);
}

/* ---------------------------------------------------------------- lu_solve */

enum {
    SRC_CPU,  /* random A, factored by the CPU backend: lu and pivots are inputs */
    SRC_GPU,  /* random A, factored on the GPU in the same command buffer */
    SRC_SYNTH /* made-up factors: lu and pivots broadcast independently */
};

typedef struct scase {
    alloy_dtype dt;
    int64_t n, k;
    int trans, src;
    int any_pivots; /* SRC_SYNTH: pivots anywhere in 1..n, not only i+1..n */
    int lbr, pbr, bbr;
    int64_t lsh[3], psh[3], bsh[3];
    int lay_lu, lay_b;
} scase;

static scase scase_make(alloy_dtype dt, int64_t n, int64_t k, int trans, int src, int lay_lu,
                        int lay_b)
{
    scase c;
    memset(&c, 0, sizeof c);
    c.dt = dt;
    c.n = n;
    c.k = k;
    c.trans = trans;
    c.src = src;
    c.lay_lu = lay_lu;
    c.lay_b = lay_b;
    return c;
}

/* A = P^-1 L U for packed factors lu (n x n) and 1-based pivots: L U, then the row swaps
 * undone in reverse order (getrf's P A = L U with P the swaps in order). */
static void unfactor(int64_t n, const double *lu, const int32_t *piv, double *a)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            a[i * n + j] = lu_product_at(lu, n, n, i, j);
    for (int64_t i = n - 1; i >= 0; i--) {
        int64_t p = piv[i] - 1;
        if (p != i)
            for (int64_t j = 0; j < n; j++) {
                double t = a[i * n + j];
                a[i * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
    }
}

static void run_solve(env *e, test_rng *r, const scase *c, tally *t)
{
    char what[360], lb[64], pb[64], bb[64];
    t->cases++;
    batch_text(lb, sizeof lb, c->lbr, c->lsh);
    batch_text(pb, sizeof pb, c->pbr, c->psh);
    batch_text(bb, sizeof bb, c->bbr, c->bsh);
    static const char *const srcs[3] = {"CPU factors", "GPU factors", "made-up factors"};
    snprintf(what, sizeof what,
             "lu_solve case %d: %s%s lu %s%lld^2 %s, pivots %s%lld, b %s%lldx%lld %s, %s%s",
             t->cases, dtype_name(c->dt), c->trans ? " A^T X = B" : "", lb, (long long)c->n,
             layout_name(c->lay_lu), pb, (long long)c->n, bb, (long long)c->n, (long long)c->k,
             layout_name(c->lay_b), srcs[c->src], c->any_pivots ? " (any pivots)" : "");
    const int64_t n = c->n, k = c->k;
    const size_t es = alloy_dtype_size(c->dt);
    size_t end;
    alloy_array lu =
        matrix_view((size_t)rng_range(r, 0, 2) * es, c->dt, c->lbr, c->lsh, n, n, c->lay_lu, &end);
    twin tl = twin_new(e, end + 32);
    alloy_array pv = t->cases % 2
                         ? lay_vector(NULL, 0, ALLOY_I32, c->pbr, c->psh, n, &end)
                         : lay_vector_strided(NULL, 4, ALLOY_I32, c->pbr, c->psh, n, 2, &end);
    twin tp = twin_new(e, end + 8);
    alloy_array in = lay_vector(NULL, 0, ALLOY_I32, c->lbr, c->lsh, -1, &end);
    twin ti = twin_new(e, end + 8);
    alloy_array b =
        matrix_view((size_t)rng_range(r, 0, 2) * es, c->dt, c->bbr, c->bsh, n, k, c->lay_b, &end);
    twin tb = twin_new(e, end + 32);

    const int64_t le = batch_entries(&lu, 2), pe = batch_entries(&pv, 1);
    const int64_t be = batch_entries(&b, 2);
    alloy_array lh = on_buffer(lu, tl.h), ph = on_buffer(pv, tp.h), ih = on_buffer(in, ti.h);
    double *A = host_alloc(le * n * n); /* SRC_CPU, SRC_GPU: the matrices */
    double *F = host_alloc(le * n * n); /* SRC_SYNTH: the packed factors */
    int32_t *P = test_malloc((size_t)(pe * n + 1) * 4);
    if (c->src == SRC_SYNTH) {
        /* L: unit lower, small multipliers; U: |diagonal| in [1, 2), small above. Small
         * off-diagonal entries keep ||L|| ||U|| close to ||A||, so the residual's scale is
         * the usual one. */
        const double off = 1.0 / sqrt((double)(n > 0 ? n : 1));
        for (int64_t i = 0; i < le * n * n; i++) {
            int64_t row = (i / n) % n, col = i % n;
            double v = rng_uniform(r);
            if (row == col)
                v = v < 0 ? v - 1 : v + 1;
            else
                v *= off;
            F[i] = c->dt == ALLOY_F32 ? (double)(float)v : v;
        }
        for (int64_t q = 0; q < le; q++)
            mat_put(&lh, q, F + q * n * n);
        for (int64_t q = 0; q < pe; q++) {
            for (int64_t i = 0; i < n; i++)
                P[q * n + i] =
                    (int32_t)(c->any_pivots ? rng_range(r, 1, n) : rng_range(r, i + 1, n));
            ivec_put(&ph, q, P + q * n, n);
        }
    } else {
        ASSERT(c->pbr == c->lbr && prod(c->pbr, c->psh) == prod(c->lbr, c->lsh));
        for (int64_t q = 0; q < le; q++) {
            gen_matrix(r, c->dt, GEN_RANDOM, 0, n, n, A + q * n * n);
            mat_put(&lh, q, A + q * n * n);
        }
        if (c->src == SRC_CPU) { /* the CPU backend's factors become the inputs */
            alloy_cmdbuf *cb = test_cmdbuf(e->qc);
            check_encode(alloy_encode_lu_factor(cb, &lh, &ph, &ih), what, "cpu factor");
            finish(cb, what, "cpu factor");
            for (int64_t q = 0; q < le; q++) {
                int32_t inf;
                memcpy(&inf, elem_at(&ih, 0, q, 0, 0), 4);
                ASSERT_EQ(inf, 0); /* random matrices: the inputs are real factors */
            }
        }
    }
    alloy_array bh = on_buffer(b, tb.h);
    double *B = host_alloc(be * n * k);
    for (int64_t q = 0; q < be; q++) {
        host_random(r, c->dt, B + q * n * k, n * k);
        mat_put(&bh, q, B + q * n * k);
    }
    twin_upload(&tl);
    twin_upload(&tp);
    twin_upload(&ti);
    twin_upload(&tb);

    alloy_array lg = on_buffer(lu, tl.g), pg = on_buffer(pv, tp.g), ig = on_buffer(in, ti.g);
    alloy_array bg = on_buffer(b, tb.g);
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    ASSERT_EQ(d.transpose, 0);
    d.transpose = c->trans;
    alloy_cmdbuf *cb = test_cmdbuf(e->qg);
    if (c->src == SRC_GPU)
        check_encode(alloy_encode_lu_factor(cb, &lg, &pg, &ig), what, "gpu factor");
    check_encode(alloy_encode_lu_solve(cb, &d, &lg, &pg, &bg), what, "gpu");
    finish(cb, what, "gpu");
    twin_download(&tb);
    if (c->src == SRC_GPU) {
        twin_download(&tl);
        twin_download(&tp);
        twin_download(&ti);
        alloy_array ib = on_buffer(in, ti.back);
        for (int64_t q = 0; q < le; q++) {
            int32_t inf;
            memcpy(&inf, elem_at(&ib, 0, q, 0, 0), 4);
            if (inf != 0)
                FAIL_AT("%s: lu entry %lld: info %d for a random matrix", what, (long long)q, inf);
        }
    } else { /* lu and pivots are inputs: not one byte of their buffers changes */
        twin_check_unchanged(&tl, what, "lu");
        twin_check_unchanged(&tp, what, "pivots");
    }
    alloy_array bk = on_buffer(b, tb.back);
    const alloy_array *bv[1] = {&bk};
    check_outside(tb.back, tb.init, bv, 1, what);

    const double eps = dtype_eps(c->dt);
    double *X = host_alloc(n * k), *Am = host_alloc(n * n);
    int64_t fb[ALLOY_MAX_RANK];
    for (int d2 = 0; d2 < c->bbr; d2++)
        fb[d2] = c->bsh[d2];
    for (int64_t q = 0; q < be; q++) {
        int64_t ql = bcast_entry(c->bbr, fb, c->lbr, c->lsh, q);
        const double *Aq = A + ql * n * n;
        if (c->src == SRC_SYNTH) {
            int64_t qp = bcast_entry(c->bbr, fb, c->pbr, c->psh, q);
            unfactor(n, F + ql * n * n, P + qp * n, Am);
            Aq = Am;
        }
        mat_get(&bk, q, X);
        if (!all_finite(X, n * k))
            FAIL_AT("%s, entry %lld: X holds NaN or infinity", what, (long long)q);
        double res = ref_solve_residual(n, k, Aq, c->trans, X, B + q * n * k, eps);
        if (!(res <= RESID_BOUND))
            FAIL_AT("%s, entry %lld (lu entry %lld): ||op(A) X - B|| / (||A|| ||X|| n eps) = %g",
                    what, (long long)q, (long long)ql, res);
        if (res > t->worst)
            t->worst = res;
        t->mats++;
    }
    free(X);
    free(Am);
    free(A);
    free(F);
    free(P);
    free(B);
    twin_free(&tl);
    twin_free(&tp);
    twin_free(&ti);
    twin_free(&tb);
}

static void solve_report(const char *name, const tally *t)
{
    fprintf(stderr, "  %s: %d cases, %lld systems, max scaled residual %.3g (bound %g)\n", name,
            t->cases, (long long)t->mats, t->worst, RESID_BOUND);
}

/* Single systems of every size up to 1024, A X = B and A^T X = B, 1, 3, 64 and 200
 * right-hand sides (1 and 64 for n >= 513), layouts of lu and b cycling. */
TEST(lu_solve_sizes)
{
    env e = env_open();
    test_rng r = {test_seed(0x501e)};
    tally t;
    memset(&t, 0, sizeof t);
    static const int64_t rhs[4] = {1, 3, 64, 200};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int si = 0; si < NSIZES; si++)
            for (int tr = 0; tr < 2; tr++)
                for (int ri = 0; ri < 4; ri++, i++) {
                    int64_t n = sizes[si];
                    if ((e.small && (n > 129 || rhs[ri] > 64)) ||
                        (n >= 513 && (ri == 1 || ri == 3)))
                        continue;
                    scase c = scase_make(dts[di], n, rhs[ri], tr, SRC_CPU, i % LAY_ALL,
                                         (i / LAY_ALL + tr) % LAY_ALL);
                    run_solve(&e, &r, &c, &t);
                }
    solve_report("lu_solve sizes", &t);
    env_close(&e);
}

/* Batches where lu and pivots broadcast against b: missing batch dims, extents of 1, and
 * lu and pivots broadcasting differently from each other (made-up factors), plus large
 * batches of CPU factors and pivots anywhere in 1..n (rows swapped upwards too). */
TEST(lu_solve_broadcast)
{
    env e = env_open();
    test_rng r = {test_seed(0xb40ad)};
    tally t;
    memset(&t, 0, sizeof t);
    static const int64_t ns[4] = {1, 8, 33, 65};
    static const int64_t ks[4] = {3, 1, 17, 4};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int tr = 0; tr < 2; tr++)
            for (int ni = 0; ni < 4; ni++, i++) {
                int64_t n = ns[ni], k = ks[ni];
                int ll = i % LAY_ALL, bl = (i + 2) % LAY_ALL;
                scase c = scase_make(dts[di], n, k, tr, SRC_SYNTH, ll, bl);
                c.bbr = 1; /* lu (N,N), pivots (N), b (4,N,K) */
                c.bsh[0] = 4;
                run_solve(&e, &r, &c, &t);
                c.lbr = c.pbr = 1; /* lu (1,N,N), pivots (1,N), b (3,N,K) */
                c.lsh[0] = c.psh[0] = 1;
                c.bsh[0] = 3;
                c.any_pivots = 1;
                run_solve(&e, &r, &c, &t);
                c.any_pivots = 0;
                c.lbr = c.pbr = 2; /* lu (3,1,N,N), pivots (3,1,N), b (3,2,N,K) */
                c.lsh[0] = c.psh[0] = 3;
                c.lsh[1] = c.psh[1] = 1;
                c.bbr = 2;
                c.bsh[0] = 3;
                c.bsh[1] = 2;
                run_solve(&e, &r, &c, &t);
                c.lbr = 1; /* lu (5,N,N), pivots (N): pivots broadcast, lu does not */
                c.lsh[0] = 5;
                c.pbr = 0;
                c.bbr = 1;
                c.bsh[0] = 5;
                run_solve(&e, &r, &c, &t);
                c.lbr = 0; /* lu (N,N), pivots (5,N) */
                c.pbr = 1;
                c.psh[0] = 5;
                run_solve(&e, &r, &c, &t);
                c.lbr = 2; /* lu (2,1,N,N), pivots (3,N), b (2,3,N,K) */
                c.lsh[0] = 2;
                c.lsh[1] = 1;
                c.pbr = 1;
                c.psh[0] = 3;
                c.bbr = 2;
                c.bsh[0] = 2;
                c.bsh[1] = 3;
                c.lay_b = LAY_SWAPPED;
                run_solve(&e, &r, &c, &t);
            }
    for (int di = 0; di < 2; di++) {
        scase c = scase_make(dts[di], 32, 4, di, SRC_CPU, LAY_INTERLEAVED, LAY_COL);
        c.lbr = c.pbr = c.bbr = 1;
        c.lsh[0] = c.psh[0] = c.bsh[0] = e.small ? 20 : 300;
        run_solve(&e, &r, &c, &t);
        c = scase_make(dts[di], e.small ? 64 : 128, 3, 1 - di, SRC_CPU, LAY_ROW, LAY_INTERLEAVED);
        c.lbr = c.pbr = c.bbr = 1;
        c.lsh[0] = c.psh[0] = 1;
        c.bsh[0] = e.small ? 6 : 50;
        run_solve(&e, &r, &c, &t);
        /* no systems, no right-hand sides, n = 0: success, nothing written */
        c = scase_make(dts[di], 4, 2, 0, SRC_SYNTH, LAY_ROW, LAY_COL);
        c.bbr = 1;
        c.bsh[0] = 0;
        run_solve(&e, &r, &c, &t);
        c = scase_make(dts[di], 5, 0, 1, SRC_SYNTH, LAY_COL, LAY_ROW);
        run_solve(&e, &r, &c, &t);
        c = scase_make(dts[di], 0, 3, 0, SRC_SYNTH, LAY_ROW, LAY_ROW_PAD);
        c.bbr = 1;
        c.bsh[0] = 2;
        run_solve(&e, &r, &c, &t);
    }
    solve_report("lu_solve broadcast", &t);
    env_close(&e);
}

/* lu_factor then lu_solve of its factors in one GPU command buffer: the solve must see
 * the factors just made. */
TEST(lu_solve_after_factor)
{
    env e = env_open();
    test_rng r = {test_seed(0xfac5)};
    tally t;
    memset(&t, 0, sizeof t);
    static const int64_t ns[] = {1, 5, 64, 65, 129, 200, 513, 1024};
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int ni = 0; ni < 8; ni++)
            for (int tr = 0; tr < 2; tr++, i++) {
                if (e.small && ns[ni] > 129)
                    continue;
                scase c = scase_make(dts[di], ns[ni], ni % 2 ? 9 : 2, tr, SRC_GPU, i % LAY_ALL,
                                     (i + 3) % LAY_ALL);
                if (ns[ni] < 100) {
                    c.lbr = c.pbr = c.bbr = 1;
                    c.lsh[0] = c.psh[0] = c.bsh[0] = 3;
                }
                run_solve(&e, &r, &c, &t);
            }
    solve_report("lu_factor + lu_solve", &t);
    env_close(&e);
}

/* Pivots outside 1..n (0, n+1, negative, huge) in one batch entry only: the command buffer
 * fails with INVALID_ARGUMENT naming lu_solve, every byte of b (the valid entries' too)
 * is unchanged, the op before ran and the op after did not, and the queue and device
 * work afterwards. */
static void bad_pivots_case(env *e, alloy_dtype dt, int32_t badv, int bad_entry, int bad_pos,
                            int lay_b, int trans)
{
    char what[160];
    snprintf(what, sizeof what, "lu_solve %s with pivot %d at entry %d position %d", dtype_name(dt),
             badv, bad_entry, bad_pos);
    const int64_t n = 5, k = 2, bsh[1] = {3};
    size_t end;
    alloy_array lu = lay_matrix(NULL, 0, dt, 1, bsh, n, n, LAY_ROW, &end);
    twin tl = twin_new(e, end);
    alloy_array pv = lay_vector(NULL, 0, ALLOY_I32, 1, bsh, n, &end);
    twin tp = twin_new(e, end);
    alloy_array b = matrix_view(0, dt, 1, bsh, n, k, lay_b, &end);
    twin tb = twin_new(e, end + 8);
    twin ts = twin_new(e, 64); /* f64 scratch: the copies before and after */
    test_rng r = {(uint64_t)(uint32_t)badv * 31u + (uint64_t)(bad_entry * 7 + bad_pos + 1)};
    alloy_array lh = on_buffer(lu, tl.h), ph = on_buffer(pv, tp.h), bh = on_buffer(b, tb.h);
    double m[25], rhs[10];
    for (int q = 0; q < 3; q++) {
        for (int i = 0; i < 25; i++)
            m[i] = rng_uniform(&r) + (i % 6 == 0 ? 4 : 0);
        for (int i = 0; i < 10; i++)
            rhs[i] = rng_uniform(&r);
        mat_put(&lh, q, m);
        mat_put(&bh, q, rhs);
        int32_t piv[5] = {2, 2, 5, 4, 5};
        if (q == bad_entry)
            piv[bad_pos] = badv;
        ivec_put(&ph, q, piv, n);
    }
    double *sp = alloy_buffer_contents(ts.h);
    sp[0] = 1.5, sp[1] = -2.5;
    twin_upload(&tl);
    twin_upload(&tp);
    twin_upload(&tb);
    twin_upload(&ts);
    int64_t two = 2;
    alloy_array s0 = alloy_array_contiguous(ts.g, 0, ALLOY_F64, 1, &two);
    alloy_array s1 = alloy_array_contiguous(ts.g, 16, ALLOY_F64, 1, &two);
    alloy_array s2 = alloy_array_contiguous(ts.g, 32, ALLOY_F64, 1, &two);
    alloy_array lg = on_buffer(lu, tl.g), pg = on_buffer(pv, tp.g), bg = on_buffer(b, tb.g);
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    d.transpose = trans;
    alloy_cmdbuf *cb = test_cmdbuf(e->qg);
    ASSERT_OK(alloy_encode_copy(cb, &s0, &s1));
    /* the values are not checked at encode time */
    check_encode(alloy_encode_lu_solve(cb, &d, &lg, &pg, &bg), what, "gpu");
    ASSERT_OK(alloy_encode_copy(cb, &s1, &s2));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    alloy_status st = alloy_cmdbuf_wait(cb);
    if (st != ALLOY_ERR_INVALID_ARGUMENT)
        FAIL_AT("%s: wait said %s, expected invalid argument (%s)", what, alloy_status_string(st),
                alloy_cmdbuf_error(cb));
    const char *msg = alloy_cmdbuf_error(cb);
    if (!mentions(msg, "lu_solve") || !mentions(msg, "op") || !mentions(msg, "1"))
        FAIL_AT("%s: alloy_cmdbuf_error is \"%s\"; it should name op 1 (lu_solve)", what, msg);
    ASSERT_STATUS(alloy_cmdbuf_wait(cb), ALLOY_ERR_INVALID_ARGUMENT); /* again: the same */
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    twin_check_unchanged(&tb, what, "b");
    twin_check_unchanged(&tl, what, "lu");
    twin_check_unchanged(&tp, what, "pivots");
    twin_download(&ts);
    const double *sb = alloy_buffer_contents(ts.back);
    if (!(sb[2] == 1.5 && sb[3] == -2.5))
        FAIL_AT("%s: the copy before the failing solve did not run", what);
    /* alloy.h: "the operations after it were skipped". Checked last, after the queue and
     * the device are shown to work, so a failure here says only this. */
    const int after_ran = !(isnan(sb[4]) && isnan(sb[5]));
    unsigned char nan16[16];
    memset(nan16, 0xff, sizeof nan16);
    ASSERT_OK(alloy_buffer_write(ts.g, 32, nan16, sizeof nan16)); /* for the next check */
    /* the queue goes on: valid pivots in a later command buffer, then a copy */
    int32_t good[5] = {2, 2, 5, 4, 5};
    ivec_put(&ph, bad_entry, good, n);
    twin_upload(&tp);
    cb = test_cmdbuf(e->qg);
    check_encode(alloy_encode_lu_solve(cb, &d, &lg, &pg, &bg), what, "gpu (valid pivots)");
    ASSERT_OK(alloy_encode_copy(cb, &s1, &s2));
    finish(cb, what, "gpu (valid pivots)");
    ASSERT_OK(alloy_queue_wait_idle(e->qg));
    twin_download(&ts);
    twin_download(&tb);
    if (!(sb[4] == 1.5 && sb[5] == -2.5))
        FAIL_AT("%s: the queue did not run the next command buffer's copy", what);
    /* and the solve really solved: every entry's residual */
    alloy_array bk = on_buffer(b, tb.back);
    for (int q = 0; q < 3; q++) {
        double lum[25], a[25], x[10], b0[10];
        int32_t piv[5];
        mat_get(&lh, q, lum);
        ivec_get(&ph, q, piv, n);
        unfactor(n, lum, piv, a);
        mat_get(&bh, q, b0);
        mat_get(&bk, q, x);
        double res = ref_solve_residual(n, k, a, trans, x, b0, dtype_eps(dt));
        if (!(res <= RESID_BOUND))
            FAIL_AT("%s: after the failure, a valid solve's entry %d has residual %g", what, q,
                    res);
    }
    if (after_ran)
        FAIL_AT("%s: the copy encoded after the failing lu_solve ran (alloy.h: the operations "
                "after the failing one are skipped)",
                what);
    twin_free(&tl);
    twin_free(&tp);
    twin_free(&tb);
    twin_free(&ts);
}

TEST(lu_solve_bad_pivots)
{
    env e = env_open();
    static const int32_t bads[] = {0, 6, -1, -5, INT32_MIN, INT32_MAX, 1000};
    int i = 0, ran = 0;
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 7; v++)
            for (int q = 0; q < 3; q++, i++) {
                if (e.small && q != 1)
                    continue;
                bad_pivots_case(&e, dts[di], bads[v], q, i % 5, i % LAY_ALL, i % 2);
                ran++;
            }
    fprintf(stderr, "  lu_solve bad pivots: %d cases failed cleanly, b unchanged\n", ran);
    env_close(&e);
}

/* ---------------------------------------------------------------- triangular_solve */

typedef struct tcase {
    alloy_dtype dt;
    alloy_side side;
    alloy_uplo uplo;
    int trans, unit;
    double alpha;
    int abr, bbr;
    int64_t ash[3], bsh[3];
    int64_t m, n;
    int lay_a, lay_b;
} tcase;

static tcase tcase_make(alloy_dtype dt, int variant, double alpha, int64_t m, int64_t n, int lay_a,
                        int lay_b)
{
    tcase c;
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
    return c;
}

/* A well-conditioned triangle: |diagonal| in [1, 2) with random signs, off-diagonal
 * entries in [-1, 1)/k. `full`: the dense matrix (zeros outside the triangle, 1 on a unit
 * diagonal); `poisoned`: the same with NaN wherever alloy must not read. */
static void gen_triangle(test_rng *r, const tcase *c, int64_t k, double *full, double *poisoned)
{
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
            int in = c->uplo == ALLOY_UPPER ? j > i : j < i;
            double v;
            if (i == j) {
                double d = 1 + fabs(rng_uniform(r));
                v = rng_uniform(r) < 0 ? -d : d;
            } else {
                v = in ? rng_uniform(r) / (double)k : 0;
            }
            if (c->dt == ALLOY_F32)
                v = (double)(float)v;
            full[i * k + j] = i == j && c->unit ? 1 : v;
            poisoned[i * k + j] = (in || (i == j && !c->unit)) ? v : NAN;
        }
}

/* Checks one solution vector: T x = alpha b with T (k x k, row-major, triangular: lower or
 * upper) the left-side form of the problem. Returns the forward error (over |y|_max k eps,
 * y the float64 solution) and sets *res to the scaled residual. */
static double check_vector(int64_t k, const double *T, int lower, double tnorm, double alpha,
                           const double *x, const double *b, double eps, double *res, double *y)
{
    for (int64_t i = 0; i < k; i++)
        y[i] = alpha * b[i];
    if (lower) {
        for (int64_t i = 0; i < k; i++) {
            double s = y[i];
            for (int64_t j = 0; j < i; j++)
                s -= T[i * k + j] * y[j];
            y[i] = s / T[i * k + i];
        }
    } else {
        for (int64_t i = k - 1; i >= 0; i--) {
            double s = y[i];
            for (int64_t j = i + 1; j < k; j++)
                s -= T[i * k + j] * y[j];
            y[i] = s / T[i * k + i];
        }
    }
    double err = 0, ymax = 0, rn = 0, xn = 0;
    for (int64_t i = 0; i < k; i++) {
        if (!(fabs(x[i] - y[i]) <= err))
            err = fabs(x[i] - y[i]);
        if (fabs(y[i]) > ymax)
            ymax = fabs(y[i]);
        double s = -alpha * b[i];
        for (int64_t j = 0; j < k; j++)
            s += T[i * k + j] * x[j];
        rn += fabs(s);
        xn += fabs(x[i]);
    }
    *res = rn == 0 ? 0 : rn / ((tnorm > 0 ? tnorm : 1) * (xn > 0 ? xn : 1) * (double)k * eps);
    if (ymax == 0)
        return err == 0 ? 0 : INFINITY;
    return err / (ymax * (double)k * eps);
}

static void run_trsm(env *e, test_rng *r, const tcase *c, tally *t)
{
    char what[360], ab[48], bb[48];
    t->cases++;
    batch_text(ab, sizeof ab, c->abr, c->ash);
    batch_text(bb, sizeof bb, c->bbr, c->bsh);
    const int64_t m = c->m, n = c->n, k = c->side == ALLOY_LEFT ? m : n;
    snprintf(what, sizeof what,
             "triangular_solve case %d: %s %s %s%s%s alpha %g, a %s%lldx%lld %s, b %s%lldx%lld "
             "%s",
             t->cases, dtype_name(c->dt), c->side == ALLOY_LEFT ? "left" : "right",
             c->uplo == ALLOY_UPPER ? "upper" : "lower", c->trans ? " trans" : "",
             c->unit ? " unit" : "", c->alpha, ab, (long long)k, (long long)k,
             layout_name(c->lay_a), bb, (long long)m, (long long)n, layout_name(c->lay_b));
    const size_t es = alloy_dtype_size(c->dt);
    size_t end;
    alloy_array a =
        matrix_view((size_t)rng_range(r, 0, 3) * es, c->dt, c->abr, c->ash, k, k, c->lay_a, &end);
    twin ta = twin_new(e, end + 32);
    alloy_array b =
        matrix_view((size_t)rng_range(r, 0, 3) * es, c->dt, c->bbr, c->bsh, m, n, c->lay_b, &end);
    twin tb = twin_new(e, end + 32);
    const int64_t ae = batch_entries(&a, 2), be = batch_entries(&b, 2);
    double *full = host_alloc(ae * k * k), *poisoned = host_alloc(k * k);
    alloy_array ah = on_buffer(a, ta.h), bh = on_buffer(b, tb.h);
    for (int64_t q = 0; q < ae; q++) {
        gen_triangle(r, c, k, full + q * k * k, poisoned);
        if (c->alpha != 0)
            mat_put(&ah, q, poisoned); /* with alpha 0, all of A stays NaN (the poison) */
    }
    double *B = host_alloc(be * m * n);
    for (int64_t q = 0; q < be; q++) {
        host_random(r, c->dt, B + q * m * n, m * n);
        if (c->alpha != 0)
            mat_put(&bh, q, B + q * m * n); /* with alpha 0, B stays NaN too */
    }
    twin_upload(&ta);
    twin_upload(&tb);
    alloy_triangular_desc d = alloy_triangular_desc_default();
    ASSERT(d.alpha == 1.0 && d.side == ALLOY_LEFT && d.uplo == ALLOY_UPPER && !d.transpose &&
           !d.unit_diagonal);
    d.side = c->side;
    d.uplo = c->uplo;
    d.transpose = c->trans;
    d.unit_diagonal = c->unit;
    d.alpha = c->alpha;
    alloy_array ag = on_buffer(a, ta.g), bg = on_buffer(b, tb.g);
    alloy_cmdbuf *cb = test_cmdbuf(e->qg);
    check_encode(alloy_encode_triangular_solve(cb, &d, &ag, &bg), what, "gpu");
    finish(cb, what, "gpu");
    twin_check_unchanged(&ta, what, "a");
    twin_download(&tb);
    alloy_array bk = on_buffer(b, tb.back);
    const alloy_array *bv[1] = {&bk};
    check_outside(tb.back, tb.init, bv, 1, what);

    /* Every solution vector (columns of B when left, rows when right) solves T v = alpha
     * b_v with T = op(A) (left) or op(A)^T (right), lower or upper as below. */
    const double eps = dtype_eps(c->dt);
    const int lower = (c->uplo == ALLOY_LOWER) ^ (c->trans != 0) ^ (c->side == ALLOY_RIGHT);
    const int64_t nv = c->side == ALLOY_LEFT ? n : m;
    /* Large problems: a sample of the vectors (the reference is k^2 per vector). */
    const int sample = (double)nv * (double)k * (double)k > 3e7;
    double *X = host_alloc(m * n), *T = host_alloc(k * k);
    double *xv = host_alloc(k), *bvv = host_alloc(k), *y = host_alloc(k);
    int64_t fb[ALLOY_MAX_RANK];
    for (int d2 = 0; d2 < c->bbr; d2++)
        fb[d2] = c->bsh[d2];
    int64_t cached = -1;
    double tnorm = 0;
    for (int64_t q = 0; q < be; q++) {
        mat_get(&bk, q, X);
        t->mats++;
        if (c->alpha == 0) {
            for (int64_t i = 0; i < m * n; i++)
                if (X[i] != 0)
                    FAIL_AT("%s, entry %lld: alpha 0 gave X[%lld] = %g, not 0", what, (long long)q,
                            (long long)i, X[i]);
            continue;
        }
        if (!all_finite(X, m * n))
            FAIL_AT("%s, entry %lld: X holds NaN or infinity", what, (long long)q);
        int64_t qa = bcast_entry(c->bbr, fb, c->abr, c->ash, q);
        if (qa != cached) {
            const double *F = full + qa * k * k;
            for (int64_t i = 0; i < k; i++)
                for (int64_t j = 0; j < k; j++) {
                    /* op(A)(i, j), then transposed once more for the right side */
                    int64_t ii = i, jj = j;
                    if (c->side == ALLOY_RIGHT) {
                        ii = j;
                        jj = i;
                    }
                    T[i * k + j] = c->trans ? F[jj * k + ii] : F[ii * k + jj];
                }
            tnorm = ref_norm1(k, k, T);
            cached = qa;
        }
        int64_t count = sample ? 24 : nv;
        for (int64_t s = 0; s < count; s++) {
            int64_t v = !sample  ? s
                        : s == 0 ? 0
                        : s == 1 ? nv - 1
                                 : (int64_t)(rng_next(r) % (uint64_t)nv);
            const double *Bq = B + q * m * n;
            for (int64_t i = 0; i < k; i++) {
                xv[i] = c->side == ALLOY_LEFT ? X[i * n + v] : X[v * n + i];
                bvv[i] = c->side == ALLOY_LEFT ? Bq[i * n + v] : Bq[v * n + i];
            }
            double res;
            double fwd = check_vector(k, T, lower, tnorm, c->alpha, xv, bvv, eps, &res, y);
            if (!(fwd <= FWD_BOUND) || !(res <= RESID_BOUND))
                FAIL_AT("%s, entry %lld, vector %lld: forward error %g k eps (bound %g), "
                        "scaled residual %g (bound %g)",
                        what, (long long)q, (long long)v, fwd, FWD_BOUND, res, RESID_BOUND);
            if (fwd > t->worst2)
                t->worst2 = fwd;
            if (res > t->worst)
                t->worst = res;
        }
    }
    free(X);
    free(T);
    free(xv);
    free(bvv);
    free(y);
    free(full);
    free(poisoned);
    free(B);
    twin_free(&ta);
    twin_free(&tb);
}

static void trsm_report(const char *name, const tally *t)
{
    fprintf(stderr,
            "  %s: %d cases, %lld right-hand-side matrices, max scaled residual %.3g (bound %g), "
            "max forward error %.3g k eps (bound %g)\n",
            name, t->cases, (long long)t->mats, t->worst, RESID_BOUND, t->worst2, FWD_BOUND);
}

/* All 16 variants on every (m, n) with m, n in {0, 1, 5, 64, 65, 130, 257}, f32 and f64;
 * alpha cycles through 1, -2.5 and 0 over the shapes so that each variant meets each
 * alpha on many shapes; layouts cycle. */
TEST(trsm_variants)
{
    env e = env_open();
    test_rng r = {test_seed(0x7245)};
    tally t;
    memset(&t, 0, sizeof t);
    static const int64_t dims[] = {0, 1, 5, 64, 65, 130, 257};
    static const double alphas[3] = {1.0, -2.5, 0.0};
    const int nd = e.small ? 5 : 7;
    int i = 0;
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 16; v++)
            for (int mi = 0; mi < nd; mi++)
                for (int ni = 0; ni < nd; ni++, i++) {
                    tcase c = tcase_make(dts[di], v, alphas[(i + v) % 3], dims[mi], dims[ni],
                                         i % LAY_ALL, (i / LAY_ALL + v) % LAY_ALL);
                    run_trsm(&e, &r, &c, &t);
                }
    trsm_report("triangular_solve variants", &t);
    env_close(&e);
}

/* 1000 x 700 in all 16 variants (f32 and f64 alternating), and batches with a broadcast
 * a: missing dims, extents of 1, many small systems. */
TEST(trsm_large_and_batched)
{
    env e = env_open();
    test_rng r = {test_seed(0x7246)};
    tally t;
    memset(&t, 0, sizeof t);
    const int64_t M = e.small ? 200 : 1000, N = e.small ? 150 : 700;
    for (int v = 0; v < 16; v++) {
        tcase c = tcase_make(dts[v % 2], v, v % 3 == 1 ? -2.5 : 1.0, M, N, v % LAY_ALL,
                             (v / 2) % LAY_ALL);
        run_trsm(&e, &r, &c, &t);
    }
    for (int di = 0; di < 2; di++)
        for (int v = 0; v < 16; v += 3) {
            tcase c =
                tcase_make(dts[di], v, v % 2 ? -2.5 : 1.0, 33, 17, v % LAY_ALL, (v + 1) % LAY_ALL);
            c.bbr = 1; /* a (K,K), b (4,M,N) */
            c.bsh[0] = 4;
            run_trsm(&e, &r, &c, &t);
            c.abr = 1; /* a (1,K,K), b (3,M,N) */
            c.ash[0] = 1;
            c.bsh[0] = 3;
            c.lay_b = LAY_INTERLEAVED;
            run_trsm(&e, &r, &c, &t);
            c.abr = 2; /* a (3,1,K,K), b (3,2,M,N) */
            c.ash[0] = 3;
            c.ash[1] = 1;
            c.bbr = 2;
            c.bsh[0] = 3;
            c.bsh[1] = 2;
            c.lay_b = LAY_SWAPPED;
            run_trsm(&e, &r, &c, &t);
            c.abr = 1; /* a (2,K,K) against b (3,2,M,N) */
            c.ash[0] = 2;
            run_trsm(&e, &r, &c, &t);
            c.m = 70; /* a (K,K) against a 2-d batch with M = 70, N = 1 */
            c.n = 1;
            c.abr = 0;
            run_trsm(&e, &r, &c, &t);
            c.alpha = 0; /* alpha 0 on a batch */
            run_trsm(&e, &r, &c, &t);
        }
    for (int di = 0; di < 2; di++) { /* many small systems, one a each */
        tcase c = tcase_make(dts[di], di ? 5 : 10, 1.0, 32, 8, LAY_ROW, LAY_COL);
        c.abr = c.bbr = 1;
        c.ash[0] = c.bsh[0] = e.small ? 30 : 500;
        run_trsm(&e, &r, &c, &t);
        c.bsh[0] = 0; /* and none */
        c.ash[0] = 1;
        run_trsm(&e, &r, &c, &t);
    }
    trsm_report("triangular_solve large and batched", &t);
    env_close(&e);
}

/* ---------------------------------------------------------------- concurrency
 * One problem set per thread, in one command buffer: copy pristine inputs into work
 * buffers, lu_factor a batch, lu_solve with those factors, triangular_solve with a variant
 * of the thread's own. Each thread's outputs are first computed alone (twice: the same
 * bits); then all threads run their sets at once on one device, each with its own queue,
 * many times, and every output must be bitwise the one computed alone. */

enum { C_A, C_PIV, C_INFO, C_B, C_C, C_OUTS };

typedef struct cjob {
    alloy_dtype dt;
    int64_t nb, n, k, tk, tw;
    int variant, trans;
    alloy_buffer *a_src, *b_src, *t_src, *c_src;
    alloy_buffer *out[C_OUTS];
    size_t bytes[C_OUTS];
    unsigned char *want[C_OUTS];
    unsigned char *poison; /* 0xff, the size of the largest output */
} cjob;

static alloy_buffer *upload_values(alloy_device *dev, alloy_dtype dt, const double *v, int64_t n)
{
    size_t es = alloy_dtype_size(dt);
    unsigned char *h = test_malloc((size_t)n * es);
    for (int64_t i = 0; i < n; i++)
        ref_store(NULL, dt, h + (size_t)i * es, v[i]);
    alloy_buffer *b = NULL;
    ASSERT_OK(alloy_buffer_create(dev, (size_t)(n > 0 ? n : 1) * es, ALLOY_MEMORY_DEVICE, &b));
    ASSERT_OK(alloy_buffer_write(b, 0, h, (size_t)n * es));
    free(h);
    return b;
}

static void cjob_make(alloy_device *dev, cjob *j, int id, int small)
{
    memset(j, 0, sizeof *j);
    test_rng r = {0xc0ffee00u + (uint64_t)id};
    j->dt = id % 2 ? ALLOY_F64 : ALLOY_F32;
    j->nb = id % 4 == 3 ? 1 : 6;
    j->n = id % 4 == 3 ? (small ? 100 : 257) : (small ? 24 : 48 + 16 * (id % 3));
    j->k = 5;
    j->tk = small ? 40 : 80 + id;
    j->tw = 33;
    j->variant = id % 16;
    j->trans = (id / 2) % 2;
    const int64_t na = j->nb * j->n * j->n, nbv = j->nb * j->n * j->k, nt = j->tk * j->tk;
    const int64_t nc = j->tk * j->tw;
    double *v = host_alloc(na > nt ? na : nt);
    host_random(&r, j->dt, v, na);
    j->a_src = upload_values(dev, j->dt, v, na);
    host_random(&r, j->dt, v, nbv);
    j->b_src = upload_values(dev, j->dt, v, nbv);
    tcase tc = tcase_make(j->dt, j->variant, 1.0, j->tk, j->tk, LAY_ROW, LAY_ROW);
    double *full = host_alloc(nt);
    gen_triangle(&r, &tc, j->tk, full, v);
    j->t_src = upload_values(dev, j->dt, v, nt);
    free(full);
    host_random(&r, j->dt, v, nc);
    j->c_src = upload_values(dev, j->dt, v, nc);
    free(v);
    const size_t es = alloy_dtype_size(j->dt);
    j->bytes[C_A] = (size_t)na * es;
    j->bytes[C_PIV] = (size_t)(j->nb * j->n) * 4;
    j->bytes[C_INFO] = (size_t)j->nb * 4;
    j->bytes[C_B] = (size_t)nbv * es;
    j->bytes[C_C] = (size_t)nc * es;
    size_t most = 0;
    for (int i = 0; i < C_OUTS; i++) {
        ASSERT_OK(alloy_buffer_create(dev, j->bytes[i], ALLOY_MEMORY_DEVICE, &j->out[i]));
        if (j->bytes[i] > most)
            most = j->bytes[i];
    }
    j->poison = test_malloc(most);
    memset(j->poison, 0xff, most);
}

static void cjob_encode(alloy_cmdbuf *cb, const cjob *j)
{
    int64_t sa[3] = {j->nb, j->n, j->n}, sp[2] = {j->nb, j->n}, sb[3] = {j->nb, j->n, j->k};
    int64_t st[2] = {j->tk, j->tk}, sc[2] = {j->tk, j->tw};
    alloy_array as = alloy_array_contiguous(j->a_src, 0, j->dt, 3, sa);
    alloy_array a = alloy_array_contiguous(j->out[C_A], 0, j->dt, 3, sa);
    alloy_array p = alloy_array_contiguous(j->out[C_PIV], 0, ALLOY_I32, 2, sp);
    alloy_array in = alloy_array_contiguous(j->out[C_INFO], 0, ALLOY_I32, 1, sa);
    alloy_array bs = alloy_array_contiguous(j->b_src, 0, j->dt, 3, sb);
    alloy_array b = alloy_array_contiguous(j->out[C_B], 0, j->dt, 3, sb);
    alloy_array tt = alloy_array_contiguous(j->t_src, 0, j->dt, 2, st);
    alloy_array cs = alloy_array_contiguous(j->c_src, 0, j->dt, 2, sc);
    alloy_array c = alloy_array_contiguous(j->out[C_C], 0, j->dt, 2, sc);
    ASSERT_OK(alloy_encode_copy(cb, &as, &a));
    ASSERT_OK(alloy_encode_lu_factor(cb, &a, &p, &in));
    ASSERT_OK(alloy_encode_copy(cb, &bs, &b));
    alloy_lu_solve_desc ld = alloy_lu_solve_desc_default();
    ld.transpose = j->trans;
    ASSERT_OK(alloy_encode_lu_solve(cb, &ld, &a, &p, &b));
    ASSERT_OK(alloy_encode_copy(cb, &cs, &c));
    tcase tc = tcase_make(j->dt, j->variant, -2.5, j->tk, j->tw, LAY_ROW, LAY_ROW);
    alloy_triangular_desc td = alloy_triangular_desc_default();
    td.side = ALLOY_LEFT; /* the left side: a is tk x tk against c tk x tw */
    td.uplo = tc.uplo;
    td.transpose = tc.trans;
    td.unit_diagonal = tc.unit;
    td.alpha = tc.alpha;
    ASSERT_OK(alloy_encode_triangular_solve(cb, &td, &tt, &c));
}

/* One round: poison the outputs, run, read back. With record set, keeps the outputs as the
 * reference; else returns the first output that differs from it, or -1. */
static int cjob_round(alloy_queue *q, cjob *j, int record)
{
    for (int i = 0; i < C_OUTS; i++)
        ASSERT_OK(alloy_buffer_write(j->out[i], 0, j->poison, j->bytes[i]));
    alloy_cmdbuf *cb = NULL;
    ASSERT_OK(alloy_cmdbuf_create(q, &cb));
    cjob_encode(cb, j);
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    alloy_status s = alloy_cmdbuf_wait(cb);
    if (s != ALLOY_OK)
        FAIL_AT("concurrency job: %s: %s", alloy_status_string(s), alloy_cmdbuf_error(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    int bad = -1;
    for (int i = 0; i < C_OUTS; i++) {
        unsigned char *h = test_malloc(j->bytes[i]);
        ASSERT_OK(alloy_buffer_read(j->out[i], 0, h, j->bytes[i]));
        if (record) {
            j->want[i] = h;
            continue;
        }
        if (bad < 0 && memcmp(h, j->want[i], j->bytes[i]) != 0)
            bad = i;
        free(h);
    }
    return bad;
}

static void cjob_free(cjob *j)
{
    ASSERT_OK(alloy_buffer_destroy(j->a_src));
    ASSERT_OK(alloy_buffer_destroy(j->b_src));
    ASSERT_OK(alloy_buffer_destroy(j->t_src));
    ASSERT_OK(alloy_buffer_destroy(j->c_src));
    for (int i = 0; i < C_OUTS; i++) {
        ASSERT_OK(alloy_buffer_destroy(j->out[i]));
        free(j->want[i]);
    }
    free(j->poison);
}

typedef struct cworker {
    alloy_device *dev;
    cjob *job;
    int rounds, bad, bad_round;
    pthread_barrier_t *start;
} cworker;

static void *cworker_main(void *arg)
{
    cworker *w = arg;
    alloy_queue *q = NULL;
    ASSERT_OK(alloy_queue_create(w->dev, &q)); /* its own queue */
    pthread_barrier_wait(w->start);
    w->bad = -1;
    for (int r = 0; r < w->rounds && w->bad < 0; r++) {
        w->bad = cjob_round(q, w->job, 0);
        w->bad_round = r;
    }
    ASSERT_OK(alloy_queue_destroy(q));
    return NULL;
}

TEST(sixteen_threads_bitwise_equal_to_alone)
{
    env e = env_open();
    enum { TMAX = 16 };
    const int T = e.small ? 4 : TMAX, rounds = e.small ? 2 : 10;
    cjob *jobs = calloc(TMAX, sizeof *jobs);
    ASSERT(jobs != NULL);
    for (int i = 0; i < T; i++) {
        cjob_make(e.gpu, &jobs[i], i, e.small);
        ASSERT_EQ(cjob_round(e.qg, &jobs[i], 1), -1); /* alone */
        ASSERT_EQ(cjob_round(e.qg, &jobs[i], 0), -1); /* alone again: the same bits */
        for (int64_t q = 0; q < jobs[i].nb; q++) {    /* random matrices: nonsingular */
            int32_t inf;
            memcpy(&inf, jobs[i].want[C_INFO] + q * 4, 4);
            ASSERT_EQ(inf, 0);
        }
    }
    pthread_t th[TMAX];
    cworker w[TMAX];
    pthread_barrier_t start;
    ASSERT_EQ(pthread_barrier_init(&start, NULL, (unsigned)T), 0);
    for (int i = 0; i < T; i++) {
        w[i].dev = e.gpu;
        w[i].job = &jobs[i];
        w[i].rounds = rounds;
        w[i].bad = -1;
        w[i].bad_round = -1;
        w[i].start = &start;
        ASSERT_EQ(pthread_create(&th[i], NULL, cworker_main, &w[i]), 0);
    }
    static const char *const names[C_OUTS] = {"lu", "pivots", "info", "lu_solve's b",
                                              "triangular_solve's b"};
    for (int i = 0; i < T; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        if (w[i].bad >= 0)
            FAIL_AT("thread %d (%s, n %lld): %s differs from the run alone in round %d", i,
                    dtype_name(jobs[i].dt), (long long)jobs[i].n, names[w[i].bad], w[i].bad_round);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < T; i++)
        cjob_free(&jobs[i]);
    free(jobs);
    fprintf(stderr,
            "  concurrency: %d threads x %d rounds of lu_factor + lu_solve + "
            "triangular_solve, all bitwise equal to the runs alone\n",
            T, rounds);
    env_close(&e);
}

/* ---------------------------------------------------------------- misuse
 * The same bad arrays encoded on the CPU and on the GPU must get the same status: the
 * checks belong to the API, not to a backend. Each device gets a pool of poisoned buffers
 * laid out alike, and a foreign buffer from the other device. After the rejected encodes
 * the command buffer still commits and runs, and the pool is unchanged (nothing was
 * recorded). Then valid edge cases (empty shapes, broadcasts) must encode on both. */

enum { MAX_MISUSE = 80 };

typedef struct mpool {
    alloy_device *dev;
    alloy_queue *q;
    alloy_buffer *m, *v, *w, *foreign;
} mpool;

typedef struct mresult {
    int count;
    alloy_status st[MAX_MISUSE];
    char msg[MAX_MISUSE][200];
    const char *expr[MAX_MISUSE];
} mresult;

static alloy_buffer *poisoned_on(alloy_device *dev, size_t bytes)
{
    alloy_buffer *b = NULL;
    ASSERT_OK(alloy_buffer_create(dev, bytes, ALLOY_MEMORY_DEVICE, &b));
    unsigned char *p = test_malloc(bytes);
    memset(p, 0xff, bytes);
    ASSERT_OK(alloy_buffer_write(b, 0, p, bytes));
    free(p);
    return b;
}

static mpool mpool_new(alloy_device *dev, alloy_device *other)
{
    mpool p;
    p.dev = dev;
    p.q = test_queue(dev);
    p.m = poisoned_on(dev, 1 << 14);
    p.v = poisoned_on(dev, 1 << 12);
    p.w = poisoned_on(dev, 1 << 12);
    p.foreign = poisoned_on(other, 1 << 12);
    return p;
}

static void mpool_check_free(mpool *p, const char *who)
{
    alloy_buffer *all[3] = {p->m, p->v, p->w};
    for (int i = 0; i < 3; i++) {
        size_t n = alloy_buffer_size(all[i]);
        unsigned char *h = test_malloc(n);
        ASSERT_OK(alloy_buffer_read(all[i], 0, h, n));
        for (size_t k = 0; k < n; k++)
            if (h[k] != 0xff)
                FAIL_AT("%s: a rejected encode changed byte %zu of pool buffer %d", who, k, i);
        free(h);
        ASSERT_OK(alloy_buffer_destroy(all[i]));
    }
    ASSERT_OK(alloy_buffer_destroy(p->foreign));
    ASSERT_OK(alloy_queue_destroy(p->q));
}

static alloy_array arr(alloy_buffer *b, size_t off, alloy_dtype t, int rank, int64_t d0, int64_t d1,
                       int64_t d2)
{
    int64_t sh[3] = {d0, d1, d2};
    return alloy_array_contiguous(b, off, t, rank, sh);
}

#define RECORD(call)                                                                               \
    do {                                                                                           \
        ASSERT(res->count < MAX_MISUSE);                                                           \
        alloy_status s_ = (call);                                                                  \
        res->st[res->count] = s_;                                                                  \
        res->expr[res->count] = #call;                                                             \
        snprintf(res->msg[res->count], sizeof res->msg[0], "%s",                                   \
                 s_ == ALLOY_OK ? "" : alloy_last_error());                                        \
        res->count++;                                                                              \
    } while (0)

/* Every rejected encode of the list, into one command buffer of p's queue. */
static void misuse_bad(mpool *p, alloy_cmdbuf *cb, mresult *res)
{
    const alloy_dtype F32 = ALLOY_F32, F64 = ALLOY_F64, I32 = ALLOY_I32;
    /* lu_factor */
    alloy_array a = arr(p->m, 0, F32, 2, 4, 4, 0), a3 = arr(p->m, 0, F64, 3, 3, 4, 4);
    alloy_array pv = arr(p->v, 0, I32, 1, 4, 0, 0), pv3 = arr(p->v, 0, I32, 2, 3, 4, 0);
    alloy_array in = arr(p->w, 0, I32, 0, 0, 0, 0), in3 = arr(p->w, 0, I32, 1, 3, 0, 0);
    alloy_array bad;
    bad = arr(p->m, 0, ALLOY_F16, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* f16 */
    bad = arr(p->m, 0, ALLOY_BF16, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* bf16 */
    bad = arr(p->m, 0, I32, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* i32 a */
    bad = arr(p->v, 0, F32, 1, 4, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a, &bad, &in)); /* f32 pivots */
    bad = arr(p->w, 0, F32, 0, 0, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a, &pv, &bad)); /* f32 info */
    bad = arr(p->v, 0, I32, 1, 5, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a, &bad, &in)); /* pivots too long */
    alloy_array wide = arr(p->m, 0, F32, 2, 3, 7, 0);
    bad = arr(p->v, 0, I32, 1, 7, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &wide, &bad, &in)); /* min(m, n) is 3 */
    bad = arr(p->v, 0, I32, 2, 2, 4, 0);
    RECORD(alloy_encode_lu_factor(cb, &a3, &bad, &in3)); /* pivots' batch */
    bad = arr(p->w, 0, I32, 1, 1, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a3, &pv3, &bad)); /* info broadcast */
    RECORD(alloy_encode_lu_factor(cb, &a, &pv3, &in));   /* pivots' rank */
    bad = arr(p->m, 16, I32, 1, 4, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a, &bad, &in)); /* pivots inside a */
    bad = arr(p->v, 8, I32, 0, 0, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a, &pv, &bad)); /* info inside pivots */
    int64_t sh[2] = {4, 4}, zs[2] = {0, 1};
    bad = alloy_array_strided(p->m, 0, F32, 2, sh, zs);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* broadcast output */
    bad = arr(p->m, 2, F32, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* misaligned */
    bad = arr(p->m, (1 << 14) - 32, F32, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* out of bounds */
    bad = arr(p->foreign, 0, F32, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* another device's buffer */
    bad = arr(p->m, 0, F32, 1, 16, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* rank 1 */
    bad = alloy_array_swap_dims(a, 0, 5);
    RECORD(alloy_encode_lu_factor(cb, &bad, &pv, &in)); /* rank -1 */
    RECORD(alloy_encode_lu_factor(cb, NULL, &pv, &in));
    RECORD(alloy_encode_lu_factor(cb, &a, &pv, NULL));

    /* lu_solve */
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    alloy_array lu = arr(p->m, 0, F64, 2, 4, 4, 0), b = arr(p->w, 0, F64, 2, 4, 3, 0);
    alloy_array lu3 = arr(p->m, 0, F64, 3, 3, 4, 4), b3 = arr(p->w, 0, F64, 3, 3, 4, 2);
    RECORD(alloy_encode_lu_solve(cb, NULL, &lu, &pv, &b));
    bad = arr(p->m, 0, ALLOY_F16, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b)); /* f16 lu */
    alloy_array bad2 = arr(p->w, 0, ALLOY_F16, 2, 4, 3, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &bad, &pv, &bad2)); /* f16 lu and b */
    bad = arr(p->w, 0, ALLOY_BF16, 2, 4, 3, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad)); /* bf16 b */
    bad = arr(p->w, 0, F32, 2, 4, 3, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad)); /* f64 lu, f32 b */
    bad = arr(p->m, 0, F32, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b)); /* f32 lu, f64 b */
    bad = arr(p->v, 0, F32, 1, 4, 0, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &bad, &b)); /* f32 pivots */
    bad = arr(p->v, 0, I32, 0, 0, 0, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &bad, &b)); /* rank-0 pivots */
    bad = arr(p->m, 0, F64, 2, 4, 5, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b)); /* lu not square */
    bad = arr(p->v, 0, I32, 1, 3, 0, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &bad, &b)); /* pivots too short */
    bad = arr(p->w, 0, F64, 2, 5, 3, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad)); /* b's rows */
    bad = arr(p->m, 0, F64, 3, 2, 4, 4);
    RECORD(alloy_encode_lu_solve(cb, &d, &bad, &pv3, &b3)); /* lu's batch 2 vs 3 */
    bad = arr(p->v, 0, I32, 2, 2, 4, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu3, &bad, &b3)); /* pivots' batch 2 vs 3 */
    RECORD(alloy_encode_lu_solve(cb, &d, &lu3, &pv3, &b));  /* lu batched, b not */
    bad = arr(p->m, 64, F64, 2, 4, 3, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad)); /* b over lu */
    bad = arr(p->v, 0, F64, 2, 4, 3, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad)); /* b over pivots */
    int64_t sb[2] = {4, 3}, zb[2] = {3, 0};
    bad = alloy_array_strided(p->w, 0, F64, 2, sb, zb);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad)); /* b broadcast */
    bad = arr(p->foreign, 0, F64, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b)); /* foreign lu */
    bad = arr(p->m, 4, F64, 2, 4, 4, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b)); /* misaligned lu */

    /* triangular_solve */
    alloy_triangular_desc td = alloy_triangular_desc_default(), te;
    alloy_array ta = arr(p->m, 0, F32, 2, 4, 4, 0), tb = arr(p->w, 0, F32, 2, 4, 3, 0);
    alloy_array tb3 = arr(p->w, 0, F32, 3, 3, 4, 3);
    RECORD(alloy_encode_triangular_solve(cb, NULL, &ta, &tb));
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, NULL));
    te = td;
    te.side = (alloy_side)2;
    RECORD(alloy_encode_triangular_solve(cb, &te, &ta, &tb));
    te = td;
    te.uplo = (alloy_uplo)7;
    RECORD(alloy_encode_triangular_solve(cb, &te, &ta, &tb));
    bad = arr(p->m, 0, ALLOY_F16, 2, 4, 4, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &bad, &tb)); /* f16 a */
    bad2 = arr(p->w, 0, ALLOY_F16, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &bad, &bad2)); /* f16 a and b */
    bad = arr(p->w, 0, ALLOY_BF16, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, &bad)); /* bf16 b */
    bad = arr(p->m, 0, I32, 2, 4, 4, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &bad, &tb)); /* i32 a */
    bad = arr(p->w, 0, F64, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, &bad)); /* f32 a, f64 b */
    bad = arr(p->m, 0, F32, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &bad, &tb)); /* a not square */
    te = td;
    te.side = ALLOY_RIGHT;
    RECORD(alloy_encode_triangular_solve(cb, &te, &ta, &tb)); /* right needs 3 x 3 */
    bad = arr(p->m, 0, F32, 3, 2, 4, 4);
    RECORD(alloy_encode_triangular_solve(cb, &td, &bad, &tb3)); /* a's batch 2 vs 3 */
    bad = arr(p->m, 0, F32, 3, 3, 4, 4);
    RECORD(alloy_encode_triangular_solve(cb, &td, &bad, &tb)); /* a batched, b not */
    bad = arr(p->m, 32, F32, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, &bad)); /* b over a */
    int64_t st[2] = {4, 3}, zt[2] = {0, 1};
    bad = alloy_array_strided(p->w, 0, F32, 2, st, zt);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, &bad)); /* b broadcast */
    bad = arr(p->foreign, 0, F32, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, &bad)); /* foreign b */
    bad = arr(p->w, (1 << 12) - 16, F32, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, &bad)); /* out of bounds */
}

/* Valid edge cases that must encode on both devices (they are not run). */
static void misuse_good(mpool *p, alloy_cmdbuf *cb, mresult *res)
{
    const alloy_dtype F32 = ALLOY_F32, F64 = ALLOY_F64, I32 = ALLOY_I32;
    alloy_array a = arr(p->m, 0, F32, 2, 4, 4, 0), pv = arr(p->v, 0, I32, 1, 4, 0, 0);
    alloy_array in = arr(p->w, 0, I32, 0, 0, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a, &pv, &in));
    alloy_array a3 = arr(p->m, 0, F64, 3, 3, 4, 4), pv3 = arr(p->v, 0, I32, 2, 3, 4, 0);
    alloy_array in3 = arr(p->w, 0, I32, 1, 3, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &a3, &pv3, &in3));
    alloy_array e0 = arr(p->m, 0, F32, 2, 0, 0, 0), p0 = arr(p->v, 0, I32, 1, 0, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &e0, &p0, &in)); /* 0 x 0 */
    alloy_array wide = arr(p->m, 0, F64, 2, 3, 7, 0), pw = arr(p->v, 0, I32, 1, 3, 0, 0);
    RECORD(alloy_encode_lu_factor(cb, &wide, &pw, &in));
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    d.transpose = 1;
    alloy_array lu1 = arr(p->m, 0, F64, 3, 1, 4, 4), b3 = arr(p->w, 64, F64, 3, 3, 4, 2);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu1, &pv, &b3)); /* lu and pivots broadcast */
    alloy_array lu = arr(p->m, 0, F32, 2, 4, 4, 0), bk0 = arr(p->w, 64, F32, 2, 4, 0, 0);
    RECORD(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bk0)); /* no right-hand sides */
    alloy_triangular_desc td = alloy_triangular_desc_default();
    alloy_array ta1 = arr(p->m, 0, F32, 3, 1, 4, 4), tb3 = arr(p->w, 64, F32, 3, 3, 4, 3);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta1, &tb3)); /* a broadcast */
    td.side = ALLOY_RIGHT;
    td.uplo = ALLOY_LOWER;
    td.alpha = 0;
    alloy_array ta = arr(p->m, 0, F64, 2, 3, 3, 0), tb = arr(p->w, 64, F64, 2, 4, 3, 0);
    RECORD(alloy_encode_triangular_solve(cb, &td, &ta, &tb));
}

static void misuse_on(alloy_device *dev, alloy_device *other, mresult *bad, mresult *good,
                      const char *who)
{
    memset(bad, 0, sizeof *bad);
    memset(good, 0, sizeof *good);
    mpool p = mpool_new(dev, other);
    alloy_cmdbuf *cb = test_cmdbuf(p.q);
    misuse_bad(&p, cb, bad);
    /* nothing was recorded: the command buffer commits, runs and changes nothing */
    finish(cb, who, "rejected encodes");
    cb = test_cmdbuf(p.q);
    misuse_good(&p, cb, good);
    ASSERT_OK(alloy_cmdbuf_destroy(cb)); /* uncommitted: releases its references */
    mpool_check_free(&p, who);
}

TEST(misuse_same_status_as_cpu)
{
    env e = env_open();
    mresult *rc = calloc(4, sizeof *rc);
    ASSERT(rc != NULL);
    misuse_on(e.cpu, e.gpu, &rc[0], &rc[1], "cpu");
    misuse_on(e.gpu, e.cpu, &rc[2], &rc[3], "gpu");
    for (int g = 0; g < 2; g++) {
        const mresult *c = &rc[g], *u = &rc[2 + g];
        ASSERT_EQ(c->count, u->count);
        for (int i = 0; i < c->count; i++) {
            if (g == 0 && c->st[i] == ALLOY_OK)
                FAIL_AT("misuse case %d (%s) is accepted on the CPU: not misuse", i, c->expr[i]);
            if (g == 1 && c->st[i] != ALLOY_OK)
                FAIL_AT("valid case %d (%s) is rejected on the CPU: %s", i, c->expr[i], c->msg[i]);
            if (c->st[i] != u->st[i])
                FAIL_AT("%s case %d (%s): the CPU says %s (\"%s\"), the GPU %s (\"%s\")",
                        g ? "valid" : "misuse", i, c->expr[i], alloy_status_string(c->st[i]),
                        c->msg[i], alloy_status_string(u->st[i]), u->msg[i]);
            if (u->st[i] != ALLOY_OK && u->msg[i][0] == 0)
                FAIL_AT("misuse case %d (%s): the GPU gave no alloy_last_error text", i,
                        u->expr[i]);
        }
    }
    fprintf(stderr, "  misuse: %d rejected and %d valid encodes, the same statuses on both\n",
            rc[0].count, rc[1].count);
    free(rc);
    env_close(&e);
}

/* ---------------------------------------------------------------- the oracles themselves
 * The checks above must be able to fail: each helper is shown a right and a wrong answer. */
TEST(oracle_self_check)
{
    env e = env_open();
    /* pivots_compare on made-up CPU factors: column 0's multipliers below the pivot */
    {
        int32_t pc[4] = {1, 2, 3, 4}, pg[4] = {1, 2, 3, 4};
        double luc[16] = {0};
        luc[4] = 0.5, luc[8] = -1.0, luc[12] = 0.25; /* row 2 ties with the pivot */
        int64_t at;
        ASSERT_EQ(pivots_compare(4, 4, pc, pg, luc, 1e-6, &at), 0);
        pg[0] = 3;
        ASSERT_EQ(pivots_compare(4, 4, pc, pg, luc, 1e-6, &at), 1);
        ASSERT_EQ(at, 0);
        pg[0] = 2; /* |0.5|: not a tie */
        ASSERT_EQ(pivots_compare(4, 4, pc, pg, luc, 1e-6, &at), -1);
        pg[0] = 5; /* out of range */
        ASSERT_EQ(pivots_compare(4, 4, pc, pg, luc, 1e-6, &at), -1);
        /* the CPU later swaps rows 1 and 2: the GPU's row 2 ends in row 1 */
        int32_t pc2[4] = {1, 3, 3, 4}, pg2[4] = {3, 2, 3, 4};
        luc[4] = -1.0, luc[8] = 0.5;
        ASSERT_EQ(pivots_compare(4, 4, pc2, pg2, luc, 1e-6, &at), 1);
        luc[4] = 0.5, luc[8] = -1.0;
        ASSERT_EQ(pivots_compare(4, 4, pc2, pg2, luc, 1e-6, &at), -1);
    }
    /* LU residuals, full and sampled, and unfactor, on the CPU backend's factors */
    {
        const int64_t n = 40;
        test_rng r = {77};
        int64_t sh[2] = {n, n}, pn = n;
        alloy_buffer *ab = test_buffer(e.cpu, (size_t)(n * n) * 8);
        alloy_buffer *pb = test_buffer(e.cpu, (size_t)n * 4), *ib = test_buffer(e.cpu, 4);
        alloy_array a = alloy_array_contiguous(ab, 0, ALLOY_F64, 2, sh);
        alloy_array p = alloy_array_contiguous(pb, 0, ALLOY_I32, 1, &pn);
        alloy_array in = alloy_array_contiguous(ib, 0, ALLOY_I32, 0, NULL);
        double *A = host_alloc(n * n), *lu = host_alloc(n * n), *back = host_alloc(n * n);
        host_random(&r, ALLOY_F64, A, n * n);
        mat_put(&a, 0, A);
        alloy_cmdbuf *cb = test_cmdbuf(e.qc);
        ASSERT_OK(alloy_encode_lu_factor(cb, &a, &p, &in));
        finish(cb, "self check", "cpu");
        mat_get(&a, 0, lu);
        const int32_t *piv = alloy_buffer_contents(pb);
        const double eps = DBL_EPSILON;
        ASSERT_LE(ref_lu_residual(n, n, A, lu, piv, eps), RESID_BOUND);
        ASSERT_LE(lu_residual_sampled(n, n, A, lu, piv, eps, &r, 8), RESID_BOUND);
        unfactor(n, lu, piv, back);
        for (int64_t i = 0; i < n * n; i++)
            ASSERT_LE(fabs(back[i] - A[i]), 1e-13);
        lu[(n - 1) * n + n - 1] += 1e-9; /* row and column n-1 are always sampled */
        ASSERT(!(ref_lu_residual(n, n, A, lu, piv, eps) <= RESID_BOUND));
        ASSERT(!(lu_residual_sampled(n, n, A, lu, piv, eps, &r, 8) <= RESID_BOUND));
        lu[(n - 1) * n + n - 1] -= 1e-9;
        int32_t wrong[40];
        memcpy(wrong, piv, sizeof wrong);
        wrong[n / 2] = wrong[n / 2] == n ? (int32_t)(n / 2 + 1) : (int32_t)n;
        ASSERT(!(ref_lu_residual(n, n, A, lu, wrong, eps) <= RESID_BOUND));
        free(A);
        free(lu);
        free(back);
        ASSERT_OK(alloy_buffer_destroy(ab));
        ASSERT_OK(alloy_buffer_destroy(pb));
        ASSERT_OK(alloy_buffer_destroy(ib));
    }
    /* check_vector: an exact solution passes, a slightly wrong one does not */
    {
        const double T[9] = {2, 1, -0.5, 0, -1.5, 0.25, 0, 0, 1.25}, b[3] = {1, -2, 0.5};
        double x[3], y[3], res;
        x[2] = 0.5 * b[2] / T[8];
        x[1] = (0.5 * b[1] - T[5] * x[2]) / T[4];
        x[0] = (0.5 * b[0] - T[1] * x[1] - T[2] * x[2]) / T[0];
        ASSERT_LE(check_vector(3, T, 0, 3.0, 0.5, x, b, FLT_EPSILON, &res, y), 1.0);
        ASSERT_LE(res, 1.0);
        x[1] *= 1 + 1e-4;
        ASSERT(!(check_vector(3, T, 0, 3.0, 0.5, x, b, FLT_EPSILON, &res, y) <= FWD_BOUND));
        ASSERT(!(res <= RESID_BOUND));
    }
    fprintf(stderr, "  oracle self check: pivot ties, LU residuals, unfactor, trsm checks\n");
    env_close(&e);
}

TEST_LIST{
    TEST_ENTRY(oracle_self_check),         TEST_ENTRY(lu_factor_square),
    TEST_ENTRY(lu_factor_rectangular),     TEST_ENTRY(lu_factor_batched),
    TEST_ENTRY(lu_factor_singular),        TEST_ENTRY(lu_solve_sizes),
    TEST_ENTRY(lu_solve_broadcast),        TEST_ENTRY(lu_solve_after_factor),
    TEST_ENTRY(lu_solve_bad_pivots),       TEST_ENTRY(trsm_variants),
    TEST_ENTRY(trsm_large_and_batched),    TEST_ENTRY(sixteen_threads_bitwise_equal_to_alone),
    TEST_ENTRY(misuse_same_status_as_cpu),
};

int main(int argc, char **argv)
{
    alloy_device *gpu = NULL;
    alloy_status s = open_gpu(&gpu);
    if (s == ALLOY_ERR_NO_DEVICE) {
        printf("SKIP: no CUDA device: %s\n", alloy_last_error());
        return 0;
    }
    ASSERT_OK(s);
    fprintf(stderr, "GPU: %s%s\n", alloy_device_name(gpu),
            fake_gpu() ? " (ALLOY_TEST_FAKE_GPU: a CPU device plays the GPU)" : "");
    ASSERT_OK(alloy_device_close(gpu));
    return run_tests(argc, argv);
}
