/* alloy_encode_matmul against OpenBLAS (cblas_sgemm/dgemm) and a float64 reference on
 * random shapes (0, 1, primes, K across the packing depth), transposed, strided and
 * batched-with-broadcast operands, every dtype pairing, bias of each dtype, alpha/beta
 * combinations, the "never read" rules (beta 0 / alpha 0 with NaN), exact small-integer
 * products, bitwise equality of every CPU microkernel with the documented FMA chain, and
 * every class of bad input. */
#include "test_util.h"

#include <cblas.h>

typedef struct mm_ctx {
    ref_conv conv;
    alloy_device *dev;
    alloy_queue *q;
    uint64_t seed;
    int index;
} mm_ctx;

static mm_ctx mm_ctx_new(alloy_device *dev, uint64_t seed)
{
    mm_ctx x;
    x.conv = ref_conv_new();
    x.dev = dev;
    x.q = test_queue(dev);
    x.seed = seed;
    x.index = 0;
    return x;
}

static void mm_ctx_free(mm_ctx *x)
{
    ASSERT_OK(alloy_queue_destroy(x->q));
    ref_conv_free(&x->conv);
}

/* ---------------------------------------------------------------- operands */

enum { L_ROW, L_TRANS, L_PAD, L_COLSTRIDE, L_TRANS_PAD, L_COUNT };

/* A (batch..., rows, cols) array in a buffer of its own, laid out per `layout`, with
 * padded batch strides and (inputs only, when bcast) some zero batch strides. The whole
 * buffer is filled with 0xff bytes (NaN in every float dtype) so that a read outside the
 * view poisons the result. */
static alloy_array make_matrix(mm_ctx *x, test_rng *r, alloy_dtype t, int br, const int64_t *bshape,
                               int64_t rows, int64_t cols, int layout, int bcast,
                               alloy_buffer **out)
{
    int64_t shape[ALLOY_MAX_RANK], strides[ALLOY_MAX_RANK];
    int rank = br + 2;
    for (int d = 0; d < br; d++)
        shape[d] = bshape[d];
    shape[br] = rows;
    shape[br + 1] = cols;
    int64_t rs, cs, pad = rng_range(r, 1, 3);
    switch (layout) {
    case L_TRANS: rs = 1, cs = rows > 0 ? rows : 1; break;
    case L_PAD: rs = cols + pad, cs = 1; break;
    case L_COLSTRIDE: rs = 2 * cols + pad, cs = 2; break;
    case L_TRANS_PAD: rs = 1, cs = rows + pad; break;
    default: rs = cols > 0 ? cols : 1, cs = 1; break;
    }
    strides[br] = rs;
    strides[br + 1] = cs;
    int64_t span = (rows > 0 && cols > 0) ? (rows - 1) * rs + (cols - 1) * cs + 1 : 1;
    for (int d = br - 1; d >= 0; d--) {
        if (bcast && shape[d] > 1 && rng_range(r, 0, 4) == 0) {
            strides[d] = 0;
            continue;
        }
        strides[d] = span + rng_range(r, 0, 2);
        span = strides[d] * (shape[d] > 0 ? shape[d] : 1);
    }
    size_t es = alloy_dtype_size(t);
    size_t off = (size_t)rng_range(r, 0, 3) * es;
    size_t bytes = off + (size_t)span * es + 32;
    alloy_buffer *b = test_buffer(x->dev, bytes);
    memset(alloy_buffer_contents(b), 0xff, bytes);
    *out = b;
    return alloy_array_strided(b, off, t, rank, shape, strides);
}

/* Writes random values (exact in t) to every element of the view. */
static void fill_view(mm_ctx *x, test_rng *r, const alloy_array *a)
{
    if (alloy_array_count(a) == 0)
        return;
    int64_t idx[ALLOY_MAX_RANK] = {0};
    do
        test_random_value(&x->conv, r, a->dtype, view_ptr(a, idx));
    while (a->rank && next_index(idx, a->shape, a->rank));
}

/* Small integers instead, so that every product and sum is exact. */
static void fill_view_ints(mm_ctx *x, test_rng *r, const alloy_array *a)
{
    if (alloy_array_count(a) == 0)
        return;
    int64_t idx[ALLOY_MAX_RANK] = {0};
    do
        ref_store(&x->conv, a->dtype, view_ptr(a, idx), (double)rng_range(r, -4, 4));
    while (a->rank && next_index(idx, a->shape, a->rank));
}

/* ---------------------------------------------------------------- the oracle */

typedef struct mm_ref_opts {
    int exact;    /* expect bitwise-exact values (integer inputs, power-of-two scalars) */
    int use_blas; /* 1: cblas_sgemm for f32, cblas_dgemm for f64 and halves */
} mm_ref_opts;

/* Runs c = alpha a@b + beta c + bias alone and checks every element of c against the
 * reference with an error bound suited to the dtypes, and that nothing outside c's view
 * changed (its buffer's other bytes, and the inputs' buffers). */
static void run_and_check(mm_ctx *x, const alloy_matmul_desc *md, const alloy_array *a,
                          const alloy_array *b, const alloy_array *bias, const alloy_array *c,
                          mm_ref_opts opt)
{
    size_t cbytes = alloy_buffer_size(c->buffer);
    unsigned char *c0 = test_malloc(cbytes), *mask = test_malloc(cbytes);
    memcpy(c0, alloy_buffer_contents(c->buffer), cbytes);
    memset(mask, 0, cbytes);
    size_t abytes = alloy_buffer_size(a->buffer), bbytes = alloy_buffer_size(b->buffer);
    unsigned char *a0 = test_malloc(abytes), *b0 = test_malloc(bbytes);
    memcpy(a0, alloy_buffer_contents(a->buffer), abytes);
    memcpy(b0, alloy_buffer_contents(b->buffer), bbytes);

    alloy_cmdbuf *cb = test_cmdbuf(x->q);
    alloy_status st = alloy_encode_matmul(cb, md, a, b, bias, c);
    if (st != ALLOY_OK)
        FAIL_AT("seed 0x%llx case %d: encode_matmul said %s: %s", (unsigned long long)x->seed,
                x->index, alloy_status_string(st), alloy_last_error());
    test_commit_wait(cb);

    const int cr = c->rank, cbr = cr - 2, abr = a->rank - 2, bbr = b->rank - 2;
    const int64_t M = c->shape[cr - 2], N = c->shape[cr - 1], K = a->shape[a->rank - 1];
    const double alpha = md->alpha, beta = md->beta;
    const int f64 = c->dtype == ALLOY_F64;
    const double u_acc = f64 ? 0x1p-53 : 0x1p-24;
    const double u_out = c->dtype == ALLOY_F16 ? 0x1p-11 : c->dtype == ALLOY_BF16 ? 0x1p-8 : 0;
    const double tiny = c->dtype == ALLOY_F16 ? 0x1p-25 : c->dtype == ALLOY_BF16 ? 0x1p-134 : 0;
    int64_t batches = 1;
    for (int d = 0; d < cbr; d++)
        batches *= c->shape[d];
    const int64_t lk = K > 0 ? K : 1, ln = N > 0 ? N : 1;
    double *A = test_malloc((size_t)(M * lk) * 8), *B = test_malloc((size_t)(lk * ln) * 8);
    double *C = test_malloc((size_t)(M * ln) * 8), *S = test_malloc((size_t)(M * ln) * 8);
    float *Af = test_malloc((size_t)(M * lk) * 4), *Bf = test_malloc((size_t)(lk * ln) * 4);
    float *Cf = test_malloc((size_t)(M * ln) * 4);
    int64_t bi[ALLOY_MAX_RANK] = {0};
    for (int64_t bat = 0; bat < batches && M > 0 && N > 0; bat++) {
        int64_t ia[ALLOY_MAX_RANK] = {0}, ib[ALLOY_MAX_RANK] = {0}, ic[ALLOY_MAX_RANK] = {0};
        for (int d = 0; d < cbr; d++)
            ic[d] = bi[d];
        for (int j = 0; j < abr; j++)
            ia[j] = a->shape[j] == 1 ? 0 : bi[j + (cbr - abr)];
        for (int j = 0; j < bbr; j++)
            ib[j] = b->shape[j] == 1 ? 0 : bi[j + (cbr - bbr)];
        /* gather this batch entry */
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++) {
                ia[abr] = i;
                ia[abr + 1] = k;
                A[i * lk + k] = alpha == 0 ? 0 : ref_load(a->dtype, view_ptr(a, ia));
                Af[i * lk + k] = (float)A[i * lk + k];
            }
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) {
                ib[bbr] = k;
                ib[bbr + 1] = j;
                B[k * ln + j] = alpha == 0 ? 0 : ref_load(b->dtype, view_ptr(b, ib));
                Bf[k * ln + j] = (float)B[k * ln + j];
            }
        double *cin = test_malloc((size_t)(M * ln) * 8);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                ic[cbr] = i;
                ic[cbr + 1] = j;
                /* the value c held before (from the snapshot) */
                size_t off =
                    (size_t)((char *)view_ptr(c, ic) - (char *)alloy_buffer_contents(c->buffer));
                cin[i * ln + j] = beta == 0 ? 0 : ref_load(c->dtype, c0 + off);
                C[i * ln + j] = cin[i * ln + j];
                Cf[i * ln + j] = (float)cin[i * ln + j];
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += fabs(A[i * lk + k] * B[k * ln + j]);
                S[i * ln + j] = fabs(alpha) * s + fabs(beta * cin[i * ln + j]);
            }
        if (c->dtype == ALLOY_F32 && a->dtype == ALLOY_F32 && opt.use_blas) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K,
                        (float)alpha, Af, (int)lk, Bf, (int)ln, (float)beta, Cf, (int)ln);
            for (int64_t i = 0; i < M * ln; i++)
                C[i] = (double)Cf[i];
        } else if (opt.use_blas) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                        (int)lk, B, (int)ln, beta, C, (int)ln);
        } else {
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++)
                        s += A[i * lk + k] * B[k * ln + j];
                    C[i * ln + j] = alpha * s + beta * cin[i * ln + j];
                }
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double bj = 0;
                if (bias) {
                    int64_t jb = j;
                    bj = ref_load(bias->dtype, view_ptr(bias, &jb));
                }
                double ref = C[i * ln + j] + bj;
                if (opt.exact) {
                    /* exact in the accumulator: the output is that value rounded once */
                    unsigned char t8[8];
                    ref_store(&x->conv, c->dtype, t8, ref);
                    ref = ref_load(c->dtype, t8);
                }
                double sb = S[i * ln + j] + fabs(bj);
                double e = (double)(2 * K + 8) * u_acc * sb;
                double tol = opt.exact ? 0 : e + u_out * (fabs(ref) + e) + tiny;
                ic[cbr] = i;
                ic[cbr + 1] = j;
                const void *gp = view_ptr(c, ic);
                double got = ref_load(c->dtype, gp);
                if (!(fabs(got - ref) <= tol))
                    FAIL_AT("seed 0x%llx case %d: %s@%s->%s M=%lld N=%lld K=%lld batch %lld: "
                            "c[%lld][%lld] = %.17g, expected %.17g (tolerance %.3g, alpha %g, "
                            "beta %g, bias %s)",
                            (unsigned long long)x->seed, x->index, dtype_name(a->dtype),
                            dtype_name(b->dtype), dtype_name(c->dtype), (long long)M, (long long)N,
                            (long long)K, (long long)bat, (long long)i, (long long)j, got, ref, tol,
                            alpha, beta, bias ? dtype_name(bias->dtype) : "none");
                size_t off = (size_t)((const char *)gp - (char *)alloy_buffer_contents(c->buffer));
                memset(mask + off, 1, alloy_dtype_size(c->dtype));
            }
        free(cin);
        if (cbr)
            next_index(bi, c->shape, cbr);
    }
    const unsigned char *cg = alloy_buffer_contents(c->buffer);
    for (size_t i = 0; i < cbytes; i++)
        if (!mask[i] && cg[i] != c0[i])
            FAIL_AT("seed 0x%llx case %d: byte %zu of c's buffer, outside c, changed",
                    (unsigned long long)x->seed, x->index, i);
    if (a->buffer != c->buffer && memcmp(a0, alloy_buffer_contents(a->buffer), abytes) != 0)
        FAIL_AT("seed 0x%llx case %d: a's buffer changed", (unsigned long long)x->seed, x->index);
    if (b->buffer != c->buffer && memcmp(b0, alloy_buffer_contents(b->buffer), bbytes) != 0)
        FAIL_AT("seed 0x%llx case %d: b's buffer changed", (unsigned long long)x->seed, x->index);
    free(A);
    free(B);
    free(C);
    free(S);
    free(Af);
    free(Bf);
    free(Cf);
    free(c0);
    free(mask);
    free(a0);
    free(b0);
}

/* ---------------------------------------------------------------- random problems */

static const int64_t dims[] = {0,  1,  1,  2,  3,  4,  5,  7,  8,  11,
                               13, 16, 17, 23, 31, 32, 33, 47, 64, 67};
enum { NDIMS = sizeof dims / sizeof dims[0] };

typedef struct combo {
    alloy_dtype in, out;
} combo;
static const combo combos[] = {
    {ALLOY_F32, ALLOY_F32}, {ALLOY_F64, ALLOY_F64},  {ALLOY_F16, ALLOY_F32},
    {ALLOY_F16, ALLOY_F16}, {ALLOY_BF16, ALLOY_F32}, {ALLOY_BF16, ALLOY_BF16},
};
enum { NCOMBOS = sizeof combos / sizeof combos[0] };

static const double alphas[] = {1.0, 1.0, 0.0, -0.5, 2.25, 0.3};
static const double betas[] = {0.0, 0.0, 1.0, -1.5, 0.7};

/* One random problem: shapes, layouts, batch broadcasting, dtypes, scalars, bias. */
static void random_problem(mm_ctx *x, test_rng *r, int big_k)
{
    combo co = combos[rng_range(r, 0, NCOMBOS - 1)];
    int64_t M = dims[rng_range(r, 0, NDIMS - 1)], N = dims[rng_range(r, 0, NDIMS - 1)];
    int64_t K = big_k ? rng_range(r, 250, 300) : dims[rng_range(r, 0, NDIMS - 1)];
    if (rng_range(r, 0, 15) == 0)
        M = rng_range(r, 100, 140);
    int cbr = (int)rng_range(r, 0, 2);
    int64_t cbs[2] = {0, 0}, abs_[2], bbs[2];
    for (int d = 0; d < cbr; d++)
        cbs[d] = rng_range(r, 1, 3);
    /* a and b: a suffix of c's batch dims, each equal or 1 */
    int abr = cbr ? (int)rng_range(r, 0, cbr) : 0, bbr = cbr ? (int)rng_range(r, 0, cbr) : 0;
    for (int j = 0; j < abr; j++)
        abs_[j] = rng_range(r, 0, 2) == 0 ? 1 : cbs[j + cbr - abr];
    for (int j = 0; j < bbr; j++)
        bbs[j] = rng_range(r, 0, 2) == 0 ? 1 : cbs[j + cbr - bbr];
    alloy_buffer *ab, *bb, *cbuf, *biasb = NULL;
    alloy_array a =
        make_matrix(x, r, co.in, abr, abs_, M, K, (int)rng_range(r, 0, L_COUNT - 1), 1, &ab);
    alloy_array b =
        make_matrix(x, r, co.in, bbr, bbs, K, N, (int)rng_range(r, 0, L_COUNT - 1), 1, &bb);
    int clay = (int)rng_range(r, 0, 3);
    alloy_array c = make_matrix(x, r, co.out, cbr, cbs, M, N,
                                clay == 3   ? L_TRANS
                                : clay == 2 ? L_PAD
                                            : L_ROW,
                                0, &cbuf);
    alloy_matmul_desc md = alloy_matmul_desc_default();
    md.alpha = alphas[rng_range(r, 0, 5)];
    md.beta = betas[rng_range(r, 0, 4)];
    if (md.alpha != 0) { /* alpha 0: a and b stay NaN; they must not be read */
        fill_view(x, r, &a);
        fill_view(x, r, &b);
    }
    if (md.beta != 0) /* beta 0: c stays NaN; it must not be read */
        fill_view(x, r, &c);
    alloy_array bias, *biasp = NULL;
    if (rng_range(r, 0, 2) == 0) {
        alloy_dtype bd;
        if (co.out == ALLOY_F64)
            bd = (alloy_dtype)rng_range(r, 0, 3);
        else {
            const alloy_dtype ok[3] = {ALLOY_F32, ALLOY_F16, ALLOY_BF16};
            bd = ok[rng_range(r, 0, 2)];
        }
        int64_t st = rng_range(r, 0, 5) == 0 ? 0 : rng_range(r, 1, 2); /* 0: broadcast */
        size_t bytes = (size_t)((N > 0 ? N : 1) * (st ? st : 1) + 4) * alloy_dtype_size(bd);
        biasb = test_buffer(x->dev, bytes);
        memset(alloy_buffer_contents(biasb), 0xff, bytes);
        bias = alloy_array_strided(biasb, alloy_dtype_size(bd), bd, 1, &N, &st);
        fill_view(x, r, &bias);
        biasp = &bias;
    }
    mm_ref_opts o = {0, 1};
    run_and_check(x, &md, &a, &b, biasp, &c, o);
    ASSERT_OK(alloy_buffer_destroy(ab));
    ASSERT_OK(alloy_buffer_destroy(bb));
    ASSERT_OK(alloy_buffer_destroy(cbuf));
    if (biasb)
        ASSERT_OK(alloy_buffer_destroy(biasb));
}

TEST(matmul_random_vs_blas)
{
    const uint64_t seed = test_seed(0x6e44a7);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(0);
    mm_ctx x = mm_ctx_new(dev, seed);
    for (int it = 0; it < 300; it++) {
        x.index = it;
        random_problem(&x, &r, it % 10 == 9);
    }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* Whole matrices of small integers with power-of-two alpha and beta: every product, sum
 * and scaling is exact in every dtype's accumulator, so the results must be exact. */
TEST(matmul_exact_small_integers)
{
    const uint64_t seed = test_seed(0xe4ac7);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(0);
    mm_ctx x = mm_ctx_new(dev, seed);
    const double pa[] = {1, -2, 0.5, 0}, pb[] = {0, 1, -0.25, 4};
    for (int it = 0; it < 120; it++) {
        x.index = it;
        combo co = combos[it % NCOMBOS];
        /* small enough that sums of products of [-4, 4] stay exact in f16 (|x| <= 2048) */
        int64_t M = dims[rng_range(&r, 0, 12)], N = dims[rng_range(&r, 0, 12)];
        int64_t K = co.out == ALLOY_F16 || co.out == ALLOY_BF16 ? rng_range(&r, 0, 6)
                                                                : dims[rng_range(&r, 0, NDIMS - 1)];
        alloy_buffer *ab, *bb, *cbuf;
        alloy_array a = make_matrix(&x, &r, co.in, 0, NULL, M, K, it % L_COUNT, 0, &ab);
        alloy_array b = make_matrix(&x, &r, co.in, 0, NULL, K, N, (it / 2) % L_COUNT, 0, &bb);
        alloy_array c = make_matrix(&x, &r, co.out, 0, NULL, M, N, (it / 3) % 3, 0, &cbuf);
        alloy_matmul_desc md = alloy_matmul_desc_default();
        md.alpha = pa[it % 4];
        md.beta = pb[(it / 4) % 4];
        fill_view_ints(&x, &r, &a);
        fill_view_ints(&x, &r, &b);
        if (md.beta != 0)
            fill_view_ints(&x, &r, &c);
        mm_ref_opts o = {1, 0};
        run_and_check(&x, &md, &a, &b, NULL, &c, o);
        ASSERT_OK(alloy_buffer_destroy(ab));
        ASSERT_OK(alloy_buffer_destroy(bb));
        ASSERT_OK(alloy_buffer_destroy(cbuf));
    }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* K = 0: C = beta*C + bias exactly; M or N = 0: nothing written; beta = 0 with NaN C and
 * alpha = 0 with NaN A and B: no NaN comes out. */
TEST(matmul_degenerate_and_never_read)
{
    const uint64_t seed = test_seed(0xde9);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(2);
    mm_ctx x = mm_ctx_new(dev, seed);
    for (int ci = 0; ci < NCOMBOS; ci++) {
        combo co = combos[ci];
        const int64_t shapes[][3] = {{5, 7, 0}, {0, 7, 5}, {5, 0, 5},
                                     {0, 0, 0}, {1, 1, 1}, {9, 13, 6}};
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int mode = 0; mode < 4; mode++) {
                x.index = ci * 100 + (int)si * 10 + mode;
                int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                alloy_buffer *ab, *bb, *cbuf, *biasb;
                alloy_array a = make_matrix(&x, &r, co.in, 0, NULL, M, K, L_ROW, 0, &ab);
                alloy_array b = make_matrix(&x, &r, co.in, 0, NULL, K, N, L_TRANS, 0, &bb);
                alloy_array c = make_matrix(&x, &r, co.out, 0, NULL, M, N, L_PAD, 0, &cbuf);
                alloy_dtype bd = co.out == ALLOY_F64 ? ALLOY_F64 : ALLOY_F16;
                biasb = test_buffer(dev, 8 * (size_t)(N + 1));
                int64_t one = 1;
                alloy_array bias = alloy_array_strided(biasb, 0, bd, 1, &N, &one);
                fill_view(&x, &r, &bias);
                alloy_matmul_desc md = alloy_matmul_desc_default();
                /* mode 0: beta 0 (C NaN); 1: alpha 0 (A, B NaN), beta 1; 2: both 0
                 * (C = bias); 3: alpha 1 beta -1 */
                md.alpha = mode == 1 || mode == 2 ? 0 : 1;
                md.beta = mode == 1 ? 1 : mode == 3 ? -1 : 0;
                if (md.alpha != 0) {
                    fill_view(&x, &r, &a);
                    fill_view(&x, &r, &b);
                }
                if (md.beta != 0)
                    fill_view(&x, &r, &c);
                /* K = 0 and alpha = 0 results are exact: beta*C + bias with one rounding */
                mm_ref_opts o = {0, 1};
                run_and_check(&x, &md, &a, &b, &bias, &c, o);
                /* and nothing produced a NaN */
                if (alloy_array_count(&c) > 0) {
                    int64_t idx[2] = {0, 0};
                    do
                        ASSERT(!isnan(ref_load(c.dtype, view_ptr(&c, idx))));
                    while (next_index(idx, c.shape, 2));
                }
                ASSERT_OK(alloy_buffer_destroy(ab));
                ASSERT_OK(alloy_buffer_destroy(bb));
                ASSERT_OK(alloy_buffer_destroy(cbuf));
                ASSERT_OK(alloy_buffer_destroy(biasb));
            }
    }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* numpy-style batch broadcasting, spelled out: a (2,1,M,K) @ b (3,K,N) -> c (2,3,M,N),
 * a (M,K) @ b (4,K,N), a (4,M,K) @ b (1,K,N), zero-stride batch inputs. */
TEST(matmul_batch_broadcast)
{
    const uint64_t seed = test_seed(0xba7c4);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(0);
    mm_ctx x = mm_ctx_new(dev, seed);
    struct {
        int ar, br, cr;
        int64_t as[2], bs[2], cs[2];
    } cases[] = {
        {2, 1, 2, {2, 1}, {3}, {2, 3}},    {0, 1, 1, {0}, {4}, {4}},
        {1, 1, 1, {4}, {1}, {4}},          {1, 2, 2, {3}, {2, 3}, {2, 3}},
        {2, 2, 2, {1, 3}, {2, 1}, {2, 3}}, {1, 0, 2, {1}, {0}, {5, 1}},
    };
    const alloy_dtype ins[3] = {ALLOY_F32, ALLOY_F64, ALLOY_BF16};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = 0; t < 3; t++) {
            x.index = (int)i * 10 + t;
            alloy_dtype in = ins[t], out = in == ALLOY_F64 ? ALLOY_F64 : ALLOY_F32;
            int64_t M = 7, K = 5, N = 6;
            alloy_buffer *ab, *bb, *cbuf;
            alloy_array a = make_matrix(&x, &r, in, cases[i].ar, cases[i].as, M, K, L_ROW, 0, &ab);
            alloy_array b =
                make_matrix(&x, &r, in, cases[i].br, cases[i].bs, K, N, L_TRANS, 0, &bb);
            alloy_array c =
                make_matrix(&x, &r, out, cases[i].cr, cases[i].cs, M, N, L_ROW, 0, &cbuf);
            fill_view(&x, &r, &a);
            fill_view(&x, &r, &b);
            alloy_matmul_desc md = alloy_matmul_desc_default();
            mm_ref_opts o = {0, 1};
            run_and_check(&x, &md, &a, &b, NULL, &c, o);
            ASSERT_OK(alloy_buffer_destroy(ab));
            ASSERT_OK(alloy_buffer_destroy(bb));
            ASSERT_OK(alloy_buffer_destroy(cbuf));
        }
    /* a batch input with a zero batch stride (one matrix read for every entry) */
    {
        x.index = 99;
        int64_t M = 4, K = 3, N = 5;
        alloy_buffer *ab, *bb, *cbuf;
        int64_t three = 3;
        alloy_array a = make_matrix(&x, &r, ALLOY_F32, 1, &three, M, K, L_ROW, 0, &ab);
        a.strides[0] = 0;
        alloy_array b = make_matrix(&x, &r, ALLOY_F32, 1, &three, K, N, L_ROW, 0, &bb);
        alloy_array c = make_matrix(&x, &r, ALLOY_F32, 1, &three, M, N, L_ROW, 0, &cbuf);
        fill_view(&x, &r, &a);
        fill_view(&x, &r, &b);
        alloy_matmul_desc md = alloy_matmul_desc_default();
        mm_ref_opts o = {0, 1};
        run_and_check(&x, &md, &a, &b, NULL, &c, o);
        ASSERT_OK(alloy_buffer_destroy(ab));
        ASSERT_OK(alloy_buffer_destroy(bb));
        ASSERT_OK(alloy_buffer_destroy(cbuf));
    }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* Transposes through alloy_array_swap_dims of row-major arrays: A^T @ B, A @ B^T,
 * A^T @ B^T, and C^T as the output, on one batched problem each. */
TEST(matmul_transposes)
{
    const uint64_t seed = test_seed(0x7a45);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(0);
    mm_ctx x = mm_ctx_new(dev, seed);
    const int64_t M = 19, K = 23, N = 29, BATCH = 2;
    for (int mask = 0; mask < 8; mask++)
        for (int t = 0; t < 2; t++) {
            x.index = mask * 2 + t;
            alloy_dtype in = t ? ALLOY_F64 : ALLOY_F32, out = in;
            int ta = mask & 1, tb = (mask >> 1) & 1, tc = (mask >> 2) & 1;
            int64_t as[3] = {BATCH, ta ? K : M, ta ? M : K};
            int64_t bs[3] = {BATCH, tb ? N : K, tb ? K : N};
            int64_t cs[3] = {BATCH, tc ? N : M, tc ? M : N};
            size_t es = alloy_dtype_size(in);
            alloy_buffer *ab = test_buffer(dev, (size_t)(BATCH * M * K) * es);
            alloy_buffer *bb = test_buffer(dev, (size_t)(BATCH * K * N) * es);
            alloy_buffer *cbuf = test_buffer(dev, (size_t)(BATCH * M * N) * es);
            alloy_array a = alloy_array_contiguous(ab, 0, in, 3, as);
            alloy_array b = alloy_array_contiguous(bb, 0, in, 3, bs);
            alloy_array c = alloy_array_contiguous(cbuf, 0, out, 3, cs);
            if (ta)
                a = alloy_array_swap_dims(a, 1, 2);
            if (tb)
                b = alloy_array_swap_dims(b, 2, 1);
            if (tc)
                c = alloy_array_swap_dims(c, 1, 2);
            ASSERT_EQ(a.shape[1], M);
            ASSERT_EQ(b.shape[2], N);
            ASSERT_EQ(c.shape[1], M);
            fill_view(&x, &r, &a);
            fill_view(&x, &r, &b);
            memset(alloy_buffer_contents(cbuf), 0xff, alloy_buffer_size(cbuf));
            alloy_matmul_desc md = alloy_matmul_desc_default();
            mm_ref_opts o = {0, 1};
            run_and_check(&x, &md, &a, &b, NULL, &c, o);
            ASSERT_OK(alloy_buffer_destroy(ab));
            ASSERT_OK(alloy_buffer_destroy(bb));
            ASSERT_OK(alloy_buffer_destroy(cbuf));
        }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* A row-major A whose rows are a multiple of 4 KB apart, in two column tiles of the
 * widest kind (one worker: the tiling is not cut for more) and several K blocks deep:
 * the tiles read it in place, the rows of a microkernel call in the same few L1 sets.
 * Through both the direct path and the accumulator (beta), against the oracle. */
TEST(matmul_power_of_two_row_strides)
{
    const uint64_t seed = test_seed(0x4b1d);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(1);
    mm_ctx x = mm_ctx_new(dev, seed);
    for (int t = 0; t < 4; t++) {
        x.index = t;
        const alloy_dtype dt = t & 1 ? ALLOY_F64 : ALLOY_F32;
        const size_t es = alloy_dtype_size(dt);
        const int64_t lda = (int64_t)(4096 / es) * (t < 2 ? 1 : 2); /* 4 KB, 8 KB */
        const int64_t M = 157, K = t & 1 ? 300 : 531, N = 600;
        alloy_buffer *ab = test_buffer(dev, (size_t)(M * lda) * es);
        alloy_buffer *bb = test_buffer(dev, (size_t)(K * N) * es);
        alloy_buffer *cbuf = test_buffer(dev, (size_t)(M * N) * es);
        memset(alloy_buffer_contents(ab), 0xff, alloy_buffer_size(ab));
        const int64_t ashape[2] = {M, K}, astrides[2] = {lda, 1};
        alloy_array a = alloy_array_strided(ab, 0, dt, 2, ashape, astrides);
        alloy_array b = alloy_array_contiguous(bb, 0, dt, 2, (int64_t[2]){K, N});
        alloy_array c = alloy_array_contiguous(cbuf, 0, dt, 2, (int64_t[2]){M, N});
        fill_view(&x, &r, &a);
        fill_view(&x, &r, &b);
        fill_view(&x, &r, &c);
        alloy_matmul_desc md = alloy_matmul_desc_default();
        md.beta = t >= 2 ? 0.5 : 0.0;
        mm_ref_opts o = {0, 1};
        run_and_check(&x, &md, &a, &b, NULL, &c, o);
        ASSERT_OK(alloy_buffer_destroy(ab));
        ASSERT_OK(alloy_buffer_destroy(bb));
        ASSERT_OK(alloy_buffer_destroy(cbuf));
    }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* Bias of every allowed dtype for each output dtype, with alpha/beta combinations. */
TEST(matmul_bias_dtypes)
{
    const uint64_t seed = test_seed(0xb1a5);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(0);
    mm_ctx x = mm_ctx_new(dev, seed);
    const alloy_dtype fl[4] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    int n = 0;
    for (int ci = 0; ci < NCOMBOS; ci++)
        for (int bi = 0; bi < 4; bi++) {
            combo co = combos[ci];
            alloy_dtype bd = fl[bi];
            if (bd == ALLOY_F64 && co.out != ALLOY_F64)
                continue; /* unsupported: see matmul_bad_inputs */
            for (int s = 0; s < 3; s++) {
                x.index = n++;
                int64_t M = 6, K = 9, N = 10;
                alloy_buffer *ab, *bb, *cbuf;
                alloy_array a = make_matrix(&x, &r, co.in, 0, NULL, M, K, L_ROW, 0, &ab);
                alloy_array b = make_matrix(&x, &r, co.in, 0, NULL, K, N, L_ROW, 0, &bb);
                alloy_array c = make_matrix(&x, &r, co.out, 0, NULL, M, N, L_ROW, 0, &cbuf);
                alloy_buffer *biasb = test_buffer(dev, (size_t)N * 8);
                alloy_array bias = alloy_array_contiguous(biasb, 0, bd, 1, &N);
                fill_view(&x, &r, &a);
                fill_view(&x, &r, &b);
                fill_view(&x, &r, &c);
                fill_view(&x, &r, &bias);
                alloy_matmul_desc md = alloy_matmul_desc_default();
                md.alpha = s == 0 ? 1 : s == 1 ? -0.75 : 0;
                md.beta = s == 0 ? 0 : s == 1 ? 0.5 : 2;
                mm_ref_opts o = {0, 1};
                run_and_check(&x, &md, &a, &b, &bias, &c, o);
                ASSERT_OK(alloy_buffer_destroy(ab));
                ASSERT_OK(alloy_buffer_destroy(bb));
                ASSERT_OK(alloy_buffer_destroy(cbuf));
                ASSERT_OK(alloy_buffer_destroy(biasb));
            }
        }
    ASSERT_EQ(n, 3 * 19); /* input/bias pairings: 3+4+3+3+3+3 */
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* f16 and bf16 inputs with f32 and same-dtype outputs against the float64 reference on
 * the (exactly) converted inputs, with larger K so accumulation error shows. */
TEST(matmul_half_precision)
{
    const uint64_t seed = test_seed(0x4a1f);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(0);
    mm_ctx x = mm_ctx_new(dev, seed);
    const combo hc[4] = {{ALLOY_F16, ALLOY_F32},
                         {ALLOY_F16, ALLOY_F16},
                         {ALLOY_BF16, ALLOY_F32},
                         {ALLOY_BF16, ALLOY_BF16}};
    const int64_t shapes[][3] = {{1, 1, 1}, {17, 13, 300}, {40, 3, 129}, {5, 64, 64}};
    for (int ci = 0; ci < 4; ci++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            x.index = ci * 10 + (int)si;
            int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            alloy_buffer *ab, *bb, *cbuf;
            alloy_array a = make_matrix(&x, &r, hc[ci].in, 0, NULL, M, K, L_PAD, 0, &ab);
            alloy_array b = make_matrix(&x, &r, hc[ci].in, 0, NULL, K, N, L_TRANS_PAD, 0, &bb);
            alloy_array c = make_matrix(&x, &r, hc[ci].out, 0, NULL, M, N, L_ROW, 0, &cbuf);
            fill_view(&x, &r, &a);
            fill_view(&x, &r, &b);
            fill_view(&x, &r, &c);
            alloy_matmul_desc md = alloy_matmul_desc_default();
            md.alpha = 1.5;
            md.beta = -0.5;
            mm_ref_opts o = {0, 1};
            run_and_check(&x, &md, &a, &b, NULL, &c, o);
            ASSERT_OK(alloy_buffer_destroy(ab));
            ASSERT_OK(alloy_buffer_destroy(bb));
            ASSERT_OK(alloy_buffer_destroy(cbuf));
        }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- kernels, bitwise */

/* The documented contract: every element of A@B is one chain of fused multiply-adds from
 * zero in k order, for every microkernel. With alpha 1, beta 0 and no bias, C is that
 * chain rounded once to C's dtype, so each kernel must match fmaf/fma bit for bit; with
 * other scalars and a bias, the kernels must still agree with each other bit for bit. */
TEST(matmul_kernels_bitwise)
{
    const uint64_t seed = test_seed(0xf3a);
    const alloy_cpu_kernel ks[3] = {ALLOY_CPU_KERNEL_PORTABLE, ALLOY_CPU_KERNEL_AVX2,
                                    ALLOY_CPU_KERNEL_AVX512};
    const char *kn[3] = {"portable", "avx2", "avx512"};
    /* M <= 4 with a row-major B takes the skinny (GEMV-like) path: N across its 256-column
     * blocks and K across the packing depth. N <= 4 against a row-major A (even indices:
     * A is transposed at odd ones) takes the thin kernel where there is one: rows past a
     * multiple of 16 and 8, K past a multiple of 16, K = 1, N from 1 to 8, B with a column
     * stride (indices divisible by 3) and a long K (100 x 1 x 5000). From index 26, with a
     * row-major A, the panel kernel where there is one: two row tiles over a B packed once
     * (190 x 520 x 257: 8 columns past the whole slivers, the second tile 10 rows past its
     * whole slivers), one tile packing its own B (23 x 512 x 300: 11 rows past a sliver), and
     * tiles planned for it too wide to take it whole (13 x 600 x 260, whose B is not packed
     * once: 512 columns at a time, each packing its own; 60 x 600 x 20, whose B is read in
     * place). */
    const int64_t shapes[][3] = {
        {1, 1, 1},      {4, 16, 3},   {7, 9, 1},       {13, 17, 5},  {5, 3, 257},    {33, 40, 300},
        {12, 32, 64},   {25, 70, 11}, {1, 300, 270},   {2, 33, 260}, {3, 1, 5},      {4, 257, 9},
        {37, 1, 300},   {19, 4, 20},  {8, 1, 7},       {9, 2, 17},   {100, 4, 33},   {70, 2, 16},
        {21, 3, 1},     {5, 1, 40},   {100, 1, 5000},  {9, 7, 3},    {23, 8, 40},    {11, 5, 2},
        {50, 6, 19},    {33, 7, 9},   {190, 520, 257}, {9, 130, 17}, {23, 512, 300}, {5, 9, 30},
        {13, 600, 260}, {3, 50, 7},   {60, 600, 20}};
    enum { NS = sizeof shapes / sizeof shapes[0] };
    const combo kc[5] = {{ALLOY_F32, ALLOY_F32},
                         {ALLOY_F64, ALLOY_F64},
                         {ALLOY_F16, ALLOY_F32},
                         {ALLOY_BF16, ALLOY_BF16},
                         {ALLOY_F16, ALLOY_F16}};
    ref_conv conv = ref_conv_new();
    /* first[s][c][p]: the first kernel's result of pass p, to compare the others with */
    unsigned char *first[NS][5][2];
    memset(first, 0, sizeof first);
    int kernels_run = 0;
    for (int ki = 0; ki < 3; ki++) {
        alloy_device_desc d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_kernel = ks[ki];
        alloy_device *dev = NULL, *dev1 = NULL;
        alloy_status st = alloy_device_open(&d, &dev);
        if (st == ALLOY_ERR_UNSUPPORTED) {
            fprintf(stderr, "  (kernel %s: not on this CPU, skipped)\n", kn[ki]);
            continue;
        }
        ASSERT_OK(st);
        kernels_run++;
        /* the panel kernel's shapes on one worker too: the widest tiles (on more workers
         * they are cut narrower; how changes no bits) */
        d.cpu_workers = 1;
        ASSERT_OK(alloy_device_open(&d, &dev1));
        mm_ctx xall = mm_ctx_new(dev, seed), xone = mm_ctx_new(dev1, seed);
        for (int s = 0; s < NS; s++)
            for (int ci = 0; ci < 5; ci++)
                for (int one = 0; one < 1 + (s >= 26); one++) {
                    if (s >= 26 && ci >= 2)
                        continue; /* the panel kernel's shapes: an A in the compute type only */
                    mm_ctx *xp = one ? &xone : &xall;
                    xp->index = s * 10 + ci;
                    /* the same inputs for every kernel: the rng restarts per problem */
                    test_rng r = {seed + (uint64_t)(s * 10 + ci)};
                    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    alloy_buffer *ab, *bb, *cbuf, *biasb;
                    alloy_array a = make_matrix(xp, &r, kc[ci].in, 0, NULL, M, K,
                                                s % 2 ? L_TRANS : L_ROW, 0, &ab);
                    alloy_array b = make_matrix(xp, &r, kc[ci].in, 0, NULL, K, N,
                                                s % 3 || M <= 4 ? L_ROW : L_COLSTRIDE, 0, &bb);
                    alloy_array c = make_matrix(xp, &r, kc[ci].out, 0, NULL, M, N, L_ROW, 0, &cbuf);
                    fill_view(xp, &r, &a);
                    fill_view(xp, &r, &b);
                    biasb = test_buffer(one ? dev1 : dev, (size_t)N * 4);
                    alloy_array bias = alloy_array_contiguous(biasb, 0, ALLOY_F16, 1, &N);
                    fill_view(xp, &r, &bias);
                    size_t cbytes = (size_t)(M * N) * alloy_dtype_size(c.dtype);
                    for (int pass = 0; pass < 2; pass++) {
                        alloy_matmul_desc md = alloy_matmul_desc_default();
                        if (pass == 1) {
                            md.alpha = 0.75;
                            md.beta = -0.5;
                            fill_view(xp, &r, &c);
                        }
                        alloy_cmdbuf *cb = test_cmdbuf(xp->q);
                        ASSERT_OK(alloy_encode_matmul(cb, &md, &a, &b, pass ? &bias : NULL, &c));
                        test_commit_wait(cb);
                        const unsigned char *got = alloy_buffer_contents(cbuf);
                        got += c.offset;
                        if (pass == 0) {
                            /* the FMA chain, in the accumulation type */
                            int64_t idx[2];
                            for (int64_t i = 0; i < M; i++)
                                for (int64_t j = 0; j < N; j++) {
                                    unsigned char want[8];
                                    if (kc[ci].in == ALLOY_F64) {
                                        double acc = 0;
                                        for (int64_t k = 0; k < K; k++) {
                                            idx[0] = i, idx[1] = k;
                                            double av = ref_load(a.dtype, view_ptr(&a, idx));
                                            idx[0] = k, idx[1] = j;
                                            double bv = ref_load(b.dtype, view_ptr(&b, idx));
                                            acc = fma(av, bv, acc);
                                        }
                                        memcpy(want, &acc, 8);
                                    } else {
                                        float acc = 0;
                                        for (int64_t k = 0; k < K; k++) {
                                            idx[0] = i, idx[1] = k;
                                            float av = (float)ref_load(a.dtype, view_ptr(&a, idx));
                                            idx[0] = k, idx[1] = j;
                                            float bv = (float)ref_load(b.dtype, view_ptr(&b, idx));
                                            acc = fmaf(av, bv, acc);
                                        }
                                        ref_store(&conv, c.dtype, want, (double)acc);
                                    }
                                    size_t es = alloy_dtype_size(c.dtype);
                                    const unsigned char *g = got + (size_t)(i * N + j) * es;
                                    if (memcmp(g, want, es) != 0) {
                                        uint64_t gw = 0, ww = 0;
                                        memcpy(&gw, g, es);
                                        memcpy(&ww, want, es);
                                        FAIL_AT("seed 0x%llx: kernel %s, %s->%s, M=%lld N=%lld "
                                                "K=%lld: c[%lld][%lld] = 0x%llx, the FMA chain "
                                                "gives 0x%llx",
                                                (unsigned long long)seed, kn[ki],
                                                dtype_name(kc[ci].in), dtype_name(kc[ci].out),
                                                (long long)M, (long long)N, (long long)K,
                                                (long long)i, (long long)j, (unsigned long long)gw,
                                                (unsigned long long)ww);
                                    }
                                }
                        }
                        if (!first[s][ci][pass]) {
                            first[s][ci][pass] = test_malloc(cbytes);
                            memcpy(first[s][ci][pass], got, cbytes);
                        } else if (memcmp(first[s][ci][pass], got, cbytes) != 0) {
                            FAIL_AT("seed 0x%llx: kernel %s differs bitwise from the first kernel "
                                    "(%s->%s, M=%lld N=%lld K=%lld, pass %d)",
                                    (unsigned long long)seed, kn[ki], dtype_name(kc[ci].in),
                                    dtype_name(kc[ci].out), (long long)M, (long long)N,
                                    (long long)K, pass);
                        }
                    }
                    ASSERT_OK(alloy_buffer_destroy(ab));
                    ASSERT_OK(alloy_buffer_destroy(bb));
                    ASSERT_OK(alloy_buffer_destroy(cbuf));
                    ASSERT_OK(alloy_buffer_destroy(biasb));
                }
        mm_ctx_free(&xall);
        mm_ctx_free(&xone);
        ASSERT_OK(alloy_device_close(dev));
        ASSERT_OK(alloy_device_close(dev1));
    }
    ASSERT(kernels_run >= 1); /* portable runs everywhere */
    for (int s = 0; s < NS; s++)
        for (int ci = 0; ci < 5; ci++)
            for (int p = 0; p < 2; p++)
                free(first[s][ci][p]);
    ref_conv_free(&conv);
}

/* An A whose rows all alias one row (row stride 0, a broadcast input) through the shapes
 * the panel kernel takes (whole, and 512 columns at a time): that kernel reads such an A
 * in place like any other, and its copy of A must be of every row, not the first row's
 * values taken for k-major ones. Each element against its FMA chain, one worker (the
 * widest tiles), f32 and f64. */
TEST(matmul_broadcast_a_rows)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    const int64_t shapes[][3] = {{190, 520, 257}, {13, 600, 260}};
    for (int f64 = 0; f64 < 2; f64++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            const size_t es = f64 ? 8 : 4;
            const alloy_dtype t = f64 ? ALLOY_F64 : ALLOY_F32;
            alloy_buffer *ab = test_buffer(dev, (size_t)K * es);
            alloy_buffer *bb = test_buffer(dev, (size_t)(K * N) * es);
            alloy_buffer *cb = test_buffer(dev, (size_t)(M * N) * es);
            unsigned char *av = alloy_buffer_contents(ab), *bv = alloy_buffer_contents(bb);
            for (int64_t k = 0; k < K; k++) {
                const double v = (double)(k % 7) * 0.25 - 0.5;
                if (f64)
                    ((double *)(void *)av)[k] = v;
                else
                    ((float *)(void *)av)[k] = (float)v;
            }
            for (int64_t i = 0; i < K * N; i++) {
                const double v = (double)(i % 11) * 0.125 - 0.6;
                if (f64)
                    ((double *)(void *)bv)[i] = v;
                else
                    ((float *)(void *)bv)[i] = (float)v;
            }
            const int64_t sa[2] = {M, K}, sta[2] = {0, 1}, sb[2] = {K, N}, sc[2] = {M, N};
            alloy_array a = alloy_array_strided(ab, 0, t, 2, sa, sta);
            alloy_array b = alloy_array_contiguous(bb, 0, t, 2, sb);
            alloy_array c = alloy_array_contiguous(cb, 0, t, 2, sc);
            alloy_matmul_desc md = alloy_matmul_desc_default();
            alloy_cmdbuf *cmd = test_cmdbuf(q);
            ASSERT_OK(alloy_encode_matmul(cmd, &md, &a, &b, NULL, &c));
            test_commit_wait(cmd);
            const unsigned char *got = alloy_buffer_contents(cb);
            for (int64_t j = 0; j < N; j++) {
                /* every row of C is the one row's product */
                double want;
                if (f64) {
                    double acc = 0;
                    for (int64_t k = 0; k < K; k++)
                        acc =
                            fma(((double *)(void *)av)[k], ((double *)(void *)bv)[k * N + j], acc);
                    want = acc;
                } else {
                    float acc = 0;
                    for (int64_t k = 0; k < K; k++)
                        acc = fmaf(((float *)(void *)av)[k], ((float *)(void *)bv)[k * N + j], acc);
                    want = acc;
                }
                for (int64_t i = 0; i < M; i++) {
                    const double g = f64 ? ((const double *)(const void *)got)[i * N + j]
                                         : ((const float *)(const void *)got)[i * N + j];
                    if (g != want)
                        FAIL_AT("%s %lldx%lldx%lld, A rows broadcast: c[%lld][%lld] = %.9g, "
                                "the FMA chain gives %.9g",
                                f64 ? "f64" : "f32", (long long)M, (long long)N, (long long)K,
                                (long long)i, (long long)j, g, want);
                }
            }
            ASSERT_OK(alloy_buffer_destroy(ab));
            ASSERT_OK(alloy_buffer_destroy(bb));
            ASSERT_OK(alloy_buffer_destroy(cb));
        }
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- bad inputs */

TEST(matmul_bad_inputs)
{
    alloy_device *dev = test_cpu_device(2);
    alloy_device *other = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    enum { BYTES = 8192 };
    alloy_buffer *in = test_buffer(dev, BYTES), *out = test_buffer(dev, BYTES);
    alloy_buffer *foreign = test_buffer(other, BYTES);
    float *ip = alloy_buffer_contents(in);
    for (int i = 0; i < BYTES / 4; i++)
        ip[i] = (float)(i % 7) - 3.0f;
    memset(alloy_buffer_contents(out), 0x5c, BYTES);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    alloy_matmul_desc md = alloy_matmul_desc_default();

    int64_t as[2] = {3, 5}, bs[2] = {5, 4}, cs[2] = {3, 4}, ns = 4;
    alloy_array A = alloy_array_contiguous(in, 0, ALLOY_F32, 2, as);
    alloy_array B = alloy_array_contiguous(in, 256, ALLOY_F32, 2, bs);
    alloy_array C = alloy_array_contiguous(out, 0, ALLOY_F32, 2, cs);
    alloy_array BIAS = alloy_array_contiguous(in, 512, ALLOY_F32, 1, &ns);
    alloy_array x, y;

    ASSERT_FAILS(alloy_encode_matmul(NULL, &md, &A, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                 "command");
    ASSERT_FAILS(alloy_encode_matmul(cb, NULL, &A, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                 "descriptor");
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, NULL, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT, "a");
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, NULL, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT, "b");
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, NULL), ALLOY_ERR_INVALID_ARGUMENT, "c");
    x = A, x.buffer = NULL;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                 "a.buffer");
    x = B, x.shape[0] = -5;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &x, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                 "b.shape");
    x = A, x.strides[1] = -1;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                 "a.strides");
    x = C, x.strides[0] = 0; /* c cannot broadcast */
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT,
                 "c.strides");
    x = C, x.offset = 1;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT, "c");
    x = BIAS, x.offset = 514;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, &x, &C), ALLOY_ERR_INVALID_ARGUMENT, "bias");
    x = A, x.offset = BYTES - 8;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT, "a");
    x = C, x.offset = BYTES + 16;
    x.shape[0] = 0;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT,
                 "c.offset");
    {
        int64_t hs[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
        x = alloy_array_contiguous(in, 0, ALLOY_F32, 2, hs);
        y = alloy_array_contiguous(in, 0, ALLOY_F32, 2, hs);
        alloy_array hc = alloy_array_contiguous(out, 0, ALLOY_F32, 2, hs);
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &y, NULL, &hc), ALLOY_ERR_INVALID_ARGUMENT,
                     "a");
        int64_t hs2[2] = {INT64_C(1) << 33, 5}, hst2[2] = {INT64_C(1) << 33, 1};
        x = alloy_array_strided(in, 0, ALLOY_F32, 2, hs2, hst2);
        int64_t hcs[2] = {INT64_C(1) << 33, 4};
        hc = alloy_array_contiguous(out, 0, ALLOY_F32, 2, hcs);
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &hc), ALLOY_ERR_INVALID_ARGUMENT,
                     "a");
        int64_t bst[2] = {INT64_MAX / 2, 1};
        x = alloy_array_strided(in, 0, ALLOY_F32, 2, bs, bst);
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &x, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                     "b");
    }
    x = B, x.buffer = foreign;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &x, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                 "b.buffer");
    x = C, x.buffer = foreign;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT,
                 "c.buffer");
    x = BIAS, x.buffer = foreign;
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, &x, &C), ALLOY_ERR_INVALID_ARGUMENT,
                 "bias.buffer");
    /* overlaps: c over a, c over b, c over bias, c = a exactly, self-overlapping c */
    x = alloy_array_contiguous(in, 40, ALLOY_F32, 2, cs);
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT, "c");
    x = alloy_array_contiguous(in, 256 + 60, ALLOY_F32, 2, cs);
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT, "b");
    x = alloy_array_contiguous(in, 512 - 16, ALLOY_F32, 2, cs);
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, &BIAS, &x), ALLOY_ERR_INVALID_ARGUMENT,
                 "bias");
    {
        int64_t sq[2] = {4, 4};
        alloy_array S = alloy_array_contiguous(in, 1024, ALLOY_F32, 2, sq);
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &S, &S, NULL, &S), ALLOY_ERR_INVALID_ARGUMENT,
                     "c");
        int64_t st[2] = {1, 1};
        x = alloy_array_strided(out, 0, ALLOY_F32, 2, cs, st);
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT,
                     "c");
        int64_t st2[3] = {4, 4, 1}, s3[3] = {2, 3, 4}; /* batch entries share memory */
        x = alloy_array_strided(out, 0, ALLOY_F32, 3, s3, st2);
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT,
                     "c");
    }
    /* shapes */
    x = alloy_array_contiguous(in, 256, ALLOY_F32, 2, (int64_t[2]){6, 4});
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &x, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT, "a");
    x = alloy_array_contiguous(out, 0, ALLOY_F32, 2, (int64_t[2]){3, 5});
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT, "c");
    x = alloy_array_contiguous(out, 0, ALLOY_F32, 2, (int64_t[2]){4, 4});
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT, "c");
    x = alloy_array_contiguous(in, 0, ALLOY_F32, 1, (int64_t[1]){5});
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT, "a");
    x = alloy_array_contiguous(out, 0, ALLOY_F32, 0, NULL);
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &x), ALLOY_ERR_INVALID_ARGUMENT, "c");
    {
        /* batch dims: a (2,3,5) with c (3,3,4) do not broadcast; b has more batch dims
         * than c; c's batch must be exactly the batch shape */
        x = alloy_array_contiguous(in, 0, ALLOY_F32, 3, (int64_t[3]){2, 3, 5});
        y = alloy_array_contiguous(out, 0, ALLOY_F32, 3, (int64_t[3]){3, 3, 4});
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &y), ALLOY_ERR_INVALID_ARGUMENT,
                     "a");
        x = alloy_array_contiguous(in, 0, ALLOY_F32, 4, (int64_t[4]){2, 1, 5, 4});
        y = alloy_array_contiguous(out, 0, ALLOY_F32, 3, (int64_t[3]){2, 3, 4});
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &x, NULL, &y), ALLOY_ERR_INVALID_ARGUMENT,
                     "b");
        x = alloy_array_contiguous(in, 0, ALLOY_F32, 3, (int64_t[3]){2, 3, 5});
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                     "a");
        x = alloy_array_contiguous(in, 0, ALLOY_F32, 3, (int64_t[3]){3, 3, 5});
        y = alloy_array_contiguous(out, 0, ALLOY_F32, 3, (int64_t[3]){1, 3, 4});
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &x, &B, NULL, &y), ALLOY_ERR_INVALID_ARGUMENT,
                     "a");
    }
    /* bias shape */
    x = alloy_array_contiguous(in, 512, ALLOY_F32, 1, (int64_t[1]){5});
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, &x, &C), ALLOY_ERR_INVALID_ARGUMENT, "bias");
    x = alloy_array_contiguous(in, 512, ALLOY_F32, 2, (int64_t[2]){1, 4});
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, &x, &C), ALLOY_ERR_INVALID_ARGUMENT, "bias");
    /* dtypes */
    {
        alloy_array a16 = A, b16 = B, c16 = C, c64 = C, a64 = A, b64 = B, cbf = C, ai = A, bi = B,
                    ci = C, bias64 = BIAS, biasi = BIAS, ax = A;
        a16.dtype = b16.dtype = c16.dtype = ALLOY_F16;
        a64.dtype = b64.dtype = c64.dtype = bias64.dtype = ALLOY_F64;
        cbf.dtype = ALLOY_BF16;
        ai.dtype = bi.dtype = ci.dtype = biasi.dtype = ALLOY_I32;
        ax.dtype = (alloy_dtype)11;
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &b16, NULL, &C), ALLOY_ERR_UNSUPPORTED, "b");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &a64, &B, NULL, &c64), ALLOY_ERR_UNSUPPORTED,
                     "b");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &c16), ALLOY_ERR_UNSUPPORTED, "c");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &c64), ALLOY_ERR_UNSUPPORTED, "c");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &a16, &b16, NULL, &cbf), ALLOY_ERR_UNSUPPORTED,
                     "c");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &a16, &b16, NULL, &c64), ALLOY_ERR_UNSUPPORTED,
                     "c");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &a64, &b64, NULL, &C), ALLOY_ERR_UNSUPPORTED,
                     "c");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, &bias64, &C), ALLOY_ERR_UNSUPPORTED,
                     "bias");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &a16, &b16, &bias64, &c16), ALLOY_ERR_UNSUPPORTED,
                     "bias");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, &biasi, &C), ALLOY_ERR_UNSUPPORTED,
                     "bias");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &ai, &bi, NULL, &ci), ALLOY_ERR_INVALID_ARGUMENT,
                     "a");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &A, &B, NULL, &ci), ALLOY_ERR_INVALID_ARGUMENT,
                     "c");
        ASSERT_FAILS(alloy_encode_matmul(cb, &md, &ax, &B, NULL, &C), ALLOY_ERR_INVALID_ARGUMENT,
                     "a.dtype");
    }

    /* The output buffer is untouched and the command buffer still works: one valid
     * product runs, and is the only thing that ran. */
    const unsigned char *o = alloy_buffer_contents(out);
    for (int i = 0; i < BYTES; i++)
        ASSERT_EQ(o[i], 0x5c);
    alloy_array Cok = alloy_array_contiguous(out, 4096, ALLOY_F32, 2, cs);
    ASSERT_OK(alloy_encode_matmul(cb, &md, &A, &B, &BIAS, &Cok));
    test_commit_wait(cb);
    for (int i = 0; i < BYTES; i++)
        if (i < 4096 || i >= 4096 + 48)
            ASSERT_EQ(o[i], 0x5c);
    const float *cr = (const float *)(o + 4096);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            double s = ip[128 + j];
            for (int k = 0; k < 5; k++)
                s += (double)ip[i * 5 + k] * (double)ip[64 + k * 4 + j];
            ASSERT(cr[i * 4 + j] == (float)s); /* small integers: exact */
        }
    ASSERT_OK(alloy_buffer_destroy(in));
    ASSERT_OK(alloy_buffer_destroy(out));
    ASSERT_OK(alloy_buffer_destroy(foreign));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    ASSERT_OK(alloy_device_close(other));
}

/* Small products read a row-major B in place through the masked direct kernel, edge
 * columns and all, straight into C: every column count of a sliver's edge (1..NR-1, a
 * whole sliver, one past), rows over whole and partial slivers, C and B contiguous and
 * padded (a write past the last column lands in the padding, which must not change), into
 * C directly (alpha 1, beta 0) and through the epilogue. */
TEST(matmul_direct_edges)
{
    const uint64_t seed = test_seed(0xd1ec7);
    test_rng r = {seed};
    alloy_device *dev = test_cpu_device(0);
    mm_ctx x = mm_ctx_new(dev, seed);
    const int64_t ms[] = {12, 13, 23, 24, 35}, ns[] = {1, 5, 8, 15, 16, 17, 31, 32, 33, 47, 63},
                  ks[] = {1, 37};
    const alloy_dtype ts[] = {ALLOY_F32, ALLOY_F64};
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (int v = 0; v < 16; v++) {
                    const alloy_dtype t = ts[v & 1];
                    const int blay = v & 2 ? L_PAD : L_ROW, clay = v & 4 ? L_PAD : L_ROW;
                    alloy_buffer *ab, *bb, *cbuf;
                    alloy_array a = make_matrix(&x, &r, t, 0, NULL, ms[mi], ks[ki], L_ROW, 0, &ab);
                    alloy_array b = make_matrix(&x, &r, t, 0, NULL, ks[ki], ns[ni], blay, 0, &bb);
                    alloy_array c = make_matrix(&x, &r, t, 0, NULL, ms[mi], ns[ni], clay, 0, &cbuf);
                    fill_view(&x, &r, &a);
                    fill_view(&x, &r, &b);
                    alloy_matmul_desc md = alloy_matmul_desc_default();
                    if (v & 8) {
                        md.alpha = 0.5;
                        md.beta = 1.0;
                        fill_view(&x, &r, &c);
                    }
                    run_and_check(&x, &md, &a, &b, NULL, &c, (mm_ref_opts){0, 1});
                    x.index++;
                    ASSERT_OK(alloy_buffer_destroy(ab));
                    ASSERT_OK(alloy_buffer_destroy(bb));
                    ASSERT_OK(alloy_buffer_destroy(cbuf));
                }
    mm_ctx_free(&x);
    ASSERT_OK(alloy_device_close(dev));
}

/* A batch dimension of extent 0 is an empty product: it must encode and run, writing
 * nothing (numpy gives an empty result). Large ones: test_empty_batches.c. */
TEST(matmul_zero_batch)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    alloy_buffer *b = test_buffer(dev, 4096);
    memset(alloy_buffer_contents(b), 0x33, 4096);
    alloy_array A = alloy_array_contiguous(b, 0, ALLOY_F32, 3, (int64_t[3]){1, 2, 3});
    alloy_array B = alloy_array_contiguous(b, 1024, ALLOY_F32, 3, (int64_t[3]){1, 3, 4});
    alloy_array C = alloy_array_contiguous(b, 2048, ALLOY_F32, 3, (int64_t[3]){0, 2, 4});
    alloy_cmdbuf *cb = test_cmdbuf(q);
    alloy_matmul_desc md = alloy_matmul_desc_default();
    ASSERT_OK(alloy_encode_matmul(cb, &md, &A, &B, NULL, &C));
    test_commit_wait(cb);
    for (int i = 0; i < 4096; i++)
        ASSERT_EQ(((unsigned char *)alloy_buffer_contents(b))[i], 0x33);
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST_LIST{
    TEST_ENTRY(matmul_random_vs_blas),
    TEST_ENTRY(matmul_exact_small_integers),
    TEST_ENTRY(matmul_degenerate_and_never_read),
    TEST_ENTRY(matmul_batch_broadcast),
    TEST_ENTRY(matmul_transposes),
    TEST_ENTRY(matmul_power_of_two_row_strides),
    TEST_ENTRY(matmul_bias_dtypes),
    TEST_ENTRY(matmul_half_precision),
    TEST_ENTRY(matmul_kernels_bitwise),
    TEST_ENTRY(matmul_broadcast_a_rows),
    TEST_ENTRY(matmul_bad_inputs),
    TEST_ENTRY(matmul_direct_edges),
    TEST_ENTRY(matmul_zero_batch),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
