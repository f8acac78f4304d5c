/* alloy_encode_copy: conversions among f32/f64/f16/bf16 (all 16 pairs) against an
 * independent rounding oracle, i32 copies, rank 0, broadcasting, transposed and strided
 * layouts on random shapes (same-dtype f32/f64 rows checked with cblas_?copy), and every
 * class of bad input. */
#include "test_util.h"

#include <cblas.h>

/* ---------------------------------------------------------------- the oracle itself */

/* Known answers, so the rounding oracle is checked before it checks alloy. */
TEST(oracle_known_answers)
{
    ref_conv c = ref_conv_new();
    struct {
        double x;
        uint16_t f16, bf16;
    } k[] = {
        {0.0, 0x0000, 0x0000},
        {-0.0, 0x8000, 0x8000},
        {1.0, 0x3c00, 0x3f80},
        {-2.0, 0xc000, 0xc000},
        {65504.0, 0x7bff, 0x4780},      /* f16 max; bf16 rounds 65504 up to 65536 */
        {65519.99, 0x7bff, 0x4780},     /* just below f16's overflow threshold */
        {65520.0, 0x7c00, 0x4780},      /* the threshold itself: tie, to infinity */
        {1e6, 0x7c00, 0x4974},          /* 999424 = 0x4974 (1e6 rounds down) */
        {1.0 + 0x1p-11, 0x3c00, 0x3f80}, /* f16 tie between 1 and 1+2^-10: even (1) */
        {1.0 + 3 * 0x1p-11, 0x3c02, 0x3f80},
        {1.0 + 0x1p-8, 0x3c04, 0x3f80},      /* bf16 tie: even (1.0) */
        {1.0 + 3 * 0x1p-8, 0x3c0c, 0x3f82}, /* bf16 tie: even (1+2^-6) */
        {0x1p-24, 0x0001, 0x3380},          /* f16 smallest subnormal */
        {0x1p-25, 0x0000, 0x3300},          /* half of it: tie to even (0) */
        {0x1.000002p-25, 0x0001, 0x3300},   /* just above the half */
        {3 * 0x1p-25, 0x0002, 0x33c0},      /* 1.5 subnormal ulps: tie to even (2) */
        {0x1p-14, 0x0400, 0x3880},          /* f16 smallest normal */
        {0x1p-133, 0x0000, 0x0001},         /* bf16 smallest subnormal */
        {0x1p-134, 0x0000, 0x0000},         /* tie: to 0 */
        {0x1.0000000000001p-134, 0x0000, 0x0001},
        {3.3895313892515355e38, 0x7c00, 0x7f7f}, /* bf16 max */
        {3.4e38, 0x7c00, 0x7f80},               /* above bf16's threshold */
        {INFINITY, 0x7c00, 0x7f80},
        {-INFINITY, 0xfc00, 0xff80},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        uint16_t h = ref_round(c.f16, k[i].x), b = ref_round(c.bf16, k[i].x);
        if (h != k[i].f16 || b != k[i].bf16)
            FAIL_AT("oracle: %a -> f16 0x%04x (want 0x%04x), bf16 0x%04x (want 0x%04x)", k[i].x,
                    h, k[i].f16, b, k[i].bf16);
    }
    ASSERT(ref_f16_is_nan(ref_round(c.f16, NAN)));
    ASSERT(ref_bf16_is_nan(ref_round(c.bf16, NAN)));
    /* every finite value rounds to itself */
    for (uint32_t p = 0; p < 65536; p++) {
        double v = ref_f16_to_double((uint16_t)p);
        if (!isnan(v))
            ASSERT_EQ(ref_round(c.f16, v), p);
        v = ref_bf16_to_double((uint16_t)p);
        if (!isnan(v))
            ASSERT_EQ(ref_round(c.bf16, v), p);
    }
    ref_conv_free(&c);
}

/* ---------------------------------------------------------------- conversions */

typedef struct vals {
    size_t n, cap;
    double *d;
} vals;

static void vals_add(vals *v, double x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 1024;
        v->d = realloc(v->d, v->cap * sizeof(double));
        ASSERT(v->d != NULL);
    }
    v->d[v->n++] = x;
}

/* Values that probe rounding into f16 and bf16: every midpoint between neighbours
 * (ties), the doubles just either side of each, both signs, overflow thresholds,
 * subnormals, specials, and random doubles over a wide exponent range. */
static vals probe_values(const ref_conv *c, test_rng *r)
{
    vals v = {0, 0, NULL};
    const ref_table *t[2] = {c->f16, c->bf16};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i + 1 < t[k]->n; i++) {
            double m = (t[k]->e[i].v + t[k]->e[i + 1].v) / 2;
            double xs[5] = {m, nextafter(m, INFINITY), nextafter(m, 0), t[k]->e[i].v,
                            (double)nextafterf((float)m, INFINITY)};
            for (int j = 0; j < 5; j++) {
                vals_add(&v, xs[j]);
                vals_add(&v, -xs[j]);
            }
        }
        double big = t[k]->e[t[k]->n - 1].v;
        vals_add(&v, big);
        vals_add(&v, nextafter(big, INFINITY));
        vals_add(&v, -big * 4);
    }
    const double sp[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, DBL_MAX, -DBL_MAX,
                         DBL_MIN, 4.9e-324, -4.9e-324, FLT_MAX, -FLT_MAX, (double)FLT_MIN,
                         0x1p-149, 0x1p-150, 0x1.8p-150, 0x1p-126, 1e-40, 3.0, -7.25};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        vals_add(&v, sp[i]);
    for (int i = 0; i < 20000; i++) {
        double x = ldexp(rng_uniform(r), (int)rng_range(r, -160, 140));
        vals_add(&v, x);
        uint32_t u = (uint32_t)rng_next(r); /* any f32 bit pattern, NaNs included */
        float f;
        memcpy(&f, &u, 4);
        vals_add(&v, (double)f);
    }
    return v;
}

/* Fills a host array of dtype t with the probe values: f16 and bf16 sources get every
 * bit pattern instead; f32 gets the probes rounded to f32 plus random bit patterns. */
static size_t fill_source(alloy_dtype t, const vals *pv, void **out, test_rng *r)
{
    size_t n;
    if (t == ALLOY_F16 || t == ALLOY_BF16) {
        n = 65536;
        uint16_t *p = test_malloc(n * 2);
        for (size_t i = 0; i < n; i++)
            p[i] = (uint16_t)i;
        *out = p;
    } else if (t == ALLOY_F32) {
        n = pv->n + 4096;
        float *p = test_malloc(n * 4);
        for (size_t i = 0; i < pv->n; i++)
            p[i] = (float)pv->d[i];
        for (size_t i = pv->n; i < n; i++) {
            uint32_t u = (uint32_t)rng_next(r);
            if (i % 4 == 0)
                u &= 0x807fffffu; /* f32 subnormals */
            memcpy(&p[i], &u, 4);
        }
        *out = p;
    } else {
        n = pv->n;
        double *p = test_malloc(n * 8);
        memcpy(p, pv->d, n * 8);
        *out = p;
    }
    return n;
}

TEST(convert_all_pairs)
{
    const uint64_t seed = test_seed(0xc0417e57);
    test_rng r = {seed};
    ref_conv c = ref_conv_new();
    vals pv = probe_values(&c, &r);
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    const alloy_dtype fl[4] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    int pairs = 0;
    for (int si = 0; si < 4; si++) {
        alloy_dtype st = fl[si];
        void *host = NULL;
        size_t n = fill_source(st, &pv, &host, &r);
        size_t ses = alloy_dtype_size(st);
        alloy_buffer *sb = NULL;
        ASSERT_OK(alloy_buffer_wrap_host(dev, host, n * ses, &sb));
        alloy_buffer *db[4];
        alloy_cmdbuf *cb = test_cmdbuf(q);
        int64_t shape = (int64_t)n;
        alloy_array sa = alloy_array_contiguous(sb, 0, st, 1, &shape);
        for (int di = 0; di < 4; di++) {
            db[di] = test_buffer(dev, n * 8);
            memset(alloy_buffer_contents(db[di]), 0xa5, n * 8);
            alloy_array da = alloy_array_contiguous(db[di], 0, fl[di], 1, &shape);
            ASSERT_OK(alloy_encode_copy(cb, &sa, &da));
        }
        test_commit_wait(cb);
        for (int di = 0; di < 4; di++) {
            alloy_dtype dt = fl[di];
            size_t des = alloy_dtype_size(dt);
            const char *got = alloy_buffer_contents(db[di]);
            for (size_t i = 0; i < n; i++) {
                unsigned char want[8];
                const void *sp = (const char *)host + i * ses;
                ref_convert(&c, st, sp, dt, want);
                if (!ref_same(dt, want, got + i * des, st != dt)) {
                    uint64_t sbits = 0, wbits = 0, gbits = 0;
                    memcpy(&sbits, sp, ses);
                    memcpy(&wbits, want, des);
                    memcpy(&gbits, got + i * des, des);
                    FAIL_AT("seed 0x%llx: %s -> %s element %zu: source 0x%llx (%a) gave 0x%llx, "
                            "expected 0x%llx",
                            (unsigned long long)seed, dtype_name(st), dtype_name(dt), i,
                            (unsigned long long)sbits, ref_load(st, sp),
                            (unsigned long long)gbits, (unsigned long long)wbits);
                }
            }
            /* nothing past the array was written */
            for (size_t i = n * des; i < n * 8; i++)
                ASSERT_EQ((unsigned char)got[i], 0xa5);
            ASSERT_OK(alloy_buffer_destroy(db[di]));
            pairs++;
        }
        ASSERT_OK(alloy_buffer_destroy(sb));
        free(host);
    }
    ASSERT_EQ(pairs, 16);
    free(pv.d);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    ref_conv_free(&c);
}

/* Specials through every pair, spelled out: NaN stays NaN, infinities and signed zeros
 * keep their sign, overflow goes to infinity. */
TEST(convert_specials)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    const alloy_dtype fl[4] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    const double x[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1e300, -1e300, 70000.0, 1.5};
    enum { NX = sizeof x / sizeof x[0] };
    ref_conv c = ref_conv_new();
    for (int si = 0; si < 4; si++)
        for (int di = 0; di < 4; di++) {
            alloy_dtype st = fl[si], dt = fl[di];
            alloy_buffer *b = test_buffer(dev, 2 * NX * 8);
            char *p = alloy_buffer_contents(b);
            for (int i = 0; i < NX; i++)
                ref_store(&c, st, p + i * alloy_dtype_size(st), x[i]);
            int64_t n = NX;
            alloy_array sa = alloy_array_contiguous(b, 0, st, 1, &n);
            alloy_array da = alloy_array_contiguous(b, NX * 8, dt, 1, &n);
            alloy_cmdbuf *cb = test_cmdbuf(q);
            ASSERT_OK(alloy_encode_copy(cb, &sa, &da));
            test_commit_wait(cb);
            for (int i = 0; i < NX; i++) {
                double s = ref_load(st, p + i * alloy_dtype_size(st));
                double g = ref_load(dt, p + NX * 8 + i * alloy_dtype_size(dt));
                if (isnan(s)) {
                    ASSERT(isnan(g));
                    continue;
                }
                ASSERT(!isnan(g));
                ASSERT_EQ(!!signbit(g), !!signbit(s));
                if (isinf(s))
                    ASSERT(isinf(g));
                if (fabs(s) > 65520.0 && dt == ALLOY_F16)
                    ASSERT(isinf(g));
                if (fabs(s) > 3.4e38 && (dt == ALLOY_F32 || dt == ALLOY_BF16))
                    ASSERT(isinf(g));
                if (s == 1.5)
                    ASSERT(g == 1.5);
            }
            ASSERT_OK(alloy_buffer_destroy(b));
        }
    ref_conv_free(&c);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- layouts */

/* A random layout for `shape`: dims ordered by a random permutation, padded strides,
 * input dims of extent > 1 sometimes broadcast (stride 0), and arbitrary strides on
 * extent-1 dims. Returns the elements spanned (0 when empty). */
static int64_t random_strides(test_rng *r, int rank, const int64_t *shape, int64_t *strides,
                              int input)
{
    int perm[ALLOY_MAX_RANK];
    for (int i = 0; i < rank; i++)
        perm[i] = i;
    for (int i = rank - 1; i > 0; i--) {
        int j = (int)rng_range(r, 0, i);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    if (rng_range(r, 0, 2) == 0) /* often keep row-major order */
        for (int i = 0; i < rank; i++)
            perm[i] = i;
    int64_t run = rng_range(r, 0, 3) == 0 ? 2 : 1; /* innermost stride */
    int empty = 0;
    for (int i = 0; i < rank; i++)
        empty |= shape[i] == 0;
    for (int k = rank - 1; k >= 0; k--) {
        int d = perm[k];
        if (shape[d] == 1) {
            strides[d] = rng_range(r, 0, 50);
            continue;
        }
        if (input && rng_range(r, 0, 6) == 0) {
            strides[d] = 0;
            continue;
        }
        strides[d] = run;
        run = run * (shape[d] > 0 ? shape[d] : 1) + rng_range(r, 0, 2);
    }
    if (empty)
        return 0;
    int64_t span = 0;
    for (int i = 0; i < rank; i++)
        span += (shape[i] - 1) * strides[i];
    return span + 1;
}

typedef struct copy_ctx {
    ref_conv conv;
    alloy_device *dev;
    alloy_queue *q;
    uint64_t seed;
    int index;
} copy_ctx;

/* Encodes src -> dst alone, runs it, and checks every byte of dst's buffer: elements of
 * the view against the oracle (rows of same-dtype f32/f64 copies with cblas_?copy), the
 * rest unchanged; src's buffer unchanged. */
static void check_copy(copy_ctx *x, const alloy_array *src, const alloy_array *dst)
{
    size_t sbytes = alloy_buffer_size(src->buffer), dbytes = alloy_buffer_size(dst->buffer);
    unsigned char *s0 = test_malloc(sbytes), *img = test_malloc(dbytes),
                  *mask = test_malloc(dbytes);
    memcpy(s0, alloy_buffer_contents(src->buffer), sbytes);
    memcpy(img, alloy_buffer_contents(dst->buffer), dbytes);
    memset(mask, 0, dbytes);

    alloy_cmdbuf *cb = test_cmdbuf(x->q);
    alloy_status st = alloy_encode_copy(cb, src, dst);
    if (st != ALLOY_OK)
        FAIL_AT("seed 0x%llx case %d: encode_copy said %s: %s", (unsigned long long)x->seed,
                x->index, alloy_status_string(st), alloy_last_error());
    test_commit_wait(cb);

    /* the expected image of dst's buffer */
    const unsigned char *sbase = s0 + src->offset;
    unsigned char *dbase = img + dst->offset;
    size_t ses = alloy_dtype_size(src->dtype), des = alloy_dtype_size(dst->dtype);
    int dr = dst->rank, sr = src->rank;
    int64_t count = 1;
    for (int d = 0; d < dr; d++)
        count *= dst->shape[d];
    if (count > 0) {
        int64_t idx[ALLOY_MAX_RANK] = {0};
        int last = dr - 1;
        int64_t rowlen = dr ? dst->shape[last] : 1;
        do {
            int64_t so = 0, doff = 0;
            for (int d = 0; d < dr; d++) {
                doff += idx[d] * dst->strides[d];
                int j = d - (dr - sr);
                if (j >= 0 && src->shape[j] != 1)
                    so += idx[d] * src->strides[j];
            }
            int64_t ss = 0, ds = dr ? dst->strides[last] : 1;
            int sj = last - (dr - sr);
            if (dr && sj >= 0 && src->shape[sj] != 1)
                ss = src->strides[sj];
            int blas = src->dtype == dst->dtype &&
                       (src->dtype == ALLOY_F32 || src->dtype == ALLOY_F64) && ss > 0;
            if (blas) {
                int inc_d = rowlen > 1 ? (int)ds : 1;
                if (src->dtype == ALLOY_F32)
                    cblas_scopy((int)rowlen, (const float *)(sbase + so * 4), (int)ss,
                                (float *)(dbase + doff * 4), inc_d);
                else
                    cblas_dcopy((int)rowlen, (const double *)(sbase + so * 8), (int)ss,
                                (double *)(dbase + doff * 8), inc_d);
            } else {
                for (int64_t k = 0; k < rowlen; k++)
                    ref_convert(&x->conv, src->dtype, sbase + (so + k * ss) * (int64_t)ses,
                                dst->dtype, dbase + (doff + k * ds) * (int64_t)des);
            }
            for (int64_t k = 0; k < rowlen; k++)
                memset(mask + dst->offset + (size_t)(doff + k * ds) * des, 1, des);
            if (dr)
                idx[last] = rowlen - 1;
        } while (dr && next_index(idx, dst->shape, dr));
    }
    const unsigned char *got = alloy_buffer_contents(dst->buffer);
    int converted = src->dtype != dst->dtype;
    for (size_t i = 0; i < dbytes;) {
        if (!mask[i]) {
            if (got[i] != img[i])
                FAIL_AT("seed 0x%llx case %d: byte %zu of dst's buffer outside the view changed",
                        (unsigned long long)x->seed, x->index, i);
            i++;
            continue;
        }
        if (!ref_same(dst->dtype, img + i, got + i, converted)) {
            uint64_t w = 0, g = 0;
            memcpy(&w, img + i, des);
            memcpy(&g, got + i, des);
            FAIL_AT("seed 0x%llx case %d: %s -> %s, dst byte %zu: got 0x%llx, expected 0x%llx",
                    (unsigned long long)x->seed, x->index, dtype_name(src->dtype),
                    dtype_name(dst->dtype), i, (unsigned long long)g, (unsigned long long)w);
        }
        i += des;
    }
    if (src->buffer != dst->buffer && memcmp(s0, alloy_buffer_contents(src->buffer), sbytes) != 0)
        FAIL_AT("seed 0x%llx case %d: the source buffer changed", (unsigned long long)x->seed,
                x->index);
    free(s0);
    free(img);
    free(mask);
}

static void fill_random(copy_ctx *x, test_rng *r, alloy_buffer *b, alloy_dtype t)
{
    size_t es = alloy_dtype_size(t), n = alloy_buffer_size(b) / es;
    char *p = alloy_buffer_contents(b);
    for (size_t i = 0; i < n; i++)
        test_random_value(&x->conv, r, t, p + i * es);
    /* a few specials */
    if (t != ALLOY_I32 && n > 4) {
        ref_store(&x->conv, t, p, NAN);
        ref_store(&x->conv, t, p + es, -INFINITY);
        ref_store(&x->conv, t, p + 2 * es, -0.0);
    }
}

static copy_ctx copy_ctx_new(int workers, uint64_t seed)
{
    copy_ctx x;
    x.conv = ref_conv_new();
    x.dev = test_cpu_device(workers);
    x.q = test_queue(x.dev);
    x.seed = seed;
    x.index = 0;
    return x;
}

static void copy_ctx_free(copy_ctx *x)
{
    ASSERT_OK(alloy_queue_destroy(x->q));
    ASSERT_OK(alloy_device_close(x->dev));
    ref_conv_free(&x->conv);
}

static const int64_t extents[] = {0, 1, 1, 2, 3, 5, 7, 11, 13, 17};

/* Random ranks 0..6 (sometimes 8), extents including 0, 1 and primes, every dtype and
 * conversion, permuted/padded layouts, broadcast sources and strided destinations. */
TEST(copy_random_shapes)
{
    const uint64_t seed = test_seed(0x5eedc0b1);
    test_rng r = {seed};
    copy_ctx x = copy_ctx_new(0, seed);
    const alloy_dtype all[5] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16, ALLOY_I32};
    for (int it = 0; it < 400; it++) {
        x.index = it;
        int dr = (int)rng_range(&r, 0, 6);
        if (it % 50 == 7)
            dr = ALLOY_MAX_RANK;
        int64_t dshape[ALLOY_MAX_RANK], sshape[ALLOY_MAX_RANK];
        int64_t total = 1;
        for (int d = 0; d < dr; d++) {
            dshape[d] = extents[rng_range(&r, 0, 9)];
            if (dshape[d] == 0 && rng_range(&r, 0, 3) != 0)
                dshape[d] = 2; /* keep empty arrays a minority */
            if (total * (dshape[d] ? dshape[d] : 1) > 6000)
                dshape[d] = 1;
            total *= dshape[d] ? dshape[d] : 1;
        }
        /* src: the trailing dims of dst, some set to 1 (broadcast) */
        int sr = dr == 0 ? 0 : (int)rng_range(&r, rng_range(&r, 0, 1) ? dr : 0, dr);
        for (int j = 0; j < sr; j++) {
            int d = j + (dr - sr);
            sshape[j] = rng_range(&r, 0, 4) == 0 ? 1 : dshape[d];
        }
        alloy_dtype st = all[rng_range(&r, 0, 4)], dt;
        if (st == ALLOY_I32)
            dt = ALLOY_I32;
        else
            dt = all[rng_range(&r, 0, 3)];
        int64_t sstr[ALLOY_MAX_RANK], dstr[ALLOY_MAX_RANK];
        int64_t sspan = random_strides(&r, sr, sshape, sstr, 1);
        int64_t dspan = random_strides(&r, dr, dshape, dstr, 0);
        size_t ses = alloy_dtype_size(st), des = alloy_dtype_size(dt);
        size_t soff = (size_t)rng_range(&r, 0, 5) * ses, doff = (size_t)rng_range(&r, 0, 5) * des;
        int same_buffer = rng_range(&r, 0, 5) == 0;
        alloy_buffer *sb, *db;
        alloy_array sa, da;
        if (same_buffer) {
            /* src first, dst after it in one buffer, disjoint */
            size_t send = soff + (size_t)sspan * ses;
            doff += (send + des - 1) / des * des;
            size_t bytes = doff + (size_t)dspan * des + 16;
            sb = db = test_buffer(x.dev, (bytes + 7) / 8 * 8);
            fill_random(&x, &r, sb, ALLOY_I32);
        } else {
            sb = test_buffer(x.dev, (soff + (size_t)sspan * ses + 16 + 7) / 8 * 8);
            db = test_buffer(x.dev, (doff + (size_t)dspan * des + 16 + 7) / 8 * 8);
            fill_random(&x, &r, sb, st);
            memset(alloy_buffer_contents(db), 0x77, alloy_buffer_size(db));
        }
        if (same_buffer && st != ALLOY_I32) {
            /* make the source bytes valid values of st */
            char *p = alloy_buffer_contents(sb);
            for (size_t i = 0; i + ses <= doff; i += ses)
                test_random_value(&x.conv, &r, st, p + i);
        }
        sa = alloy_array_strided(sb, soff, st, sr, sshape, sstr);
        da = alloy_array_strided(db, doff, dt, dr, dshape, dstr);
        check_copy(&x, &sa, &da);
        ASSERT_OK(alloy_buffer_destroy(sb));
        if (db != sb)
            ASSERT_OK(alloy_buffer_destroy(db));
    }
    copy_ctx_free(&x);
}

/* The .contiguous() use case: a transposed view copied into row-major memory, big
 * enough to be split into several tasks, with a conversion and without. */
TEST(copy_transposed_src)
{
    const uint64_t seed = test_seed(0x7a5e);
    test_rng r = {seed};
    copy_ctx x = copy_ctx_new(0, seed);
    const int64_t dims[][2] = {{1, 1}, {3, 1}, {1, 7}, {31, 17}, {300, 257}};
    const alloy_dtype pairs[][2] = {{ALLOY_F32, ALLOY_F32}, {ALLOY_F64, ALLOY_F64},
                                    {ALLOY_F32, ALLOY_F16}, {ALLOY_BF16, ALLOY_F32},
                                    {ALLOY_I32, ALLOY_I32}, {ALLOY_F64, ALLOY_BF16}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            x.index = (int)(i * 10 + p);
            alloy_dtype st = pairs[p][0], dt = pairs[p][1];
            int64_t m = dims[i][0], n = dims[i][1];
            int64_t ms[2] = {m, n};
            alloy_buffer *sb = test_buffer(x.dev, (size_t)(m * n) * alloy_dtype_size(st));
            alloy_buffer *db = test_buffer(x.dev, (size_t)(m * n) * alloy_dtype_size(dt));
            fill_random(&x, &r, sb, st);
            memset(alloy_buffer_contents(db), 0x3c, alloy_buffer_size(db));
            alloy_array a = alloy_array_contiguous(sb, 0, st, 2, ms);
            alloy_array at = alloy_array_swap_dims(a, 0, 1); /* (n, m), strides (1, n) */
            ASSERT_EQ(at.strides[0], 1);
            int64_t ts[2] = {n, m};
            alloy_array d = alloy_array_contiguous(db, 0, dt, 2, ts);
            check_copy(&x, &at, &d);
            ASSERT_OK(alloy_buffer_destroy(sb));
            ASSERT_OK(alloy_buffer_destroy(db));
        }
    copy_ctx_free(&x);
}

/* Strided destinations: a column of a matrix, every other element, a sub-block. */
TEST(copy_strided_dst)
{
    const uint64_t seed = test_seed(0x57d);
    test_rng r = {seed};
    copy_ctx x = copy_ctx_new(2, seed);
    alloy_buffer *sb = test_buffer(x.dev, 4096), *db = test_buffer(x.dev, 64 * 64 * 8);
    fill_random(&x, &r, sb, ALLOY_F32);
    memset(alloy_buffer_contents(db), 0x11, alloy_buffer_size(db));
    int64_t n = 37;
    alloy_array s = alloy_array_contiguous(sb, 4, ALLOY_F32, 1, &n);
    int64_t col_stride = 64;
    alloy_array col = alloy_array_strided(db, 8 * 5, ALLOY_F64, 1, &n, &col_stride);
    check_copy(&x, &s, &col);
    int64_t two = 2;
    alloy_array every_other = alloy_array_strided(db, 2, ALLOY_F16, 1, &n, &two);
    check_copy(&x, &s, &every_other);
    int64_t bs[2] = {5, 7}, bst[2] = {64, 1}, ss[2] = {5, 7};
    alloy_array block = alloy_array_strided(db, (3 * 64 + 9) * 4, ALLOY_F32, 2, bs, bst);
    alloy_array s2 = alloy_array_contiguous(sb, 0, ALLOY_F32, 2, ss);
    check_copy(&x, &s2, &block);
    /* zero strides on extent-1 output dims are fine */
    int64_t os[3] = {1, 5, 7}, ost[3] = {0, 64, 1};
    alloy_array block3 = alloy_array_strided(db, 0, ALLOY_F32, 3, os, ost);
    check_copy(&x, &s2, &block3);
    ASSERT_OK(alloy_buffer_destroy(sb));
    ASSERT_OK(alloy_buffer_destroy(db));
    copy_ctx_free(&x);
}

/* Broadcasting: missing leading dims, extent-1 dims, zero strides, rank 0 sources. */
TEST(copy_broadcast)
{
    const uint64_t seed = test_seed(0xb40ad);
    test_rng r = {seed};
    copy_ctx x = copy_ctx_new(0, seed);
    alloy_buffer *sb = test_buffer(x.dev, 1024), *db = test_buffer(x.dev, 2 * 3 * 4 * 8 + 64);
    fill_random(&x, &r, sb, ALLOY_F64);
    int64_t ds[3] = {2, 3, 4};
    alloy_array d = alloy_array_contiguous(db, 0, ALLOY_F32, 3, ds);
    struct {
        int rank;
        int64_t shape[3], strides[3];
    } cases[] = {
        {1, {4}, {1}},             /* a row to every (i, j) */
        {2, {3, 1}, {1, 1}},       /* a column to every k */
        {2, {3, 4}, {4, 1}},       /* a matrix to every i */
        {3, {1, 3, 4}, {99, 4, 1}}, /* explicit extent-1 dim with an odd stride */
        {3, {2, 1, 4}, {4, 0, 1}},
        {2, {3, 4}, {0, 1}},       /* a zero stride on an input of extent 3 */
        {3, {2, 3, 4}, {0, 0, 0}}, /* one element everywhere */
        {0, {0}, {0}},             /* rank 0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        x.index = (int)i;
        memset(alloy_buffer_contents(db), 0x42, alloy_buffer_size(db));
        alloy_array s = alloy_array_strided(sb, 16, ALLOY_F64, cases[i].rank, cases[i].shape,
                                            cases[i].strides);
        check_copy(&x, &s, &d);
    }
    ASSERT_OK(alloy_buffer_destroy(sb));
    ASSERT_OK(alloy_buffer_destroy(db));
    copy_ctx_free(&x);
}

/* Rank 0 to rank 0, every float pair and i32; an extent-1 everything array. */
TEST(copy_rank0)
{
    copy_ctx x = copy_ctx_new(1, 0);
    const alloy_dtype all[5] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16, ALLOY_I32};
    alloy_buffer *b = test_buffer(x.dev, 64);
    for (int si = 0; si < 5; si++)
        for (int di = 0; di < 5; di++) {
            if ((all[si] == ALLOY_I32) != (all[di] == ALLOY_I32))
                continue;
            x.index = si * 5 + di;
            memset(alloy_buffer_contents(b), 0x99, 64);
            char *p = alloy_buffer_contents(b);
            if (all[si] == ALLOY_I32) {
                int32_t v = INT32_MIN + 12345;
                memcpy(p, &v, 4);
            } else {
                ref_store(&x.conv, all[si], p, -1.0 / 3.0);
            }
            alloy_array s = alloy_array_contiguous(b, 0, all[si], 0, NULL);
            alloy_array d = alloy_array_contiguous(b, 32, all[di], 0, NULL);
            check_copy(&x, &s, &d);
            int64_t ones[4] = {1, 1, 1, 1};
            alloy_array d4 = alloy_array_contiguous(b, 48, all[di], 4, ones);
            check_copy(&x, &s, &d4);
        }
    ASSERT_OK(alloy_buffer_destroy(b));
    copy_ctx_free(&x);
}

/* i32 copies are exact bit copies, including the extremes, strided both ways. */
TEST(copy_i32)
{
    const uint64_t seed = test_seed(0x132);
    test_rng r = {seed};
    copy_ctx x = copy_ctx_new(0, seed);
    alloy_buffer *sb = test_buffer(x.dev, 40000 * 4), *db = test_buffer(x.dev, 40000 * 4 * 2);
    int32_t *s = alloy_buffer_contents(sb);
    for (int i = 0; i < 40000; i++)
        s[i] = (int32_t)rng_next(&r);
    s[0] = INT32_MIN;
    s[1] = INT32_MAX;
    s[2] = -1;
    memset(alloy_buffer_contents(db), 0, alloy_buffer_size(db));
    int64_t n = 40000, two = 2;
    alloy_array a = alloy_array_contiguous(sb, 0, ALLOY_I32, 1, &n);
    alloy_array d = alloy_array_strided(db, 4, ALLOY_I32, 1, &n, &two);
    check_copy(&x, &a, &d);
    int64_t ms[2] = {200, 200};
    alloy_array m = alloy_array_contiguous(sb, 0, ALLOY_I32, 2, ms);
    alloy_array mt = alloy_array_swap_dims(m, 0, 1);
    alloy_array md = alloy_array_contiguous(db, 0, ALLOY_I32, 2, ms);
    check_copy(&x, &mt, &md);
    ASSERT_OK(alloy_buffer_destroy(sb));
    ASSERT_OK(alloy_buffer_destroy(db));
    copy_ctx_free(&x);
}

/* ---------------------------------------------------------------- bad inputs */

TEST(copy_bad_inputs)
{
    alloy_device *dev = test_cpu_device(2);
    alloy_device *other = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    enum { BYTES = 4096 };
    alloy_buffer *in = test_buffer(dev, BYTES), *out = test_buffer(dev, BYTES);
    alloy_buffer *foreign = test_buffer(other, BYTES);
    char *ip = alloy_buffer_contents(in);
    for (int i = 0; i < BYTES / 4; i++)
        ((float *)ip)[i] = (float)i;
    memset(alloy_buffer_contents(out), 0x5c, BYTES);
    alloy_cmdbuf *cb = test_cmdbuf(q);

    int64_t s2[2] = {4, 8};
    alloy_array src = alloy_array_contiguous(in, 0, ALLOY_F32, 2, s2);
    alloy_array dst = alloy_array_contiguous(out, 0, ALLOY_F32, 2, s2);
    alloy_array a;

    ASSERT_FAILS(alloy_encode_copy(NULL, &src, &dst), ALLOY_ERR_INVALID_ARGUMENT, "command");
    ASSERT_FAILS(alloy_encode_copy(cb, NULL, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src");
    ASSERT_FAILS(alloy_encode_copy(cb, &src, NULL), ALLOY_ERR_INVALID_ARGUMENT, "dst");
    a = src;
    a.buffer = NULL;
    ASSERT_FAILS(alloy_encode_copy(cb, &a, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src.buffer");
    a = dst;
    a.shape[1] = -8;
    ASSERT_FAILS(alloy_encode_copy(cb, &src, &a), ALLOY_ERR_INVALID_ARGUMENT, "dst.shape");
    a = src;
    a.strides[0] = -8;
    ASSERT_FAILS(alloy_encode_copy(cb, &a, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src.strides");
    a = dst;
    a.strides[0] = 0; /* an output cannot broadcast */
    ASSERT_FAILS(alloy_encode_copy(cb, &src, &a), ALLOY_ERR_INVALID_ARGUMENT, "dst.strides");
    a = dst;
    a.offset = 2; /* misaligned for f32 */
    ASSERT_FAILS(alloy_encode_copy(cb, &src, &a), ALLOY_ERR_INVALID_ARGUMENT, "dst");
    a = src;
    a.offset = 6;
    ASSERT_FAILS(alloy_encode_copy(cb, &a, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src");
    {
        /* a buffer whose address is not aligned to the dtype */
        alloy_buffer *odd = NULL;
        ASSERT_OK(alloy_buffer_wrap_host(dev, ip + 1, 64, &odd));
        int64_t k = 4;
        alloy_array o = alloy_array_contiguous(odd, 0, ALLOY_F16, 1, &k);
        alloy_array d1 = alloy_array_contiguous(out, 0, ALLOY_F16, 1, &k);
        ASSERT_FAILS(alloy_encode_copy(cb, &o, &d1), ALLOY_ERR_INVALID_ARGUMENT, "src");
        ASSERT_OK(alloy_buffer_destroy(odd)); /* no reference was taken */
    }
    a = dst;
    a.offset = BYTES - 4 * 8 * 4 + 4; /* one element too far */
    ASSERT_FAILS(alloy_encode_copy(cb, &src, &a), ALLOY_ERR_INVALID_ARGUMENT, "dst");
    a = dst;
    a.offset = BYTES + 4; /* past the end even when empty */
    a.shape[0] = 0;
    ASSERT_FAILS(alloy_encode_copy(cb, &src, &a), ALLOY_ERR_INVALID_ARGUMENT, "dst.offset");
    a = src;
    a.shape[0] = 1000;
    ASSERT_FAILS(alloy_encode_copy(cb, &a, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src");
    a = src;
    a.offset = SIZE_MAX - 3; /* address arithmetic overflows */
    ASSERT_FAILS(alloy_encode_copy(cb, &a, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src");
    {
        /* huge shapes: more than 2^62 elements; an extent that overflows 64 bits; a
         * byte size that overflows */
        int64_t hs[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
        alloy_array h = alloy_array_contiguous(in, 0, ALLOY_F32, 2, hs);
        ASSERT_FAILS(alloy_encode_copy(cb, &h, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src");
        int64_t hs2[2] = {INT64_C(1) << 33, 1}, hst2[2] = {INT64_C(1) << 33, 1};
        h = alloy_array_strided(in, 0, ALLOY_F32, 2, hs2, hst2);
        ASSERT_FAILS(alloy_encode_copy(cb, &h, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src");
        int64_t hs3[1] = {2}, hst3[1] = {INT64_MAX};
        h = alloy_array_strided(in, 0, ALLOY_F64, 1, hs3, hst3);
        alloy_array d1 = alloy_array_contiguous(out, 0, ALLOY_F64, 1, hs3);
        ASSERT_FAILS(alloy_encode_copy(cb, &h, &d1), ALLOY_ERR_INVALID_ARGUMENT, "src");
        int64_t hs4[8] = {1 << 8, 1 << 8, 1 << 8, 1 << 8, 1 << 8, 1 << 8, 1 << 8, 1 << 8};
        h = alloy_array_contiguous(out, 0, ALLOY_F32, 8, hs4); /* 2^64 elements */
        ASSERT_FAILS(alloy_encode_copy(cb, &src, &h), ALLOY_ERR_INVALID_ARGUMENT, "dst");
    }
    a = src;
    a.buffer = foreign;
    ASSERT_FAILS(alloy_encode_copy(cb, &a, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src.buffer");
    a = dst;
    a.buffer = foreign;
    ASSERT_FAILS(alloy_encode_copy(cb, &src, &a), ALLOY_ERR_INVALID_ARGUMENT, "dst.buffer");
    {
        /* overlap: dst over src in the same buffer, partially */
        alloy_array o = alloy_array_contiguous(in, 4 * 8 * 4 - 4, ALLOY_F32, 2, s2);
        ASSERT_FAILS(alloy_encode_copy(cb, &src, &o), ALLOY_ERR_INVALID_ARGUMENT, "dst");
        /* exactly in place is overlap too */
        ASSERT_FAILS(alloy_encode_copy(cb, &src, &src), ALLOY_ERR_INVALID_ARGUMENT, "dst");
        /* interleaved ranges (even and odd elements) overlap as byte ranges */
        int64_t k = 16, two = 2;
        alloy_array ev = alloy_array_strided(out, 0, ALLOY_F32, 1, &k, &two);
        alloy_array od = alloy_array_strided(out, 4, ALLOY_F32, 1, &k, &two);
        ASSERT_FAILS(alloy_encode_copy(cb, &ev, &od), ALLOY_ERR_INVALID_ARGUMENT, "dst");
    }
    {
        /* self-overlapping output: strides make two indices share an element */
        int64_t st[2] = {4, 1}, sh[2] = {4, 8};
        alloy_array so = alloy_array_strided(out, 0, ALLOY_F32, 2, sh, st);
        ASSERT_FAILS(alloy_encode_copy(cb, &src, &so), ALLOY_ERR_INVALID_ARGUMENT, "dst");
        int64_t st2[2] = {1, 1};
        so = alloy_array_strided(out, 0, ALLOY_F32, 2, sh, st2);
        ASSERT_FAILS(alloy_encode_copy(cb, &src, &so), ALLOY_ERR_INVALID_ARGUMENT, "dst");
    }
    {
        /* shapes: src of higher rank, non-broadcastable dims */
        int64_t s3[3] = {1, 4, 8};
        alloy_array s = alloy_array_contiguous(in, 0, ALLOY_F32, 3, s3);
        ASSERT_FAILS(alloy_encode_copy(cb, &s, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src");
        int64_t bad[2] = {3, 8};
        s = alloy_array_contiguous(in, 0, ALLOY_F32, 2, bad);
        ASSERT_FAILS(alloy_encode_copy(cb, &s, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src.shape");
        int64_t bad2[1] = {2};
        s = alloy_array_contiguous(in, 0, ALLOY_F32, 1, bad2);
        ASSERT_FAILS(alloy_encode_copy(cb, &s, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src.shape");
        int64_t zero[1] = {0}; /* 0 does not broadcast to 8 */
        s = alloy_array_contiguous(in, 0, ALLOY_F32, 1, zero);
        ASSERT_FAILS(alloy_encode_copy(cb, &s, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src.shape");
    }
    {
        /* dtypes: i32 <-> float is unsupported; an unknown dtype is invalid */
        alloy_array si = src;
        si.dtype = ALLOY_I32;
        ASSERT_FAILS(alloy_encode_copy(cb, &si, &dst), ALLOY_ERR_UNSUPPORTED, "i32");
        alloy_array di = dst;
        di.dtype = ALLOY_I32;
        ASSERT_FAILS(alloy_encode_copy(cb, &src, &di), ALLOY_ERR_UNSUPPORTED, "i32");
        alloy_array sx = src;
        sx.dtype = (alloy_dtype)9;
        ASSERT_FAILS(alloy_encode_copy(cb, &sx, &dst), ALLOY_ERR_INVALID_ARGUMENT, "src.dtype");
        alloy_array dx = dst;
        dx.dtype = (alloy_dtype)-3;
        ASSERT_FAILS(alloy_encode_copy(cb, &src, &dx), ALLOY_ERR_INVALID_ARGUMENT, "dst.dtype");
    }

    /* Every rejection left out untouched, so far, and the command buffer usable: a
     * valid copy after them runs and is the only thing that ran. */
    for (int i = 0; i < BYTES; i++)
        ASSERT_EQ(((unsigned char *)alloy_buffer_contents(out))[i], 0x5c);
    int64_t s1 = 5;
    alloy_array ok_s = alloy_array_contiguous(in, 40, ALLOY_F32, 1, &s1);
    alloy_array ok_d = alloy_array_contiguous(out, 1000, ALLOY_F64, 1, &s1);
    ASSERT_OK(alloy_encode_copy(cb, &ok_s, &ok_d));
    test_commit_wait(cb);
    const unsigned char *o = alloy_buffer_contents(out);
    for (int i = 0; i < BYTES; i++) {
        if (i >= 1000 && i < 1040)
            continue;
        ASSERT_EQ(o[i], 0x5c);
    }
    for (int i = 0; i < 5; i++)
        ASSERT(((const double *)(o + 1000))[i] == (double)(10 + i));
    for (int i = 0; i < BYTES / 4; i++)
        ASSERT(((float *)ip)[i] == (float)i);

    ASSERT_OK(alloy_buffer_destroy(in));
    ASSERT_OK(alloy_buffer_destroy(out));
    ASSERT_OK(alloy_buffer_destroy(foreign));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    ASSERT_OK(alloy_device_close(other));
}

/* Legal edge cases that must be accepted: empty arrays (even at the very end of a
 * buffer), extent-1 output dims with stride 0, a zero-byte buffer. */
TEST(copy_edge_accepted)
{
    copy_ctx x = copy_ctx_new(1, 0);
    alloy_buffer *b = test_buffer(x.dev, 256), *z = test_buffer(x.dev, 0);
    memset(alloy_buffer_contents(b), 0x21, 256);
    int64_t e[2] = {0, 5};
    alloy_array s = alloy_array_contiguous(b, 0, ALLOY_F32, 2, e);
    alloy_array d = alloy_array_contiguous(b, 256, ALLOY_F32, 2, e);
    check_copy(&x, &s, &d);
    alloy_array zs = alloy_array_contiguous(z, 0, ALLOY_F16, 2, e);
    alloy_array zd = alloy_array_contiguous(z, 0, ALLOY_BF16, 2, e);
    check_copy(&x, &zs, &zd); /* empty src and dst at the same address do not overlap */
    int64_t one[2] = {1, 1}, zst[2] = {0, 0};
    alloy_array s1 = alloy_array_contiguous(b, 0, ALLOY_F32, 2, one);
    alloy_array d1 = alloy_array_strided(b, 128, ALLOY_F64, 2, one, zst);
    check_copy(&x, &s1, &d1);
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_buffer_destroy(z));
    copy_ctx_free(&x);
}

TEST_LIST{
    TEST_ENTRY(oracle_known_answers),
    TEST_ENTRY(convert_all_pairs),
    TEST_ENTRY(convert_specials),
    TEST_ENTRY(copy_random_shapes),
    TEST_ENTRY(copy_transposed_src),
    TEST_ENTRY(copy_strided_dst),
    TEST_ENTRY(copy_broadcast),
    TEST_ENTRY(copy_rank0),
    TEST_ENTRY(copy_i32),
    TEST_ENTRY(copy_bad_inputs),
    TEST_ENTRY(copy_edge_accepted),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
