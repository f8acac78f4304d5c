/* Misuse and bad input for lu_factor, lu_solve, triangular_solve and layer_norm.
 *
 * Misuse: encoding into a committed command buffer and committing twice (STATE),
 * waiting or polling before commit (STATE), destroying buffers (every operand, the
 * optional ones included), queues and devices that an encoded op still references
 * (STATE, nothing changes, the op then runs), fire-and-forget, two threads racing to
 * encode into one command buffer (each encode is all or nothing: OK and recorded, or BUSY
 * and not).
 *
 * Bad input: every class of rejection (NULL descriptor or array, wrong dtype: f16/bf16
 * matrices UNSUPPORTED, i32 INVALID; wrong rank; non-square lu; pivots of the wrong
 * length or dtype; info of the wrong shape; batch dims that do not match or broadcast;
 * outputs overlapping each other or an input; enum values out of range; eps negative,
 * NaN or infinite; RMS with a mean; broadcast, negative-stride, misaligned, out-of-bounds
 * and foreign-device arrays) answers the documented status with a non-empty
 * alloy_last_error() naming the argument, records nothing (no buffer changes, no
 * reference is held), and leaves the command buffer usable. Run-time failure: lu_solve
 * with pivots outside 1..n (0, n+1, negative) fails the command buffer with
 * ALLOY_ERR_INVALID_ARGUMENT, alloy_cmdbuf_error names the op ("op 1 (lu_solve): ..."), b
 * is unchanged, the ops before it ran and those after it did not, and the queue's later
 * command buffers still run. */
#include "oracle.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---------------------------------------------------------------- small exact problems
 *
 * A = [[2, 4], [4, 2]] (f64): P swaps the rows, L = [[1, 0], [0.5, 1]], U = [[4, 2], [0, 3]],
 * pivots [2, 2]; A x = [6, 6] gives x = [1, 1]; T = [[2, 1], [0, 4]] (upper) with b = [4, 8]
 * gives x = [1, 2]; layer norm of [1, 3] with eps 0 gives [-1, 1], mean 2, rstd 1. Every
 * step is exact, so results compare with ==. */

typedef struct exact_set {
    alloy_buffer *a, *piv, *info, *b, *t, *x, *y, *g, *st;
    alloy_array va, vp, vi, vb, vt, vx, vy, vg, vm, vr;
} exact_set;

static exact_set exact_new(alloy_device *dev)
{
    exact_set s;
    int64_t sq[2] = {2, 2}, col[2] = {2, 1}, two = 2, row[2] = {1, 2}, one = 1;
    s.a = poison_buffer(dev, 64);
    s.piv = poison_buffer(dev, 16);
    s.info = poison_buffer(dev, 16);
    s.b = poison_buffer(dev, 32);
    s.t = poison_buffer(dev, 64);
    s.x = poison_buffer(dev, 32);
    s.y = poison_buffer(dev, 32);
    s.g = poison_buffer(dev, 32);
    s.st = poison_buffer(dev, 32);
    double *a = alloy_buffer_contents(s.a), *b = alloy_buffer_contents(s.b);
    double *t = alloy_buffer_contents(s.t), *x = alloy_buffer_contents(s.x);
    double *g = alloy_buffer_contents(s.g);
    a[0] = 2, a[1] = 4, a[2] = 4, a[3] = 2;
    b[0] = 6, b[1] = 6;
    t[0] = 2, t[1] = 1, t[2] = NAN, t[3] = 4; /* the lower triangle is never read */
    x[0] = 1, x[1] = 3;
    g[0] = 1, g[1] = 1, g[2] = 0, g[3] = 0; /* gamma [1, 1], beta [0, 0] */
    s.va = alloy_array_contiguous(s.a, 0, ALLOY_F64, 2, sq);
    s.vp = alloy_array_contiguous(s.piv, 0, ALLOY_I32, 1, &two);
    s.vi = alloy_array_contiguous(s.info, 0, ALLOY_I32, 0, NULL);
    s.vb = alloy_array_contiguous(s.b, 0, ALLOY_F64, 2, col);
    s.vt = alloy_array_contiguous(s.t, 0, ALLOY_F64, 2, sq);
    s.vx = alloy_array_contiguous(s.x, 0, ALLOY_F64, 2, row);
    s.vy = alloy_array_contiguous(s.y, 0, ALLOY_F64, 2, row);
    s.vg = alloy_array_contiguous(s.g, 0, ALLOY_F64, 1, &two);
    s.vm = alloy_array_contiguous(s.st, 0, ALLOY_F64, 1, &one);
    s.vr = alloy_array_contiguous(s.st, 8, ALLOY_F64, 1, &one);
    return s;
}

/* trsm solves T x = b in place in the x buffer's first two doubles: set [4, 8] first. */
static void exact_trsm_input(exact_set *s)
{
    double *b2 = alloy_buffer_contents(s->y);
    b2[2] = 4, b2[3] = 8;
}

/* Encodes the four exact ops: factor A, solve A x = b with the factors, T x = [4, 8],
 * layer norm of [1, 3]. */
static void exact_encode(alloy_cmdbuf *cb, exact_set *s)
{
    ASSERT_OK(alloy_encode_lu_factor(cb, &s->va, &s->vp, &s->vi));
    alloy_lu_solve_desc ld = alloy_lu_solve_desc_default();
    ASSERT_OK(alloy_encode_lu_solve(cb, &ld, &s->va, &s->vp, &s->vb));
    int64_t col[2] = {2, 1};
    alloy_array tb = alloy_array_contiguous(s->y, 16, ALLOY_F64, 2, col);
    alloy_triangular_desc td = alloy_triangular_desc_default();
    ASSERT_OK(alloy_encode_triangular_solve(cb, &td, &s->vt, &tb));
    alloy_norm_desc nd = alloy_norm_desc_default();
    nd.eps = 0;
    int64_t two = 2;
    alloy_array beta = alloy_array_contiguous(s->g, 16, ALLOY_F64, 1, &two);
    int64_t row[2] = {1, 2};
    alloy_array y = alloy_array_contiguous(s->y, 0, ALLOY_F64, 2, row);
    ASSERT_OK(alloy_encode_layer_norm(cb, &nd, &s->vx, &s->vg, &beta, &y, &s->vm, &s->vr));
}

static void exact_check(const exact_set *s)
{
    const double *a = alloy_buffer_contents(s->a), *b = alloy_buffer_contents(s->b);
    const int32_t *p = alloy_buffer_contents(s->piv), *info = alloy_buffer_contents(s->info);
    const double *y = alloy_buffer_contents(s->y), *st = alloy_buffer_contents(s->st);
    ASSERT(a[0] == 4 && a[1] == 2 && a[2] == 0.5 && a[3] == 3);
    ASSERT(p[0] == 2 && p[1] == 2 && info[0] == 0);
    ASSERT(b[0] == 1 && b[1] == 1);
    ASSERT(y[0] == -1 && y[1] == 1);
    ASSERT(y[2] == 1 && y[3] == 2);
    ASSERT(st[0] == 2 && st[1] == 1);
}

static void exact_free(exact_set *s)
{
    alloy_buffer *all[9] = {s->a, s->piv, s->info, s->b, s->t, s->x, s->y, s->g, s->st};
    for (int i = 0; i < 9; i++)
        ASSERT_OK(alloy_buffer_destroy(all[i]));
}

/* ---------------------------------------------------------------- misuse */

TEST(exact_ops_run)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    exact_set s = exact_new(dev);
    exact_trsm_input(&s);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    exact_encode(cb, &s);
    test_commit_wait(cb);
    exact_check(&s);
    exact_free(&s);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST(encode_after_commit)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    exact_set s = exact_new(dev);
    exact_trsm_input(&s);
    unsigned char *a0 = snapshot(s.a), *b0 = snapshot(s.b), *y0 = snapshot(s.y);
    unsigned char *st0 = snapshot(s.st);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    ASSERT_STATUS(alloy_cmdbuf_wait(cb), ALLOY_ERR_STATE);
    int done = 0;
    ASSERT_STATUS(alloy_cmdbuf_poll(cb, &done), ALLOY_ERR_STATE);
    ASSERT_OK(alloy_cmdbuf_commit(cb)); /* empty */
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &s.va, &s.vp, &s.vi), ALLOY_ERR_STATE, "committed");
    alloy_lu_solve_desc ld = alloy_lu_solve_desc_default();
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &ld, &s.va, &s.vp, &s.vb), ALLOY_ERR_STATE, "committed");
    alloy_triangular_desc td = alloy_triangular_desc_default();
    int64_t col[2] = {2, 1};
    alloy_array tb = alloy_array_contiguous(s.y, 16, ALLOY_F64, 2, col);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &td, &s.vt, &tb), ALLOY_ERR_STATE, "committed");
    alloy_norm_desc nd = alloy_norm_desc_default();
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &nd, &s.vx, NULL, NULL, &s.vy, &s.vm, &s.vr),
                 ALLOY_ERR_STATE, "committed");
    ASSERT_FAILS(alloy_cmdbuf_commit(cb), ALLOY_ERR_STATE, "committed");
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    /* none of them ran, and no references are held */
    ASSERT(memcmp(a0, alloy_buffer_contents(s.a), 64) == 0);
    ASSERT(memcmp(b0, alloy_buffer_contents(s.b), 32) == 0);
    ASSERT(memcmp(y0, alloy_buffer_contents(s.y), 32) == 0);
    ASSERT(memcmp(st0, alloy_buffer_contents(s.st), 32) == 0);
    /* a command buffer with these ops encoded but not committed: wait/poll say STATE */
    cb = test_cmdbuf(q);
    exact_encode(cb, &s);
    ASSERT_FAILS(alloy_cmdbuf_wait(cb), ALLOY_ERR_STATE, "committed");
    ASSERT_STATUS(alloy_cmdbuf_poll(cb, &done), ALLOY_ERR_STATE);
    test_commit_wait(cb);
    exact_check(&s);
    free(a0);
    free(b0);
    free(y0);
    free(st0);
    exact_free(&s);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* Every operand buffer of every op, the optional ones included, is held by an encoded,
 * uncommitted command buffer: destroying it answers STATE and changes nothing; so do
 * destroying the queue and closing the device. The ops then run normally; afterwards
 * everything can be destroyed. */
TEST(destroy_referenced)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    exact_set s = exact_new(dev);
    exact_trsm_input(&s);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    exact_encode(cb, &s);
    alloy_buffer *all[9] = {s.a, s.piv, s.info, s.b, s.t, s.x, s.y, s.g, s.st};
    static const char *const names[9] = {"a", "pivots", "info",       "b",        "t",
                                         "x", "y",      "gamma/beta", "mean/rstd"};
    for (int i = 0; i < 9; i++) {
        unsigned char *before = snapshot(all[i]);
        alloy_status st = alloy_buffer_destroy(all[i]);
        if (st != ALLOY_ERR_STATE)
            FAIL_AT("destroying the %s buffer of an encoded op said %s", names[i],
                    alloy_status_string(st));
        ASSERT(*alloy_last_error());
        ASSERT(memcmp(before, alloy_buffer_contents(all[i]), alloy_buffer_size(all[i])) == 0);
        free(before);
    }
    ASSERT_FAILS(alloy_queue_destroy(q), ALLOY_ERR_STATE, "queue");
    ASSERT_FAILS(alloy_device_close(dev), ALLOY_ERR_STATE, "device");
    test_commit_wait(cb);
    exact_check(&s);
    exact_free(&s);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* A committed, still running lu_factor (and an lu_solve queued behind it) hold their
 * buffers too: destroying one answers STATE whenever the factorization is provably still
 * running after the call. */
TEST(destroy_while_running)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    int conclusive = 0;
    for (int attempt = 0; attempt < 6 && !conclusive; attempt++) {
        const int64_t n = 300 + 100 * attempt, k = 4;
        int64_t sh[2] = {n, n}, bs[2] = {n, k};
        alloy_buffer *a = test_buffer(dev, (size_t)(n * n) * 8),
                     *p = test_buffer(dev, (size_t)n * 4);
        alloy_buffer *info = test_buffer(dev, 4), *b = test_buffer(dev, (size_t)(n * k) * 8);
        double *ap = alloy_buffer_contents(a), *bp = alloy_buffer_contents(b);
        test_rng r = {(uint64_t)attempt + 1};
        for (int64_t i = 0; i < n * n; i++)
            ap[i] = rng_uniform(&r);
        for (int64_t i = 0; i < n * k; i++)
            bp[i] = rng_uniform(&r);
        alloy_array va = alloy_array_contiguous(a, 0, ALLOY_F64, 2, sh);
        alloy_array vp = alloy_array_contiguous(p, 0, ALLOY_I32, 1, &n);
        alloy_array vi = alloy_array_contiguous(info, 0, ALLOY_I32, 0, NULL);
        alloy_array vb = alloy_array_contiguous(b, 0, ALLOY_F64, 2, bs);
        alloy_cmdbuf *c1 = test_cmdbuf(q), *c2 = test_cmdbuf(q);
        ASSERT_OK(alloy_encode_lu_factor(c1, &va, &vp, &vi));
        alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
        ASSERT_OK(alloy_encode_lu_solve(c2, &d, &va, &vp, &vb));
        ASSERT_OK(alloy_cmdbuf_commit(c1));
        ASSERT_OK(alloy_cmdbuf_commit(c2));
        alloy_status s1 = alloy_buffer_destroy(p), s2 = alloy_buffer_destroy(b);
        int done = 0;
        ASSERT_OK(alloy_cmdbuf_poll(c1, &done));
        if (!done) {
            conclusive = 1;
            ASSERT_STATUS(s1, ALLOY_ERR_STATE);
            ASSERT_STATUS(s2, ALLOY_ERR_STATE); /* c2 cannot have finished before c1 */
        }
        ASSERT_OK(alloy_cmdbuf_wait(c2));
        ASSERT_OK(alloy_cmdbuf_wait(c1));
        ASSERT_OK(alloy_cmdbuf_destroy(c1));
        ASSERT_OK(alloy_cmdbuf_destroy(c2));
        if (s1 != ALLOY_OK)
            ASSERT_OK(alloy_buffer_destroy(p));
        if (s2 != ALLOY_OK)
            ASSERT_OK(alloy_buffer_destroy(b));
        ASSERT_OK(alloy_buffer_destroy(a));
        ASSERT_OK(alloy_buffer_destroy(info));
    }
    ASSERT(conclusive);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* Committed and destroyed at once: the work still runs and releases its buffers. */
TEST(fire_and_forget)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    exact_set s = exact_new(dev);
    exact_trsm_input(&s);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    exact_encode(cb, &s);
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_OK(alloy_queue_wait_idle(q));
    exact_check(&s);
    exact_free(&s); /* no references left */
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* Two threads encode into one command buffer at once, each on its own slots of b: every
 * encode is OK (and its slot is solved: X = 2 B with A = I) or BUSY (and its slot is
 * untouched after the command buffer ran). */
enum { RACE_SLOTS = 2000 };

typedef struct racer {
    alloy_cmdbuf *cb;
    alloy_buffer *a, *b;
    int first;
    alloy_status st[RACE_SLOTS];
    atomic_int *go;
} racer;

static void *racer_main(void *p)
{
    racer *r = p;
    while (!atomic_load(r->go))
        ;
    int64_t kk[2] = {4, 4}, bs[2] = {4, 2};
    alloy_array a = alloy_array_contiguous(r->a, 0, ALLOY_F32, 2, kk);
    for (int i = r->first; i < RACE_SLOTS; i += 2) {
        alloy_array b = alloy_array_contiguous(r->b, (size_t)i * 32, ALLOY_F32, 2, bs);
        if (i % 4 < 2) {
            alloy_triangular_desc d = alloy_triangular_desc_default();
            d.alpha = 2;
            d.uplo = i % 3 ? ALLOY_UPPER : ALLOY_LOWER;
            r->st[i] = alloy_encode_triangular_solve(r->cb, &d, &a, &b);
        } else {
            /* the slot's 8 floats as 2 rows of 4, normalized in place */
            int64_t rs[2] = {2, 4};
            alloy_array x = alloy_array_contiguous(r->b, (size_t)i * 32, ALLOY_F32, 2, rs);
            alloy_norm_desc nd = alloy_norm_desc_default();
            r->st[i] = alloy_encode_layer_norm(r->cb, &nd, &x, NULL, NULL, &x, NULL, NULL);
        }
        if (r->st[i] != ALLOY_OK && r->st[i] != ALLOY_ERR_BUSY)
            FAIL_AT("slot %d: encode said %s: %s", i, alloy_status_string(r->st[i]),
                    alloy_last_error());
    }
    return NULL;
}

TEST(two_encoders_race)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    alloy_buffer *a = test_buffer(dev, 64), *b = test_buffer(dev, RACE_SLOTS * 32);
    float *ap = alloy_buffer_contents(a), *bp = alloy_buffer_contents(b);
    for (int i = 0; i < 16; i++)
        ap[i] = i % 5 == 0 ? 1.0f : 0.0f; /* the identity */
    for (int i = 0; i < RACE_SLOTS * 8; i++)
        bp[i] = (float)(i % 8 + 1);
    int busy = 0, ok = 0;
    /* BUSY needs the two encoders to meet: more rounds until they have (not required) */
    for (int round = 0; round < 3 || (busy == 0 && round < 20); round++) {
        alloy_cmdbuf *cb = test_cmdbuf(q);
        atomic_int go;
        atomic_init(&go, 0);
        racer rs[2];
        pthread_t t[2];
        for (int k = 0; k < 2; k++) {
            rs[k].cb = cb;
            rs[k].a = a;
            rs[k].b = b;
            rs[k].first = k;
            rs[k].go = &go;
            ASSERT_EQ(pthread_create(&t[k], NULL, racer_main, &rs[k]), 0);
        }
        atomic_store(&go, 1);
        for (int k = 0; k < 2; k++)
            ASSERT_EQ(pthread_join(t[k], NULL), 0);
        float *before = test_malloc(sizeof(float) * RACE_SLOTS * 8);
        memcpy(before, bp, sizeof(float) * RACE_SLOTS * 8);
        test_commit_wait(cb);
        for (int i = 0; i < RACE_SLOTS; i++) {
            alloy_status st = rs[i % 2].st[i];
            const float *was = before + i * 8, *now = bp + i * 8;
            if (st == ALLOY_ERR_BUSY) {
                busy++;
                if (memcmp(was, now, 32) != 0)
                    FAIL_AT("round %d slot %d: the encode said BUSY but its op ran", round, i);
                continue;
            }
            ok++;
            for (int j = 0; j < 8; j++) {
                float want = i % 4 < 2 ? 2 * was[j] : 0.0f;
                if (i % 4 >= 2) {
                    /* each 4-element row normalized: (v - mean) * rstd */
                    const float *row = was + (j / 4) * 4;
                    double m = (row[0] + row[1] + row[2] + row[3]) / 4.0, var = 0;
                    for (int e = 0; e < 4; e++)
                        var += (row[e] - m) * (row[e] - m);
                    want = (float)((was[j] - m) / sqrt(var / 4 + 1e-5));
                }
                if (fabsf(now[j] - want) > 1e-5f * (1 + fabsf(want)))
                    FAIL_AT("round %d slot %d element %d: %g, expected %g", round, i, j, now[j],
                            want);
            }
        }
        free(before);
    }
    fprintf(stderr, "  %d encodes recorded, %d answered BUSY\n", ok, busy);
    ASSERT(ok > 0);
    ASSERT_OK(alloy_buffer_destroy(a));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- bad input */

/* A pool of poisoned buffers the rejected encodes point into; all must stay unchanged. */
typedef struct pool {
    alloy_device *dev, *other;
    alloy_queue *q;
    alloy_buffer *m, *v, *w, *foreign, *lonely;
    unsigned char *m0, *v0, *w0;
} pool;

static pool pool_new(void)
{
    pool p;
    p.dev = test_cpu_device(0);
    p.other = test_cpu_device(1);
    p.q = test_queue(p.dev);
    p.m = poison_buffer(p.dev, 1 << 14);
    p.v = poison_buffer(p.dev, 1 << 12);
    p.w = poison_buffer(p.dev, 1 << 12);
    p.foreign = poison_buffer(p.other, 1 << 12);
    p.lonely = poison_buffer(p.dev, 1 << 12); /* used only by rejected encodes */
    p.m0 = snapshot(p.m);
    p.v0 = snapshot(p.v);
    p.w0 = snapshot(p.w);
    return p;
}

/* The command buffer still works: a valid op set runs; the pool is untouched; the
 * lonely buffer was never referenced, so it can go while cb is still uncommitted. */
static void pool_finish(pool *p, alloy_cmdbuf *cb)
{
    ASSERT_OK(alloy_buffer_destroy(p->lonely));
    exact_set s = exact_new(p->dev);
    exact_trsm_input(&s);
    exact_encode(cb, &s);
    test_commit_wait(cb);
    exact_check(&s);
    exact_free(&s);
    ASSERT(memcmp(p->m0, alloy_buffer_contents(p->m), alloy_buffer_size(p->m)) == 0);
    ASSERT(memcmp(p->v0, alloy_buffer_contents(p->v), alloy_buffer_size(p->v)) == 0);
    ASSERT(memcmp(p->w0, alloy_buffer_contents(p->w), alloy_buffer_size(p->w)) == 0);
    free(p->m0);
    free(p->v0);
    free(p->w0);
    ASSERT_OK(alloy_buffer_destroy(p->m));
    ASSERT_OK(alloy_buffer_destroy(p->v));
    ASSERT_OK(alloy_buffer_destroy(p->w));
    ASSERT_OK(alloy_buffer_destroy(p->foreign));
    ASSERT_OK(alloy_queue_destroy(p->q));
    ASSERT_OK(alloy_device_close(p->dev));
    ASSERT_OK(alloy_device_close(p->other));
}

static alloy_array arr(alloy_buffer *b, size_t off, alloy_dtype t, int rank, int64_t d0, int64_t d1,
                       int64_t d2)
{
    int64_t sh[3] = {d0, d1, d2};
    return alloy_array_contiguous(b, off, t, rank, sh);
}

#define INV ALLOY_ERR_INVALID_ARGUMENT
#define UNS ALLOY_ERR_UNSUPPORTED

TEST(bad_inputs_lu_factor)
{
    pool p = pool_new();
    alloy_cmdbuf *cb = test_cmdbuf(p.q);
    alloy_array a = arr(p.m, 0, ALLOY_F32, 2, 4, 4, 0), a3 = arr(p.m, 0, ALLOY_F64, 3, 3, 4, 4);
    alloy_array pv = arr(p.v, 0, ALLOY_I32, 1, 4, 0, 0), pv3 = arr(p.v, 0, ALLOY_I32, 2, 3, 4, 0);
    alloy_array in = arr(p.w, 0, ALLOY_I32, 0, 0, 0, 0), in3 = arr(p.w, 0, ALLOY_I32, 1, 3, 0, 0);
    /* NULL arrays, NULL buffer, invalid rank */
    ASSERT_FAILS(alloy_encode_lu_factor(cb, NULL, &pv, &in), INV, "a");
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, NULL, &in), INV, "pivots");
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &pv, NULL), INV, "info");
    ASSERT_FAILS(alloy_encode_lu_factor(NULL, &a, &pv, &in), INV, "command");
    alloy_array bad = a;
    bad.buffer = NULL;
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = alloy_array_swap_dims(a, 0, 5);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    /* dtypes: halves UNSUPPORTED, i32 a INVALID, pivots/info not i32 INVALID */
    bad = arr(p.m, 0, ALLOY_F16, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), UNS, "a");
    bad = arr(p.m, 0, ALLOY_BF16, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), UNS, "a");
    bad = arr(p.m, 0, ALLOY_I32, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = a;
    bad.dtype = (alloy_dtype)42;
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = arr(p.v, 0, ALLOY_F32, 1, 4, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &bad, &in), INV, "pivots");
    bad = arr(p.w, 0, ALLOY_F32, 0, 0, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &pv, &bad), INV, "info");
    /* ranks */
    bad = arr(p.m, 0, ALLOY_F32, 1, 16, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = arr(p.m, 0, ALLOY_F32, 0, 0, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &pv3, &in), INV, "pivots");
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &pv, &in3), INV, "info");
    /* pivots' length must be min(m, n) */
    bad = arr(p.v, 0, ALLOY_I32, 1, 5, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &bad, &in), INV, "pivots");
    alloy_array wide = arr(p.m, 0, ALLOY_F32, 2, 3, 7, 0);
    bad = arr(p.v, 0, ALLOY_I32, 1, 7, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &wide, &bad, &in), INV, "pivots");
    /* batch dims: pivots and info must have a's exactly (outputs do not broadcast) */
    bad = arr(p.v, 0, ALLOY_I32, 2, 2, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a3, &bad, &in3), INV, "pivots");
    bad = arr(p.v, 0, ALLOY_I32, 2, 1, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a3, &bad, &in3), INV, "pivots");
    bad = arr(p.w, 0, ALLOY_I32, 1, 2, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a3, &pv3, &bad), INV, "info");
    bad = arr(p.w, 0, ALLOY_I32, 1, 1, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a3, &pv3, &bad), INV, "info");
    /* overlapping outputs: pivots or info inside a's bytes, pivots and info together */
    bad = arr(p.m, 16, ALLOY_I32, 1, 4, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &bad, &in), INV, "pivots");
    bad = arr(p.m, 60, ALLOY_I32, 0, 0, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &pv, &bad), INV, "info");
    bad = arr(p.v, 8, ALLOY_I32, 0, 0, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &pv, &bad), INV, "info");
    /* a broadcast output, negative stride, misaligned, out of bounds, another device */
    int64_t sh[2] = {4, 4}, zs[2] = {0, 1}, ns[2] = {4, -1};
    bad = alloy_array_strided(p.m, 0, ALLOY_F32, 2, sh, zs);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = alloy_array_strided(p.m, 64, ALLOY_F32, 2, sh, ns);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = arr(p.m, 2, ALLOY_F32, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = arr(p.m, (1 << 14) - 32, ALLOY_F32, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = arr(p.foreign, 0, ALLOY_F32, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &bad, &pv, &in), INV, "a");
    bad = arr(p.lonely, 0, ALLOY_I32, 1, 3, 0, 0); /* lonely: wrong length */
    ASSERT_FAILS(alloy_encode_lu_factor(cb, &a, &bad, &in), INV, "pivots");
    pool_finish(&p, cb);
}

TEST(bad_inputs_lu_solve)
{
    pool p = pool_new();
    alloy_cmdbuf *cb = test_cmdbuf(p.q);
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    alloy_array lu = arr(p.m, 0, ALLOY_F64, 2, 4, 4, 0), pv = arr(p.v, 0, ALLOY_I32, 1, 4, 0, 0);
    alloy_array b = arr(p.w, 0, ALLOY_F64, 2, 4, 3, 0);
    alloy_array lu3 = arr(p.m, 0, ALLOY_F64, 3, 3, 4, 4), pv3 = arr(p.v, 0, ALLOY_I32, 2, 3, 4, 0);
    alloy_array b3 = arr(p.w, 0, ALLOY_F64, 3, 3, 4, 2);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, NULL, &lu, &pv, &b), INV, "descriptor");
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, NULL, &pv, &b), INV, "lu");
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, NULL, &b), INV, "pivots");
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, NULL), INV, "b");
    /* dtypes */
    alloy_array bad = arr(p.m, 0, ALLOY_F16, 2, 4, 4, 0), bad2;
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b), UNS, "lu");
    bad = arr(p.w, 0, ALLOY_BF16, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), UNS, "b");
    bad = arr(p.m, 0, ALLOY_I32, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b), INV, "lu");
    bad = arr(p.w, 0, ALLOY_F32, 2, 4, 3, 0); /* f64 lu, f32 b */
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), INV, "b");
    bad = arr(p.v, 0, ALLOY_F32, 1, 4, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &bad, &b), INV, "pivots");
    bad = arr(p.v, 0, ALLOY_F64, 1, 4, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &bad, &b), INV, "pivots");
    /* ranks and shapes */
    bad = arr(p.m, 0, ALLOY_F64, 1, 16, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b), INV, "lu");
    bad = arr(p.w, 0, ALLOY_F64, 1, 4, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), INV, "b");
    bad = arr(p.v, 0, ALLOY_I32, 0, 0, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &bad, &b), INV, "pivots");
    bad = arr(p.m, 0, ALLOY_F64, 2, 4, 5, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b), INV, "square");
    bad = arr(p.v, 0, ALLOY_I32, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &bad, &b), INV, "pivots");
    bad = arr(p.w, 0, ALLOY_F64, 2, 5, 3, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), INV, "b");
    /* batch dims: lu (2,N,N) or pivots (2,N) against b (3,N,K); lu batched, b not */
    bad = arr(p.m, 0, ALLOY_F64, 3, 2, 4, 4);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv3, &b3), INV, "lu");
    bad = arr(p.v, 0, ALLOY_I32, 2, 2, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu3, &bad, &b3), INV, "pivots");
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu3, &pv3, &b), INV, "lu");
    int64_t sh4[4] = {2, 3, 4, 4};
    bad = alloy_array_contiguous(p.m, 0, ALLOY_F64, 4, sh4); /* more batch dims than b */
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv3, &b3), INV, "lu");
    /* overlaps: b over lu, b over pivots */
    bad = arr(p.m, 64, ALLOY_F64, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), INV, "b");
    bad2 = arr(p.v, 0, ALLOY_F64, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad2), INV, "b");
    /* b broadcast (an output), negative stride, foreign, misaligned */
    int64_t sh[2] = {4, 3}, zs[2] = {3, 0}, ns[2] = {-3, 1};
    bad = alloy_array_strided(p.w, 0, ALLOY_F64, 2, sh, zs);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), INV, "b");
    bad = alloy_array_strided(p.w, 256, ALLOY_F64, 2, sh, ns);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), INV, "b");
    bad = arr(p.foreign, 0, ALLOY_F64, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b), INV, "lu");
    bad = arr(p.m, 4, ALLOY_F64, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &bad, &pv, &b), INV, "lu");
    bad = arr(p.lonely, 0, ALLOY_F64, 2, 5, 3, 0);
    ASSERT_FAILS(alloy_encode_lu_solve(cb, &d, &lu, &pv, &bad), INV, "b");
    pool_finish(&p, cb);
}

TEST(bad_inputs_triangular_solve)
{
    pool p = pool_new();
    alloy_cmdbuf *cb = test_cmdbuf(p.q);
    alloy_triangular_desc d = alloy_triangular_desc_default();
    alloy_array a = arr(p.m, 0, ALLOY_F32, 2, 4, 4, 0), b = arr(p.w, 0, ALLOY_F32, 2, 4, 3, 0);
    alloy_array b3 = arr(p.w, 0, ALLOY_F32, 3, 3, 4, 3);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, NULL, &a, &b), INV, "descriptor");
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, NULL, &b), INV, "a");
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, NULL), INV, "b");
    /* enums out of range */
    alloy_triangular_desc e = d;
    e.side = (alloy_side)2;
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &e, &a, &b), INV, "side");
    e.side = (alloy_side)-1;
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &e, &a, &b), INV, "side");
    e = d;
    e.uplo = (alloy_uplo)7;
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &e, &a, &b), INV, "uplo");
    e.uplo = (alloy_uplo)-3;
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &e, &a, &b), INV, "uplo");
    /* dtypes */
    alloy_array bad = arr(p.m, 0, ALLOY_F16, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &bad, &b), UNS, "a");
    bad = arr(p.w, 0, ALLOY_BF16, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), UNS, "b");
    bad = arr(p.m, 0, ALLOY_I32, 2, 4, 4, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &bad, &b), INV, "a");
    bad = arr(p.w, 0, ALLOY_F64, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), INV, "b");
    /* ranks and sizes: a must be K x K with K = M (left) or N (right) */
    bad = arr(p.m, 0, ALLOY_F32, 1, 16, 0, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &bad, &b), INV, "a");
    bad = arr(p.w, 0, ALLOY_F32, 1, 12, 0, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), INV, "b");
    bad = arr(p.m, 0, ALLOY_F32, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &bad, &b), INV, "a");
    e = d;
    e.side = ALLOY_RIGHT; /* needs 3 x 3 */
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &e, &a, &b), INV, "a");
    /* batch dims: a (2,K,K) against b (3,M,N); a batched, b not */
    bad = arr(p.m, 0, ALLOY_F32, 3, 2, 4, 4);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &bad, &b3), INV, "a");
    bad = arr(p.m, 0, ALLOY_F32, 3, 3, 4, 4);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &bad, &b), INV, "a");
    /* b overlapping a; b broadcast; negative stride; foreign; out of bounds */
    bad = arr(p.m, 32, ALLOY_F32, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), INV, "b");
    int64_t sh[2] = {4, 3}, zs[2] = {0, 1}, ns[2] = {3, -1};
    bad = alloy_array_strided(p.w, 0, ALLOY_F32, 2, sh, zs);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), INV, "b");
    bad = alloy_array_strided(p.w, 64, ALLOY_F32, 2, sh, ns);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), INV, "b");
    bad = arr(p.foreign, 0, ALLOY_F32, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), INV, "b");
    bad = arr(p.w, (1 << 12) - 16, ALLOY_F32, 2, 4, 3, 0);
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &d, &a, &bad), INV, "b");
    bad = arr(p.lonely, 0, ALLOY_F32, 2, 4, 3, 0);
    e = d;
    e.uplo = (alloy_uplo)2;
    ASSERT_FAILS(alloy_encode_triangular_solve(cb, &e, &a, &bad), INV, "uplo");
    pool_finish(&p, cb);
}

TEST(bad_inputs_layer_norm)
{
    pool p = pool_new();
    alloy_cmdbuf *cb = test_cmdbuf(p.q);
    alloy_norm_desc d = alloy_norm_desc_default();
    alloy_array x = arr(p.m, 0, ALLOY_F32, 2, 3, 8, 0), y = arr(p.m, 4096, ALLOY_BF16, 2, 3, 8, 0);
    alloy_array g = arr(p.v, 0, ALLOY_F16, 1, 8, 0, 0), be = arr(p.v, 64, ALLOY_F64, 1, 8, 0, 0);
    alloy_array mean = arr(p.w, 0, ALLOY_F32, 1, 3, 0, 0),
                rstd = arr(p.w, 64, ALLOY_F64, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, NULL, &x, &g, &be, &y, &mean, &rstd), INV,
                 "descriptor");
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, NULL, &g, &be, &y, &mean, &rstd), INV, "x");
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, NULL, &mean, &rstd), INV, "y");
    /* eps */
    static const double bad_eps[4] = {-1e-5, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 4; i++) {
        alloy_norm_desc e = d;
        e.eps = bad_eps[i];
        ASSERT_FAILS(alloy_encode_layer_norm(cb, &e, &x, &g, &be, &y, &mean, &rstd), INV, "eps");
    }
    /* RMS takes no mean */
    alloy_norm_desc r = d;
    r.rms = 1;
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &r, &x, &g, &be, &y, &mean, &rstd), INV, "mean");
    /* dtypes: i32 x, y, gamma, beta INVALID; f16/bf16 stats UNSUPPORTED, i32 stats too */
    alloy_array bad = arr(p.m, 0, ALLOY_I32, 2, 3, 8, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &bad, &g, &be, &y, &mean, &rstd), INV, "x");
    bad = arr(p.m, 4096, ALLOY_I32, 2, 3, 8, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &bad, &mean, &rstd), INV, "y");
    bad = arr(p.v, 0, ALLOY_I32, 1, 8, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &bad, &be, &y, &mean, &rstd), INV, "gamma");
    bad = arr(p.v, 64, ALLOY_I32, 1, 8, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &bad, &y, &mean, &rstd), INV, "beta");
    bad = arr(p.w, 0, ALLOY_F16, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &bad, &rstd), UNS, "mean");
    bad = arr(p.w, 64, ALLOY_BF16, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &mean, &bad), UNS, "rstd");
    /* ranks and shapes */
    bad = arr(p.m, 0, ALLOY_F32, 0, 0, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &bad, NULL, NULL, &bad, NULL, NULL), INV, "x");
    bad = arr(p.m, 4096, ALLOY_BF16, 2, 3, 9, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &bad, &mean, &rstd), INV, "y");
    bad = arr(p.m, 4096, ALLOY_BF16, 3, 1, 3, 8);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &bad, &mean, &rstd), INV, "y");
    bad = arr(p.v, 0, ALLOY_F16, 1, 7, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &bad, &be, &y, &mean, &rstd), INV, "gamma");
    bad = arr(p.v, 0, ALLOY_F16, 2, 1, 8, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &bad, &be, &y, &mean, &rstd), INV, "gamma");
    bad = arr(p.v, 64, ALLOY_F64, 1, 9, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &bad, &y, &mean, &rstd), INV, "beta");
    bad = arr(p.w, 0, ALLOY_F32, 1, 4, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &bad, &rstd), INV, "mean");
    bad = arr(p.w, 64, ALLOY_F64, 2, 3, 1, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &mean, &bad), INV, "rstd");
    bad = arr(p.w, 64, ALLOY_F64, 0, 0, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &mean, &bad), INV, "rstd");
    /* overlaps: y partly over x, over gamma; stats over x, y, beta, each other */
    bad = arr(p.m, 8, ALLOY_F32, 2, 3, 8, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &bad, &mean, &rstd), INV, "y");
    bad = arr(p.v, 0, ALLOY_BF16, 2, 3, 8, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &bad, &mean, &rstd), INV, "y");
    bad = arr(p.m, 16, ALLOY_F32, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &bad, &rstd), INV, "mean");
    bad = arr(p.m, 4096 + 8, ALLOY_F64, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &mean, &bad), INV, "rstd");
    bad = arr(p.v, 64, ALLOY_F64, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &mean, &bad), INV, "rstd");
    bad = arr(p.w, 8, ALLOY_F64, 1, 3, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &y, &mean, &bad), INV, "rstd");
    /* y broadcast; negative stride; foreign; misaligned */
    int64_t sh[2] = {3, 8}, zs[2] = {0, 1}, ns[2] = {8, -1};
    bad = alloy_array_strided(p.m, 4096, ALLOY_BF16, 2, sh, zs);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &bad, &mean, &rstd), INV, "y");
    bad = alloy_array_strided(p.m, 4096 + 64, ALLOY_BF16, 2, sh, ns);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &g, &be, &bad, &mean, &rstd), INV, "y");
    bad = arr(p.foreign, 0, ALLOY_F32, 2, 3, 8, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &bad, &g, &be, &y, &mean, &rstd), INV, "x");
    bad = arr(p.v, 1, ALLOY_F16, 1, 8, 0, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &d, &x, &bad, &be, &y, &mean, &rstd), INV, "gamma");
    bad = arr(p.lonely, 0, ALLOY_F32, 2, 3, 8, 0);
    ASSERT_FAILS(alloy_encode_layer_norm(cb, &r, &x, &g, &be, &bad, &mean, &rstd), INV, "mean");
    pool_finish(&p, cb);
}

/* ---------------------------------------------------------------- invalid pivots at run time */

/* pivots holding `badv` at entry `bad_entry`, position `bad_pos`, of a batch of 3 systems
 * of n = 5 (b row-major or column-major). */
static void garbage_pivots_case(alloy_device *dev, alloy_queue *q, int32_t badv, int bad_entry,
                                int bad_pos, int lay_b)
{
    const int64_t n = 5, k = 2, bsh[1] = {3};
    size_t end;
    alloy_array lu = lay_matrix(NULL, 0, ALLOY_F64, 1, bsh, n, n, LAY_ROW, &end);
    alloy_buffer *lb = poison_buffer(dev, end);
    lu = on_buffer(lu, lb);
    alloy_array pv = lay_vector(NULL, 0, ALLOY_I32, 1, bsh, n, &end);
    alloy_buffer *pb = poison_buffer(dev, end);
    pv = on_buffer(pv, pb);
    alloy_array b = lay_matrix(NULL, 0, ALLOY_F64, 1, bsh, n, k, lay_b, &end);
    alloy_buffer *bb = poison_buffer(dev, end);
    b = on_buffer(b, bb);
    test_rng r = {(uint64_t)(uint32_t)badv * 31u + (uint64_t)(bad_entry * 7 + bad_pos + 1)};
    double m[25], rhs[10];
    for (int e = 0; e < 3; e++) {
        for (int i = 0; i < 25; i++)
            m[i] = rng_uniform(&r) + (i % 6 == 0 ? 4 : 0);
        for (int i = 0; i < 10; i++)
            rhs[i] = rng_uniform(&r);
        mat_put(&lu, e, m);
        mat_put(&b, e, rhs);
        int32_t piv[5] = {2, 2, 5, 4, 5};
        if (e == bad_entry)
            piv[bad_pos] = badv;
        ivec_put(&pv, e, piv, n);
    }
    /* a copy before (must run) and after (must not) the failing solve */
    alloy_buffer *side = poison_buffer(dev, 64);
    double *sp = alloy_buffer_contents(side);
    sp[0] = 1.5, sp[1] = -2.5;
    int64_t two = 2;
    alloy_array s0 = alloy_array_contiguous(side, 0, ALLOY_F64, 1, &two);
    alloy_array s1 = alloy_array_contiguous(side, 16, ALLOY_F64, 1, &two);
    alloy_array s2 = alloy_array_contiguous(side, 32, ALLOY_F64, 1, &two);
    unsigned char *b0 = snapshot(bb), *l0 = snapshot(lb), *p0 = snapshot(pb);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    ASSERT_OK(alloy_encode_copy(cb, &s0, &s1));
    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
    d.transpose = bad_pos % 2;
    ASSERT_OK(alloy_encode_lu_solve(cb, &d, &lu, &pv, &b)); /* values are not checked here */
    ASSERT_OK(alloy_encode_copy(cb, &s1, &s2));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    alloy_status st = alloy_cmdbuf_wait(cb);
    if (st != ALLOY_ERR_INVALID_ARGUMENT)
        FAIL_AT("pivot %d at entry %d position %d: wait said %s, expected invalid argument", badv,
                bad_entry, bad_pos, alloy_status_string(st));
    const char *msg = alloy_cmdbuf_error(cb);
    if (!mentions(msg, "op") || !mentions(msg, "lu_solve") || !mentions(msg, "1"))
        FAIL_AT("pivot %d: alloy_cmdbuf_error is \"%s\"; it should name op 1 (lu_solve)", badv,
                msg);
    ASSERT_STATUS(alloy_cmdbuf_wait(cb), ALLOY_ERR_INVALID_ARGUMENT); /* again: the same */
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    if (memcmp(b0, alloy_buffer_contents(bb), alloy_buffer_size(bb)) != 0)
        FAIL_AT("pivot %d at entry %d: b changed although the solve failed", badv, bad_entry);
    ASSERT(memcmp(l0, alloy_buffer_contents(lb), alloy_buffer_size(lb)) == 0);
    ASSERT(memcmp(p0, alloy_buffer_contents(pb), alloy_buffer_size(pb)) == 0);
    ASSERT(sp[2] == 1.5 && sp[3] == -2.5); /* the op before ran */
    ASSERT(isnan(sp[4]) && isnan(sp[5]));  /* the op after was skipped */
    /* the queue goes on: a later command buffer with valid pivots runs */
    int32_t good[5] = {2, 2, 5, 4, 5};
    ivec_put(&pv, bad_entry, good, n);
    cb = test_cmdbuf(q);
    ASSERT_OK(alloy_encode_lu_solve(cb, &d, &lu, &pv, &b));
    ASSERT_OK(alloy_encode_copy(cb, &s1, &s2));
    test_commit_wait(cb);
    ASSERT(sp[4] == 1.5 && sp[5] == -2.5);
    ASSERT(memcmp(b0, alloy_buffer_contents(bb), alloy_buffer_size(bb)) != 0);
    free(b0);
    free(l0);
    free(p0);
    alloy_buffer *bufs[4] = {lb, pb, bb, side};
    for (int i = 0; i < 4; i++)
        ASSERT_OK(alloy_buffer_destroy(bufs[i]));
}

TEST(lu_solve_garbage_pivots)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    static const int32_t bads[] = {0, 6, -1, -5, INT32_MIN, INT32_MAX, 1000};
    int i = 0;
    for (int v = 0; v < 7; v++)
        for (int e = 0; e < 3; e++, i++)
            garbage_pivots_case(dev, q, bads[v], e, i % 5, i % LAY_COUNT);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST_LIST{
    TEST_ENTRY(exact_ops_run),
    TEST_ENTRY(encode_after_commit),
    TEST_ENTRY(destroy_referenced),
    TEST_ENTRY(destroy_while_running),
    TEST_ENTRY(fire_and_forget),
    TEST_ENTRY(two_encoders_race),
    TEST_ENTRY(bad_inputs_lu_factor),
    TEST_ENTRY(bad_inputs_lu_solve),
    TEST_ENTRY(bad_inputs_triangular_solve),
    TEST_ENTRY(bad_inputs_layer_norm),
    TEST_ENTRY(lu_solve_garbage_pivots),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
