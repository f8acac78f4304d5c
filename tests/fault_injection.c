/* fault_injection: every allocation of a representative scenario fails once, in turn
 * (issue 4, part 4).
 *
 * The scenario, on a CPU device with one worker whose allocator hook is this test's
 * counting allocator: open the device; create 18 buffers (one wrapping host memory), a
 * queue and a command buffer; encode copy, matmul, lu_factor, lu_solve,
 * triangular_solve and layer_norm (six ops and 18 buffers, so the command buffer's op and
 * buffer lists grow past their inline storage; the matmul packs B into the queue's
 * workspace at run time, and the factor, solve and triangular solve take layouts that
 * need a larger workspace each, so each of the four grows it); commit; wait; then the same again on a new command
 * buffer (round 2); destroy everything.
 *
 * A golden run without failures counts the allocations (N of them) and keeps every
 * buffer's final bytes. Then for n = 0 .. N-1 the scenario runs with allocation n failing:
 *   - the call that met the failure must answer ALLOY_ERR_OUT_OF_MEMORY (open/create:
 *     with *out NULL; encode: recording nothing) and is retried, or, at run time, the
 *     wait status is ALLOY_ERR_OUT_OF_MEMORY and alloy_cmdbuf_error names the op
 *     ("op K (name): ..."); a failure the library absorbs (a fallback) must leave the
 *     results exact;
 *   - no output is changed without the status saying so: before commit every buffer
 *     still holds its initial bytes; after a run-time failure in op K, buffers written by
 *     ops before K hold the golden bytes and all others their initial bytes; otherwise
 *     every buffer holds the golden bytes;
 *   - the device and queue keep working: round 2 (no failure) on the same device and
 *     queue must give the golden bytes;
 *   - nothing leaks: after closing the device the allocator holds no block and no byte,
 *     and every free received the size its alloc was given.
 * Then (not under a sanitizer) a child process with a small address-space limit opens a
 * device with 256 workers: starting the worker threads fails, which must answer
 * ALLOY_ERR_OUT_OF_MEMORY, leak nothing, and leave the process able to open a device.
 *
 * Prints the number of injection points exercised. Exit status 0 only with no problem.
 * Usage: fault_injection [-v]   (-v: one line per injection point) */
#include "harness.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#endif

/* ---------------------------------------------------------------- the allocator */

enum step {
    S_NONE, S_OPEN, S_CREATE, S_ENCODE, S_COMMIT, S_RUN, S_ROUND2, S_DESTROY, S_COUNT
};
static const char *const step_names[S_COUNT] = {"-",      "device_open", "create", "encode",
                                                "commit", "run time",    "round 2", "destroy"};

typedef struct counting_alloc {
    _Atomic long calls;
    _Atomic long fail_at; /* -1: never */
    _Atomic long failed;  /* failures injected */
    _Atomic int step;     /* what the scenario is doing (enum step) */
    _Atomic int failed_step;
    _Atomic size_t failed_bytes;
    _Atomic long live_blocks;
    _Atomic long long live_bytes;
    _Atomic long bad_free, bad_align;
} counting_alloc;

#define MAGIC 0xa110c8edull

static void *ca_alloc(void *ctx, size_t bytes, size_t align)
{
    counting_alloc *ca = ctx;
    long n = atomic_fetch_add(&ca->calls, 1);
    if (align == 0 || (align & (align - 1)) || align > 4096)
        atomic_fetch_add(&ca->bad_align, 1);
    if (n == atomic_load(&ca->fail_at)) {
        atomic_fetch_add(&ca->failed, 1);
        atomic_store(&ca->failed_step, atomic_load(&ca->step));
        atomic_store(&ca->failed_bytes, bytes);
        return NULL;
    }
    size_t hdr = align < 32 ? 32 : align;
    void *raw = NULL;
    if (posix_memalign(&raw, hdr, hdr + bytes) != 0)
        return NULL;
    unsigned char *p = (unsigned char *)raw + hdr;
    uint64_t h[3] = {MAGIC, (uint64_t)bytes, (uint64_t)hdr};
    memcpy(p - sizeof h, h, sizeof h);
    atomic_fetch_add(&ca->live_blocks, 1);
    atomic_fetch_add(&ca->live_bytes, (long long)bytes);
    return p;
}

static void ca_free(void *ctx, void *ptr, size_t bytes)
{
    counting_alloc *ca = ctx;
    if (!ptr)
        return;
    uint64_t h[3];
    memcpy(h, (unsigned char *)ptr - sizeof h, sizeof h);
    if (h[0] != MAGIC || h[1] != (uint64_t)bytes) {
        atomic_fetch_add(&ca->bad_free, 1);
        if (h[0] != MAGIC)
            return; /* not ours: do not touch it */
    }
    atomic_fetch_sub(&ca->live_blocks, 1);
    atomic_fetch_sub(&ca->live_bytes, (long long)h[1]);
    free((unsigned char *)ptr - h[2]);
}

/* ---------------------------------------------------------------- the scenario */

enum {
    B_CSRC, B_CDST,                    /* copy f32 8x16 -> f64 */
    B_MA, B_MB, B_MBIAS, B_MC,         /* matmul f32 96x32 @ 32x48 + bias (wrapped) */
    B_LA, B_LPIV, B_LINFO,             /* lu_factor f64 48x48 column-major */
    B_LB,                              /* lu_solve f64 48x64 column-major */
    B_TA, B_TB,                        /* trsm right lower f64: X A = B, A 80x80, B 64x80 */
    B_NX, B_NG, B_NB, B_NY, B_NMEAN, B_NRSTD, /* layer_norm f32 32x40 */
    NBUF
};
enum { OP_COPY, OP_MATMUL, OP_LU_FACTOR, OP_LU_SOLVE, OP_TRSM, OP_NORM, NOPS };
static const char *const op_names[NOPS] = {"copy",     "matmul",           "lu_factor",
                                           "lu_solve", "triangular_solve", "layer_norm"};

typedef struct bufdef {
    const char *name;
    size_t bytes;
    alloy_dtype fill;
    int writer; /* the op that writes it, or -1 */
} bufdef;

static const bufdef defs[NBUF] = {
    {"copy src", 8 * 16 * 4, ALLOY_F32, -1},
    {"copy dst", 8 * 16 * 8, ALLOY_F64, OP_COPY},
    {"matmul a", 96 * 32 * 4, ALLOY_F32, -1},
    {"matmul b", 32 * 48 * 4, ALLOY_F32, -1},
    {"matmul bias", 48 * 4, ALLOY_F32, -1},
    {"matmul c", 96 * 48 * 4, ALLOY_F32, OP_MATMUL},
    {"lu a", 48 * 48 * 8, ALLOY_F64, OP_LU_FACTOR},
    {"lu pivots", 48 * 4, ALLOY_I32, OP_LU_FACTOR},
    {"lu info", 4, ALLOY_I32, OP_LU_FACTOR},
    {"lu_solve b", 48 * 64 * 8, ALLOY_F64, OP_LU_SOLVE},
    {"trsm a", 80 * 80 * 8, ALLOY_F64, -1},
    {"trsm b", 64 * 80 * 8, ALLOY_F64, OP_TRSM},
    {"norm x", 32 * 40 * 4, ALLOY_F32, -1},
    {"norm gamma", 40 * 4, ALLOY_F32, -1},
    {"norm beta", 40 * 4, ALLOY_F32, -1},
    {"norm y", 32 * 40 * 4, ALLOY_F32, OP_NORM},
    {"norm mean", 32 * 4, ALLOY_F32, OP_NORM},
    {"norm rstd", 32 * 4, ALLOY_F32, OP_NORM},
};

typedef struct scenario {
    counting_alloc ca;
    alloy_allocator alloc;
    alloy_device *dev;
    alloy_queue *q;
    alloy_buffer *b[NBUF];
    void *wrapped; /* the bias's host memory */
    unsigned char *init[NBUF];
    unsigned char *const *golden; /* NULL in the golden run */
    /* what happened */
    int problems;
    int hit_kind; /* where the injected failure surfaced */
    char detail[300];
    int verbose;
} scenario;

enum { HIT_NONE, HIT_CALL, HIT_RUNTIME, HIT_ABSORBED, HIT_COUNT };

static void problem(scenario *S, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void problem(scenario *S, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "PROBLEM (allocation %ld failed, during %s): ", atomic_load(&S->ca.fail_at),
            step_names[atomic_load(&S->ca.failed_step)]);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    S->problems++;
}

static unsigned char *make_init(int i)
{
    unsigned char *p = malloc(defs[i].bytes);
    ASSERT(p != NULL);
    test_rng r = {0x1234567ull * (uint64_t)(i + 1)};
    size_t es = alloy_dtype_size(defs[i].fill), n = defs[i].bytes / es;
    for (size_t k = 0; k < n; k++) {
        double u = rng_uniform(&r);
        if (i == B_TA) { /* lower triangular, diagonally dominant, 80x80 */
            size_t row = k / 80, col = k % 80;
            u = row == col ? 1.0 + fabs(u) : col < row ? u / 80.0 : u;
        }
        if (defs[i].fill == ALLOY_F64) {
            memcpy(p + k * 8, &u, 8);
        } else if (defs[i].fill == ALLOY_F32) {
            float f = (float)u;
            memcpy(p + k * 4, &f, 4);
        } else {
            int32_t v = (int32_t)(uint32_t)rng_next(&r);
            memcpy(p + k * 4, &v, 4);
        }
    }
    return p;
}

static alloy_array arr(alloy_buffer *b, alloy_dtype t, int rank, int64_t s0, int64_t s1,
                       int64_t st0, int64_t st1)
{
    int64_t sh[2] = {s0, s1}, st[2] = {st0, st1};
    if (rank == 1) {
        sh[0] = s0;
        st[0] = 1;
    }
    return alloy_array_strided(b, 0, t, rank, sh, st);
}

static alloy_status encode_op(scenario *S, alloy_cmdbuf *cb, int op)
{
    alloy_buffer **b = S->b;
    switch (op) {
    case OP_COPY: {
        alloy_array s = arr(b[B_CSRC], ALLOY_F32, 2, 8, 16, 16, 1);
        alloy_array d = arr(b[B_CDST], ALLOY_F64, 2, 8, 16, 16, 1);
        return alloy_encode_copy(cb, &s, &d);
    }
    case OP_MATMUL: {
        alloy_matmul_desc md = alloy_matmul_desc_default();
        md.beta = 0.5;
        alloy_array a = arr(b[B_MA], ALLOY_F32, 2, 96, 32, 32, 1);
        alloy_array bb = arr(b[B_MB], ALLOY_F32, 2, 32, 48, 48, 1);
        alloy_array bias = arr(b[B_MBIAS], ALLOY_F32, 1, 48, 0, 1, 0);
        alloy_array c = arr(b[B_MC], ALLOY_F32, 2, 96, 48, 48, 1);
        return alloy_encode_matmul(cb, &md, &a, &bb, &bias, &c);
    }
    case OP_LU_FACTOR: {
        alloy_array a = arr(b[B_LA], ALLOY_F64, 2, 48, 48, 1, 48); /* column-major */
        alloy_array p = arr(b[B_LPIV], ALLOY_I32, 1, 48, 0, 1, 0);
        alloy_array info = alloy_array_contiguous(b[B_LINFO], 0, ALLOY_I32, 0, NULL);
        return alloy_encode_lu_factor(cb, &a, &p, &info);
    }
    case OP_LU_SOLVE: {
        alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
        alloy_array a = arr(b[B_LA], ALLOY_F64, 2, 48, 48, 1, 48);
        alloy_array p = arr(b[B_LPIV], ALLOY_I32, 1, 48, 0, 1, 0);
        alloy_array x = arr(b[B_LB], ALLOY_F64, 2, 48, 64, 1, 48); /* column-major */
        return alloy_encode_lu_solve(cb, &d, &a, &p, &x);
    }
    case OP_TRSM: {
        alloy_triangular_desc d = alloy_triangular_desc_default();
        d.side = ALLOY_RIGHT;
        d.uplo = ALLOY_LOWER;
        d.alpha = 0.5;
        alloy_array a = arr(b[B_TA], ALLOY_F64, 2, 80, 80, 80, 1);
        alloy_array x = arr(b[B_TB], ALLOY_F64, 2, 64, 80, 80, 1);
        return alloy_encode_triangular_solve(cb, &d, &a, &x);
    }
    default: {
        alloy_norm_desc d = alloy_norm_desc_default();
        alloy_array x = arr(b[B_NX], ALLOY_F32, 2, 32, 40, 40, 1);
        alloy_array g = arr(b[B_NG], ALLOY_F32, 1, 40, 0, 1, 0);
        alloy_array be = arr(b[B_NB], ALLOY_F32, 1, 40, 0, 1, 0);
        alloy_array y = arr(b[B_NY], ALLOY_F32, 2, 32, 40, 40, 1);
        alloy_array m = arr(b[B_NMEAN], ALLOY_F32, 1, 32, 0, 1, 0);
        alloy_array r = arr(b[B_NRSTD], ALLOY_F32, 1, 32, 0, 1, 0);
        return alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &m, &r);
    }
    }
}

static int injected(scenario *S, long before) { return atomic_load(&S->ca.failed) != before; }

/* After a call at `step` returned s: 1 to retry (an injected failure was reported right),
 * 0 to go on. */
static int after_call(scenario *S, const char *what, alloy_status s, long before, void *out_ptr,
                      int has_out)
{
    if (s == ALLOY_OK) {
        if (injected(S, before)) {
            S->hit_kind = HIT_ABSORBED;
            snprintf(S->detail, sizeof S->detail, "%s succeeded despite the failure", what);
        }
        return 0;
    }
    if (!injected(S, before)) {
        problem(S, "%s returned %s without an injected failure: %s", what, alloy_status_string(s),
                alloy_last_error());
        return 0;
    }
    if (s != ALLOY_ERR_OUT_OF_MEMORY) {
        problem(S, "%s met an allocation failure and returned %s, not out of memory: %s", what,
                alloy_status_string(s), alloy_last_error());
        return 0;
    }
    if (has_out && out_ptr != NULL)
        problem(S, "%s failed but left *out non-NULL", what);
    if (!strstr(alloy_last_error(), "memory"))
        problem(S, "%s: alloy_last_error() does not say memory: \"%s\"", what, alloy_last_error());
    S->hit_kind = HIT_CALL;
    snprintf(S->detail, sizeof S->detail, "%s -> out of memory (\"%s\")", what, alloy_last_error());
    return 1;
}

static void set_step(scenario *S, int st) { atomic_store(&S->ca.step, st); }

/* Every buffer against `want[i]` (NULL: skip). */
static void check_buffers(scenario *S, unsigned char *const *want, const char *when)
{
    for (int i = 0; i < NBUF; i++) {
        if (!want[i])
            continue;
        unsigned char *got = malloc(defs[i].bytes);
        ASSERT(got != NULL);
        alloy_status s = alloy_buffer_read(S->b[i], 0, got, defs[i].bytes);
        if (s != ALLOY_OK)
            problem(S, "alloy_buffer_read(%s): %s", defs[i].name, alloy_status_string(s));
        else if (memcmp(got, want[i], defs[i].bytes) != 0)
            problem(S, "%s: buffer \"%s\" does not hold the expected bytes", when, defs[i].name);
        free(got);
    }
}

/* Rewrites every buffer with its initial contents. */
static void reset_buffers(scenario *S)
{
    for (int i = 0; i < NBUF; i++)
        if (alloy_buffer_write(S->b[i], 0, S->init[i], defs[i].bytes) != ALLOY_OK)
            problem(S, "alloy_buffer_write(%s): %s", defs[i].name, alloy_last_error());
}

/* One command buffer with the six ops: create, encode, commit, wait. `expect_golden`:
 * round 2 (no failure may happen; results must be golden). Returns 0 when the scenario
 * cannot go on. */
static int run_cmdbuf(scenario *S, int round2)
{
    alloy_cmdbuf *cb = NULL;
    alloy_status s;
    long before;
    set_step(S, round2 ? S_ROUND2 : S_CREATE);
    do {
        before = atomic_load(&S->ca.failed);
        cb = NULL;
        s = alloy_cmdbuf_create(S->q, &cb);
    } while (after_call(S, "alloy_cmdbuf_create", s, before, cb, 1));
    if (s != ALLOY_OK)
        return 0;
    set_step(S, round2 ? S_ROUND2 : S_ENCODE);
    for (int op = 0; op < NOPS; op++) {
        char what[64];
        snprintf(what, sizeof what, "alloy_encode_%s", op_names[op]);
        do {
            before = atomic_load(&S->ca.failed);
            s = encode_op(S, cb, op);
        } while (after_call(S, what, s, before, NULL, 0));
        if (s != ALLOY_OK) {
            alloy_cmdbuf_destroy(cb);
            return 0;
        }
    }
    /* Nothing ran yet: every buffer still holds its initial bytes. */
    check_buffers(S, S->init, "after encoding, before commit");
    /* From commit on a worker may start the work (and allocate), so commit and the run
     * are one window for attributing a failure. */
    set_step(S, round2 ? S_ROUND2 : S_RUN);
    for (;;) {
        before = atomic_load(&S->ca.failed);
        s = alloy_cmdbuf_commit(cb);
        if (s == ALLOY_OK || !after_call(S, "alloy_cmdbuf_commit", s, before, NULL, 0))
            break;
    }
    if (s != ALLOY_OK) {
        alloy_cmdbuf_destroy(cb);
        return 0;
    }
    s = alloy_cmdbuf_wait(cb);
    const char *err = alloy_cmdbuf_error(cb);
    int hit = injected(S, before);
    unsigned char *want[NBUF];
    for (int i = 0; i < NBUF; i++)
        want[i] = S->golden ? S->golden[i] : NULL;
    if (s == ALLOY_OK) {
        if (*err)
            problem(S, "wait succeeded but alloy_cmdbuf_error says \"%s\"", err);
        if (hit) {
            S->hit_kind = HIT_ABSORBED;
            snprintf(S->detail, sizeof S->detail,
                     "run time: absorbed (%zu-byte allocation; the results are exact)",
                     atomic_load(&S->ca.failed_bytes));
        }
        check_buffers(S, want, hit ? "after a run with an absorbed allocation failure" : "after a run");
    } else if (!hit) {
        problem(S, "wait returned %s without an injected failure: %s", alloy_status_string(s), err);
    } else if (s != ALLOY_ERR_OUT_OF_MEMORY) {
        problem(S, "an allocation failed at run time and wait returned %s, not out of memory: %s",
                alloy_status_string(s), err);
    } else {
        /* "op K (NAME): ..." */
        unsigned long k = NOPS;
        char name[40] = "";
        if (strncmp(err, "op ", 3) == 0) {
            char *end = NULL;
            k = strtoul(err + 3, &end, 10);
            if (end && end[0] == ' ' && end[1] == '(') {
                const char *close = strchr(end + 2, ')');
                size_t len = close ? (size_t)(close - (end + 2)) : 0;
                if (len < sizeof name) {
                    memcpy(name, end + 2, len);
                    name[len] = 0;
                }
            }
        }
        if (k >= NOPS || strcmp(name, op_names[k]) != 0) {
            problem(S, "alloy_cmdbuf_error does not name the op that failed: \"%s\"", err);
        } else {
            /* ops before k ran; op k and later changed nothing */
            for (int i = 0; i < NBUF; i++)
                want[i] = defs[i].writer >= 0 && defs[i].writer >= (int)k ? S->init[i]
                                                                          : S->golden[i];
            check_buffers(S, want, "after a run-time failure");
        }
        if (!strstr(err, "memory"))
            problem(S, "alloy_cmdbuf_error does not say memory: \"%s\"", err);
        S->hit_kind = HIT_RUNTIME;
        snprintf(S->detail, sizeof S->detail, "run time: wait -> out of memory: \"%s\"", err);
    }
    set_step(S, S_DESTROY);
    s = alloy_cmdbuf_destroy(cb);
    if (s != ALLOY_OK)
        problem(S, "alloy_cmdbuf_destroy: %s", alloy_status_string(s));
    return 1;
}

/* The whole scenario with allocation `fail_at` failing (-1: none). golden: NULL for the
 * golden run, which fills `golden_out`. */
static void run_scenario(scenario *S, long fail_at, unsigned char **golden_out, long *round1_calls)
{
    counting_alloc *ca = &S->ca;
    atomic_store(&ca->calls, 0);
    atomic_store(&ca->failed, 0);
    atomic_store(&ca->fail_at, fail_at);
    atomic_store(&ca->failed_step, S_NONE);
    atomic_store(&ca->bad_free, 0);
    atomic_store(&ca->bad_align, 0);
    S->hit_kind = HIT_NONE;
    S->detail[0] = 0;
    S->alloc.ctx = ca;
    S->alloc.alloc = ca_alloc;
    S->alloc.free = ca_free;
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = 1;
    d.allocator = &S->alloc;
    d.cpu_kernel = test_kernel_from_env();
    alloy_status s;
    long before;
    set_step(S, S_OPEN);
    do {
        before = atomic_load(&ca->failed);
        S->dev = NULL;
        s = alloy_device_open(&d, &S->dev);
        if (s != ALLOY_OK && (atomic_load(&ca->live_blocks) != 0 || atomic_load(&ca->live_bytes) != 0))
            problem(S, "alloy_device_open failed and left %ld blocks (%lld bytes) allocated",
                    atomic_load(&ca->live_blocks), atomic_load(&ca->live_bytes));
    } while (after_call(S, "alloy_device_open", s, before, S->dev, 1));
    if (s != ALLOY_OK)
        return;
    set_step(S, S_CREATE);
    for (int i = 0; i < NBUF; i++) {
        do {
            before = atomic_load(&ca->failed);
            S->b[i] = NULL;
            if (i == B_MBIAS) {
                s = alloy_buffer_wrap_host(S->dev, S->wrapped, defs[i].bytes, &S->b[i]);
            } else {
                s = alloy_buffer_create(S->dev, defs[i].bytes,
                                        i % 3 ? ALLOY_MEMORY_DEVICE : ALLOY_MEMORY_HOST, &S->b[i]);
            }
        } while (after_call(S, i == B_MBIAS ? "alloy_buffer_wrap_host" : "alloy_buffer_create", s,
                            before, S->b[i], 1));
        if (s != ALLOY_OK)
            return;
    }
    reset_buffers(S);
    do {
        before = atomic_load(&ca->failed);
        S->q = NULL;
        s = alloy_queue_create(S->dev, &S->q);
    } while (after_call(S, "alloy_queue_create", s, before, S->q, 1));
    if (s != ALLOY_OK)
        return;
    run_cmdbuf(S, 0);
    if (round1_calls)
        *round1_calls = atomic_load(&ca->calls);
    if (golden_out) {
        for (int i = 0; i < NBUF; i++) {
            golden_out[i] = malloc(defs[i].bytes);
            ASSERT(golden_out[i] != NULL);
            ASSERT_OK(alloy_buffer_read(S->b[i], 0, golden_out[i], defs[i].bytes));
        }
        S->golden = golden_out;
    }
    /* Round 2: no failure; the same device and queue must give the golden results. */
    atomic_store(&ca->fail_at, -1);
    reset_buffers(S);
    long failed_before = atomic_load(&ca->failed);
    run_cmdbuf(S, 1);
    if (atomic_load(&ca->failed) != failed_before)
        problem(S, "round 2 met an injected failure");
    set_step(S, S_DESTROY);
    for (int i = 0; i < NBUF; i++) {
        s = alloy_buffer_destroy(S->b[i]);
        if (s != ALLOY_OK)
            problem(S, "alloy_buffer_destroy(%s): %s: %s", defs[i].name, alloy_status_string(s),
                    alloy_last_error());
    }
    s = alloy_queue_destroy(S->q);
    if (s != ALLOY_OK)
        problem(S, "alloy_queue_destroy: %s: %s", alloy_status_string(s), alloy_last_error());
    s = alloy_device_close(S->dev);
    if (s != ALLOY_OK)
        problem(S, "alloy_device_close: %s: %s", alloy_status_string(s), alloy_last_error());
    if (atomic_load(&ca->live_blocks) != 0 || atomic_load(&ca->live_bytes) != 0)
        problem(S, "leak: %ld blocks, %lld bytes still allocated after closing the device",
                atomic_load(&ca->live_blocks), atomic_load(&ca->live_bytes));
    if (atomic_load(&ca->bad_free))
        problem(S, "%ld frees did not pass the size given to alloc", atomic_load(&ca->bad_free));
    if (atomic_load(&ca->bad_align))
        problem(S, "%ld allocations asked for a bad alignment", atomic_load(&ca->bad_align));
}

/* ---------------------------------------------------------------- worker start failure */

#if !defined(UNDER_SANITIZER)
static long vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    char line[128];
    long pages = -1;
    if (!f)
        return -1;
    if (fgets(line, sizeof line, f))
        pages = strtol(line, NULL, 10);
    fclose(f);
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

/* In a child: an address-space limit lets only a few 8 MB thread stacks be mapped, so
 * alloy_device_open with 256 workers fails to start its threads. */
static int thread_start_failure(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        counting_alloc ca;
        memset(&ca, 0, sizeof ca);
        atomic_store(&ca.fail_at, -1);
        alloy_allocator a = {&ca, ca_alloc, ca_free};
        long vm = vm_bytes();
        struct rlimit old, lim;
        if (vm < 0 || getrlimit(RLIMIT_AS, &old) != 0)
            _exit(3);
        lim = old;
        lim.rlim_cur = (rlim_t)vm + (rlim_t)96 * 1024 * 1024;
        if (setrlimit(RLIMIT_AS, &lim) != 0)
            _exit(3);
        alloy_device_desc d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_workers = 256;
        d.allocator = &a;
        alloy_device *dev = NULL;
        alloy_status s = alloy_device_open(&d, &dev);
        int bad = 0;
        if (s == ALLOY_OK) {
            /* The limit did not stop thread creation (qemu-user, for one, ignores it):
             * nothing was tried. */
            fprintf(stderr, "fault_injection: thread start failure not provoked (256 worker "
                            "threads started under a %ld MB address space limit)\n",
                    (long)(lim.rlim_cur >> 20));
            setrlimit(RLIMIT_AS, &old);
            if (alloy_device_close(dev) != ALLOY_OK)
                bad = 1;
            dev = NULL;
        } else if (s != ALLOY_ERR_OUT_OF_MEMORY || dev != NULL) {
            fprintf(stderr, "PROBLEM: alloy_device_open with 256 workers under a %ld MB address "
                            "space limit returned %s (expected out of memory): %s\n",
                    (long)(lim.rlim_cur >> 20), alloy_status_string(s), alloy_last_error());
            bad = 1;
            if (dev)
                alloy_device_close(dev);
        } else {
            fprintf(stderr, "fault_injection: worker threads cannot start: alloy_device_open -> %s "
                            "(\"%s\")\n",
                    alloy_status_string(s), alloy_last_error());
        }
        if (atomic_load(&ca.live_blocks) != 0) {
            fprintf(stderr, "PROBLEM: the failed alloy_device_open left %ld blocks allocated\n",
                    atomic_load(&ca.live_blocks));
            bad = 1;
        }
        setrlimit(RLIMIT_AS, &old);
        d.cpu_workers = 2;
        s = alloy_device_open(&d, &dev);
        if (s != ALLOY_OK || alloy_device_close(dev) != ALLOY_OK) {
            fprintf(stderr, "PROBLEM: cannot open a device after the failure: %s\n",
                    alloy_last_error());
            bad = 1;
        }
        if (atomic_load(&ca.live_blocks) != 0)
            bad = 1;
        fflush(stderr);
        _exit(bad);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
        fprintf(stderr, "fault_injection: thread start failure not tried (no address space limit)\n");
        return 1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "PROBLEM: the thread start failure child %s %d\n",
                WIFEXITED(st) ? "exited with" : "died of signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return 0;
    }
    return 1;
}
#endif

int main(int argc, char **argv)
{
    int verbose = argc > 1 && !strcmp(argv[1], "-v");
    scenario *S = calloc(1, sizeof *S);
    ASSERT(S != NULL);
    S->verbose = verbose;
    for (int i = 0; i < NBUF; i++)
        S->init[i] = make_init(i);
    S->wrapped = malloc(defs[B_MBIAS].bytes);
    ASSERT(S->wrapped != NULL);

    unsigned char *golden[NBUF];
    long total = 0;
    run_scenario(S, -1, golden, &total);
    if (S->problems)
        FAIL_AT("the scenario fails without any injected failure");
    fprintf(stderr, "fault_injection: the scenario makes %ld allocations (one worker)\n", total);

    int counts[HIT_COUNT] = {0}, step_counts[S_COUNT] = {0};
    int points = 0, problems = 0;
    long n;
    for (n = 0; n < 100000; n++) {
        S->problems = 0;
        S->golden = golden;
        run_scenario(S, n, NULL, NULL);
        long hit = atomic_load(&S->ca.failed);
        problems += S->problems;
        if (!hit)
            break; /* allocation n was never reached: every point has been tried */
        points++;
        counts[S->hit_kind]++;
        step_counts[atomic_load(&S->ca.failed_step)]++;
        if (verbose || S->problems)
            fprintf(stderr, "  allocation %3ld (%s, %zu bytes): %s%s\n", n,
                    step_names[atomic_load(&S->ca.failed_step)], atomic_load(&S->ca.failed_bytes),
                    S->detail, S->problems ? "  <-- PROBLEM" : "");
        if (S->hit_kind == HIT_NONE) {
            fprintf(stderr, "PROBLEM: allocation %ld failed and nothing reported it\n", n);
            problems++;
        }
    }
#if !defined(UNDER_SANITIZER)
    problems += !thread_start_failure();
#else
    fprintf(stderr, "fault_injection: thread start failure skipped under a sanitizer\n");
#endif
    for (int i = 0; i < NBUF; i++) {
        free(S->init[i]);
        free(golden[i]);
    }
    free(S->wrapped);
    free(S);
    printf("fault_injection: %d injection points exercised (every allocation of the scenario, "
           "0..%ld): %d reported by the failing call (open %d, create %d, encode %d, commit %d), "
           "%d at run time named by alloy_cmdbuf_error, %d absorbed with exact results; "
           "problems=%d\n",
           points, n - 1, counts[HIT_CALL], step_counts[S_OPEN], step_counts[S_CREATE],
           step_counts[S_ENCODE], step_counts[S_COMMIT], counts[HIT_RUNTIME], counts[HIT_ABSORBED],
           problems);
    return problems ? 1 : 0;
}
