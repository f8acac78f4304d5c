/* Helpers shared by the test programs: independent reference conversions for the float
 * dtypes (built from bit patterns, never from alloy's code), buffers, simple views and
 * message checks. Everything is static inline so unused helpers cost nothing. */
#ifndef ALLOY_TEST_UTIL_H
#define ALLOY_TEST_UTIL_H

#include "harness.h"

#include <ctype.h>
#include <float.h>
#include <stdint.h>

/* The seed of a test: ALLOY_TEST_SEED overrides the default (to replay a failure). */
static inline uint64_t test_seed(uint64_t dflt)
{
    const char *s = getenv("ALLOY_TEST_SEED");
    if (s && *s)
        return strtoull(s, NULL, 0);
    return dflt;
}

static inline void *test_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        FAIL_AT("test_malloc(%zu) failed", n);
    return p;
}

/* ---------------------------------------------------------------- dtype decoding
 * Written from the formats' definitions with ldexp, independent of alloy. */

static inline double ref_f16_to_double(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0x1f)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp((double)(1024 + m), e - 25);
    return sign ? -v : v;
}

static inline double ref_bf16_to_double(uint16_t h)
{
    int sign = h >> 15, e = (h >> 7) & 0xff, m = h & 0x7f;
    double v;
    if (e == 0xff)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -133);
    else
        v = ldexp((double)(128 + m), e - 134);
    return sign ? -v : v;
}

static inline int ref_f16_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
static inline int ref_bf16_is_nan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }

/* A float element (any float dtype) at p, as a double. */
static inline double ref_load(alloy_dtype t, const void *p)
{
    switch (t) {
    case ALLOY_F32: {
        float f;
        memcpy(&f, p, 4);
        return (double)f;
    }
    case ALLOY_F64: {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    case ALLOY_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return ref_f16_to_double(h);
    }
    case ALLOY_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return ref_bf16_to_double(h);
    }
    case ALLOY_I32: {
        int32_t i;
        memcpy(&i, p, 4);
        return (double)i;
    }
    }
    FAIL_AT("ref_load: bad dtype %d", (int)t);
    return 0;
}

/* ---------------------------------------------------------------- rounding oracle
 * For f16 and bf16: every non-negative finite value, found by enumerating all 65536 bit
 * patterns, sorted by value, plus a sentinel one ulp above the largest finite value that
 * stands for infinity (IEEE overflow: a value rounds to infinity exactly when it would
 * round to that sentinel with an unbounded exponent; the largest finite value has an odd
 * significand, so a tie goes to the sentinel). Rounding searches the table and compares
 * with the midpoint of the two neighbours (midpoints are exact doubles). */

typedef struct ref_entry {
    double v;
    uint16_t bits;
} ref_entry;

typedef struct ref_table {
    alloy_dtype dtype;
    int n; /* entries, the sentinel last */
    ref_entry e[65536];
    uint16_t inf_bits, nan_bits;
} ref_table;

static inline int ref_entry_cmp(const void *a, const void *b)
{
    double x = ((const ref_entry *)a)->v, y = ((const ref_entry *)b)->v;
    return x < y ? -1 : x > y;
}

/* Allocates and fills the table for ALLOY_F16 or ALLOY_BF16 (free() it). */
static inline ref_table *ref_table_new(alloy_dtype t)
{
    ref_table *tb = test_malloc(sizeof *tb);
    tb->dtype = t;
    tb->n = 0;
    double maxv = 0;
    uint16_t maxbits = 0;
    for (uint32_t p = 0; p < 65536; p++) {
        uint16_t h = (uint16_t)p;
        double v = t == ALLOY_F16 ? ref_f16_to_double(h) : ref_bf16_to_double(h);
        if (isnan(v) || isinf(v) || signbit(v))
            continue;
        tb->e[tb->n].v = v;
        tb->e[tb->n].bits = h;
        tb->n++;
        if (v > maxv) {
            maxv = v;
            maxbits = h;
        }
    }
    qsort(tb->e, (size_t)tb->n, sizeof tb->e[0], ref_entry_cmp);
    /* The sentinel: the largest value plus the gap below it (the format's ulp there). */
    double gap = maxv - tb->e[tb->n - 2].v;
    tb->inf_bits = t == ALLOY_F16 ? 0x7c00 : 0x7f80;
    tb->nan_bits = t == ALLOY_F16 ? 0x7e00 : 0x7fc0;
    tb->e[tb->n].v = maxv + gap;
    tb->e[tb->n].bits = tb->inf_bits;
    tb->n++;
    if (maxbits & 1) {
        /* expected: the largest finite value has an odd significand */
    } else {
        FAIL_AT("ref_table_new: largest finite value 0x%04x has an even significand", maxbits);
    }
    return tb;
}

/* Rounds x to the table's format, to nearest, ties to even. NaN gives nan_bits. */
static inline uint16_t ref_round(const ref_table *tb, double x)
{
    if (isnan(x))
        return tb->nan_bits;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs(x);
    if (a >= tb->e[tb->n - 1].v)
        return (uint16_t)(sign | tb->inf_bits);
    /* largest i with e[i].v <= a */
    int lo = 0, hi = tb->n - 1; /* e[lo].v <= a < e[hi].v */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (tb->e[mid].v <= a)
            lo = mid;
        else
            hi = mid;
    }
    if (tb->e[lo].v == a)
        return (uint16_t)(sign | tb->e[lo].bits);
    double m = (tb->e[lo].v + tb->e[hi].v) / 2; /* exact */
    uint16_t r;
    if (a < m)
        r = tb->e[lo].bits;
    else if (a > m)
        r = tb->e[hi].bits;
    else
        r = (tb->e[lo].bits & 1) ? tb->e[hi].bits : tb->e[lo].bits;
    return (uint16_t)(sign | r);
}

/* Both rounding tables. */
typedef struct ref_conv {
    ref_table *f16, *bf16;
} ref_conv;

static inline ref_conv ref_conv_new(void)
{
    ref_conv c;
    c.f16 = ref_table_new(ALLOY_F16);
    c.bf16 = ref_table_new(ALLOY_BF16);
    return c;
}
static inline void ref_conv_free(ref_conv *c)
{
    free(c->f16);
    free(c->bf16);
}

/* Stores double v into a float element of dtype t at p, rounding to nearest even. */
static inline void ref_store(const ref_conv *c, alloy_dtype t, void *p, double v)
{
    switch (t) {
    case ALLOY_F32: {
        float f = (float)v;
        memcpy(p, &f, 4);
        return;
    }
    case ALLOY_F64: memcpy(p, &v, 8); return;
    case ALLOY_F16: {
        uint16_t h = ref_round(c->f16, v);
        memcpy(p, &h, 2);
        return;
    }
    case ALLOY_BF16: {
        uint16_t h = ref_round(c->bf16, v);
        memcpy(p, &h, 2);
        return;
    }
    case ALLOY_I32: {
        int32_t i = (int32_t)v;
        memcpy(p, &i, 4);
        return;
    }
    }
}

/* Reference copy of one element: the same bits for the same dtype, else a conversion. */
static inline void ref_convert(const ref_conv *c, alloy_dtype st, const void *src, alloy_dtype dt,
                               void *dst)
{
    if (st == dt) {
        memcpy(dst, src, alloy_dtype_size(st));
        return;
    }
    ref_store(c, dt, dst, ref_load(st, src));
}

static inline int ref_is_nan(alloy_dtype t, const void *p)
{
    if (t == ALLOY_I32)
        return 0;
    return isnan(ref_load(t, p));
}

/* 1 when `got` is what a copy should have produced given `want` from ref_convert: the
 * same bits, or NaN for NaN when the dtypes differ (a conversion quiets NaN). */
static inline int ref_same(alloy_dtype dt, const void *want, const void *got, int converted)
{
    if (converted && ref_is_nan(dt, want))
        return ref_is_nan(dt, got);
    return memcmp(want, got, alloy_dtype_size(dt)) == 0;
}

/* ---------------------------------------------------------------- messages */

/* 1 when `word` occurs in `msg` not glued to identifier characters on either side. */
static inline int mentions(const char *msg, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = msg; (p = strstr(p, word)) != NULL; p++) {
        int before = p > msg && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
        char c = p[n];
        int after = isalnum((unsigned char)c) || c == '_';
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* Expects `expr` to fail with `want` and this thread's last error to be non-empty and to
 * mention `word`. */
#define ASSERT_FAILS(expr, want, word)                                                             \
    do {                                                                                           \
        ASSERT_STATUS(expr, want);                                                                 \
        const char *e_ = alloy_last_error();                                                       \
        if (!e_ || !*e_)                                                                           \
            FAIL_AT("%s: alloy_last_error() is empty", #expr);                                     \
        if (!mentions(e_, word))                                                                   \
            FAIL_AT("%s: alloy_last_error() \"%s\" does not mention \"%s\"", #expr, e_, word);     \
    } while (0)

/* ---------------------------------------------------------------- buffers and views */

static inline alloy_buffer *test_buffer(alloy_device *dev, size_t bytes)
{
    alloy_buffer *b = NULL;
    ASSERT_OK(alloy_buffer_create(dev, bytes, ALLOY_MEMORY_DEVICE, &b));
    ASSERT(b != NULL);
    ASSERT(alloy_buffer_contents(b) != NULL);
    return b;
}

static inline alloy_queue *test_queue(alloy_device *dev)
{
    alloy_queue *q = NULL;
    ASSERT_OK(alloy_queue_create(dev, &q));
    return q;
}

static inline alloy_cmdbuf *test_cmdbuf(alloy_queue *q)
{
    alloy_cmdbuf *cb = NULL;
    ASSERT_OK(alloy_cmdbuf_create(q, &cb));
    return cb;
}

/* Commits cb, waits, checks success and an empty error text, destroys it. */
static inline void test_commit_wait(alloy_cmdbuf *cb)
{
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
}

/* Host address of the element at multi-index idx of a (a's buffer must be host-visible). */
static inline void *view_ptr(const alloy_array *a, const int64_t *idx)
{
    char *base = (char *)alloy_buffer_contents(a->buffer) + a->offset;
    int64_t off = 0;
    for (int d = 0; d < a->rank; d++)
        off += idx[d] * a->strides[d];
    return base + off * (int64_t)alloy_dtype_size(a->dtype);
}

/* Advances a multi-index over shape (rank r); 0 when it wrapped around. */
static inline int next_index(int64_t *idx, const int64_t *shape, int r)
{
    for (int d = r - 1; d >= 0; d--) {
        if (++idx[d] < shape[d])
            return 1;
        idx[d] = 0;
    }
    return 0;
}

/* Bytes from the array's offset to just past its last element (0 when empty). */
static inline size_t view_extent_bytes(const alloy_array *a)
{
    int64_t span = 0;
    for (int d = 0; d < a->rank; d++) {
        if (a->shape[d] == 0)
            return 0;
        span += (a->shape[d] - 1) * a->strides[d];
    }
    return (size_t)(span + 1) * alloy_dtype_size(a->dtype);
}

/* A random value of dtype t stored at p, exactly representable (drawn in [-1, 1)). */
static inline double test_random_value(const ref_conv *c, test_rng *r, alloy_dtype t, void *p)
{
    double v = rng_uniform(r);
    if (t == ALLOY_I32) {
        int32_t i = (int32_t)rng_range(r, -1000000, 1000000);
        memcpy(p, &i, 4);
        return (double)i;
    }
    ref_store(c, t, p, v);
    return ref_load(t, p);
}

static inline const char *dtype_name(alloy_dtype t)
{
    switch (t) {
    case ALLOY_F32: return "f32";
    case ALLOY_F64: return "f64";
    case ALLOY_F16: return "f16";
    case ALLOY_BF16: return "bf16";
    case ALLOY_I32: return "i32";
    }
    return "?";
}

#endif
