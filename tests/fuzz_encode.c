/* fuzz_encode: a libFuzzer target for every encode function (issue 4, part 5).
 *
 * Built only with clang -fsanitize=fuzzer,address,undefined when ALLOY_FUZZ=ON (see
 * scripts/fuzz.sh, which also instruments the library). Each input is read as a small
 * program:
 *   buffers  1..6 buffers of 0..8 KiB (made by alloy_buffer_create, by wrapping malloc'd
 *            memory of exactly that size, or belonging to a second device), filled
 *   ops      1..4 encode calls into one command buffer, each with arrays and descriptors
 *            from the input: any buffer, NULL arrays and NULL buffers, offsets (small,
 *            unaligned, huge), dtypes (valid and not), ranks -2..10, shapes and strides
 *            (small, 0, negative, 2^31, 2^62, INT64_MAX, INT64_MIN, ...), contiguous or
 *            transposed views, alpha/beta/eps (NaN, Inf, huge), side/uplo (any int)
 *   then     valid encodes are committed and waited when their work is small (at most
 *            2^20 multiply-adds or elements in all), so execution is exercised too;
 *            misuse of the command buffer (encode after commit, second commit, wait
 *            before commit) must answer ALLOY_ERR_STATE.
 * What is checked: no crash, hang, leak or touch outside a buffer (ASan/UBSan/LSan);
 * every status is a known alloy_status; every failing call leaves alloy_last_error()
 * non-empty; a wait answers OK, or INVALID_ARGUMENT only for lu_solve (its pivots are
 * read at run time). Any breach aborts, which libFuzzer reports with the input.
 *
 * Run: scripts/fuzz.sh (bounded, FUZZ_SECONDS, default 60), or
 *      build-fuzz/tests/fuzz_encode tests/fuzz_corpus   (replays or fuzzes a corpus);
 *      FUZZ_ENCODE_VERBOSE=1 prints what each input encodes. */
#include "alloy.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_encode: contract broken: %s: ", #c);                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------- input reader */

typedef struct reader {
    const uint8_t *p;
    size_t n, at;
} reader;

static uint8_t u8(reader *r) { return r->at < r->n ? r->p[r->at++] : 0; }
static uint16_t u16(reader *r) { return (uint16_t)(u8(r) | (uint16_t)u8(r) << 8); }
static uint64_t u64(reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)u8(r) << (8 * i);
    return v;
}

static const int64_t interesting[] = {
    0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65, 127, 128, 255, 256,
    -1, -2, -8, INT64_MIN, INT64_MAX, INT64_MAX - 1, (int64_t)1 << 31, ((int64_t)1 << 31) - 1,
    (int64_t)1 << 32, (int64_t)1 << 40, (int64_t)1 << 61, (int64_t)1 << 62, ((int64_t)1 << 62) + 1,
    -((int64_t)1 << 62), 1000000007, 65536, 4096, 1024};
#define NINTERESTING ((int)(sizeof interesting / sizeof interesting[0]))

/* Mostly small values (so encodes can be valid), sometimes interesting or raw ones. */
static int64_t dim_value(reader *r)
{
    uint8_t b = u8(r);
    if (b < 160)
        return b % 9; /* 0..8 */
    if (b < 200)
        return 9 + b % 24;
    if (b < 250)
        return interesting[u8(r) % NINTERESTING];
    return (int64_t)u64(r);
}

static double real_value(reader *r)
{
    static const double t[] = {1.0, 0.0, -1.0, 0.5, 2.0, 1e-5, NAN, INFINITY, -INFINITY, 1e300,
                               -0.0, 1e-320, 3.0, -2.5, 1e30, 65504.0};
    uint8_t b = u8(r);
    if (b < 240)
        return t[b % 16];
    uint64_t bits = u64(r);
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

/* ---------------------------------------------------------------- devices (opened once) */

typedef struct world {
    alloy_device *dev, *other;
    alloy_queue *q;
    int verbose; /* FUZZ_ENCODE_VERBOSE=1: print each encode's status */
} world;

static world *get_world(void)
{
    static world w;
    static int ready;
    if (!ready) {
        alloy_device_desc d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_workers = 1;
        CHECK(alloy_device_open(&d, &w.dev) == ALLOY_OK, "%s", alloy_last_error());
        CHECK(alloy_device_open(&d, &w.other) == ALLOY_OK, "%s", alloy_last_error());
        CHECK(alloy_queue_create(w.dev, &w.q) == ALLOY_OK, "%s", alloy_last_error());
        const char *v = getenv("FUZZ_ENCODE_VERBOSE");
        w.verbose = v && *v == '1';
        ready = 1;
    }
    return &w;
}

static void check_status(alloy_status s, const char *what)
{
    CHECK((int)s >= (int)ALLOY_OK && (int)s <= (int)ALLOY_ERR_NO_DEVICE, "%s returned %d", what,
          (int)s);
    if (s != ALLOY_OK)
        CHECK(alloy_last_error()[0] != 0, "%s failed (%s) with no alloy_last_error text", what,
              alloy_status_string(s));
    CHECK(alloy_status_string(s) != NULL, "status string");
}

/* ---------------------------------------------------------------- arrays */

#define MAXBUF 6

typedef struct bufs {
    int n;
    alloy_buffer *b[MAXBUF];
    void *mem[MAXBUF];
    size_t size[MAXBUF];
    int other[MAXBUF];
} bufs;

/* An array from the input; *is_null set when the encode gets a NULL pointer. */
static alloy_array read_array(reader *r, const bufs *B, int *is_null)
{
    uint8_t flags = u8(r);
    *is_null = flags % 29 == 28;
    alloy_array a;
    memset(&a, 0, sizeof a);
    a.buffer = flags % 31 == 30 ? NULL : B->b[u8(r) % B->n];
    uint8_t ob = u8(r);
    if (ob < 200)
        a.offset = (size_t)(ob % 64) * ((ob & 64) ? 1 : 4);
    else if (ob < 250)
        a.offset = (size_t)u16(r);
    else
        a.offset = (size_t)u64(r);
    uint8_t tb = u8(r);
    a.dtype = tb < 240 ? (alloy_dtype)(tb % 5) : (alloy_dtype)(int)(int8_t)u8(r);
    uint8_t rb = u8(r);
    a.rank = rb < 230 ? rb % 5 : (int)(rb % 13) - 2; /* mostly 0..4, sometimes -2..10 */
    int rank = a.rank < 0 ? 0 : a.rank > ALLOY_MAX_RANK ? ALLOY_MAX_RANK : a.rank;
    for (int i = 0; i < rank; i++)
        a.shape[i] = dim_value(r);
    uint8_t layout = u8(r);
    if (layout < 170) {
        /* row-major, or with the last two dims stored transposed */
        int64_t s = 1;
        int order[ALLOY_MAX_RANK];
        for (int i = 0; i < rank; i++)
            order[i] = i;
        if (rank >= 2 && (layout & 1)) {
            order[rank - 1] = rank - 2;
            order[rank - 2] = rank - 1;
        }
        for (int k = rank - 1; k >= 0; k--) {
            int d = order[k];
            a.strides[d] = s;
            int64_t e = a.shape[d] > 0 && a.shape[d] < (1 << 20) ? a.shape[d] : 1;
            if (s < (INT64_C(1) << 40))
                s *= e;
        }
        if (rank > 0 && (layout & 2)) /* a broadcast (zero) stride */
            a.strides[u8(r) % rank] = 0;
    } else {
        for (int i = 0; i < rank; i++)
            a.strides[i] = dim_value(r);
    }
    return a;
}

static double count_of(const alloy_array *a)
{
    double c = 1;
    for (int i = 0; i < a->rank && i < ALLOY_MAX_RANK; i++)
        c *= (double)a->shape[i];
    return c;
}

static int64_t last(const alloy_array *a, int k)
{
    return a->rank >= k ? a->shape[a->rank - k] : 1;
}

/* ---------------------------------------------------------------- the target */

enum { OP_COPY, OP_MATMUL, OP_LU_FACTOR, OP_LU_SOLVE, OP_TRSM, OP_NORM, OP_KINDS };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    world *w = get_world();
    reader rd = {data, size, 0};
    reader *r = &rd;
    bufs B;
    memset(&B, 0, sizeof B);

    B.n = 1 + u8(r) % MAXBUF;
    for (int i = 0; i < B.n; i++) {
        uint8_t k = u8(r);
        uint16_t sz = u16(r) % 8193;
        B.size[i] = sz;
        alloy_status s;
        if (k % 8 < 5) {
            s = alloy_buffer_create(w->dev, sz, k & 8 ? ALLOY_MEMORY_HOST : ALLOY_MEMORY_DEVICE,
                                    &B.b[i]);
        } else if (k % 8 < 7) {
            B.mem[i] = malloc(sz ? sz : 1);
            CHECK(B.mem[i] != NULL, "malloc");
            s = alloy_buffer_wrap_host(w->dev, B.mem[i], sz, &B.b[i]);
        } else {
            B.other[i] = 1;
            s = alloy_buffer_create(w->other, sz, ALLOY_MEMORY_DEVICE, &B.b[i]);
        }
        check_status(s, "buffer creation");
        CHECK(s == ALLOY_OK, "creating a %u-byte buffer: %s", (unsigned)sz, alloy_last_error());
        /* contents: small floats, so runs stay finite mostly */
        unsigned char *tmp = malloc(sz ? sz : 1);
        CHECK(tmp != NULL, "malloc");
        for (size_t j = 0; j < sz; j++)
            tmp[j] = (unsigned char)(j % 4 == 3 ? 0x3f : (j * 37 + i) & 0xff);
        if (sz)
            CHECK(alloy_buffer_write(B.b[i], 0, tmp, sz) == ALLOY_OK, "%s", alloy_last_error());
        free(tmp);
    }

    alloy_cmdbuf *cb = NULL;
    alloy_status s = alloy_cmdbuf_create(w->q, &cb);
    check_status(s, "alloy_cmdbuf_create");
    CHECK(s == ALLOY_OK, "alloy_cmdbuf_create");

    int nops = 1 + u8(r) % 4, encoded = 0, has_lu_solve = 0;
    double work = 0;
    for (int op = 0; op < nops; op++) {
        int kind = u8(r) % OP_KINDS;
        alloy_array a[6];
        const alloy_array *p[6];
        int null[6];
        int nargs = kind == OP_COPY ? 2 : kind == OP_MATMUL ? 4 : kind == OP_TRSM ? 2 : kind == OP_NORM ? 6 : 3;
        for (int j = 0; j < nargs; j++) {
            a[j] = read_array(r, &B, &null[j]);
            p[j] = null[j] ? NULL : &a[j];
        }
        uint8_t dflag = u8(r);
        switch (kind) {
        case OP_COPY:
            s = alloy_encode_copy(cb, p[0], p[1]);
            if (s == ALLOY_OK)
                work += count_of(&a[1]);
            break;
        case OP_MATMUL: {
            alloy_matmul_desc d = alloy_matmul_desc_default();
            d.alpha = real_value(r);
            d.beta = real_value(r);
            d.allow_tf32 = (int)(int8_t)u8(r);
            if (u8(r) % 4 == 0)
                p[2] = NULL; /* no bias */
            s = alloy_encode_matmul(cb, dflag % 17 == 16 ? NULL : &d, p[0], p[1], p[2], p[3]);
            if (s == ALLOY_OK)
                work += count_of(&a[3]) * (double)(last(&a[0], 1) > 0 ? last(&a[0], 1) : 1);
            break;
        }
        case OP_LU_FACTOR:
            s = alloy_encode_lu_factor(cb, p[0], p[1], p[2]);
            if (s == ALLOY_OK)
                work += count_of(&a[0]) * (double)(last(&a[0], 1) > 0 ? last(&a[0], 1) : 1);
            break;
        case OP_LU_SOLVE: {
            alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
            d.transpose = (int)(int8_t)u8(r);
            s = alloy_encode_lu_solve(cb, dflag % 17 == 16 ? NULL : &d, p[0], p[1], p[2]);
            if (s == ALLOY_OK) {
                has_lu_solve = 1;
                work += count_of(&a[2]) * (double)(last(&a[0], 1) > 0 ? last(&a[0], 1) : 1);
            }
            break;
        }
        case OP_TRSM: {
            alloy_triangular_desc d = alloy_triangular_desc_default();
            uint8_t e = u8(r);
            d.side = e < 250 ? (alloy_side)(e % 2) : (alloy_side)(int)(int8_t)u8(r);
            e = u8(r);
            d.uplo = e < 250 ? (alloy_uplo)(e % 2) : (alloy_uplo)(int)(int8_t)u8(r);
            d.transpose = (int)(int8_t)u8(r);
            d.unit_diagonal = (int)(int8_t)u8(r);
            d.alpha = real_value(r);
            s = alloy_encode_triangular_solve(cb, dflag % 17 == 16 ? NULL : &d, p[0], p[1]);
            if (s == ALLOY_OK)
                work += count_of(&a[1]) * (double)(last(&a[0], 1) > 0 ? last(&a[0], 1) : 1);
            break;
        }
        default: {
            alloy_norm_desc d = alloy_norm_desc_default();
            d.eps = real_value(r);
            d.rms = (int)(int8_t)u8(r);
            uint8_t opt = u8(r); /* which optional arrays are absent */
            for (int j = 1; j < 6; j++)
                if (j != 3 && (opt >> j) & 1)
                    p[j] = NULL;
            if (opt & 1) /* in place */
                p[3] = p[0];
            s = alloy_encode_layer_norm(cb, dflag % 17 == 16 ? NULL : &d, p[0], p[1], p[2], p[3],
                                        p[4], p[5]);
            if (s == ALLOY_OK)
                work += 3 * count_of(&a[0]);
            break;
        }
        }
        check_status(s, "an encode");
        encoded += s == ALLOY_OK;
        if (w->verbose)
            fprintf(stderr, "fuzz_encode: op %d (kind %d): %s %s\n", op, kind,
                    alloy_status_string(s), s == ALLOY_OK ? "" : alloy_last_error());
    }

    /* Array helpers on arbitrary input. */
    {
        int null;
        alloy_array x = read_array(r, &B, &null);
        alloy_array y = alloy_array_swap_dims(x, (int)(int8_t)u8(r), (int)(int8_t)u8(r));
        (void)alloy_array_count(&y);
        (void)alloy_array_count(&x);
        int rank = (int)(int8_t)u8(r);
        alloy_array z = alloy_array_contiguous(x.buffer, x.offset, x.dtype, rank, x.shape);
        (void)alloy_array_count(&z);
        z = alloy_array_strided(x.buffer, x.offset, x.dtype, rank, null ? NULL : x.shape, x.strides);
        (void)alloy_array_count(&z);
    }

    uint8_t tail = u8(r);
    int run = encoded > 0 && work <= (double)(1 << 20);
    if (w->verbose)
        fprintf(stderr, "fuzz_encode: %d ops encoded, work %g: %s\n", encoded, work,
                run ? "committed" : "not run");
    if (tail % 8 == 7) {
        /* wait and poll before commit: ALLOY_ERR_STATE */
        int done = 1;
        s = alloy_cmdbuf_wait(cb);
        CHECK(s == ALLOY_ERR_STATE, "wait before commit answered %s", alloy_status_string(s));
        s = alloy_cmdbuf_poll(cb, &done);
        CHECK(s == ALLOY_ERR_STATE && done == 0, "poll before commit answered %s",
              alloy_status_string(s));
    }
    if (run) {
        s = alloy_cmdbuf_commit(cb);
        check_status(s, "alloy_cmdbuf_commit");
        CHECK(s == ALLOY_OK, "commit: %s", alloy_last_error());
        if (tail % 4 == 1) {
            s = alloy_cmdbuf_commit(cb);
            CHECK(s == ALLOY_ERR_STATE, "a second commit answered %s", alloy_status_string(s));
            alloy_array x = alloy_array_contiguous(B.b[0], 0, ALLOY_F32, 0, NULL);
            s = alloy_encode_copy(cb, &x, &x);
            CHECK(s == ALLOY_ERR_STATE || s == ALLOY_ERR_INVALID_ARGUMENT,
                  "an encode after commit answered %s", alloy_status_string(s));
        }
        s = alloy_cmdbuf_wait(cb); /* its failure text is alloy_cmdbuf_error's */
        CHECK((int)s >= (int)ALLOY_OK && (int)s <= (int)ALLOY_ERR_NO_DEVICE, "wait returned %d",
              (int)s);
        CHECK(s == ALLOY_OK || (s == ALLOY_ERR_INVALID_ARGUMENT && has_lu_solve),
              "wait answered %s: %s", alloy_status_string(s), alloy_cmdbuf_error(cb));
        if (s != ALLOY_OK)
            CHECK(strstr(alloy_cmdbuf_error(cb), "lu_solve") != NULL,
                  "the failing op is not named: %s", alloy_cmdbuf_error(cb));
        if (tail % 4 == 2) { /* a second waiter sees the same */
            alloy_status s2 = alloy_cmdbuf_wait(cb);
            CHECK(s2 == s, "two waits answered %s and %s", alloy_status_string(s),
                  alloy_status_string(s2));
        }
    }
    s = alloy_cmdbuf_destroy(cb);
    CHECK(s == ALLOY_OK, "alloy_cmdbuf_destroy: %s", alloy_last_error());
    for (int i = 0; i < B.n; i++) {
        s = alloy_buffer_destroy(B.b[i]);
        CHECK(s == ALLOY_OK, "alloy_buffer_destroy: %s", alloy_last_error());
        free(B.mem[i]);
    }
    return 0;
}
