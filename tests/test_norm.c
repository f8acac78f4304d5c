/* alloy_encode_layer_norm (layer and RMS) against a float64 (long double where it
 * matters) reference: every x/y dtype pairing (mixed ones included), gamma and beta of
 * every float dtype or NULL, mean and rstd f32, f64 or NULL, eps values, constant rows
 * (variance 0: y is beta exactly), huge (1e30, and f16/bf16 overflow to infinity) and tiny
 * (1e-30) magnitudes, D = 1 and D = 0, strided x, y, gamma, beta, mean, rstd, batched and
 * broadcast leading dims, and in place (y is x) equal bit for bit to out of place.
 *
 * The check: the math runs in f32 (f64 for f64 x), so each value may be off from the exact
 * one by a bound derived from the f32 (f64) operations (sums of D terms in lanes, the
 * centring, the square root, the products), and then it is rounded to y's dtype. The
 * result must therefore lie between the rounded ends of [exact - bound, exact + bound]
 * (rounding is monotonic), which also settles overflow: a value far beyond f16's range
 * must be infinity of its sign, one near the edge may be either. */
#include "oracle.h"

typedef struct nm_ctx {
    alloy_device *dev;
    alloy_queue *q;
    ref_conv conv;
    uint64_t seed;
    int index;
} nm_ctx;

static nm_ctx ctx_new(uint64_t seed)
{
    nm_ctx x;
    memset(&x, 0, sizeof x);
    x.dev = test_cpu_device(0);
    x.q = test_queue(x.dev);
    x.conv = ref_conv_new();
    x.seed = test_seed(seed);
    return x;
}

static void ctx_free(nm_ctx *x)
{
    fprintf(stderr, "  %d cases\n", x->index);
    ASSERT_OK(alloy_queue_destroy(x->q));
    ASSERT_OK(alloy_device_close(x->dev));
    ref_conv_free(&x->conv);
}

#define NONE (-1) /* an absent optional operand */

enum { FILL_RANDOM, FILL_CONST, FILL_RANDOM_SIGNS };

typedef struct nm_case {
    int xt, yt, gt, bt, mt, rt; /* dtypes, NONE for NULL */
    int rms;
    double eps;
    int br;
    int64_t bsh[3];
    int64_t d;
    int64_t xs, ys, gs, bs, ss; /* last-dim strides of x, y, gamma, beta; stats' stride */
    int pad;                    /* spare elements between rows */
    int x_bcast;                /* x's first batch dim has stride 0 */
    int in_place;
    int fill;
    double scale, offset; /* x = offset + scale * (value) */
    double g_scale, b_scale, b_offset;
    int g_const; /* gamma all g_scale (and beta all b_offset) */
} nm_case;

static nm_case ncase(alloy_dtype xt, alloy_dtype yt, int64_t d)
{
    nm_case c;
    memset(&c, 0, sizeof c);
    c.xt = (int)xt;
    c.yt = (int)yt;
    c.gt = c.bt = c.mt = c.rt = ALLOY_F32;
    c.eps = 1e-5;
    c.d = d;
    c.xs = c.ys = c.gs = c.bs = c.ss = 1;
    c.fill = FILL_RANDOM;
    c.scale = 1;
    c.g_scale = 1;
    c.b_scale = 1;
    c.br = 1;
    c.bsh[0] = 3;
    return c;
}

static const char *dn(int t) { return t == NONE ? "NULL" : dtype_name((alloy_dtype)t); }

static void describe(char *s, size_t cap, const nm_ctx *x, const nm_case *c)
{
    snprintf(s, cap,
             "seed 0x%llx case %d: %s x %s y %s gamma %s beta %s mean %s rstd %s, D %lld, "
             "eps %g, strides x %lld y %lld, %s%s, x = %g + %g u",
             (unsigned long long)x->seed, x->index, c->rms ? "rms" : "layer", dn(c->xt), dn(c->yt),
             dn(c->gt), dn(c->bt), dn(c->mt), dn(c->rt), (long long)c->d, c->eps, (long long)c->xs,
             (long long)c->ys, c->in_place ? "in place" : "out of place",
             c->x_bcast ? ", x broadcast" : "", c->offset, c->scale);
}

/* A view of shape (bsh..., last) (last < 0: no last dim) with last stride ls, `pad`
 * spare elements after each row and each batch block, batch dim 0 of stride 0 when
 * bcast. */
static alloy_array view(alloy_buffer *buf, size_t off, alloy_dtype dt, int br, const int64_t *bsh,
                        int64_t last, int64_t ls, int pad, int bcast, size_t *end)
{
    int64_t shape[ALLOY_MAX_RANK], strides[ALLOY_MAX_RANK];
    int rank = br + (last >= 0);
    int64_t span = 1;
    if (last >= 0) {
        shape[br] = last;
        strides[br] = ls;
        span = last > 0 ? (last - 1) * ls + 1 : 1;
    } else if (br > 0) {
        ls = ls > 0 ? ls : 1;
    }
    for (int d = br - 1; d >= 0; d--) {
        shape[d] = bsh[d];
        if (bcast && d == 0) {
            strides[d] = 0;
            continue;
        }
        /* stats (no last dim): the innermost batch dim takes the stride ls */
        strides[d] = (last < 0 && d == br - 1) ? ls : span + pad;
        span = strides[d] * (bsh[d] > 0 ? bsh[d] : 1);
    }
    if (end)
        *end = off + (size_t)span * alloy_dtype_size(dt);
    return alloy_array_strided(buf, off, dt, rank, shape, strides);
}

static int64_t rows_of(const nm_case *c)
{
    int64_t r = 1;
    for (int d = 0; d < c->br; d++)
        r *= c->bsh[d];
    return r;
}

/* Element j of row r of a (bsh..., D) view, or of the stat (bsh...) view (j ignored). */
static void *row_elem(const alloy_array *a, int br, const int64_t *bsh, int64_t r, int64_t j)
{
    int64_t idx[ALLOY_MAX_RANK] = {0};
    for (int d = br - 1; d >= 0; d--) {
        idx[d] = r % bsh[d];
        r /= bsh[d];
    }
    if (a->rank > br)
        idx[br] = j;
    return view_ptr(a, idx);
}

/* double -> dtype -> double, rounding to nearest even (infinity on overflow). */
static double round_to(const nm_ctx *x, int t, double v)
{
    unsigned char tmp[8];
    ref_store(&x->conv, (alloy_dtype)t, tmp, v);
    return ref_load((alloy_dtype)t, tmp);
}

/* got must be in [round(want - err), round(want + err)]; NaN only for NaN. */
static int within(const nm_ctx *x, int t, double got, long double want, long double err)
{
    if (isnan((double)want))
        return isnan(got);
    if (isnan(got))
        return 0;
    double lo = round_to(x, t, (double)(want - err)), hi = round_to(x, t, (double)(want + err));
    if (isinf((double)want)) /* both ends are that infinity */
        lo = hi = (double)want;
    return got >= lo && got <= hi;
}

static double fill_value(const nm_case *c, test_rng *r)
{
    double u = rng_uniform(r);
    if (c->fill == FILL_CONST)
        return c->offset;
    if (c->fill == FILL_RANDOM_SIGNS) /* magnitudes in [0.5, 1), either sign */
        u = (u < 0 ? -0.5 : 0.5) + u / 2;
    return c->offset + c->scale * u;
}

/* Runs one case and checks it against the reference; fails loudly. */
static void run_case(nm_ctx *x, test_rng *r, const nm_case *c)
{
    char what[400];
    x->index++;
    describe(what, sizeof what, x, c);
    const int64_t D = c->d, rows = rows_of(c);
    const alloy_dtype xt = (alloy_dtype)c->xt, yt = (alloy_dtype)c->yt;
    size_t end;
    alloy_array xa =
        view(NULL, alloy_dtype_size(xt) * 2, xt, c->br, c->bsh, D, c->xs, c->pad, c->x_bcast, &end);
    alloy_buffer *xbuf = poison_buffer(x->dev, end + 16);
    xa = on_buffer(xa, xbuf);
    alloy_array ya = xa;
    alloy_buffer *ybuf = xbuf;
    if (!c->in_place) {
        ya = view(NULL, alloy_dtype_size(yt), yt, c->br, c->bsh, D, c->ys, c->pad + 1, 0, &end);
        ybuf = poison_buffer(x->dev, end + 16);
        ya = on_buffer(ya, ybuf);
    } else {
        ASSERT(c->xt == c->yt && !c->x_bcast);
    }
    alloy_array ga, ba, ma, ra;
    alloy_buffer *gbuf = NULL, *bbuf = NULL, *mbuf = NULL, *rbuf = NULL;
    if (c->gt != NONE) {
        ga = view(NULL, 0, (alloy_dtype)c->gt, 0, NULL, D, c->gs, 0, 0, &end);
        gbuf = poison_buffer(x->dev, end + 8);
        ga = on_buffer(ga, gbuf);
    }
    if (c->bt != NONE) {
        ba = view(NULL, 8, (alloy_dtype)c->bt, 0, NULL, D, c->bs, 0, 0, &end);
        bbuf = poison_buffer(x->dev, end + 8);
        ba = on_buffer(ba, bbuf);
    }
    if (c->mt != NONE) {
        ma = view(NULL, 0, (alloy_dtype)c->mt, c->br, c->bsh, -1, c->ss, 1, 0, &end);
        mbuf = poison_buffer(x->dev, end + 8);
        ma = on_buffer(ma, mbuf);
    }
    if (c->rt != NONE) {
        ra = view(NULL, 8, (alloy_dtype)c->rt, c->br, c->bsh, -1, c->ss, 2, 0, &end);
        rbuf = poison_buffer(x->dev, end + 8);
        ra = on_buffer(ra, rbuf);
    }

    /* inputs, and their exact values as alloy sees them */
    double *hx = host_alloc(rows * D), *hg = host_alloc(D), *hb = host_alloc(D);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < D; j++) {
            void *p = row_elem(&xa, c->br, c->bsh, i, j);
            if (!c->x_bcast || i < rows / c->bsh[0])
                ref_store(&x->conv, xt, p, fill_value(c, r)); /* a broadcast row once */
        }
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < D; j++)
            hx[i * D + j] = ref_load(xt, row_elem(&xa, c->br, c->bsh, i, j));
    for (int64_t j = 0; j < D; j++) {
        hg[j] = 1;
        hb[j] = 0;
        if (c->gt != NONE) {
            void *p = elem_at(&ga, 1, 0, j, 0);
            ref_store(&x->conv, (alloy_dtype)c->gt, p,
                      c->g_const ? c->g_scale : c->g_scale * (1 + rng_uniform(r)));
            hg[j] = ref_load((alloy_dtype)c->gt, p);
        }
        if (c->bt != NONE) {
            void *p = elem_at(&ba, 1, 0, j, 0);
            ref_store(&x->conv, (alloy_dtype)c->bt, p,
                      c->g_const ? c->b_offset : c->b_offset + c->b_scale * rng_uniform(r));
            hb[j] = ref_load((alloy_dtype)c->bt, p);
        }
    }
    unsigned char *x0 = snapshot(xbuf), *y0 = snapshot(ybuf);
    unsigned char *g0 = gbuf ? snapshot(gbuf) : NULL, *b0 = bbuf ? snapshot(bbuf) : NULL;
    unsigned char *m0 = mbuf ? snapshot(mbuf) : NULL, *r0 = rbuf ? snapshot(rbuf) : NULL;

    alloy_norm_desc nd = alloy_norm_desc_default();
    ASSERT(nd.eps == 1e-5 && nd.rms == 0);
    nd.eps = c->eps;
    nd.rms = c->rms;
    alloy_cmdbuf *cb = test_cmdbuf(x->q);
    alloy_status st = alloy_encode_layer_norm(cb, &nd, &xa, gbuf ? &ga : NULL, bbuf ? &ba : NULL,
                                              &ya, mbuf ? &ma : NULL, rbuf ? &ra : NULL);
    if (st != ALLOY_OK)
        FAIL_AT("%s: encode said %s: %s", what, alloy_status_string(st), alloy_last_error());
    test_commit_wait(cb);

    /* inputs unchanged (x unless in place), nothing outside the outputs written */
    if (!c->in_place && memcmp(x0, alloy_buffer_contents(xbuf), alloy_buffer_size(xbuf)) != 0)
        FAIL_AT("%s: x's buffer changed", what);
    if (gbuf && memcmp(g0, alloy_buffer_contents(gbuf), alloy_buffer_size(gbuf)) != 0)
        FAIL_AT("%s: gamma's buffer changed", what);
    if (bbuf && memcmp(b0, alloy_buffer_contents(bbuf), alloy_buffer_size(bbuf)) != 0)
        FAIL_AT("%s: beta's buffer changed", what);
    const alloy_array *yv[1] = {&ya}, *mv[1] = {&ma}, *rv[1] = {&ra};
    check_outside(ybuf, y0, yv, 1, what);
    if (mbuf)
        check_outside(mbuf, m0, mv, 1, what);
    if (rbuf)
        check_outside(rbuf, r0, rv, 1, what);

    /* the reference, row by row */
    const int f64 = xt == ALLOY_F64;
    const long double um = f64 ? 0x1p-53L : 0x1p-24L;
    const long double tmin = f64 ? 0x1p-1074L : 0x1p-149L;
    const long double K = 2.0L * ((long double)D / 16 + 12);
    for (int64_t i = 0; i < rows && D > 0; i++) {
        const double *xr = hx + i * D;
        long double s = 0, M = 0;
        for (int64_t j = 0; j < D; j++) {
            s += xr[j];
            if (fabsl((long double)xr[j]) > M)
                M = fabsl((long double)xr[j]);
        }
        long double mean = c->rms ? 0 : s / D, v = 0;
        for (int64_t j = 0; j < D; j++)
            v += ((long double)xr[j] - mean) * ((long double)xr[j] - mean);
        v /= D;
        long double rstd = 1.0L / sqrtl(v + (long double)c->eps);
        long double delta = c->rms ? 0 : K * um * M;
        long double rel_r = K * um + (delta * rstd) * (delta * rstd) + D * tmin * rstd * rstd;
        for (int64_t j = 0; j < D; j++) {
            long double xc = (long double)xr[j] - mean;
            long double xhat = xc * rstd;
            long double want = xhat * hg[j] + hb[j];
            long double exh = rstd * (delta + um * fabsl(xc)) + rel_r * fabsl(xhat) + tmin;
            long double err = fabsl((long double)hg[j]) * exh +
                              2 * um * (fabsl(xhat * hg[j]) + fabsl((long double)hb[j])) + tmin;
            if (isinf((double)rstd) || isnan((double)want)) /* eps 0 with variance 0 */
                want = xc == 0 ? NAN : want;
            double got = ref_load(yt, row_elem(&ya, c->br, c->bsh, i, j));
            if (!within(x, c->yt, got, want, err))
                FAIL_AT("%s: row %lld, y[%lld] = %.9g, expected %.9Lg +- %.3Lg (x %.9g, mean "
                        "%.9Lg, rstd %.9Lg, gamma %g, beta %g)",
                        what, (long long)i, (long long)j, got, want, err, xr[j], mean, rstd, hg[j],
                        hb[j]);
        }
        if (mbuf) {
            double got = ref_load((alloy_dtype)c->mt, row_elem(&ma, c->br, c->bsh, i, 0));
            if (!within(x, c->mt, got, mean, delta + tmin))
                FAIL_AT("%s: row %lld, mean %.17g, expected %.17Lg", what, (long long)i, got, mean);
        }
        if (rbuf) {
            double got = ref_load((alloy_dtype)c->rt, row_elem(&ra, c->br, c->bsh, i, 0));
            if (!within(x, c->rt, got, rstd, rel_r * rstd + tmin))
                FAIL_AT("%s: row %lld, rstd %.17g, expected %.17Lg", what, (long long)i, got, rstd);
        }
    }
    free(hx);
    free(hg);
    free(hb);
    free(x0);
    free(y0);
    free(g0);
    free(b0);
    free(m0);
    free(r0);
    ASSERT_OK(alloy_buffer_destroy(xbuf));
    if (!c->in_place)
        ASSERT_OK(alloy_buffer_destroy(ybuf));
    ASSERT_OK(alloy_buffer_destroy(gbuf));
    ASSERT_OK(alloy_buffer_destroy(bbuf));
    ASSERT_OK(alloy_buffer_destroy(mbuf));
    ASSERT_OK(alloy_buffer_destroy(rbuf));
}

static const alloy_dtype fdt[4] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};

/* Every x/y dtype pairing, layer and RMS, row lengths around the 16 lanes and the
 * 256-element chunks. */
TEST(dtype_pairs)
{
    nm_ctx x = ctx_new(0xd7e5);
    test_rng r = {x.seed};
    static const int64_t ds[] = {1, 7, 16, 33, 255, 256, 257, 1000};
    for (int xi = 0; xi < 4; xi++)
        for (int yi = 0; yi < 4; yi++)
            for (int di = 0; di < 8; di++)
                for (int rms = 0; rms < 2; rms++) {
                    nm_case c = ncase(fdt[xi], fdt[yi], ds[di]);
                    c.rms = rms;
                    if (rms)
                        c.mt = NONE;
                    c.offset = (di % 3) * 0.25;
                    run_case(&x, &r, &c);
                }
    ctx_free(&x);
}

/* Random configurations: gamma, beta of any float dtype or NULL, mean and rstd f32, f64
 * or NULL, eps, batch ranks 0..3, strides 1..3 everywhere, x broadcast over its first
 * batch dim, in place. */
TEST(random_configurations)
{
    nm_ctx x = ctx_new(0xc0f1);
    test_rng r = {x.seed};
    static const double epss[] = {0, 1e-12, 1e-6, 1e-5, 0.1, 1, 100};
    static const int64_t ds[] = {1, 2, 3, 5, 16, 17, 31, 64, 100, 256, 300, 513};
    for (int it = 0; it < 400; it++) {
        nm_case c =
            ncase(fdt[rng_range(&r, 0, 3)], fdt[rng_range(&r, 0, 3)], ds[rng_range(&r, 0, 11)]);
        c.rms = (int)rng_range(&r, 0, 1);
        c.gt = (int)rng_range(&r, -1, 3);
        c.bt = (int)rng_range(&r, -1, 3);
        c.mt = c.rms ? NONE : (int)rng_range(&r, -1, 1);
        c.rt = (int)rng_range(&r, -1, 1);
        c.eps = epss[rng_range(&r, 0, 6)];
        c.br = (int)rng_range(&r, 0, 3);
        for (int d = 0; d < c.br; d++)
            c.bsh[d] = rng_range(&r, 1, 3);
        c.xs = rng_range(&r, 1, 3);
        c.ys = rng_range(&r, 1, 3);
        c.gs = rng_range(&r, 1, 2);
        c.bs = rng_range(&r, 1, 2);
        c.ss = rng_range(&r, 1, 2);
        c.pad = (int)rng_range(&r, 0, 3);
        c.offset = rng_range(&r, 0, 2) == 0 ? rng_uniform(&r) * 4 : 0;
        c.scale = rng_range(&r, 0, 1) ? 1 : 3;
        c.g_scale = rng_range(&r, 0, 1) ? 1 : -0.5;
        c.b_offset = rng_range(&r, 0, 1) ? 0 : 0.5;
        if (c.eps == 0) /* a zero variance with eps 0 is 0/0: keep rows spread */
            c.fill = FILL_RANDOM_SIGNS;
        if (c.br > 0 && c.bsh[0] > 1 && rng_range(&r, 0, 4) == 0)
            c.x_bcast = 1;
        else if (c.yt == c.xt && rng_range(&r, 0, 3) == 0)
            c.in_place = 1;
        run_case(&x, &r, &c);
    }
    ctx_free(&x);
}

/* eps from 0 to 1e3, layer and RMS, with small and large variances. */
TEST(eps_values)
{
    nm_ctx x = ctx_new(0xe95);
    test_rng r = {x.seed};
    static const double epss[] = {0, 1e-12, 1e-5, 1e-2, 1, 1e3};
    for (int xi = 0; xi < 4; xi++)
        for (int e = 0; e < 6; e++)
            for (int rms = 0; rms < 2; rms++)
                for (int sc = 0; sc < 2; sc++) {
                    nm_case c = ncase(fdt[xi], ALLOY_F32, 40);
                    c.eps = epss[e];
                    c.rms = rms;
                    c.mt = rms ? NONE : ALLOY_F64;
                    c.rt = ALLOY_F64;
                    c.fill = FILL_RANDOM_SIGNS;
                    c.scale = sc ? 1e-3 : 10;
                    run_case(&x, &r, &c);
                }
    ctx_free(&x);
}

/* Rows of one value c: the mean is c exactly (c dyadic, D a power of two, so every
 * partial sum is exact in any order), x - mean is 0, and y is beta exactly, with or
 * without gamma (checked with ==, besides the reference check); rstd is 1/sqrt(eps). Includes c =
 * 2^100 ~ 1.3e30 and 2^-100 ~ 7.9e-31 in f32. */
TEST(constant_rows)
{
    nm_ctx x = ctx_new(0xc0575);
    test_rng r = {x.seed};
    static const double cs[] = {0.75, -3, 0x1p100, -0x1p100, 0x1p-100, 0};
    static const int64_t ds[] = {1, 16, 64, 256, 1024};
    int i = 0;
    for (int xi = 0; xi < 4; xi++)
        for (int ci = 0; ci < 6; ci++)
            for (int di = 0; di < 5; di++, i++) {
                if ((fdt[xi] == ALLOY_F16) && fabs(cs[ci]) > 60000)
                    continue; /* beyond f16 */
                if ((fdt[xi] == ALLOY_F16) && cs[ci] != 0 && fabs(cs[ci]) < 1e-7)
                    continue; /* below f16 */
                nm_case c = ncase(fdt[xi], fdt[(xi + i) % 4], ds[di]);
                c.fill = FILL_CONST;
                c.offset = cs[ci];
                c.gt = i % 3 == 0 ? NONE : (int)fdt[i % 4];
                c.bt = i % 5 == 0 ? NONE : (int)fdt[(i + 1) % 4];
                c.mt = i % 2 ? ALLOY_F64 : ALLOY_F32;
                c.g_scale = 1.5;
                c.b_offset = 0.25;
                c.b_scale = 1;
                run_case(&x, &r, &c);
                /* and exactly: y == beta (rounded to y's dtype) */
                int64_t sh[2] = {2, c.d};
                alloy_buffer *buf = poison_buffer(x.dev, (size_t)(2 * c.d) * 8 + 64);
                alloy_buffer *out = poison_buffer(x.dev, (size_t)(2 * c.d) * 8 + 64);
                alloy_buffer *bb = poison_buffer(x.dev, (size_t)c.d * 8);
                alloy_array xa = alloy_array_contiguous(buf, 0, (alloy_dtype)c.xt, 2, sh);
                alloy_array ya = alloy_array_contiguous(out, 0, (alloy_dtype)c.yt, 2, sh);
                alloy_array ba = alloy_array_contiguous(bb, 0, ALLOY_F32, 1, &c.d);
                for (int64_t k = 0; k < 2 * c.d; k++)
                    ref_store(&x.conv, xa.dtype,
                              (char *)alloy_buffer_contents(buf) +
                                  (size_t)k * alloy_dtype_size(xa.dtype),
                              cs[ci]);
                alloy_buffer *gb = poison_buffer(x.dev, (size_t)c.d * 8);
                alloy_array ga = alloy_array_contiguous(gb, 0, ALLOY_F32, 1, &c.d);
                float *bp = alloy_buffer_contents(bb), *gp = alloy_buffer_contents(gb);
                for (int64_t k = 0; k < c.d; k++) {
                    bp[k] = (float)(0.125 * (double)(k % 7) - 0.5);
                    gp[k] = (float)(1 + 100 * rng_uniform(&r));
                }
                alloy_norm_desc nd = alloy_norm_desc_default();
                alloy_cmdbuf *cb = test_cmdbuf(x.q);
                ASSERT_OK(alloy_encode_layer_norm(cb, &nd, &xa, i % 2 ? &ga : NULL, &ba, &ya, NULL,
                                                  NULL));
                test_commit_wait(cb);
                for (int64_t k = 0; k < 2 * c.d; k++) {
                    double got = ref_load(ya.dtype, (char *)alloy_buffer_contents(out) +
                                                        (size_t)k * alloy_dtype_size(ya.dtype));
                    double want = round_to(&x, c.yt, (double)bp[k % c.d]);
                    if (got != want)
                        FAIL_AT("constant rows of %g (%s, D %lld): y[%lld] = %g, not beta %g",
                                cs[ci], dtype_name(xa.dtype), (long long)c.d, (long long)k, got,
                                want);
                }
                ASSERT_OK(alloy_buffer_destroy(buf));
                ASSERT_OK(alloy_buffer_destroy(out));
                ASSERT_OK(alloy_buffer_destroy(bb));
                ASSERT_OK(alloy_buffer_destroy(gb));
            }
    ctx_free(&x);
}

/* Huge and tiny magnitudes. Tiny: 1e-30 rows (f32 squares underflow; with eps > 0 that
 * changes nothing visible). Huge: 1e18 rows in f32 (squares near f32's top), 1e30 and 1e150
 * rows in f64. (Constant rows of 2^100 in f32: constant_rows; spread rows of 1e30 in
 * f32: huge_f32_rows.) */
TEST(huge_and_tiny_magnitudes)
{
    nm_ctx x = ctx_new(0x4a9e);
    test_rng r = {x.seed};
    for (int rms = 0; rms < 2; rms++)
        for (int yi = 0; yi < 4; yi++) {
            nm_case c = ncase(ALLOY_F32, fdt[yi], 64);
            c.rms = rms;
            c.mt = rms ? NONE : ALLOY_F64;
            c.rt = ALLOY_F64;
            c.fill = FILL_RANDOM_SIGNS;
            c.scale = 1e-30; /* tiny */
            run_case(&x, &r, &c);
            c.xt = ALLOY_F64;
            run_case(&x, &r, &c);
            c.xt = ALLOY_BF16;
            run_case(&x, &r, &c);
            c.xt = ALLOY_F32;
            c.scale = 1e18; /* squares 1e36, sums of 64 of them still finite in f32 */
            run_case(&x, &r, &c);
            c.xt = ALLOY_F64;
            c.scale = 1e150;
            run_case(&x, &r, &c);
            c.scale = 1e30;
            run_case(&x, &r, &c);
        }
    ctx_free(&x);
}

/* Rows of magnitude 1e30 in f32 (and bf16) x with an ordinary spread: the exact mean,
 * rstd (~1e-30) and y (values of order 1) are all well inside f32's range, so the f32
 * math must deliver them. The squares of the deviations (~1e60) do not fit in f32: an
 * implementation that sums them unscaled gets var = inf, rstd = 0 and y = beta. */
TEST(huge_f32_rows)
{
    nm_ctx x = ctx_new(0x4a9f);
    test_rng r = {x.seed};
    for (int rms = 0; rms < 2; rms++)
        for (int xi = 0; xi < 2; xi++) {
            nm_case c = ncase(xi ? ALLOY_BF16 : ALLOY_F32, ALLOY_F32, 64);
            c.rms = rms;
            c.mt = rms ? NONE : ALLOY_F32;
            c.fill = FILL_RANDOM_SIGNS;
            c.scale = 1e30;
            run_case(&x, &r, &c);
        }
    ctx_free(&x);
}

/* f16 and bf16 outputs beyond their range: gamma 1e5 and beta 7e4 take y past 65504;
 * values around the f16 overflow threshold 65520 (beta alone, gamma 0); bf16 past
 * 3.39e38. Infinity exactly where the exact value rounds to it (away from the edge). */
TEST(output_overflow)
{
    nm_ctx x = ctx_new(0x0f);
    test_rng r = {x.seed};
    for (int xi = 0; xi < 4; xi++)
        for (int rms = 0; rms < 2; rms++) {
            nm_case c = ncase(fdt[xi], ALLOY_F16, 50);
            c.rms = rms;
            c.mt = NONE;
            c.gt = ALLOY_F32;
            c.g_scale = 1e5;
            run_case(&x, &r, &c);
            c.g_scale = 1;
            c.b_offset = 7e4;
            c.b_scale = 2e4;
            run_case(&x, &r, &c);
            c.b_offset = -7e4;
            run_case(&x, &r, &c);
            /* y = beta exactly (gamma 0): 65504 stays, 65519 rounds down, 65520 up */
            static const double edge[] = {65504, 65519, 65519.99, 65520, 65536, -65520, -65519};
            for (int k = 0; k < 7; k++) {
                c.gt = ALLOY_F32;
                c.g_const = 1;
                c.g_scale = 0;
                c.bt = ALLOY_F64;
                c.b_offset = edge[k];
                run_case(&x, &r, &c);
            }
            nm_case b = ncase(fdt[xi], ALLOY_BF16, 20);
            b.rms = rms;
            b.mt = NONE;
            b.bt = ALLOY_F64;
            b.gt = ALLOY_F64;
            b.g_const = 1;
            b.g_scale = 0;
            b.b_offset = 3.4e38; /* f32 finite, beyond bf16's largest */
            run_case(&x, &r, &b);
            b.b_offset = -3.38e38; /* bf16 finite */
            run_case(&x, &r, &b);
        }
    ctx_free(&x);
}

/* f64 x: the f64 result is rounded once to an f16 or bf16 y (as alloy_encode_copy
 * narrows f64), not through f32 first. With D = 1, y = beta exactly; beta = m - 2^-40
 * where m, the midpoint between two neighbouring f16 (bf16) values, is an f32 value: a
 * single rounding gives the lower neighbour, a detour through f32 lands on m itself and
 * the tie goes to the even neighbour above. */
TEST(f64_rounds_once_to_half_outputs)
{
    nm_ctx x = ctx_new(0x2d);
    static const struct {
        alloy_dtype yt;
        double beta, want;
    } cases[] = {
        {ALLOY_BF16, 1.08984375 - 0x1p-40, 1.0859375}, /* bf16 1+11/128 vs 1+12/128 */
        {ALLOY_BF16, -(1.08984375 - 0x1p-40), -1.0859375},
        {ALLOY_F16, 1 + 3 * 0x1p-11 - 0x1p-40, 1 + 0x1p-10}, /* f16 1+2^-10 vs 1+2^-9 */
        {ALLOY_F16, 1024 + 3 * 0x1p-1 - 0x1p-30, 1024 + 1},  /* ulp 1 at 1024 */
    };
    for (int k = 0; k < 4; k++)
        for (int rms = 0; rms < 2; rms++) {
            int64_t sh[2] = {1, 1}, one = 1;
            alloy_buffer *b = poison_buffer(x.dev, 64);
            double *p = alloy_buffer_contents(b);
            p[0] = 0.5;           /* x */
            p[1] = cases[k].beta; /* beta */
            p[2] = 0;             /* gamma: y = 0 * xhat + beta for RMS as well */
            alloy_array xa = alloy_array_contiguous(b, 0, ALLOY_F64, 2, sh);
            alloy_array ba = alloy_array_contiguous(b, 8, ALLOY_F64, 1, &one);
            alloy_array ga = alloy_array_contiguous(b, 16, ALLOY_F64, 1, &one);
            alloy_array ya = alloy_array_contiguous(b, 32, cases[k].yt, 2, sh);
            alloy_norm_desc nd = alloy_norm_desc_default();
            nd.rms = rms;
            alloy_cmdbuf *cb = test_cmdbuf(x.q);
            ASSERT_OK(alloy_encode_layer_norm(cb, &nd, &xa, &ga, &ba, &ya, NULL, NULL));
            test_commit_wait(cb);
            double got = ref_load(cases[k].yt, (char *)alloy_buffer_contents(b) + 32);
            if (got != cases[k].want)
                FAIL_AT("%s, f64 x, %s y: beta %.17g gave y = %.17g; rounded once it is %.17g",
                        rms ? "rms" : "layer", dtype_name(cases[k].yt), cases[k].beta, got,
                        cases[k].want);
            ASSERT_OK(alloy_buffer_destroy(b));
        }
    ctx_free(&x);
}

/* D = 1: layer norm gives beta (x - mean is 0), RMS x / sqrt(x^2 + eps) * gamma + beta. */
TEST(one_element_rows)
{
    nm_ctx x = ctx_new(0x1e1);
    test_rng r = {x.seed};
    for (int xi = 0; xi < 4; xi++)
        for (int yi = 0; yi < 4; yi++)
            for (int rms = 0; rms < 2; rms++) {
                nm_case c = ncase(fdt[xi], fdt[yi], 1);
                c.rms = rms;
                c.mt = rms ? NONE : (int)fdt[(xi + yi) % 2];
                c.rt = fdt[(xi + yi + 1) % 2];
                c.br = 2;
                c.bsh[0] = 4;
                c.bsh[1] = 5;
                c.xs = 2;
                c.ys = 3;
                c.offset = 2;
                run_case(&x, &r, &c);
            }
    ctx_free(&x);
}

/* D = 0 (rows of nothing) and no rows at all: success; y has no elements and nothing
 * outside the outputs is written. */
TEST(empty_rows)
{
    nm_ctx x = ctx_new(0xe0);
    test_rng r = {x.seed};
    for (int xi = 0; xi < 4; xi++)
        for (int rms = 0; rms < 2; rms++) {
            nm_case c = ncase(fdt[xi], fdt[3 - xi], 0);
            c.rms = rms;
            c.mt = rms ? NONE : ALLOY_F32;
            run_case(&x, &r, &c);
            c.d = 8;
            c.bsh[0] = 0;
            run_case(&x, &r, &c);
            c.br = 2;
            c.bsh[0] = 3;
            c.bsh[1] = 0;
            run_case(&x, &r, &c);
        }
    ctx_free(&x);
}

/* Strided and batched: non-unit last strides for x and y (and gamma, beta, stats),
 * padded batch dims of rank 3, x broadcast over its first batch dim. */
TEST(strided_and_batched)
{
    nm_ctx x = ctx_new(0x57d);
    test_rng r = {x.seed};
    int i = 0;
    for (int xi = 0; xi < 4; xi++)
        for (int yi = 0; yi < 4; yi++, i++) {
            nm_case c = ncase(fdt[xi], fdt[yi], i % 2 ? 300 : 24);
            c.br = 3;
            c.bsh[0] = 2;
            c.bsh[1] = 3;
            c.bsh[2] = 2;
            c.xs = 1 + i % 3;
            c.ys = 1 + (i / 3) % 3;
            c.gs = 2;
            c.bs = 3;
            c.ss = 2;
            c.pad = 5;
            c.rms = i % 4 == 3;
            c.mt = c.rms ? NONE : ALLOY_F64;
            run_case(&x, &r, &c);
            c.x_bcast = 1;
            run_case(&x, &r, &c);
        }
    ctx_free(&x);
}

/* y is x (in place) gives the same bytes as y elsewhere, for every dtype, strided and
 * padded too: x is copied into two buffers of the same layout; one is normalized in place,
 * the other into a third buffer holding the same bytes as x; the two results must be equal
 * byte for byte, and so must the stats. (run_case checks in-place results against the
 * reference in random_configurations.) */
TEST(in_place_equals_out_of_place)
{
    nm_ctx x = ctx_new(0x1a91ace);
    test_rng r = {x.seed};
    static const int64_t ds[] = {1, 17, 256, 700};
    int i = 0;
    for (int xi = 0; xi < 4; xi++)
        for (int di = 0; di < 4; di++)
            for (int rms = 0; rms < 2; rms++, i++) {
                const alloy_dtype t = fdt[xi];
                const int64_t D = ds[di], bsh[2] = {3, 2};
                size_t end, send;
                alloy_array v =
                    view(NULL, alloy_dtype_size(t), t, 2, bsh, D, 1 + i % 3, 2, 0, &end);
                alloy_array sv = view(NULL, 8, ALLOY_F64, 2, bsh, -1, 1 + i % 2, 1, 0, &send);
                alloy_buffer *src = poison_buffer(x.dev, end + 8),
                             *inb = poison_buffer(x.dev, end + 8);
                alloy_buffer *outb = poison_buffer(x.dev, end + 8),
                             *gb = poison_buffer(x.dev, (size_t)D * 8 + 8);
                alloy_buffer *s1 = poison_buffer(x.dev, 2 * send),
                             *s2 = poison_buffer(x.dev, 2 * send);
                alloy_array xs = on_buffer(v, src);
                for (int64_t row = 0; row < 6; row++)
                    for (int64_t j = 0; j < D; j++)
                        ref_store(&x.conv, t, row_elem(&xs, 2, bsh, row, j),
                                  3 * rng_uniform(&r) + 1);
                memcpy(alloy_buffer_contents(inb), alloy_buffer_contents(src), end + 8);
                memcpy(alloy_buffer_contents(outb), alloy_buffer_contents(src), end + 8);
                alloy_dtype gt = fdt[i % 4];
                alloy_array g = alloy_array_contiguous(gb, 0, gt, 1, &D);
                for (int64_t j = 0; j < D; j++)
                    ref_store(&x.conv, gt, elem_at(&g, 1, 0, j, 0), 1 + rng_uniform(&r));
                alloy_array xin = on_buffer(v, inb), yout = on_buffer(v, outb);
                alloy_array m1 = on_buffer(sv, s1), r1 = on_buffer(sv, s1);
                alloy_array m2 = on_buffer(sv, s2), r2 = on_buffer(sv, s2);
                r1.offset = r2.offset = send;
                alloy_norm_desc nd = alloy_norm_desc_default();
                nd.rms = rms;
                alloy_cmdbuf *cb = test_cmdbuf(x.q);
                ASSERT_OK(
                    alloy_encode_layer_norm(cb, &nd, &xs, &g, &g, &yout, rms ? NULL : &m1, &r1));
                ASSERT_OK(
                    alloy_encode_layer_norm(cb, &nd, &xin, &g, &g, &xin, rms ? NULL : &m2, &r2));
                test_commit_wait(cb);
                if (memcmp(alloy_buffer_contents(inb), alloy_buffer_contents(outb), end + 8) != 0)
                    FAIL_AT("%s D %lld %s: in place differs from out of place", dtype_name(t),
                            (long long)D, rms ? "rms" : "layer");
                if (memcmp(alloy_buffer_contents(s1), alloy_buffer_contents(s2), 2 * send) != 0)
                    FAIL_AT("%s D %lld %s: in place gives other stats", dtype_name(t), (long long)D,
                            rms ? "rms" : "layer");
                /* and the result is a normalization, not x left alone */
                if (memcmp(alloy_buffer_contents(inb), alloy_buffer_contents(src), end + 8) == 0)
                    FAIL_AT("%s D %lld: in place left x unchanged", dtype_name(t), (long long)D);
                alloy_buffer *bufs[6] = {src, inb, outb, gb, s1, s2};
                for (int k = 0; k < 6; k++)
                    ASSERT_OK(alloy_buffer_destroy(bufs[k]));
            }
    ctx_free(&x);
}

/* What the operation refuses: RMS with a mean array; y overlapping x without being
 * exactly x (shifted by one element, same start with another stride, another dtype at the
 * same address); mean or rstd overlapping x or y. */
TEST(rejections)
{
    nm_ctx x = ctx_new(0x7e7);
    int64_t sh[2] = {4, 16}, rows = 4;
    alloy_buffer *buf = poison_buffer(x.dev, 4096);
    alloy_buffer *st = poison_buffer(x.dev, 256);
    alloy_array xa = alloy_array_contiguous(buf, 0, ALLOY_F32, 2, sh);
    alloy_array mean = alloy_array_contiguous(st, 0, ALLOY_F32, 1, &rows);
    alloy_array rstd = alloy_array_contiguous(st, 64, ALLOY_F32, 1, &rows);
    unsigned char *b0 = snapshot(buf), *s0 = snapshot(st);
    alloy_cmdbuf *cb = test_cmdbuf(x.q);
    alloy_norm_desc nd = alloy_norm_desc_default();
    nd.rms = 1;
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &xa, NULL, NULL, &xa, &mean, &rstd),
                 ALLOY_ERR_INVALID_ARGUMENT, "mean");
    nd.rms = 0;
    alloy_array y = alloy_array_contiguous(buf, 4, ALLOY_F32, 2, sh); /* one element on */
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &xa, NULL, NULL, &y, NULL, NULL),
                 ALLOY_ERR_INVALID_ARGUMENT, "y");
    int64_t ystr[2] = {32, 2}; /* the same first element, other strides */
    y = alloy_array_strided(buf, 0, ALLOY_F32, 2, sh, ystr);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &xa, NULL, NULL, &y, NULL, NULL),
                 ALLOY_ERR_INVALID_ARGUMENT, "y");
    y = alloy_array_contiguous(buf, 0, ALLOY_BF16, 2, sh); /* another dtype in place */
    alloy_array xh = alloy_array_contiguous(buf, 0, ALLOY_F16, 2, sh);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &xh, NULL, NULL, &y, NULL, NULL),
                 ALLOY_ERR_INVALID_ARGUMENT, "y");
    y = alloy_array_contiguous(buf, 1024, ALLOY_F32, 2, sh);
    alloy_array bad = alloy_array_contiguous(buf, 32, ALLOY_F32, 1, &rows); /* inside x */
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &xa, NULL, NULL, &y, &bad, NULL),
                 ALLOY_ERR_INVALID_ARGUMENT, "mean");
    bad = alloy_array_contiguous(buf, 1024 + 40, ALLOY_F32, 1, &rows); /* inside y */
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &xa, NULL, NULL, &y, NULL, &bad),
                 ALLOY_ERR_INVALID_ARGUMENT, "rstd");
    bad = alloy_array_contiguous(st, 8, ALLOY_F32, 1, &rows); /* overlaps mean */
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &xa, NULL, NULL, &y, &mean, &bad),
                 ALLOY_ERR_INVALID_ARGUMENT, "rstd");
    /* nothing was written; the command buffer still works and runs the valid op */
    ASSERT(memcmp(b0, alloy_buffer_contents(buf), 4096) == 0);
    ASSERT(memcmp(s0, alloy_buffer_contents(st), 256) == 0);
    float *xp = alloy_buffer_contents(buf);
    for (int i = 0; i < 64; i++)
        xp[i] = (float)(i % 16);
    ASSERT_OK(alloy_encode_layer_norm(cb, &nd, &xa, NULL, NULL, &xa, &mean, &rstd));
    test_commit_wait(cb);
    const float *m = alloy_buffer_contents(st);
    for (int i = 0; i < 4; i++)
        ASSERT(m[i] == 7.5f);
    free(b0);
    free(s0);
    ASSERT_OK(alloy_buffer_destroy(buf));
    ASSERT_OK(alloy_buffer_destroy(st));
    ctx_free(&x);
}

TEST_LIST{
    TEST_ENTRY(dtype_pairs),
    TEST_ENTRY(random_configurations),
    TEST_ENTRY(eps_values),
    TEST_ENTRY(constant_rows),
    TEST_ENTRY(huge_and_tiny_magnitudes),
    TEST_ENTRY(huge_f32_rows),
    TEST_ENTRY(output_overflow),
    TEST_ENTRY(f64_rounds_once_to_half_outputs),
    TEST_ENTRY(one_element_rows),
    TEST_ENTRY(empty_rows),
    TEST_ENTRY(strided_and_batched),
    TEST_ENTRY(in_place_equals_out_of_place),
    TEST_ENTRY(rejections),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
