/* Concurrency and determinism of lu_factor, lu_solve, triangular_solve and layer_norm
 * (mixed with matmul and copy): 8 threads, each with its own queue, run a random mix of
 * them on random shapes, dtypes and layouts, grouped into command buffers (an lu_factor
 * followed by an lu_solve of its factors in one command buffer among them); every output
 * buffer must equal, byte for byte, the same operations run alone on a quiet 1-worker
 * device. Also run alone on an all-workers device and on a 3-worker one, and from 8
 * threads on each: the results may not depend on the worker count or the interleaving.
 * Last, the CPU microkernel choice: PORTABLE, AVX2 and AVX512 devices (those this CPU
 * has) must give the same bits for lu_factor, lu_solve and triangular_solve (every GEMM
 * product is one FMA chain per element in k order; the substitutions are plain C), and
 * for layer_norm (whose row kernel is the same C compiled per ISA without contraction). */
#include "oracle.h"

#include <pthread.h>
#include <sched.h>

enum { THREADS = 8, PER_THREAD = 50, NPROB = THREADS * PER_THREAD };

enum { K_LUF, K_LUS, K_TRSM, K_NORM, K_MATMUL, K_COPY, K_FACTSOLVE, K_COUNT };
static const char *const kind_names[K_COUNT] = {"lu_factor",         "lu_solve", "triangular_solve",
                                                "layer_norm",        "matmul",   "copy",
                                                "lu_factor+lu_solve"};

enum { IN = 0, OUT = 1, ABSENT = 2 };
enum { MAXARR = 6 };

typedef struct prob {
    int kind;
    size_t in_bytes, out_bytes;
    unsigned char *in;       /* inputs, shared read-only by every run */
    unsigned char *out_init; /* the output buffer's bytes before the run */
    unsigned char *ref;      /* the output buffer's bytes after the reference run */
    alloy_array arr[MAXARR]; /* buffer NULL; where[] says which buffer */
    int where[MAXARR];
    alloy_lu_solve_desc ls;
    alloy_triangular_desc tr;
    alloy_norm_desc nd;
    alloy_matmul_desc md;
    char what[160];
} prob;

/* ---------------------------------------------------------------- problem generation */

typedef struct gen {
    alloy_device *dev; /* for wrapping host bytes while filling them */
    ref_conv conv;
    test_rng r;
} gen;

/* Bytes are reserved in the in (where 0) or out (1) buffer, 64-byte aligned. */
typedef struct layout_acc {
    size_t used[2];
} layout_acc;

static size_t reserve(layout_acc *l, int where, size_t bytes)
{
    size_t at = (l->used[where] + 63) / 64 * 64;
    l->used[where] = at + bytes + 8;
    return at;
}

static int64_t pick_size(test_rng *r)
{
    static const int64_t small[] = {0, 1, 2, 3, 5, 8, 13, 17, 31};
    static const int64_t big[] = {33, 64, 65, 100, 129, 140, 200};
    if (rng_range(r, 0, 3) == 0)
        return big[rng_range(r, 0, 6)];
    return small[rng_range(r, 0, 8)];
}

static alloy_array add_matrix(prob *p, layout_acc *l, int slot, int where, alloy_dtype dt, int br,
                              const int64_t *bsh, int64_t m, int64_t n, int lay)
{
    size_t end;
    alloy_array a = lay_matrix(NULL, 0, dt, br, bsh, m, n, lay, &end);
    a.offset = reserve(l, where, end);
    p->arr[slot] = a;
    p->where[slot] = where;
    return a;
}

static alloy_array add_vector(prob *p, layout_acc *l, int slot, int where, alloy_dtype dt, int br,
                              const int64_t *bsh, int64_t len)
{
    size_t end;
    alloy_array a = lay_vector(NULL, 0, dt, br, bsh, len, &end);
    a.offset = reserve(l, where, end);
    p->arr[slot] = a;
    p->where[slot] = where;
    return a;
}

static void random_batch(test_rng *r, int *br, int64_t *bsh)
{
    *br = (int)rng_range(r, 0, 2);
    for (int d = 0; d < *br; d++)
        bsh[d] = rng_range(r, 1, 3);
}

/* Fills every element of p->arr[slot] with f(i) values, dtype-exact. */
static void fill_slot(gen *g, prob *p, alloy_buffer *bufs[2], int slot, double lo, double hi,
                      int diag_boost)
{
    alloy_array a = p->arr[slot];
    a.buffer = bufs[p->where[slot]];
    if (alloy_array_count(&a) == 0)
        return;
    int64_t idx[ALLOY_MAX_RANK] = {0};
    do {
        double v = lo + (hi - lo) * (rng_uniform(&g->r) + 1) / 2;
        if (diag_boost && a.rank >= 2 && idx[a.rank - 1] == idx[a.rank - 2])
            v += (double)diag_boost;
        ref_store(&g->conv, a.dtype, view_ptr(&a, idx), v);
    } while (a.rank && next_index(idx, a.shape, a.rank));
}

/* Valid pivots: pivots[i] in i+1 .. n. */
static void fill_pivots(gen *g, prob *p, alloy_buffer *bufs[2], int slot)
{
    alloy_array a = p->arr[slot];
    a.buffer = bufs[p->where[slot]];
    int64_t n = a.shape[a.rank - 1], entries = batch_entries(&a, 1);
    for (int64_t e = 0; e < entries; e++)
        for (int64_t i = 0; i < n; i++) {
            int32_t v = (int32_t)rng_range(&g->r, i + 1, n);
            memcpy(elem_at(&a, 1, e, i, 0), &v, 4);
        }
}

static void make_problem(gen *g, prob *p, int kind_mask)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < MAXARR; i++)
        p->where[i] = ABSENT;
    test_rng *r = &g->r;
    do
        p->kind = (int)rng_range(r, 0, K_COUNT - 1);
    while (!(kind_mask & (1 << p->kind)));
    layout_acc l = {{0, 0}};
    const alloy_dtype dt = rng_range(r, 0, 1) ? ALLOY_F64 : ALLOY_F32;
    int br = 0;
    int64_t bsh[3] = {1, 1, 1};
    random_batch(r, &br, bsh);
    switch (p->kind) {
    case K_LUF:
    case K_FACTSOLVE: {
        int64_t m = pick_size(r), n = p->kind == K_LUF ? pick_size(r) : m, mn = m < n ? m : n;
        int64_t k = rng_range(r, 0, 3) == 0 ? pick_size(r) : rng_range(r, 1, 4);
        add_matrix(p, &l, 0, OUT, dt, br, bsh, m, n, (int)rng_range(r, 0, LAY_COUNT - 1));
        add_vector(p, &l, 1, OUT, ALLOY_I32, br, bsh, mn);
        add_vector(p, &l, 2, OUT, ALLOY_I32, br, bsh, -1);
        if (p->kind == K_FACTSOLVE) {
            add_matrix(p, &l, 3, OUT, dt, br, bsh, n, k, (int)rng_range(r, 0, LAY_COUNT - 1));
            p->ls = alloy_lu_solve_desc_default();
            p->ls.transpose = (int)rng_range(r, 0, 1);
        }
        snprintf(p->what, sizeof p->what, "%s %s %lldx%lld rhs %lld", kind_names[p->kind],
                 dtype_name(dt), (long long)m, (long long)n, (long long)k);
        break;
    }
    case K_LUS: {
        int64_t n = pick_size(r), k = rng_range(r, 0, 2) ? rng_range(r, 1, 9) : pick_size(r);
        int lbr = br;
        int64_t lsh[3] = {bsh[0], bsh[1], bsh[2]};
        if (br > 0 && rng_range(r, 0, 1))
            lsh[0] = 1; /* broadcast factors */
        if (br > 0 && rng_range(r, 0, 2) == 0)
            lbr = 0;
        add_matrix(p, &l, 0, IN, dt, lbr, lsh, n, n, (int)rng_range(r, 0, LAY_COUNT - 1));
        add_vector(p, &l, 1, IN, ALLOY_I32, lbr, lsh, n);
        add_matrix(p, &l, 2, OUT, dt, br, bsh, n, k, (int)rng_range(r, 0, LAY_COUNT - 1));
        p->ls = alloy_lu_solve_desc_default();
        p->ls.transpose = (int)rng_range(r, 0, 1);
        snprintf(p->what, sizeof p->what, "lu_solve %s n %lld rhs %lld%s", dtype_name(dt),
                 (long long)n, (long long)k, p->ls.transpose ? " trans" : "");
        break;
    }
    case K_TRSM: {
        int64_t m = pick_size(r), n = pick_size(r);
        p->tr = alloy_triangular_desc_default();
        p->tr.side = rng_range(r, 0, 1) ? ALLOY_RIGHT : ALLOY_LEFT;
        p->tr.uplo = rng_range(r, 0, 1) ? ALLOY_LOWER : ALLOY_UPPER;
        p->tr.transpose = (int)rng_range(r, 0, 1);
        p->tr.unit_diagonal = (int)rng_range(r, 0, 1);
        static const double alphas[4] = {1, -2.5, 0, 0.5};
        p->tr.alpha = alphas[rng_range(r, 0, 3)];
        int64_t k = p->tr.side == ALLOY_LEFT ? m : n;
        int abr = br;
        int64_t ash[3] = {bsh[0], bsh[1], bsh[2]};
        if (br > 0 && rng_range(r, 0, 1))
            abr = 0; /* one a for every b */
        add_matrix(p, &l, 0, IN, dt, abr, ash, k, k, (int)rng_range(r, 0, LAY_COUNT - 1));
        add_matrix(p, &l, 1, OUT, dt, br, bsh, m, n, (int)rng_range(r, 0, LAY_COUNT - 1));
        snprintf(p->what, sizeof p->what, "trsm %s %dx%d %d%d%d%d alpha %g", dtype_name(dt), (int)m,
                 (int)n, p->tr.side, p->tr.uplo, p->tr.transpose, p->tr.unit_diagonal, p->tr.alpha);
        break;
    }
    case K_NORM: {
        static const alloy_dtype f[4] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
        static const int64_t ds[] = {0, 1, 5, 16, 33, 256, 300, 1024};
        int64_t d = ds[rng_range(r, 0, 7)];
        alloy_dtype xt = f[rng_range(r, 0, 3)], yt = f[rng_range(r, 0, 3)];
        p->nd = alloy_norm_desc_default();
        p->nd.rms = (int)rng_range(r, 0, 1);
        p->nd.eps = rng_range(r, 0, 1) ? 1e-5 : 0.25;
        int in_place = xt == yt && rng_range(r, 0, 2) == 0;
        int64_t bs2[3];
        int br2 = br + 1;
        bs2[0] = rng_range(r, 1, 40);
        for (int i = 0; i < br; i++)
            bs2[i + 1] = bsh[i];
        /* x (slot 0), y (1), gamma (2), beta (3), mean (4), rstd (5) */
        add_matrix(p, &l, 0, in_place ? OUT : IN, xt, br2 - 1, bs2, bs2[br2 - 1], d,
                   (int)rng_range(r, 0, LAY_COUNT - 1));
        if (in_place)
            p->arr[1] = p->arr[0], p->where[1] = OUT;
        else
            add_matrix(p, &l, 1, OUT, yt, br2 - 1, bs2, bs2[br2 - 1], d,
                       (int)rng_range(r, 0, LAY_COUNT - 1));
        if (rng_range(r, 0, 2))
            add_vector(p, &l, 2, IN, f[rng_range(r, 0, 3)], 0, NULL, d);
        if (rng_range(r, 0, 2))
            add_vector(p, &l, 3, IN, f[rng_range(r, 0, 3)], 0, NULL, d);
        if (!p->nd.rms && rng_range(r, 0, 1))
            add_vector(p, &l, 4, OUT, rng_range(r, 0, 1) ? ALLOY_F64 : ALLOY_F32, br2, bs2, -1);
        if (rng_range(r, 0, 1))
            add_vector(p, &l, 5, OUT, rng_range(r, 0, 1) ? ALLOY_F64 : ALLOY_F32, br2, bs2, -1);
        snprintf(p->what, sizeof p->what, "layer_norm %s->%s D %lld%s%s", dtype_name(xt),
                 dtype_name(in_place ? xt : yt), (long long)d, p->nd.rms ? " rms" : "",
                 in_place ? " in place" : "");
        break;
    }
    case K_MATMUL: {
        int64_t m = pick_size(r), n = pick_size(r), k = pick_size(r);
        p->md = alloy_matmul_desc_default();
        p->md.alpha = rng_range(r, 0, 1) ? 1 : -0.5;
        p->md.beta = rng_range(r, 0, 1) ? 0 : 0.5;
        add_matrix(p, &l, 0, IN, dt, br, bsh, m, k, (int)rng_range(r, 0, 1));
        add_matrix(p, &l, 1, IN, dt, 0, NULL, k, n, (int)rng_range(r, 0, 1));
        add_matrix(p, &l, 2, OUT, dt, br, bsh, m, n, 0);
        snprintf(p->what, sizeof p->what, "matmul %s %lldx%lldx%lld", dtype_name(dt), (long long)m,
                 (long long)n, (long long)k);
        break;
    }
    case K_COPY: {
        static const alloy_dtype f[4] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
        int64_t m = pick_size(r), n = pick_size(r);
        alloy_dtype st = f[rng_range(r, 0, 3)], dt2 = f[rng_range(r, 0, 3)];
        add_matrix(p, &l, 0, IN, st, br, bsh, m, n, (int)rng_range(r, 0, LAY_COUNT - 1));
        add_matrix(p, &l, 1, OUT, dt2, br, bsh, m, n, (int)rng_range(r, 0, LAY_COUNT - 1));
        snprintf(p->what, sizeof p->what, "copy %s->%s %lldx%lld", dtype_name(st), dtype_name(dt2),
                 (long long)m, (long long)n);
        break;
    }
    }
    p->in_bytes = l.used[IN] + 64;
    p->out_bytes = l.used[OUT] + 64;
    p->in = test_malloc(p->in_bytes);
    p->out_init = test_malloc(p->out_bytes);
    memset(p->in, 0xff, p->in_bytes);
    memset(p->out_init, 0xff, p->out_bytes);
    /* fill through temporary wraps of the host bytes */
    alloy_buffer *bufs[2];
    ASSERT_OK(alloy_buffer_wrap_host(g->dev, p->in, p->in_bytes, &bufs[IN]));
    ASSERT_OK(alloy_buffer_wrap_host(g->dev, p->out_init, p->out_bytes, &bufs[OUT]));
    switch (p->kind) {
    case K_LUF:
    case K_FACTSOLVE:
        fill_slot(g, p, bufs, 0, -1, 1, 0);
        if (p->kind == K_FACTSOLVE)
            fill_slot(g, p, bufs, 3, -1, 1, 0);
        if (rng_range(r, 0, 5) == 0 && p->arr[0].shape[p->arr[0].rank - 1] > 1) {
            /* a zero column: info > 0 (the solve then makes infinities: still bitwise) */
            alloy_array a = p->arr[0];
            a.buffer = bufs[OUT];
            int64_t m = a.shape[a.rank - 2], n = a.shape[a.rank - 1];
            for (int64_t e = 0; e < batch_entries(&a, 2); e++)
                for (int64_t i = 0; i < m; i++)
                    ref_store(NULL, a.dtype, elem_at(&a, 2, e, i, n / 2), 0);
        }
        break;
    case K_LUS:
        fill_slot(g, p, bufs, 0, -1, 1, (int)p->arr[0].shape[p->arr[0].rank - 1] + 1);
        fill_pivots(g, p, bufs, 1);
        fill_slot(g, p, bufs, 2, -1, 1, 0);
        break;
    case K_TRSM:
        fill_slot(g, p, bufs, 0, -1, 1, 2);
        fill_slot(g, p, bufs, 1, -1, 1, 0);
        break;
    case K_NORM:
        fill_slot(g, p, bufs, 0, -2, 3, 0);
        for (int s = 2; s < 4; s++)
            if (p->where[s] != ABSENT)
                fill_slot(g, p, bufs, s, 0.5, 1.5, 0);
        break;
    case K_MATMUL:
        fill_slot(g, p, bufs, 0, -1, 1, 0);
        fill_slot(g, p, bufs, 1, -1, 1, 0);
        if (p->md.beta != 0)
            fill_slot(g, p, bufs, 2, -1, 1, 0);
        break;
    case K_COPY: fill_slot(g, p, bufs, 0, -100, 100, 0); break;
    }
    ASSERT_OK(alloy_buffer_destroy(bufs[IN]));
    ASSERT_OK(alloy_buffer_destroy(bufs[OUT]));
}

static void free_problem(prob *p)
{
    free(p->in);
    free(p->out_init);
    free(p->ref);
}

/* ---------------------------------------------------------------- running */

typedef struct live {
    alloy_buffer *in, *out;
} live;

static const alloy_array *slot(const prob *p, alloy_array *tmp, const live *l, int i)
{
    if (p->where[i] == ABSENT)
        return NULL;
    tmp[i] = p->arr[i];
    tmp[i].buffer = p->where[i] == IN ? l->in : l->out;
    return &tmp[i];
}

static live encode_problem(alloy_device *dev, alloy_cmdbuf *cb, const prob *p)
{
    live l;
    ASSERT_OK(alloy_buffer_wrap_host(dev, p->in, p->in_bytes, &l.in));
    ASSERT_OK(alloy_buffer_create(dev, p->out_bytes, ALLOY_MEMORY_DEVICE, &l.out));
    ASSERT_OK(alloy_buffer_write(l.out, 0, p->out_init, p->out_bytes));
    alloy_array t[MAXARR];
    const alloy_array *a[MAXARR];
    for (int i = 0; i < MAXARR; i++)
        a[i] = slot(p, t, &l, i);
    alloy_status s = ALLOY_OK;
    switch (p->kind) {
    case K_LUF: s = alloy_encode_lu_factor(cb, a[0], a[1], a[2]); break;
    case K_FACTSOLVE:
        s = alloy_encode_lu_factor(cb, a[0], a[1], a[2]);
        if (s == ALLOY_OK)
            s = alloy_encode_lu_solve(cb, &p->ls, a[0], a[1], a[3]);
        break;
    case K_LUS: s = alloy_encode_lu_solve(cb, &p->ls, a[0], a[1], a[2]); break;
    case K_TRSM: s = alloy_encode_triangular_solve(cb, &p->tr, a[0], a[1]); break;
    case K_NORM: s = alloy_encode_layer_norm(cb, &p->nd, a[0], a[2], a[3], a[1], a[4], a[5]); break;
    case K_MATMUL: s = alloy_encode_matmul(cb, &p->md, a[0], a[1], NULL, a[2]); break;
    case K_COPY: s = alloy_encode_copy(cb, a[0], a[1]); break;
    }
    if (s != ALLOY_OK)
        FAIL_AT("%s: encode said %s: %s", p->what, alloy_status_string(s), alloy_last_error());
    return l;
}

/* Checks (or, when p->ref is NULL, records) the output buffer; frees the buffers. */
static void finish_problem(prob *p, live *l, int index, const char *run, uint64_t seed)
{
    unsigned char *got = test_malloc(p->out_bytes);
    ASSERT_OK(alloy_buffer_read(l->out, 0, got, p->out_bytes));
    if (!p->ref) {
        p->ref = got;
    } else {
        if (memcmp(got, p->ref, p->out_bytes) != 0) {
            size_t i = 0;
            while (got[i] == p->ref[i])
                i++;
            FAIL_AT("seed 0x%llx problem %d (%s): %s differs from the reference at byte %zu "
                    "of %zu",
                    (unsigned long long)seed, index, p->what, run, i, p->out_bytes);
        }
        free(got);
    }
    ASSERT_OK(alloy_buffer_destroy(l->in));
    ASSERT_OK(alloy_buffer_destroy(l->out));
}

static void run_alone(alloy_device *dev, prob *ps, int n, const char *run, uint64_t seed)
{
    alloy_queue *q = test_queue(dev);
    for (int i = 0; i < n; i++) {
        alloy_cmdbuf *cb = test_cmdbuf(q);
        live l = encode_problem(dev, cb, &ps[i]);
        test_commit_wait(cb);
        finish_problem(&ps[i], &l, i, run, seed);
    }
    ASSERT_OK(alloy_queue_destroy(q));
}

typedef struct worker {
    alloy_device *dev;
    prob *ps;
    int first, count;
    uint64_t seed;
    const char *run;
    pthread_barrier_t *start;
} worker;

/* Problems first .. first+count-1 in command buffers of 1-4 ops, one or two command
 * buffers in flight, waited on by wait (the last first), poll or queue_wait_idle. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    test_rng r = {w->seed ^ (uint64_t)(w->first + 1) * 0x9e3779b97f4a7c15ull};
    alloy_queue *q = test_queue(w->dev);
    pthread_barrier_wait(w->start);
    int i = 0;
    while (i < w->count) {
        enum { MAXG = 4, MAXCB = 2 };
        alloy_cmdbuf *cbs[MAXCB];
        live ls[MAXCB][MAXG];
        int idx[MAXCB][MAXG], ng[MAXCB];
        int ncb = (int)rng_range(&r, 1, MAXCB), made = 0;
        for (int c = 0; c < ncb && i < w->count; c++) {
            cbs[c] = test_cmdbuf(q);
            ng[c] = (int)rng_range(&r, 1, MAXG);
            int g = 0;
            for (; g < ng[c] && i < w->count; g++, i++) {
                idx[c][g] = w->first + i;
                ls[c][g] = encode_problem(w->dev, cbs[c], &w->ps[idx[c][g]]);
            }
            ng[c] = g;
            ASSERT_OK(alloy_cmdbuf_commit(cbs[c]));
            made++;
        }
        int how = (int)rng_range(&r, 0, 2);
        if (how == 0) {
            for (int c = made - 1; c >= 0; c--)
                ASSERT_OK(alloy_cmdbuf_wait(cbs[c]));
        } else if (how == 1) {
            for (int c = 0; c < made; c++)
                for (int done = 0; !done;) {
                    ASSERT_OK(alloy_cmdbuf_poll(cbs[c], &done));
                    if (!done)
                        sched_yield();
                }
        } else {
            ASSERT_OK(alloy_queue_wait_idle(q));
        }
        for (int c = 0; c < made; c++) {
            ASSERT_OK(alloy_cmdbuf_wait(cbs[c])); /* the execution status, after any wait */
            ASSERT(strcmp(alloy_cmdbuf_error(cbs[c]), "") == 0);
            ASSERT_OK(alloy_cmdbuf_destroy(cbs[c]));
            for (int g = 0; g < ng[c]; g++)
                finish_problem(&w->ps[idx[c][g]], &ls[c][g], idx[c][g], w->run, w->seed);
        }
    }
    ASSERT_OK(alloy_queue_destroy(q));
    return NULL;
}

static void run_threads(alloy_device *dev, prob *ps, uint64_t seed, const char *run)
{
    pthread_t t[THREADS];
    worker w[THREADS];
    pthread_barrier_t start;
    ASSERT_EQ(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i].dev = dev;
        w[i].ps = ps;
        w[i].first = i * PER_THREAD;
        w[i].count = PER_THREAD;
        w[i].seed = seed;
        w[i].run = run;
        w[i].start = &start;
        ASSERT_EQ(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start);
}

static alloy_device *open_device(int workers, alloy_cpu_kernel k, alloy_status *st)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = workers;
    d.cpu_kernel = k;
    alloy_device *dev = NULL;
    alloy_status s = alloy_device_open(&d, &dev);
    if (st)
        *st = s;
    else
        ASSERT_OK(s);
    return dev;
}

static prob *make_problems(alloy_device *gdev, uint64_t seed, int n, int kind_mask)
{
    gen g;
    g.dev = gdev;
    g.conv = ref_conv_new();
    g.r.s = seed;
    prob *ps = test_malloc(sizeof(prob) * (size_t)n);
    int counts[K_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        make_problem(&g, &ps[i], kind_mask);
        counts[ps[i].kind]++;
    }
    fprintf(stderr, "  %d problems:", n);
    for (int k = 0; k < K_COUNT; k++)
        if (counts[k])
            fprintf(stderr, " %s %d", kind_names[k], counts[k]);
    fprintf(stderr, "\n");
    ref_conv_free(&g.conv);
    return ps;
}

TEST(eight_threads_bitwise)
{
    const uint64_t seed = test_seed(0x11a6c0c);
    alloy_device *one = open_device(1, test_kernel_from_env(), NULL);
    alloy_device *all = open_device(0, test_kernel_from_env(), NULL);
    alloy_device *three = open_device(3, test_kernel_from_env(), NULL);
    ASSERT_EQ(alloy_device_workers(one), 1);
    ASSERT_EQ(alloy_device_workers(three), 3);
    prob *ps = make_problems(one, seed, NPROB, (1 << K_COUNT) - 1);
    run_alone(one, ps, NPROB, "reference", seed); /* each op alone, 1 worker */
    run_alone(all, ps, NPROB, "alone, all workers", seed);
    run_alone(three, ps, NPROB, "alone, 3 workers", seed);
    run_threads(one, ps, seed, "8 threads, 1 worker");
    run_threads(all, ps, seed, "8 threads, all workers");
    run_threads(three, ps, seed, "8 threads, 3 workers");
    ASSERT_OK(alloy_device_close(one));
    ASSERT_OK(alloy_device_close(all));
    ASSERT_OK(alloy_device_close(three));
    for (int i = 0; i < NPROB; i++)
        free_problem(&ps[i]);
    free(ps);
}

/* The same problems on each CPU microkernel set: the same bits. */
static void kernels_bitwise(int kind_mask, uint64_t seed, int n)
{
    static const alloy_cpu_kernel ks[3] = {ALLOY_CPU_KERNEL_PORTABLE, ALLOY_CPU_KERNEL_AVX2,
                                           ALLOY_CPU_KERNEL_AVX512};
    static const char *const kn[3] = {"portable", "avx2", "avx512"};
    alloy_device *gdev = open_device(1, ALLOY_CPU_KERNEL_PORTABLE, NULL);
    prob *ps = make_problems(gdev, seed, n, kind_mask);
    int ran = 0;
    for (int k = 0; k < 3; k++) {
        alloy_status st;
        alloy_device *dev = open_device(0, ks[k], &st);
        if (st == ALLOY_ERR_UNSUPPORTED) {
            fprintf(stderr, "  (kernel %s: not on this CPU, skipped)\n", kn[k]);
            continue;
        }
        ASSERT_OK(st);
        fprintf(stderr, "  %s\n", alloy_device_name(dev));
        char run[64];
        snprintf(run, sizeof run, "kernel %s (reference: kernel portable)", kn[k]);
        run_alone(dev, ps, n, run, seed);
        ASSERT_OK(alloy_device_close(dev));
        ran++;
    }
    ASSERT(ran >= 1);
    fprintf(stderr, "  %d kernel sets compared\n", ran);
    ASSERT_OK(alloy_device_close(gdev));
    for (int i = 0; i < n; i++)
        free_problem(&ps[i]);
    free(ps);
}

TEST(kernels_bitwise_solvers)
{
    kernels_bitwise((1 << K_LUF) | (1 << K_LUS) | (1 << K_TRSM) | (1 << K_FACTSOLVE),
                    test_seed(0x4e41), 200);
}

TEST(kernels_bitwise_layer_norm) { kernels_bitwise(1 << K_NORM, test_seed(0x4e42), 100); }

/* lu_factor's awkward inputs on each microkernel set, against the portable one bit for
 * bit (factors, pivots, info): exact zero columns (no division, info set), NaNs, pivots
 * below the smallest normal (divided, not multiplied by the reciprocal), magnitude ties
 * (the first row wins), and panels of every leaf width (n up to 17, m below n). Where a
 * result is NaN, only that it is NaN is compared: when two NaNs meet in an FMA, which one
 * comes out (its sign and payload) depends on the instruction form the compiler picked,
 * and the GEMM kernels already differ there. */
enum { LU_EDGE_ZERO_COL, LU_EDGE_NAN, LU_EDGE_TINY, LU_EDGE_TIES, LU_EDGE_COUNT };

static void lu_edge_fill(test_rng *r, int pattern, alloy_dtype dt, int64_t m, int64_t n, void *a)
{
    const double tiny = dt == ALLOY_F64 ? 1e-310 : 1e-40; /* subnormal in the type */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = rng_uniform(r);
            if (pattern == LU_EDGE_ZERO_COL && j == n / 2)
                v = 0.0;
            if (pattern == LU_EDGE_NAN && rng_range(r, 0, 40) == 0)
                v = NAN;
            if (pattern == LU_EDGE_TINY && j % 3 == 1)
                v *= tiny;
            if (pattern == LU_EDGE_TIES)
                v = (double)rng_range(r, -2, 2);
            if (dt == ALLOY_F64)
                ((double *)a)[i * n + j] = v;
            else
                ((float *)a)[i * n + j] = (float)v;
        }
}

/* Bitwise equal, except that any NaN equals any NaN. */
static int same_or_both_nan(alloy_dtype dt, const void *x, const void *y, int64_t count)
{
    for (int64_t i = 0; i < count; i++) {
        if (dt == ALLOY_F64) {
            const double a = ((const double *)x)[i], b = ((const double *)y)[i];
            if (memcmp(&a, &b, 8) != 0 && !(isnan(a) && isnan(b)))
                return 0;
        } else {
            const float a = ((const float *)x)[i], b = ((const float *)y)[i];
            if (memcmp(&a, &b, 4) != 0 && !(isnan(a) && isnan(b)))
                return 0;
        }
    }
    return 1;
}

static void lu_edge_run(alloy_device *dev, alloy_dtype dt, int64_t m, int64_t n, const void *a0,
                        void *a, int32_t *piv, int32_t *info)
{
    const size_t es = dt == ALLOY_F64 ? 8 : 4;
    const int64_t mn = m < n ? m : n;
    alloy_queue *q = test_queue(dev);
    alloy_buffer *ba = test_buffer(dev, (size_t)(m * n) * es);
    alloy_buffer *bp = test_buffer(dev, (size_t)mn * 4 + 4), *bi = test_buffer(dev, 4);
    memcpy(alloy_buffer_contents(ba), a0, (size_t)(m * n) * es);
    const int64_t ash[2] = {m, n}, psh[1] = {mn};
    alloy_array aa = alloy_array_contiguous(ba, 0, dt, 2, ash);
    alloy_array pa = alloy_array_contiguous(bp, 0, ALLOY_I32, 1, psh);
    alloy_array ia = alloy_array_contiguous(bi, 0, ALLOY_I32, 0, psh);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    ASSERT_OK(alloy_encode_lu_factor(cb, &aa, &pa, &ia));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    memcpy(a, alloy_buffer_contents(ba), (size_t)(m * n) * es);
    memcpy(piv, alloy_buffer_contents(bp), (size_t)mn * 4);
    memcpy(info, alloy_buffer_contents(bi), 4);
    ASSERT_OK(alloy_buffer_destroy(ba));
    ASSERT_OK(alloy_buffer_destroy(bp));
    ASSERT_OK(alloy_buffer_destroy(bi));
    ASSERT_OK(alloy_queue_destroy(q));
}

TEST(kernels_bitwise_lu_edges)
{
    /* 800 x 800: trailing updates 512 columns wide, which take the panel kernel (f32; the
     * f64 updates are at most 256 columns wide) */
    static const int64_t shapes[][2] = {{1, 1},     {5, 3},    {3, 5},    {40, 16},
                                        {40, 17},   {100, 7},  {33, 15},  {300, 64},
                                        {257, 129}, {600, 96}, {800, 800}};
    static const alloy_cpu_kernel ks[2] = {ALLOY_CPU_KERNEL_AVX2, ALLOY_CPU_KERNEL_AVX512};
    alloy_device *ref = open_device(1, ALLOY_CPU_KERNEL_PORTABLE, NULL);
    alloy_device *devs[2];
    for (int k = 0; k < 2; k++) {
        alloy_status st;
        devs[k] = open_device(1, ks[k], &st);
        if (st == ALLOY_ERR_UNSUPPORTED)
            devs[k] = NULL; /* not on this CPU */
        else
            ASSERT_OK(st);
    }
    test_rng r = {test_seed(0x1eaf)};
    int zeros = 0;
    for (int di = 0; di < 2; di++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int pat = 0; pat < LU_EDGE_COUNT; pat++) {
                const alloy_dtype dt = di ? ALLOY_F64 : ALLOY_F32;
                const int64_t m = shapes[s][0], n = shapes[s][1], mn = m < n ? m : n;
                if (m == 800 && (di || pat % 2))
                    continue; /* f32 only, the zero column and the subnormals: time */
                const size_t bytes = (size_t)(m * n) * (di ? 8 : 4);
                void *a0 = test_malloc(bytes), *want = test_malloc(bytes),
                     *got = test_malloc(bytes);
                int32_t *pw = test_malloc((size_t)mn * 4), *pg = test_malloc((size_t)mn * 4);
                int32_t iw, ig;
                lu_edge_fill(&r, pat, dt, m, n, a0);
                lu_edge_run(ref, dt, m, n, a0, want, pw, &iw);
                zeros += iw != 0;
                for (int k = 0; k < 2; k++) {
                    if (!devs[k])
                        continue;
                    lu_edge_run(devs[k], dt, m, n, a0, got, pg, &ig);
                    if (ig != iw || memcmp(pg, pw, (size_t)mn * 4) != 0 ||
                        !same_or_both_nan(dt, got, want, m * n))
                        FAIL_AT("%s %lldx%lld pattern %d, kernel %s: factors, pivots or info "
                                "(%d, portable %d) differ from the portable kernel's",
                                dtype_name(dt), (long long)m, (long long)n, pat,
                                alloy_device_name(devs[k]), ig, iw);
                }
                free(a0);
                free(want);
                free(got);
                free(pw);
                free(pg);
            }
    ASSERT(zeros > 0); /* the zero-column pattern did reach a zero pivot */
    for (int k = 0; k < 2; k++)
        if (devs[k])
            ASSERT_OK(alloy_device_close(devs[k]));
    ASSERT_OK(alloy_device_close(ref));
}

/* Solves wide enough to be cut into column blocks of different widths for 1, 2 and 3
 * workers (alloy__col_blocks_plan: 1024 right-hand sides are solved in blocks of 512, 256
 * and 128 columns, 1000 in blocks of 512 and 488, 256 and 128): the same bits on every
 * device, and a small residual, so the comparison is of solutions. A 512-column block's
 * updates take the panel kernel (f64 in K blocks of 128: n 300 gives updates of K 192),
 * narrower ones the microkernel's sweep: the same FMA chains either way. */
static void wide_solve(alloy_device *dev, int lu, int f64, int64_t n, int64_t nrhs, const void *a,
                       const void *b, void *x)
{
    const alloy_dtype dt = f64 ? ALLOY_F64 : ALLOY_F32;
    const size_t es = f64 ? 8 : 4;
    alloy_queue *q = test_queue(dev);
    alloy_buffer *ba, *bx, *bp, *bi;
    ASSERT_OK(alloy_buffer_create(dev, (size_t)(n * n) * es, ALLOY_MEMORY_HOST, &ba));
    ASSERT_OK(alloy_buffer_create(dev, (size_t)(n * nrhs) * es, ALLOY_MEMORY_HOST, &bx));
    ASSERT_OK(alloy_buffer_create(dev, (size_t)n * 4, ALLOY_MEMORY_HOST, &bp));
    ASSERT_OK(alloy_buffer_create(dev, 4, ALLOY_MEMORY_HOST, &bi));
    memcpy(alloy_buffer_contents(ba), a, (size_t)(n * n) * es);
    memcpy(alloy_buffer_contents(bx), b, (size_t)(n * nrhs) * es);
    const int64_t ash[2] = {n, n}, xsh[2] = {n, nrhs}, psh[1] = {n};
    alloy_array aa = alloy_array_contiguous(ba, 0, dt, 2, ash);
    alloy_array xa = alloy_array_contiguous(bx, 0, dt, 2, xsh);
    alloy_array pa = alloy_array_contiguous(bp, 0, ALLOY_I32, 1, psh);
    alloy_array ia = alloy_array_contiguous(bi, 0, ALLOY_I32, 0, psh);
    alloy_cmdbuf *cb;
    ASSERT_OK(alloy_cmdbuf_create(q, &cb));
    if (lu) {
        alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
        ASSERT_OK(alloy_encode_lu_factor(cb, &aa, &pa, &ia));
        ASSERT_OK(alloy_encode_lu_solve(cb, &d, &aa, &pa, &xa));
    } else {
        alloy_triangular_desc d = alloy_triangular_desc_default();
        d.uplo = ALLOY_LOWER;
        ASSERT_OK(alloy_encode_triangular_solve(cb, &d, &aa, &xa));
    }
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    memcpy(x, alloy_buffer_contents(bx), (size_t)(n * nrhs) * es);
    ASSERT_OK(alloy_buffer_destroy(ba));
    ASSERT_OK(alloy_buffer_destroy(bx));
    ASSERT_OK(alloy_buffer_destroy(bp));
    ASSERT_OK(alloy_buffer_destroy(bi));
    ASSERT_OK(alloy_queue_destroy(q));
}

/* element i of an f64 (f64 set) or f32 array, as a double */
static void put(void *p, int f64, size_t i, double v)
{
    if (f64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}
static double get(const void *p, int f64, size_t i)
{
    return f64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

TEST(column_blocks_bitwise)
{
    test_rng r = {test_seed(0xc01b)};
    for (int v = 0; v < 4; v++) {
        const int lu = v >> 1, f64 = v & 1;
        const int64_t n = 300, nrhs = lu ? 1000 : 1024;
        const size_t es = f64 ? 8 : 4, nb = (size_t)(n * nrhs);
        double *ad = test_malloc(sizeof(double) * (size_t)(n * n));
        double *bd = test_malloc(sizeof(double) * nb);
        void *a = test_malloc(es * (size_t)(n * n)), *b = test_malloc(es * nb);
        void *x[3] = {test_malloc(es * nb), test_malloc(es * nb), test_malloc(es * nb)};
        for (int64_t i = 0; i < n * n; i++) /* diagonally dominant: well conditioned */
            ad[i] = rng_range(&r, 0, 2000) / 1000.0 - 1.0 + (i / n == i % n ? 2.0 * n : 0.0);
        for (size_t i = 0; i < nb; i++)
            bd[i] = rng_range(&r, 0, 2000) / 1000.0 - 1.0;
        for (int64_t i = 0; i < n * n; i++)
            put(a, f64, (size_t)i, ad[i]);
        for (size_t i = 0; i < nb; i++)
            put(b, f64, i, bd[i]);
        for (int w = 1; w <= 3; w++) {
            alloy_device *dev = open_device(w, test_kernel_from_env(), NULL);
            wide_solve(dev, lu, f64, n, nrhs, a, b, x[w - 1]);
            ASSERT_OK(alloy_device_close(dev));
        }
        ASSERT(memcmp(x[0], x[1], es * nb) == 0);
        ASSERT(memcmp(x[0], x[2], es * nb) == 0);
        /* residual of the 1-worker solution, in float64: |op(A) X - B| / (|A| |X| n eps) */
        double worst = 0, anorm = 0, xnorm = 0;
        for (int64_t i = 0; i < n * n; i++)
            anorm = fabs(ad[i]) > anorm ? fabs(ad[i]) : anorm;
        for (size_t i = 0; i < nb; i++) {
            const double v = get(x[0], f64, i);
            xnorm = fabs(v) > xnorm ? fabs(v) : xnorm;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < nrhs; j++) {
                double s = -bd[i * nrhs + j];
                for (int64_t k = 0; k < n; k++) {
                    if (!lu && k > i)
                        break; /* the lower triangle only */
                    s += get(a, f64, (size_t)(i * n + k)) * get(x[0], f64, (size_t)(k * nrhs + j));
                }
                worst = fabs(s) > worst ? fabs(s) : worst;
            }
        const double eps = f64 ? 0x1p-52 : 0x1p-23;
        const double resid = worst / (anorm * xnorm * (double)n * eps);
        fprintf(stderr,
                "  %s %s %lldx%lld, %lld right-hand sides: 1, 2, 3 workers equal; residual %.3g\n",
                lu ? "lu_solve" : "triangular_solve", f64 ? "f64" : "f32", (long long)n,
                (long long)n, (long long)nrhs, resid);
        ASSERT(resid <= 10.0);
        for (int i = 0; i < 3; i++)
            free(x[i]);
        free(ad);
        free(bd);
        free(a);
        free(b);
    }
}

TEST_LIST{
    TEST_ENTRY(eight_threads_bitwise),      TEST_ENTRY(kernels_bitwise_solvers),
    TEST_ENTRY(kernels_bitwise_layer_norm), TEST_ENTRY(kernels_bitwise_lu_edges),
    TEST_ENTRY(column_blocks_bitwise),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
