/* Cross-backend: every op on every available backend against the CPU backend, ggml's
 * test-backend-ops in alloy's shape. Each case builds random inputs on the host, runs the
 * same encoded op on the CPU device and on the GPU (buffers of every kind: device memory,
 * pinned host memory, wrapped caller memory), reads every buffer back and compares:
 *   copy         bitwise (conversions are exact functions), gaps between elements too;
 *   matmul       within a bound from the inputs' magnitudes (f32 and f64 are reported
 *                when bitwise, which the SIMT kernels are designed to be);
 *   layer_norm   within a tolerance of the math precision and the output dtype.
 * Shapes include 0, 1, primes, strided, transposed and broadcast views, batches beyond the
 * grid's y limit, and both the tensor-core fast paths and their general fallbacks.
 *
 * No CUDA device: prints "SKIP: no CUDA device: <reason>" and passes.
 * ALLOY_TEST_SMALL=1 shrinks the problems (compute-sanitizer runs). */
#include "harness.h"

#include <float.h>
#include <stdint.h>

/* ---------------------------------------------------------------- environment */

typedef struct env {
    alloy_device *cpu, *gpu;
    alloy_queue *qc, *qg;
    int small;
} env;

static alloy_status open_gpu(alloy_device **out)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CUDA;
    return alloy_device_open(&d, out);
}

static env env_open(void)
{
    env e;
    memset(&e, 0, sizeof e);
    e.cpu = test_cpu_device(0);
    ASSERT_OK(open_gpu(&e.gpu));
    ASSERT_OK(alloy_queue_create(e.cpu, &e.qc));
    ASSERT_OK(alloy_queue_create(e.gpu, &e.qg));
    const char *s = getenv("ALLOY_TEST_SMALL");
    e.small = s && *s && *s != '0';
    return e;
}

static void env_close(env *e)
{
    ASSERT_OK(alloy_queue_destroy(e->qc));
    ASSERT_OK(alloy_queue_destroy(e->qg));
    ASSERT_OK(alloy_device_close(e->cpu));
    ASSERT_OK(alloy_device_close(e->gpu));
}

/* ---------------------------------------------------------------- dtypes */

static const char *dt_name(alloy_dtype t)
{
    static const char *const n[] = {"f32", "f64", "f16", "bf16", "i32"};
    return (int)t >= 0 && (int)t < 5 ? n[t] : "?";
}

static double f16_value(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0x1f ? (m ? NAN : INFINITY)
               : e == 0  ? ldexp((double)m, -24)
                         : ldexp((double)(1024 + m), e - 25);
    return sign ? -v : v;
}

static double bf16_value(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return (double)f;
}

/* Element i of a buffer of dtype t, as a double. */
static double value_at(alloy_dtype t, const unsigned char *base, int64_t i)
{
    switch (t) {
    case ALLOY_F32: {
        float f;
        memcpy(&f, base + i * 4, 4);
        return f;
    }
    case ALLOY_F64: {
        double d;
        memcpy(&d, base + i * 8, 8);
        return d;
    }
    case ALLOY_F16: {
        uint16_t h;
        memcpy(&h, base + i * 2, 2);
        return f16_value(h);
    }
    case ALLOY_BF16: {
        uint16_t h;
        memcpy(&h, base + i * 2, 2);
        return bf16_value(h);
    }
    case ALLOY_I32: {
        int32_t v;
        memcpy(&v, base + i * 4, 4);
        return v;
    }
    }
    return 0;
}

/* The nearest value of dtype t to v, for making inputs (any correct rounding will do). */
static void store_value(alloy_dtype t, unsigned char *base, int64_t i, double v)
{
    switch (t) {
    case ALLOY_F32: {
        float f = (float)v;
        memcpy(base + i * 4, &f, 4);
        return;
    }
    case ALLOY_F64: memcpy(base + i * 8, &v, 8); return;
    case ALLOY_BF16: {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, 4);
        u += 0x7fffu + ((u >> 16) & 1u);
        uint16_t h = (uint16_t)(u >> 16);
        memcpy(base + i * 2, &h, 2);
        return;
    }
    case ALLOY_F16: { /* round to nearest even by hand */
        double a = fabs(v);
        uint16_t h;
        if (a >= 65520.0)
            h = 0x7c00;
        else if (a < 0x1p-14)
            h = (uint16_t)nearbyint(a * 0x1p24); /* subnormal (1024 becomes the smallest normal) */
        else {
            int ex;
            double f = frexp(a, &ex); /* a = f * 2^ex, f in [0.5, 1) */
            int e = ex - 1;
            double q = nearbyint((2 * f - 1) * 1024);
            if (q == 1024) {
                q = 0;
                e++;
            }
            h = e > 15 ? 0x7c00 : (uint16_t)(((e + 15) << 10) | (int)q);
        }
        if (signbit(v))
            h |= 0x8000;
        memcpy(base + i * 2, &h, 2);
        return;
    }
    case ALLOY_I32: {
        int32_t x = (int32_t)v;
        memcpy(base + i * 4, &x, 4);
        return;
    }
    }
}

/* Random bits with a bias towards the values conversions find hard: NaNs with payloads,
 * infinities, zeros, subnormals, the largest finite values and rounding ties of the
 * narrower formats. */
static void fill_special(alloy_dtype t, unsigned char *p, int64_t n, test_rng *r)
{
    size_t es = alloy_dtype_size(t);
    for (int64_t i = 0; i < n; i++) {
        uint64_t x = rng_next(r);
        int kind = (int)(rng_next(r) % 8);
        if (es == 2) {
            uint16_t h = (uint16_t)x;
            memcpy(p + i * 2, &h, 2);
        } else if (t == ALLOY_F32 || t == ALLOY_I32) {
            uint32_t u = (uint32_t)x;
            if (t == ALLOY_F32) {
                uint32_t s = u & 0x80000000u;
                switch (kind) {
                case 0: break;                                        /* any pattern */
                case 1: u = s | 0x7f800000u | (u & 0x7fffffu); break; /* inf / NaN payloads */
                case 2: u = s | (u & 0x7fffffu); break;               /* subnormal */
                case 3: /* f16's range edges: exponents around 2^-25 .. 2^16 */
                    u = s | ((uint32_t)(102 + (x >> 40) % 42) << 23) | (u & 0x7fffffu);
                    break;
                case 4: /* an f16 tie: ten kept bits, then exactly half */
                    u = s | ((uint32_t)(113 + (x >> 40) % 30) << 23) | (u & 0x7fe000u) | 0x1000u;
                    break;
                case 5: u = s | (u & 0x7fff0000u) | 0x8000u; break; /* a bf16 tie */
                case 6: u = s | (u & 0x7f800000u) | 0x7fff; break;
                default: u = s | ((uint32_t)(120 + (x >> 40) % 10) << 23) | (u & 0x7fffffu);
                }
            }
            memcpy(p + i * 4, &u, 4);
        } else {
            uint64_t u = x, s = u & 0x8000000000000000ull, m = u & 0xfffffffffffffull;
            switch (kind) {
            case 0: break;
            case 1: u = s | 0x7ff0000000000000ull | m; break;
            case 2: u = s | m; break;
            case 3: u = s | ((uint64_t)(1023 - 30 + (x >> 50) % 50) << 52) | m; break;
            case 4: /* an f16 tie from f64 (with or without sticky bits below) */
                u = s | ((uint64_t)(1023 - 24 + (x >> 50) % 40) << 52) | (m & 0xffc0000000000ull) |
                    0x20000000000ull | ((x >> 7) & 1);
                break;
            case 5: /* an f32 / bf16 tie from f64 */
                u = s | ((uint64_t)(1023 - 140 + (x >> 50) % 270) << 52) |
                    (m & 0xfffffe0000000ull) | 0x10000000ull;
                break;
            case 6: u = s | ((uint64_t)(1023 + 120 + (x >> 50) % 10) << 52) | m; break;
            default: u = s | ((uint64_t)(1023 - 10 + (x >> 50) % 20) << 52) | m;
            }
            memcpy(p + i * 8, &u, 8);
        }
    }
}

/* Ordinary values in [-scale, scale) + shift, stored in dtype t. */
static void fill_values(alloy_dtype t, unsigned char *p, int64_t n, test_rng *r, double scale,
                        double shift)
{
    for (int64_t i = 0; i < n; i++) {
        double v = rng_uniform(r) * scale + shift;
        if (t == ALLOY_F16) { /* quick: a value with 10 fraction bits in [-2, 2) */
            v = ldexp(floor(ldexp(v, 10)), -10);
        }
        store_value(t, p, i, v);
    }
}

/* ---------------------------------------------------------------- layouts */

typedef struct layout {
    int rank;
    int64_t shape[ALLOY_MAX_RANK], strides[ALLOY_MAX_RANK];
    size_t offset; /* bytes */
    int64_t span;  /* elements from the first to one past the last */
} layout;

static int64_t pick_extent(test_rng *r)
{
    static const int64_t ext[] = {0, 1, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64};
    return ext[rng_next(r) % (sizeof ext / sizeof ext[0])];
}

/* Strides for `shape`: row-major (0), row-major with the last two swapped (1), or a random
 * dimension order with gaps (2). */
static void make_strides(layout *l, test_rng *r, int style, size_t es)
{
    int order[ALLOY_MAX_RANK]; /* outermost first */
    for (int i = 0; i < l->rank; i++)
        order[i] = i;
    if (style == 1 && l->rank >= 2) {
        order[l->rank - 2] = l->rank - 1;
        order[l->rank - 1] = l->rank - 2;
    } else if (style == 2) {
        for (int i = l->rank - 1; i > 0; i--) {
            int j = (int)(rng_next(r) % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    int64_t s = style == 2 ? 1 + (int64_t)(rng_next(r) % 2) : 1;
    for (int i = l->rank - 1; i >= 0; i--) {
        int d = order[i];
        l->strides[d] = s;
        s = s * (l->shape[d] > 0 ? l->shape[d] : 1) + (style == 2 ? (int64_t)(rng_next(r) % 4) : 0);
    }
    int64_t span = 1;
    for (int i = 0; i < l->rank; i++) {
        if (l->shape[i] == 0) {
            span = 0;
            break;
        }
        span += (l->shape[i] - 1) * l->strides[i];
    }
    l->span = span;
    l->offset = (size_t)(rng_next(r) % 4) * es;
}

static size_t layout_bytes(const layout *l, size_t es)
{
    return l->offset + (size_t)l->span * es + es;
}

static alloy_array layout_array(const layout *l, alloy_buffer *b, alloy_dtype t)
{
    return alloy_array_strided(b, l->offset, t, l->rank, l->shape, l->strides);
}

/* ---------------------------------------------------------------- running one case */

enum { MAX_SLOTS = 6 };

typedef struct kase {
    int n;
    size_t bytes[MAX_SLOTS];
    unsigned char *init[MAX_SLOTS];
    unsigned char *out[2][MAX_SLOTS]; /* [cpu, gpu] */
} kase;

typedef void (*encode_fn)(alloy_cmdbuf *cb, alloy_buffer *const *b, const void *ctx);

static unsigned char *xmalloc(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    if (!p)
        FAIL_AT("out of host memory (%zu bytes)", n);
    return p;
}

static int slot_add(kase *k, size_t bytes)
{
    ASSERT(k->n < MAX_SLOTS);
    k->bytes[k->n] = bytes;
    k->init[k->n] = xmalloc(bytes);
    memset(k->init[k->n], 0, bytes);
    return k->n++;
}

static void kase_free(kase *k)
{
    for (int i = 0; i < k->n; i++) {
        free(k->init[i]);
        free(k->out[0][i]);
        free(k->out[1][i]);
    }
    memset(k, 0, sizeof *k);
}

/* Runs enc on both devices; the GPU's slots get a memory kind picked by `kinds` (bits 0-1
 * per slot: 0 device, 1 pinned host, 2 wrapped host memory). */
static void run_case(env *e, kase *k, encode_fn enc, const void *ctx, unsigned kinds)
{
    for (int dv = 0; dv < 2; dv++) {
        alloy_device *dev = dv ? e->gpu : e->cpu;
        alloy_queue *q = dv ? e->qg : e->qc;
        alloy_buffer *b[MAX_SLOTS];
        void *wrapped[MAX_SLOTS] = {0};
        for (int i = 0; i < k->n; i++) {
            unsigned kind = dv ? (kinds >> (2 * i)) & 3u : 0u;
            if (kind == 2) { /* pages of its own: pinning works on whole pages */
                size_t pages = (k->bytes[i] + 4095) & ~(size_t)4095;
                if (posix_memalign(&wrapped[i], 4096, pages) != 0)
                    FAIL_AT("out of host memory");
                memcpy(wrapped[i], k->init[i], k->bytes[i]);
                ASSERT_OK(alloy_buffer_wrap_host(dev, wrapped[i], k->bytes[i], &b[i]));
            } else if (kind == 1) {
                ASSERT_OK(alloy_buffer_create(dev, k->bytes[i], ALLOY_MEMORY_HOST, &b[i]));
                ASSERT(alloy_buffer_contents(b[i]) != NULL);
                memcpy(alloy_buffer_contents(b[i]), k->init[i], k->bytes[i]);
            } else {
                ASSERT_OK(alloy_buffer_create(dev, k->bytes[i], ALLOY_MEMORY_DEVICE, &b[i]));
                ASSERT_OK(alloy_buffer_write(b[i], 0, k->init[i], k->bytes[i]));
            }
        }
        alloy_cmdbuf *cb = NULL;
        ASSERT_OK(alloy_cmdbuf_create(q, &cb));
        enc(cb, b, ctx);
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        alloy_status st = alloy_cmdbuf_wait(cb);
        if (st != ALLOY_OK)
            FAIL_AT("%s run failed: %s: %s", dv ? "gpu" : "cpu", alloy_status_string(st),
                    alloy_cmdbuf_error(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        for (int i = 0; i < k->n; i++) {
            k->out[dv][i] = xmalloc(k->bytes[i]);
            ASSERT_OK(alloy_buffer_read(b[i], 0, k->out[dv][i], k->bytes[i]));
            ASSERT_OK(alloy_buffer_destroy(b[i]));
            free(wrapped[i]);
        }
    }
}

static unsigned random_kinds(test_rng *r)
{
    unsigned k = 0;
    for (int i = 0; i < MAX_SLOTS; i++) {
        uint64_t x = rng_next(r) % 8; /* mostly device memory */
        k |= (x < 5 ? 0u : x < 7 ? 1u : 2u) << (2 * i);
    }
    return k;
}

/* Bytes of a slot that differ between the backends: the first, or -1. */
static int64_t first_diff(const kase *k, int slot)
{
    for (size_t i = 0; i < k->bytes[slot]; i++)
        if (k->out[0][slot][i] != k->out[1][slot][i])
            return (int64_t)i;
    return -1;
}

/* ---------------------------------------------------------------- copy */

typedef struct copy_ctx {
    layout s, d;
    alloy_dtype ts, td;
} copy_ctx;

static void encode_copy(alloy_cmdbuf *cb, alloy_buffer *const *b, const void *p)
{
    const copy_ctx *c = p;
    alloy_array s = layout_array(&c->s, b[0], c->ts), d = layout_array(&c->d, b[1], c->td);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));
}

static void check_copy_bitwise(const kase *k, const copy_ctx *c, const char *what)
{
    int64_t at = first_diff(k, 1);
    if (at >= 0) {
        size_t es = alloy_dtype_size(c->td);
        int64_t el = (at - (int64_t)c->d.offset) / (int64_t)es;
        unsigned long long cv = 0, gv = 0;
        memcpy(&cv, k->out[0][1] + (at / (int64_t)es) * (int64_t)es, es);
        memcpy(&gv, k->out[1][1] + (at / (int64_t)es) * (int64_t)es, es);
        FAIL_AT("copy %s %s -> %s (rank %d): dst byte %lld (element ~%lld) differs: cpu 0x%llx "
                "gpu 0x%llx",
                what, dt_name(c->ts), dt_name(c->td), c->d.rank, (long long)at, (long long)el, cv,
                gv);
    }
}

static void copy_one(env *e, test_rng *r, alloy_dtype ts, alloy_dtype td, int special)
{
    copy_ctx c;
    memset(&c, 0, sizeof c);
    c.ts = ts;
    c.td = td;
    c.d.rank = (int)(rng_next(r) % 5);
    int64_t count = 1;
    for (int i = 0; i < c.d.rank; i++) {
        c.d.shape[i] = pick_extent(r);
        if (count * (c.d.shape[i] ? c.d.shape[i] : 1) > 40000)
            c.d.shape[i] = 1;
        count *= c.d.shape[i] ? c.d.shape[i] : 1;
    }
    make_strides(&c.d, r, (int)(rng_next(r) % 3), alloy_dtype_size(td));
    /* src: dst's trailing dims, some broadcast (extent 1 or missing), own layout. */
    c.s.rank = c.d.rank - (c.d.rank ? (int)(rng_next(r) % 2) : 0);
    for (int i = 0; i < c.s.rank; i++) {
        int di = i + (c.d.rank - c.s.rank);
        c.s.shape[i] = rng_next(r) % 5 == 0 ? 1 : c.d.shape[di];
    }
    make_strides(&c.s, r, (int)(rng_next(r) % 3), alloy_dtype_size(ts));
    for (int i = 0; i < c.s.rank; i++) /* an explicit zero-stride broadcast now and then */
        if (c.s.shape[i] == 1 && rng_next(r) % 2)
            c.s.strides[i] = 0;
    kase k;
    memset(&k, 0, sizeof k);
    int s0 = slot_add(&k, layout_bytes(&c.s, alloy_dtype_size(ts)));
    int s1 = slot_add(&k, layout_bytes(&c.d, alloy_dtype_size(td)));
    int64_t ns = (int64_t)(k.bytes[s0] / alloy_dtype_size(ts));
    if (special || ts == ALLOY_I32)
        fill_special(ts, k.init[s0], ns, r);
    else
        fill_values(ts, k.init[s0], ns, r, 3.0, 0.0);
    fill_special(td, k.init[s1], (int64_t)(k.bytes[s1] / alloy_dtype_size(td)), r);
    run_case(e, &k, encode_copy, &c, random_kinds(r));
    check_copy_bitwise(&k, &c, "random view");
    if (first_diff(&k, 0) >= 0)
        FAIL_AT("copy changed its source");
    kase_free(&k);
}

/* Every dtype pair over random views and random bits. */
TEST(copy_every_pair_random_views)
{
    env e = env_open();
    test_rng r = {0x5eed0001};
    static const alloy_dtype fl[] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    int rounds = e.small ? 3 : 30;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                copy_one(&e, &r, fl[i], fl[j], round % 2);
        copy_one(&e, &r, ALLOY_I32, ALLOY_I32, 1);
    }
    env_close(&e);
}

/* Every f16 and bf16 bit pattern to every dtype, and many f32 / f64 patterns near the
 * narrow formats' rounding boundaries, contiguous (the conversion kernels' fast walk). */
TEST(copy_conversions_exhaustive)
{
    env e = env_open();
    test_rng r = {0x5eed0002};
    static const alloy_dtype fl[] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    for (int i = 0; i < 4; i++) {
        int64_t n = fl[i] == ALLOY_F16 || fl[i] == ALLOY_BF16 ? 65536 : (e.small ? 65536 : 1 << 20);
        for (int j = 0; j < 4; j++) {
            copy_ctx c;
            memset(&c, 0, sizeof c);
            c.ts = fl[i];
            c.td = fl[j];
            c.s.rank = c.d.rank = 1;
            c.s.shape[0] = c.d.shape[0] = n;
            c.s.strides[0] = c.d.strides[0] = 1;
            c.s.span = c.d.span = n;
            kase k;
            memset(&k, 0, sizeof k);
            slot_add(&k, (size_t)n * alloy_dtype_size(fl[i]));
            slot_add(&k, (size_t)n * alloy_dtype_size(fl[j]));
            if (n == 65536)
                for (int64_t v = 0; v < n; v++) {
                    uint16_t h = (uint16_t)v;
                    memcpy(k.init[0] + v * 2, &h, 2);
                }
            else
                fill_special(fl[i], k.init[0], n, &r);
            run_case(&e, &k, encode_copy, &c, (unsigned)(i + j) % 3u);
            check_copy_bitwise(&k, &c, "exhaustive");
            kase_free(&k);
        }
    }
    env_close(&e);
}

/* ---------------------------------------------------------------- matmul */

typedef struct mm_ctx {
    layout a, b, c, bias;
    alloy_dtype ta, tc, tbias;
    int has_bias;
    alloy_matmul_desc d;
    int64_t m, n, k;
} mm_ctx;

static void encode_mm(alloy_cmdbuf *cb, alloy_buffer *const *b, const void *p)
{
    const mm_ctx *c = p;
    alloy_array a = layout_array(&c->a, b[0], c->ta), bb = layout_array(&c->b, b[1], c->ta);
    alloy_array cc = layout_array(&c->c, b[2], c->tc);
    alloy_array bias = c->has_bias ? layout_array(&c->bias, b[3], c->tbias) : cc;
    ASSERT_OK(alloy_encode_matmul(cb, &c->d, &a, &bb, c->has_bias ? &bias : NULL, &cc));
}

/* Element offset of matrix element (i, j) of batch entry `bi` (C's batch index space) for
 * layout l with `batch` dims of C's `cb` batch dims (numpy broadcast from the right). */
static int64_t mm_offset(const layout *l, const layout *c, int64_t bi, int64_t i, int64_t j)
{
    int cbr = c->rank - 2, lbr = l->rank - 2;
    int64_t off = i * l->strides[l->rank - 2] + j * l->strides[l->rank - 1];
    for (int d = cbr - 1; d >= 0; d--) {
        int64_t idx = bi % c->shape[d];
        bi /= c->shape[d];
        int ld = d - (cbr - lbr);
        if (ld >= 0 && l->shape[ld] != 1)
            off += idx * l->strides[ld];
    }
    return off;
}

/* Unit roundoff of the accumulation, and of the output's rounding. */
static void mm_tolerances(const mm_ctx *c, double *acc, double *out)
{
    if (c->ta == ALLOY_F64)
        *acc = 0x1p-52;
    else if (c->ta == ALLOY_F32 && c->d.allow_tf32)
        *acc = 0x1p-9; /* each operand rounded to 10 fraction bits */
    else if (c->ta == ALLOY_F32)
        *acc = 0x1p-23;
    else
        *acc = 0x1p-21; /* tensor cores' f32 accumulation is not IEEE step by step */
    *out = c->tc == ALLOY_F64   ? 0x1p-52
           : c->tc == ALLOY_F32 ? 0x1p-23
           : c->tc == ALLOY_F16 ? 0x1p-10
                                : 0x1p-7;
}

static int64_t mm_check(const kase *k, const mm_ctx *c, const char *what)
{
    size_t ces = alloy_dtype_size(c->tc);
    int64_t batch = 1;
    for (int d = 0; d < c->c.rank - 2; d++)
        batch *= c->c.shape[d];
    double acc_u, out_u;
    mm_tolerances(c, &acc_u, &out_u);
    /* bytes of C inside the view, compared with tolerance; all others bitwise */
    unsigned char *mask = xmalloc(k->bytes[2]);
    memset(mask, 0, k->bytes[2]);
    int64_t bitwise_diff = 0;
    const unsigned char *c0 = k->init[2] + c->c.offset;
    const unsigned char *a0 = k->init[0] + c->a.offset, *b0 = k->init[1] + c->b.offset;
    const unsigned char *cc = k->out[0][2] + c->c.offset, *gc = k->out[1][2] + c->c.offset;
    for (int64_t bi = 0; bi < batch; bi++)
        for (int64_t i = 0; i < c->m; i++)
            for (int64_t j = 0; j < c->n; j++) {
                int64_t co = mm_offset(&c->c, &c->c, bi, i, j);
                memset(mask + c->c.offset + (size_t)co * ces, 1, ces);
                double cv = value_at(c->tc, cc, co), gv = value_at(c->tc, gc, co);
                if (memcmp(cc + co * (int64_t)ces, gc + co * (int64_t)ces, ces) != 0)
                    bitwise_diff++;
                else
                    continue;
                double s = 0;
                if (c->d.alpha != 0)
                    for (int64_t p = 0; p < c->k; p++)
                        s += fabs(value_at(c->ta, a0, mm_offset(&c->a, &c->c, bi, i, p)) *
                                  value_at(c->ta, b0, mm_offset(&c->b, &c->c, bi, p, j)));
                s *= fabs(c->d.alpha);
                if (c->d.beta != 0)
                    s += fabs(c->d.beta * value_at(c->tc, c0, co));
                if (c->has_bias)
                    s += fabs(
                        value_at(c->tbias, k->init[3] + c->bias.offset, j * c->bias.strides[0]));
                double bound =
                    acc_u * (double)(c->k + 4) * s + 2 * out_u * fmax(fabs(cv), fabs(gv)) + 1e-300;
                int ok =
                    (isnan(cv) && isnan(gv)) || (isinf(cv) && cv == gv) || fabs(cv - gv) <= bound;
                if (!ok)
                    FAIL_AT(
                        "matmul %s: %s x %s -> %s%s M=%lld N=%lld K=%lld batch %lld (%lld,%lld): "
                        "cpu %.9g gpu %.9g bound %.3g (alpha %g beta %g bias %d)",
                        what, dt_name(c->ta), dt_name(c->ta), dt_name(c->tc),
                        c->d.allow_tf32 ? " tf32" : "", (long long)c->m, (long long)c->n,
                        (long long)c->k, (long long)bi, (long long)i, (long long)j, cv, gv, bound,
                        c->d.alpha, c->d.beta, c->has_bias);
            }
    for (size_t i = 0; i < k->bytes[2]; i++)
        if (!mask[i] && k->out[0][2][i] != k->out[1][2][i])
            FAIL_AT("matmul %s: byte %zu of C outside the view differs", what, i);
    free(mask);
    for (int s = 0; s < k->n; s++)
        if (s != 2 && first_diff(k, s) >= 0)
            FAIL_AT("matmul %s: input slot %d changed", what, s);
    return bitwise_diff;
}

/* A random matmul problem: dtypes, shapes, layouts, batch broadcast, epilogue. */
static void mm_make(mm_ctx *c, test_rng *r, alloy_dtype ta, alloy_dtype tc, int tf32, int64_t m,
                    int64_t n, int64_t k, int batch_rank, int style)
{
    memset(c, 0, sizeof *c);
    c->ta = ta;
    c->tc = tc;
    c->m = m;
    c->n = n;
    c->k = k;
    c->d = alloy_matmul_desc_default();
    c->d.allow_tf32 = tf32;
    int ep = (int)(rng_next(r) % 6);
    if (ep == 1)
        c->d.alpha = 0.0;
    else if (ep == 2)
        c->d.beta = 0.5;
    else if (ep == 3) {
        c->d.alpha = -1.5;
        c->d.beta = -2.0;
    }
    c->has_bias = rng_next(r) % 3 == 0;
    c->c.rank = batch_rank + 2;
    for (int d = 0; d < batch_rank; d++)
        c->c.shape[d] = 1 + (int64_t)(rng_next(r) % 3);
    c->c.shape[batch_rank] = m;
    c->c.shape[batch_rank + 1] = n;
    /* A and B: C's batch dims, some broadcast (1) or missing */
    layout *ops[2] = {&c->a, &c->b};
    for (int o = 0; o < 2; o++) {
        layout *l = ops[o];
        int drop = batch_rank ? (int)(rng_next(r) % (uint64_t)(batch_rank + 1)) : 0;
        l->rank = c->c.rank - drop;
        for (int d = 0; d < l->rank - 2; d++)
            l->shape[d] = rng_next(r) % 3 == 0 ? 1 : c->c.shape[d + drop];
        l->shape[l->rank - 2] = o == 0 ? m : k;
        l->shape[l->rank - 1] = o == 0 ? k : n;
        make_strides(l, r, style >= 0 ? style : (int)(rng_next(r) % 3), alloy_dtype_size(ta));
        if (style == 0 || style == 1)
            l->offset = 0;
    }
    make_strides(&c->c, r,
                 style == 0                    ? 0
                 : (int)(rng_next(r) % 3) == 2 ? 2
                                               : 0,
                 alloy_dtype_size(tc));
    if (c->has_bias) {
        static const alloy_dtype bd[] = {ALLOY_F32, ALLOY_F16, ALLOY_BF16, ALLOY_F64};
        c->tbias = bd[rng_next(r) % (tc == ALLOY_F64 ? 4 : 3)];
        c->bias.rank = 1;
        c->bias.shape[0] = n;
        make_strides(&c->bias, r, (int)(rng_next(r) % 3), alloy_dtype_size(c->tbias));
    }
}

static void mm_run(env *e, test_rng *r, mm_ctx *c, const char *what, int64_t *bitwise_diffs)
{
    kase k;
    memset(&k, 0, sizeof k);
    size_t es = alloy_dtype_size(c->ta), ces = alloy_dtype_size(c->tc);
    slot_add(&k, layout_bytes(&c->a, es));
    slot_add(&k, layout_bytes(&c->b, es));
    slot_add(&k, layout_bytes(&c->c, ces));
    slot_add(&k, c->has_bias ? layout_bytes(&c->bias, alloy_dtype_size(c->tbias)) : 8);
    if (c->d.alpha == 0) { /* never read: NaN would show */
        memset(k.init[0], 0xff, k.bytes[0]);
        memset(k.init[1], 0xff, k.bytes[1]);
    } else {
        fill_values(c->ta, k.init[0], (int64_t)(k.bytes[0] / es), r, 1.0, 0.0);
        fill_values(c->ta, k.init[1], (int64_t)(k.bytes[1] / es), r, 1.0, 0.0);
    }
    if (c->d.beta == 0)
        memset(k.init[2], 0xff, k.bytes[2]); /* never read: NaN would show */
    else
        fill_values(c->tc, k.init[2], (int64_t)(k.bytes[2] / ces), r, 1.0, 0.0);
    if (c->has_bias)
        fill_values(c->tbias, k.init[3], (int64_t)(k.bytes[3] / alloy_dtype_size(c->tbias)), r, 1.0,
                    0.0);
    run_case(e, &k, encode_mm, c, random_kinds(r));
    int64_t diffs = mm_check(&k, c, what);
    if (bitwise_diffs)
        *bitwise_diffs += diffs;
    kase_free(&k);
}

static const struct {
    alloy_dtype a, c;
    int tf32;
} mm_types[] = {{ALLOY_F32, ALLOY_F32, 0}, {ALLOY_F32, ALLOY_F32, 1}, {ALLOY_F64, ALLOY_F64, 0},
                {ALLOY_F16, ALLOY_F16, 0}, {ALLOY_F16, ALLOY_F32, 0}, {ALLOY_BF16, ALLOY_BF16, 0},
                {ALLOY_BF16, ALLOY_F32, 0}};
enum { MM_TYPES = sizeof mm_types / sizeof mm_types[0] };

/* Small random shapes (0, 1, primes, tile edges) in every layout. */
TEST(matmul_random_small)
{
    env e = env_open();
    test_rng r = {0x5eed0003};
    int rounds = e.small ? 2 : 12;
    int64_t f32_diffs = 0, f64_diffs = 0;
    for (int round = 0; round < rounds; round++)
        for (int t = 0; t < MM_TYPES; t++) {
            static const int64_t dims[] = {0, 1, 2, 3, 7, 8, 16, 17, 31, 32, 33, 64, 65, 127};
            int64_t m = dims[rng_next(&r) % 14], n = dims[rng_next(&r) % 14],
                    k = dims[rng_next(&r) % 14];
            mm_ctx c;
            mm_make(&c, &r, mm_types[t].a, mm_types[t].c, mm_types[t].tf32, m, n, k,
                    (int)(rng_next(&r) % 3), -1);
            int64_t *diffs = mm_types[t].a == ALLOY_F64                        ? &f64_diffs
                             : mm_types[t].a == ALLOY_F32 && !mm_types[t].tf32 ? &f32_diffs
                                                                               : NULL;
            mm_run(&e, &r, &c, "random small", diffs);
        }
    fprintf(stderr, "  f32 SIMT elements not bitwise equal to the CPU: %lld; f64: %lld\n",
            (long long)f32_diffs, (long long)f64_diffs);
    env_close(&e);
}

/* Larger shapes that reach the tensor cores' large tiles, multi-stage pipelines and
 * K tails, in each of the four operand layouts, contiguous (fast path) and padded. */
TEST(matmul_tiles_and_layouts)
{
    env e = env_open();
    test_rng r = {0x5eed0004};
    static const int64_t big[][3] = {{256, 512, 96}, {300, 260, 100}, {129, 257, 40},
                                     {64, 64, 1000}, {1, 300, 77},    {500, 3, 64}};
    int nshapes = e.small ? 2 : 6;
    for (int s = 0; s < nshapes; s++)
        for (int t = 0; t < MM_TYPES; t++)
            for (int style = 0; style < 3; style++) {
                mm_ctx c;
                mm_make(&c, &r, mm_types[t].a, mm_types[t].c, mm_types[t].tf32, big[s][0],
                        big[s][1], big[s][2], s % 2, style);
                mm_run(&e, &r, &c,
                       style == 0   ? "contiguous"
                       : style == 1 ? "transposed"
                                    : "strided",
                       NULL);
            }
    env_close(&e);
}

/* Batches beyond the grid's y limit (65535), with a broadcast operand. */
TEST(matmul_huge_batch)
{
    env e = env_open();
    test_rng r = {0x5eed0005};
    const int64_t batch = e.small ? 70 : 70001;
    static const alloy_dtype ty[] = {ALLOY_F32, ALLOY_BF16};
    for (int t = 0; t < 2; t++) {
        mm_ctx c;
        memset(&c, 0, sizeof c);
        c.ta = ty[t];
        c.tc = ALLOY_F32;
        c.m = 3;
        c.n = 5;
        c.k = 4;
        c.d = alloy_matmul_desc_default();
        c.a.rank = c.c.rank = 3;
        c.a.shape[0] = c.c.shape[0] = batch;
        c.a.shape[1] = c.c.shape[1] = 3;
        c.a.shape[2] = 4;
        c.c.shape[2] = 5;
        c.b.rank = 2; /* broadcast over the batch */
        c.b.shape[0] = 4;
        c.b.shape[1] = 5;
        make_strides(&c.a, &r, 0, alloy_dtype_size(c.ta));
        make_strides(&c.b, &r, 0, alloy_dtype_size(c.ta));
        make_strides(&c.c, &r, 0, 4);
        mm_run(&e, &r, &c, "huge batch", NULL);
    }
    env_close(&e);
}

/* ---------------------------------------------------------------- layer_norm */

typedef struct norm_ctx {
    layout x, y, gamma, beta, mean, rstd;
    alloy_dtype tx, ty, tg, tb, tm, tr;
    int has_g, has_b, has_m, has_r, in_place;
    alloy_norm_desc d;
} norm_ctx;

static void encode_norm(alloy_cmdbuf *cb, alloy_buffer *const *b, const void *p)
{
    const norm_ctx *c = p;
    alloy_array x = layout_array(&c->x, b[0], c->tx);
    alloy_array y = c->in_place ? x : layout_array(&c->y, b[1], c->ty);
    alloy_array g = layout_array(&c->gamma, b[2], c->tg), bb = layout_array(&c->beta, b[3], c->tb);
    alloy_array m = layout_array(&c->mean, b[4], c->tm), rs = layout_array(&c->rstd, b[5], c->tr);
    ASSERT_OK(alloy_encode_layer_norm(cb, &c->d, &x, c->has_g ? &g : NULL, c->has_b ? &bb : NULL,
                                      &y, c->has_m ? &m : NULL, c->has_r ? &rs : NULL));
}

static void norm_one(env *e, test_rng *r, alloy_dtype tx, int64_t dlen, int64_t rows_hint,
                     int contiguous)
{
    static const alloy_dtype fl[] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    norm_ctx c;
    memset(&c, 0, sizeof c);
    c.tx = tx;
    c.in_place = !contiguous ? 0 : rng_next(r) % 4 == 0;
    c.ty = c.in_place || contiguous ? tx : fl[rng_next(r) % 4];
    c.d = alloy_norm_desc_default();
    c.d.rms = rng_next(r) % 3 == 0;
    if (rng_next(r) % 2)
        c.d.eps = 1e-3;
    c.has_g = rng_next(r) % 3 != 0;
    c.has_b = rng_next(r) % 3 != 0;
    c.has_m = !c.d.rms && rng_next(r) % 2;
    c.has_r = rng_next(r) % 2;
    c.tg = contiguous ? tx : fl[rng_next(r) % 4];
    c.tb = contiguous ? tx : fl[rng_next(r) % 4];
    c.tm = rng_next(r) % 2 ? ALLOY_F64 : ALLOY_F32;
    c.tr = rng_next(r) % 2 ? ALLOY_F64 : ALLOY_F32;
    int br = (int)(rng_next(r) % 3);
    c.x.rank = br + 1;
    int64_t rows = 1;
    for (int d = 0; d < br; d++) {
        c.x.shape[d] = d == 0 ? rows_hint : 1 + (int64_t)(rng_next(r) % 3);
        rows *= c.x.shape[d];
    }
    c.x.shape[br] = dlen;
    c.y = c.x;
    make_strides(&c.x, r, contiguous ? 0 : 2, alloy_dtype_size(c.tx));
    make_strides(&c.y, r, contiguous ? 0 : 2, alloy_dtype_size(c.ty));
    if (contiguous)
        c.x.offset = c.y.offset = 0;
    c.gamma.rank = c.beta.rank = 1;
    c.gamma.shape[0] = c.beta.shape[0] = dlen;
    make_strides(&c.gamma, r, contiguous ? 0 : 2, alloy_dtype_size(c.tg));
    make_strides(&c.beta, r, contiguous ? 0 : 2, alloy_dtype_size(c.tb));
    c.mean.rank = c.rstd.rank = br;
    for (int d = 0; d < br; d++)
        c.mean.shape[d] = c.rstd.shape[d] = c.x.shape[d];
    make_strides(&c.mean, r, contiguous ? 0 : 2, alloy_dtype_size(c.tm));
    make_strides(&c.rstd, r, contiguous ? 0 : 2, alloy_dtype_size(c.tr));
    kase k;
    memset(&k, 0, sizeof k);
    slot_add(&k, layout_bytes(&c.x, alloy_dtype_size(c.tx)));
    slot_add(&k, layout_bytes(&c.y, alloy_dtype_size(c.ty)));
    slot_add(&k, layout_bytes(&c.gamma, alloy_dtype_size(c.tg)));
    slot_add(&k, layout_bytes(&c.beta, alloy_dtype_size(c.tb)));
    slot_add(&k, layout_bytes(&c.mean, alloy_dtype_size(c.tm)));
    slot_add(&k, layout_bytes(&c.rstd, alloy_dtype_size(c.tr)));
    fill_values(c.tx, k.init[0], (int64_t)(k.bytes[0] / alloy_dtype_size(c.tx)), r, 1.0,
                rng_next(r) % 2 ? 0.75 : 0.0);
    memset(k.init[1], 0x7f, k.bytes[1]);
    fill_values(c.tg, k.init[2], (int64_t)(k.bytes[2] / alloy_dtype_size(c.tg)), r, 1.0, 1.0);
    fill_values(c.tb, k.init[3], (int64_t)(k.bytes[3] / alloy_dtype_size(c.tb)), r, 0.5, 0.0);
    memset(k.init[4], 0x7f, k.bytes[4]);
    memset(k.init[5], 0x7f, k.bytes[5]);
    run_case(e, &k, encode_norm, &c, random_kinds(r));

    /* tolerance: the math precision's error over a row, and one output ulp either way */
    const double math_u = tx == ALLOY_F64 ? 1e-12 : 2e-5;
    const int yslot = c.in_place ? 0 : 1;
    const alloy_dtype yt = c.in_place ? c.tx : c.ty;
    const layout *yl = c.in_place ? &c.x : &c.y;
    const double out_u = yt == ALLOY_BF16  ? 0x1p-7
                         : yt == ALLOY_F16 ? 0x1p-10
                         : yt == ALLOY_F32 ? 0x1p-22
                                           : 0;
    unsigned char *mask = xmalloc(k.bytes[yslot]);
    memset(mask, 0, k.bytes[yslot]);
    size_t yes = alloy_dtype_size(yt);
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0, moff = 0, roff = 0, rem = row;
        for (int d = br - 1; d >= 0; d--) {
            int64_t i = rem % c.x.shape[d];
            rem /= c.x.shape[d];
            off += i * yl->strides[d];
            moff += i * c.mean.strides[d];
            roff += i * c.rstd.strides[d];
        }
        for (int64_t j = 0; j < dlen; j++) {
            int64_t o = off + j * yl->strides[br];
            memset(mask + yl->offset + (size_t)o * yes, 1, yes);
            double cv = value_at(yt, k.out[0][yslot] + yl->offset, o);
            double gv = value_at(yt, k.out[1][yslot] + yl->offset, o);
            double bound = math_u * 64 * (1 + fabs(cv)) + 2 * out_u * fabs(cv);
            if (!(fabs(cv - gv) <= bound) && !(isnan(cv) && isnan(gv)))
                FAIL_AT("layer_norm %s->%s%s D=%lld rows=%lld row %lld col %lld: cpu %.9g gpu "
                        "%.9g (rms %d gamma %d beta %d in place %d)",
                        dt_name(c.tx), dt_name(yt), contiguous ? " contiguous" : " strided",
                        (long long)dlen, (long long)rows, (long long)row, (long long)j, cv, gv,
                        c.d.rms, c.has_g, c.has_b, c.in_place);
        }
        if (c.has_m) {
            double cv = value_at(c.tm, k.out[0][4] + c.mean.offset, moff);
            double gv = value_at(c.tm, k.out[1][4] + c.mean.offset, moff);
            if (!(fabs(cv - gv) <= math_u * 16 * (1 + fabs(cv))))
                FAIL_AT("layer_norm D=%lld row %lld mean: cpu %.9g gpu %.9g", (long long)dlen,
                        (long long)row, cv, gv);
        }
        if (c.has_r) {
            double cv = value_at(c.tr, k.out[0][5] + c.rstd.offset, roff);
            double gv = value_at(c.tr, k.out[1][5] + c.rstd.offset, roff);
            if (!(fabs(cv - gv) <= math_u * 64 * fabs(cv)))
                FAIL_AT("layer_norm D=%lld row %lld rstd: cpu %.9g gpu %.9g", (long long)dlen,
                        (long long)row, cv, gv);
        }
    }
    for (size_t i = 0; i < k.bytes[yslot]; i++)
        if (!mask[i] && k.out[0][yslot][i] != k.out[1][yslot][i])
            FAIL_AT("layer_norm D=%lld: byte %zu of y outside the view differs", (long long)dlen,
                    i);
    free(mask);
    for (int s = 2; s < 4; s++)
        if (first_diff(&k, s) >= 0)
            FAIL_AT("layer_norm changed gamma or beta");
    kase_free(&k);
}

/* Row lengths across the warp, block and three-pass kernels, vector and general paths. */
TEST(layer_norm_rows)
{
    env e = env_open();
    test_rng r = {0x5eed0006};
    static const int64_t lens[] = {1,    3,    8,    64,   100,   512,   1000, 1024,
                                   1032, 4096, 8192, 8200, 16384, 16392, 40000};
    static const alloy_dtype fl[] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    int nl = e.small ? 8 : 15;
    for (int li = 0; li < nl; li++)
        for (int t = 0; t < 4; t++)
            for (int contiguous = 0; contiguous < 2; contiguous++)
                norm_one(&e, &r, fl[t], lens[li],
                         lens[li] > 4096 ? 3 : 1 + (int64_t)(rng_next(&r) % 20), contiguous);
    env_close(&e);
}

/* Many short rows (warp mode, rows beyond one block) and empty shapes. */
TEST(layer_norm_many_rows)
{
    env e = env_open();
    test_rng r = {0x5eed0007};
    static const alloy_dtype fl[] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    for (int t = 0; t < 4; t++) {
        norm_one(&e, &r, fl[t], 32, e.small ? 50 : 3001, 1);
        norm_one(&e, &r, fl[t], 7, e.small ? 50 : 2999, 0);
        norm_one(&e, &r, fl[t], 0, 5, 1);
        norm_one(&e, &r, fl[t], 16, 0, 1);
    }
    env_close(&e);
}

/* ---------------------------------------------------------------- solvers */

/* lu_factor then lu_solve, and a triangular solve, of the same inputs on both backends:
 * the same pivots and info, factors and solutions within rounding (the GPU's blocking
 * differs from the CPU's, so not bitwise; tests/test_cuda_linalg.c has the full sweep). */
static void solver_pair(env *e, alloy_dtype t, int64_t n, int64_t nrhs, uint64_t seed)
{
    const size_t es = alloy_dtype_size(t), an = (size_t)(n * n) * es, bn = (size_t)(n * nrhs) * es;
    unsigned char *ha = xmalloc(an), *hb = xmalloc(bn);
    test_rng r = {seed};
    fill_values(t, ha, n * n, &r, 1.0, 0);
    fill_values(t, hb, n * nrhs, &r, 1.0, 0);
    unsigned char *ra[2], *rb[2], *rx[2];
    int32_t piv[2][64], inf[2];
    alloy_device *devs[2] = {e->cpu, e->gpu};
    alloy_queue *qs[2] = {e->qc, e->qg};
    for (int d = 0; d < 2; d++) {
        alloy_buffer *a, *b, *x, *p, *in;
        ASSERT_OK(alloy_buffer_create(devs[d], an, ALLOY_MEMORY_DEVICE, &a));
        ASSERT_OK(alloy_buffer_create(devs[d], bn, ALLOY_MEMORY_DEVICE, &b));
        ASSERT_OK(alloy_buffer_create(devs[d], bn, ALLOY_MEMORY_DEVICE, &x));
        ASSERT_OK(alloy_buffer_create(devs[d], 64 * 4, ALLOY_MEMORY_DEVICE, &p));
        ASSERT_OK(alloy_buffer_create(devs[d], 4, ALLOY_MEMORY_DEVICE, &in));
        ASSERT_OK(alloy_buffer_write(a, 0, ha, an));
        ASSERT_OK(alloy_buffer_write(b, 0, hb, bn));
        ASSERT_OK(alloy_buffer_write(x, 0, hb, bn));
        int64_t sa[2] = {n, n}, sb[2] = {n, nrhs};
        alloy_array A = alloy_array_contiguous(a, 0, t, 2, sa);
        alloy_array B = alloy_array_contiguous(b, 0, t, 2, sb);
        alloy_array X = alloy_array_contiguous(x, 0, t, 2, sb);
        alloy_array P = alloy_array_contiguous(p, 0, ALLOY_I32, 1, &n);
        alloy_array I = alloy_array_contiguous(in, 0, ALLOY_I32, 0, NULL);
        alloy_lu_solve_desc ld = alloy_lu_solve_desc_default();
        alloy_triangular_desc td = alloy_triangular_desc_default();
        td.uplo = ALLOY_UPPER;
        td.alpha = -1.5;
        alloy_cmdbuf *cb;
        ASSERT_OK(alloy_cmdbuf_create(qs[d], &cb));
        ASSERT_OK(alloy_encode_lu_factor(cb, &A, &P, &I));
        ASSERT_OK(alloy_encode_lu_solve(cb, &ld, &A, &P, &B));
        ASSERT_OK(alloy_encode_triangular_solve(cb, &td, &A, &X)); /* with U of the factors */
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_wait(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        ra[d] = xmalloc(an);
        rb[d] = xmalloc(bn);
        rx[d] = xmalloc(bn);
        ASSERT_OK(alloy_buffer_read(a, 0, ra[d], an));
        ASSERT_OK(alloy_buffer_read(b, 0, rb[d], bn));
        ASSERT_OK(alloy_buffer_read(x, 0, rx[d], bn));
        ASSERT_OK(alloy_buffer_read(p, 0, piv[d], (size_t)n * 4));
        ASSERT_OK(alloy_buffer_read(in, 0, &inf[d], 4));
        ASSERT_OK(alloy_buffer_destroy(a));
        ASSERT_OK(alloy_buffer_destroy(b));
        ASSERT_OK(alloy_buffer_destroy(x));
        ASSERT_OK(alloy_buffer_destroy(p));
        ASSERT_OK(alloy_buffer_destroy(in));
    }
    ASSERT_EQ(inf[0], inf[1]);
    for (int64_t i = 0; i < n; i++)
        ASSERT_EQ(piv[0][i], piv[1][i]);
    const double tol = t == ALLOY_F64 ? 1e-10 : 2e-3;
    unsigned char *got[3] = {ra[1], rb[1], rx[1]}, *want[3] = {ra[0], rb[0], rx[0]};
    int64_t cnt[3] = {n * n, n * nrhs, n * nrhs};
    for (int k = 0; k < 3; k++) {
        double md = 0, mx = 0;
        for (int64_t i = 0; i < cnt[k]; i++) {
            double g = value_at(t, got[k], i), w = value_at(t, want[k], i);
            ASSERT(!isnan(g));
            md = fmax(md, fabs(g - w));
            mx = fmax(mx, fabs(w));
        }
        if (md > tol * (mx > 1 ? mx : 1))
            FAIL_AT("%s n=%lld output %d: GPU differs from CPU by %g (max %g)", dt_name(t),
                    (long long)n, k, md, mx);
    }
    for (int d = 0; d < 2; d++) {
        free(ra[d]);
        free(rb[d]);
        free(rx[d]);
    }
    free(ha);
    free(hb);
}

TEST(solvers_match_cpu)
{
    env e = env_open();
    static const int64_t ns[] = {1, 2, 7, 33, 64};
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            solver_pair(&e, t ? ALLOY_F64 : ALLOY_F32, ns[i], 1 + (int64_t)i * 3, 77 + i);
    env_close(&e);
}

TEST_LIST{
    TEST_ENTRY(copy_every_pair_random_views),
    TEST_ENTRY(copy_conversions_exhaustive),
    TEST_ENTRY(matmul_random_small),
    TEST_ENTRY(matmul_tiles_and_layouts),
    TEST_ENTRY(matmul_huge_batch),
    TEST_ENTRY(layer_norm_rows),
    TEST_ENTRY(layer_norm_many_rows),
    TEST_ENTRY(solvers_match_cpu),
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
    fprintf(stderr, "GPU: %s\n", alloy_device_name(gpu));
    ASSERT_OK(alloy_device_close(gpu));
    return run_tests(argc, argv);
}
