/* Concurrency and determinism: 8 threads, each with its own queue, run 200 random
 * matmuls each (mixed shapes, dtypes, layouts, scalars, bias), grouped into command
 * buffers waited on in different ways; every result must be bitwise equal to the same
 * operation run alone on a quiet device, on a device with 1 worker and on one with all
 * workers. Also: many threads committing to one shared queue, a command buffer handed
 * from thread to thread, and commit order within a queue. */
#include "test_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

enum { THREADS = 8, PER_THREAD = 200, NPROB = THREADS * PER_THREAD };

typedef struct prob {
    alloy_dtype in, out, bias_dt;
    int has_bias, ta, tb, batch, a_batched, b_batched;
    int64_t m, n, k;
    double alpha, beta;
    size_t a_bytes, b_bytes, c_bytes, bias_bytes;
    unsigned char *a, *b, *bias, *c_init, *ref;
} prob;

static const alloy_dtype ins[6] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_F16, ALLOY_BF16, ALLOY_BF16};
static const alloy_dtype outs[6] = {ALLOY_F32, ALLOY_F64, ALLOY_F32, ALLOY_F16, ALLOY_F32, ALLOY_BF16};
static const int64_t sizes[] = {0, 1, 1, 2, 3, 5, 7, 8, 13, 16, 17, 24, 31, 32};
/* now and then a product big enough to be split into several tasks, so that workers
 * (and waiting threads) share one command buffer's work */
static const int64_t big_sizes[] = {48, 64, 67, 96, 128};

static void fill_random(const ref_conv *c, test_rng *r, alloy_dtype t, unsigned char *p, size_t bytes)
{
    size_t es = alloy_dtype_size(t);
    for (size_t i = 0; i + es <= bytes; i += es)
        test_random_value(c, r, t, p + i);
}

static void make_problem(const ref_conv *c, test_rng *r, prob *p)
{
    memset(p, 0, sizeof *p);
    int ci = (int)rng_range(r, 0, 5);
    p->in = ins[ci];
    p->out = outs[ci];
    p->m = sizes[rng_range(r, 0, 13)];
    p->n = sizes[rng_range(r, 0, 13)];
    p->k = sizes[rng_range(r, 0, 13)];
    if (rng_range(r, 0, 4) == 0) {
        p->m = big_sizes[rng_range(r, 0, 4)];
        p->n = big_sizes[rng_range(r, 0, 4)];
        p->k = big_sizes[rng_range(r, 0, 4)];
    }
    p->batch = (int)rng_range(r, 1, 3);
    p->a_batched = p->batch > 1 && rng_range(r, 0, 1);
    p->b_batched = p->batch > 1 && rng_range(r, 0, 1);
    p->ta = (int)rng_range(r, 0, 1);
    p->tb = (int)rng_range(r, 0, 1);
    const double al[4] = {1, -0.5, 0.3, 0}, be[4] = {0, 0, 1, -0.75};
    p->alpha = al[rng_range(r, 0, 3)];
    p->beta = be[rng_range(r, 0, 3)];
    p->has_bias = (int)rng_range(r, 0, 1);
    p->bias_dt = p->out == ALLOY_F64 ? ALLOY_F64 : ALLOY_BF16;
    size_t ies = alloy_dtype_size(p->in), oes = alloy_dtype_size(p->out);
    p->a_bytes = (size_t)((p->a_batched ? p->batch : 1) * p->m * p->k) * ies + 8;
    p->b_bytes = (size_t)((p->b_batched ? p->batch : 1) * p->k * p->n) * ies + 8;
    p->c_bytes = (size_t)(p->batch * p->m * p->n) * oes + 8;
    p->bias_bytes = (size_t)p->n * alloy_dtype_size(p->bias_dt) + 8;
    p->a = test_malloc(p->a_bytes);
    p->b = test_malloc(p->b_bytes);
    p->c_init = test_malloc(p->c_bytes);
    p->bias = test_malloc(p->bias_bytes);
    fill_random(c, r, p->in, p->a, p->a_bytes);
    fill_random(c, r, p->in, p->b, p->b_bytes);
    fill_random(c, r, p->bias_dt, p->bias, p->bias_bytes);
    if (p->beta == 0)
        memset(p->c_init, 0xff, p->c_bytes); /* NaN: must not be read */
    else
        fill_random(c, r, p->out, p->c_init, p->c_bytes);
}

static void free_problem(prob *p)
{
    free(p->a);
    free(p->b);
    free(p->c_init);
    free(p->bias);
    free(p->ref);
}

/* The device-side objects of one problem during one run. */
typedef struct live {
    alloy_buffer *a, *b, *c, *bias;
} live;

/* Creates the buffers (wrapping the shared read-only inputs, a fresh c) and encodes. */
static live encode_problem(alloy_device *dev, alloy_cmdbuf *cb, const prob *p)
{
    live l;
    ASSERT_OK(alloy_buffer_wrap_host(dev, p->a, p->a_bytes, &l.a));
    ASSERT_OK(alloy_buffer_wrap_host(dev, p->b, p->b_bytes, &l.b));
    ASSERT_OK(alloy_buffer_wrap_host(dev, p->bias, p->bias_bytes, &l.bias));
    ASSERT_OK(alloy_buffer_create(dev, p->c_bytes, ALLOY_MEMORY_DEVICE, &l.c));
    ASSERT_OK(alloy_buffer_write(l.c, 0, p->c_init, p->c_bytes));
    int64_t as[3] = {p->a_batched ? p->batch : 1, p->ta ? p->k : p->m, p->ta ? p->m : p->k};
    int64_t bs[3] = {p->b_batched ? p->batch : 1, p->tb ? p->n : p->k, p->tb ? p->k : p->n};
    int64_t cs[3] = {p->batch, p->m, p->n};
    alloy_array a = alloy_array_contiguous(l.a, 0, p->in, 3, as);
    alloy_array b = alloy_array_contiguous(l.b, 0, p->in, 3, bs);
    alloy_array c = alloy_array_contiguous(l.c, 0, p->out, 3, cs);
    if (p->ta)
        a = alloy_array_swap_dims(a, 1, 2);
    if (p->tb)
        b = alloy_array_swap_dims(b, 1, 2);
    alloy_array bias = alloy_array_contiguous(l.bias, 0, p->bias_dt, 1, &p->n);
    alloy_matmul_desc md = alloy_matmul_desc_default();
    md.alpha = p->alpha;
    md.beta = p->beta;
    ASSERT_OK(alloy_encode_matmul(cb, &md, &a, &b, p->has_bias ? &bias : NULL, &c));
    return l;
}

/* Checks (or, when p->ref is NULL, records) the result and frees the buffers. */
static void finish_problem(prob *p, live *l, int index, const char *run, uint64_t seed)
{
    unsigned char *got = test_malloc(p->c_bytes);
    ASSERT_OK(alloy_buffer_read(l->c, 0, got, p->c_bytes));
    if (!p->ref) {
        p->ref = got;
    } else {
        if (memcmp(got, p->ref, p->c_bytes) != 0)
            FAIL_AT("seed 0x%llx problem %d (%s@%s->%s %lldx%lldx%lld batch %d): %s differs "
                    "bitwise from the quiet reference",
                    (unsigned long long)seed, index, dtype_name(p->in), dtype_name(p->in),
                    dtype_name(p->out), (long long)p->m, (long long)p->n, (long long)p->k,
                    p->batch, run);
        free(got);
    }
    ASSERT_OK(alloy_buffer_destroy(l->a));
    ASSERT_OK(alloy_buffer_destroy(l->b));
    ASSERT_OK(alloy_buffer_destroy(l->c));
    ASSERT_OK(alloy_buffer_destroy(l->bias));
}

/* One operation per command buffer, one at a time: the quiet reference. */
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
    alloy_queue *shared; /* NULL: the thread makes its own queue */
    prob *ps;
    int first, count, stride;
    uint64_t seed;
    const char *run;
    pthread_barrier_t *start;
} worker;

/* Runs problems first, first+stride, ... in groups of 1-4 per command buffer, sometimes
 * two command buffers in flight, waiting by wait, poll or queue_wait_idle. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    test_rng r = {w->seed ^ (uint64_t)(w->first + 1) * 0x9e3779b97f4a7c15ull};
    alloy_queue *q = w->shared ? w->shared : test_queue(w->dev);
    pthread_barrier_wait(w->start);
    int i = 0;
    while (i < w->count) {
        enum { MAXG = 4, MAXCB = 2 };
        alloy_cmdbuf *cbs[MAXCB];
        live ls[MAXCB][MAXG];
        int idx[MAXCB][MAXG], ng[MAXCB];
        int ncb = (int)rng_range(&r, 1, MAXCB);
        int made = 0;
        for (int c = 0; c < ncb && i < w->count; c++) {
            cbs[c] = test_cmdbuf(q);
            ng[c] = (int)rng_range(&r, 1, MAXG);
            int g = 0;
            for (; g < ng[c] && i < w->count; g++, i++) {
                idx[c][g] = w->first + i * w->stride;
                ls[c][g] = encode_problem(w->dev, cbs[c], &w->ps[idx[c][g]]);
            }
            ng[c] = g;
            ASSERT_OK(alloy_cmdbuf_commit(cbs[c]));
            made++;
        }
        int how = (int)rng_range(&r, 0, 2);
        if (how == 0 || w->shared) {
            for (int c = made - 1; c >= 0; c--) /* the last first: in-order queue */
                ASSERT_OK(alloy_cmdbuf_wait(cbs[c]));
        } else if (how == 1) {
            for (int c = 0; c < made; c++) {
                int done = 0;
                for (;;) {
                    ASSERT_OK(alloy_cmdbuf_poll(cbs[c], &done));
                    if (done)
                        break;
                    sched_yield();
                }
            }
        } else {
            ASSERT_OK(alloy_queue_wait_idle(q));
            int done = 0;
            for (int c = 0; c < made; c++) {
                ASSERT_OK(alloy_cmdbuf_poll(cbs[c], &done));
                ASSERT_EQ(done, 1);
            }
        }
        for (int c = 0; c < made; c++) {
            ASSERT(strcmp(alloy_cmdbuf_error(cbs[c]), "") == 0);
            ASSERT_OK(alloy_cmdbuf_destroy(cbs[c]));
            for (int g = 0; g < ng[c]; g++)
                finish_problem(&w->ps[idx[c][g]], &ls[c][g], idx[c][g], w->run, w->seed);
        }
    }
    if (!w->shared)
        ASSERT_OK(alloy_queue_destroy(q));
    return NULL;
}

static void run_threads(alloy_device *dev, prob *ps, int shared_queue, uint64_t seed, const char *run)
{
    pthread_t t[THREADS];
    worker w[THREADS];
    pthread_barrier_t start;
    ASSERT_EQ(pthread_barrier_init(&start, NULL, THREADS), 0);
    alloy_queue *q = shared_queue ? test_queue(dev) : NULL;
    for (int i = 0; i < THREADS; i++) {
        w[i].dev = dev;
        w[i].shared = q;
        w[i].ps = ps;
        /* own queue: a contiguous range each; shared queue: interleaved */
        w[i].first = shared_queue ? i : i * PER_THREAD;
        w[i].stride = shared_queue ? THREADS : 1;
        w[i].count = PER_THREAD;
        w[i].seed = seed;
        w[i].run = run;
        w[i].start = &start;
        ASSERT_EQ(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start);
    if (q) {
        ASSERT_OK(alloy_queue_wait_idle(q));
        ASSERT_OK(alloy_queue_destroy(q));
    }
}

static alloy_device *open_workers(int workers)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = workers;
    d.cpu_kernel = test_kernel_from_env();
    alloy_device *dev = NULL;
    ASSERT_OK(alloy_device_open(&d, &dev));
    return dev;
}

TEST(eight_threads_bitwise)
{
    const uint64_t seed = test_seed(0x8a11c0de);
    test_rng r = {seed};
    ref_conv c = ref_conv_new();
    prob *ps = test_malloc(sizeof(prob) * NPROB);
    for (int i = 0; i < NPROB; i++)
        make_problem(&c, &r, &ps[i]);

    alloy_device *one = open_workers(1), *all = open_workers(0);
    ASSERT_EQ(alloy_device_workers(one), 1);
    /* the reference: each op alone on the quiet 1-worker device */
    run_alone(one, ps, NPROB, "reference", seed);
    /* alone on the all-workers device */
    run_alone(all, ps, NPROB, "alone, all workers", seed);
    /* 8 threads, each with its own queue, on each device */
    run_threads(one, ps, 0, seed, "8 threads, 1 worker");
    run_threads(all, ps, 0, seed, "8 threads, all workers");
    ASSERT_OK(alloy_device_close(one));
    ASSERT_OK(alloy_device_close(all));
    for (int i = 0; i < NPROB; i++)
        free_problem(&ps[i]);
    free(ps);
    ref_conv_free(&c);
}

/* The same problems from 8 threads committing to one shared queue, interleaved. */
TEST(shared_queue_bitwise)
{
    const uint64_t seed = test_seed(0x5a4ed);
    test_rng r = {seed};
    ref_conv c = ref_conv_new();
    prob *ps = test_malloc(sizeof(prob) * NPROB);
    for (int i = 0; i < NPROB; i++)
        make_problem(&c, &r, &ps[i]);
    alloy_device *one = open_workers(1), *all = open_workers(0);
    run_alone(one, ps, NPROB, "reference", seed);
    run_threads(all, ps, 1, seed, "8 threads, one shared queue");
    ASSERT_OK(alloy_device_close(one));
    ASSERT_OK(alloy_device_close(all));
    for (int i = 0; i < NPROB; i++)
        free_problem(&ps[i]);
    free(ps);
    ref_conv_free(&c);
}

/* ---------------------------------------------------------------- moving between threads */

typedef struct relay {
    alloy_device *dev;
    alloy_queue *q;
    alloy_cmdbuf *cb;
    alloy_buffer *b;
    int step;
} relay;

static void *relay_main(void *p)
{
    relay *r = p;
    int64_t n = 16;
    switch (r->step) {
    case 0: ASSERT_OK(alloy_cmdbuf_create(r->q, &r->cb)); break;
    case 1: {
        alloy_array s = alloy_array_contiguous(r->b, 0, ALLOY_F32, 1, &n);
        alloy_array d = alloy_array_contiguous(r->b, 64, ALLOY_F16, 1, &n);
        ASSERT_OK(alloy_encode_copy(r->cb, &s, &d));
        break;
    }
    case 2: ASSERT_OK(alloy_cmdbuf_commit(r->cb)); break;
    case 3: ASSERT_OK(alloy_cmdbuf_wait(r->cb)); break;
    case 4: ASSERT_OK(alloy_cmdbuf_destroy(r->cb)); break;
    }
    return NULL;
}

/* Created on one thread, encoded on a second, committed on a third, waited on a fourth,
 * destroyed on a fifth. */
TEST(cmdbuf_moves_between_threads)
{
    relay r;
    r.dev = test_cpu_device(2);
    r.q = test_queue(r.dev);
    r.b = test_buffer(r.dev, 128);
    float *p = alloy_buffer_contents(r.b);
    for (int i = 0; i < 16; i++)
        p[i] = (float)i * 0.5f;
    memset(p + 16, 0, 64);
    for (r.step = 0; r.step < 5; r.step++) {
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, relay_main, &r), 0);
        ASSERT_EQ(pthread_join(t, NULL), 0);
    }
    const uint16_t *h = (const uint16_t *)(p + 16);
    for (int i = 0; i < 16; i++)
        ASSERT(ref_f16_to_double(h[i]) == i * 0.5);
    ASSERT_OK(alloy_buffer_destroy(r.b));
    ASSERT_OK(alloy_queue_destroy(r.q));
    ASSERT_OK(alloy_device_close(r.dev));
}

/* ---------------------------------------------------------------- order */

/* A chain of dependent operations across command buffers committed back to back, and
 * within one command buffer: m1 = 0.5 m0@x, m2 = m1^T (a copy), m3 = 0.5 m2@x, ... Each
 * step reads the previous one's output, so any reordering changes the result. Checked
 * exactly (dyadic values in f64) against the same chain computed on the host. */
TEST(queue_runs_in_commit_order)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    enum { N = 12, STEPS = 40 };
    alloy_buffer *m[STEPS + 1];
    int64_t sh[2] = {N, N};
    double host[STEPS + 1][N * N];
    for (int s = 0; s <= STEPS; s++) {
        m[s] = test_buffer(dev, N * N * 8);
        memset(alloy_buffer_contents(m[s]), 0xff, N * N * 8); /* NaN until written */
    }
    /* x is a signed permutation matrix: products only move and negate (and alpha 0.5
     * halves) values, so everything stays exact */
    alloy_buffer *x = test_buffer(dev, N * N * 8);
    double *xp = alloy_buffer_contents(x);
    memset(xp, 0, N * N * 8);
    for (int i = 0; i < N; i++)
        xp[i * N + (i * 5 + 3) % N] = i % 2 ? -1.0 : 1.0;
    for (int i = 0; i < N * N; i++)
        host[0][i] = (double)((i * 7) % 11 - 5);
    ASSERT_OK(alloy_buffer_write(m[0], 0, host[0], N * N * 8));
    alloy_array xa = alloy_array_contiguous(x, 0, ALLOY_F64, 2, sh);
    alloy_cmdbuf *cbs[STEPS];
    int ncb = 0;
    alloy_cmdbuf *cb = NULL;
    for (int s = 1; s <= STEPS; s++) {
        if (!cb || s % 3 == 0)
            cb = cbs[ncb++] = test_cmdbuf(q);
        alloy_array prev = alloy_array_contiguous(m[s - 1], 0, ALLOY_F64, 2, sh);
        alloy_array next = alloy_array_contiguous(m[s], 0, ALLOY_F64, 2, sh);
        if (s % 2) {
            /* next = prev @ x / 2^k keeps the values small: scale by 0.5 (exact) */
            alloy_matmul_desc md = alloy_matmul_desc_default();
            md.alpha = 0.5;
            ASSERT_OK(alloy_encode_matmul(cb, &md, &prev, &xa, NULL, &next));
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0;
                    for (int k = 0; k < N; k++)
                        acc += host[s - 1][i * N + k] * xp[k * N + j];
                    host[s][i * N + j] = 0.5 * acc;
                }
        } else {
            /* next = prev^T (a transposed copy) */
            alloy_array pt = alloy_array_swap_dims(prev, 0, 1);
            ASSERT_OK(alloy_encode_copy(cb, &pt, &next));
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++)
                    host[s][i * N + j] = host[s - 1][j * N + i];
        }
        if (s % 3 == 2 || s == STEPS)
            ASSERT_OK(alloy_cmdbuf_commit(cb));
    }
    /* waiting for the last waits for everything before it */
    ASSERT_OK(alloy_cmdbuf_wait(cbs[ncb - 1]));
    for (int c = 0; c < ncb; c++) {
        int done = 0;
        ASSERT_OK(alloy_cmdbuf_poll(cbs[c], &done));
        ASSERT_EQ(done, 1);
        ASSERT_OK(alloy_cmdbuf_destroy(cbs[c]));
    }
    for (int s = 0; s <= STEPS; s++) {
        const double *g = alloy_buffer_contents(m[s]);
        for (int i = 0; i < N * N; i++)
            if (g[i] != host[s][i])
                FAIL_AT("step %d element %d: %g, expected %g", s, i, g[i], host[s][i]);
        ASSERT_OK(alloy_buffer_destroy(m[s]));
    }
    ASSERT_OK(alloy_buffer_destroy(x));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* A command buffer committed while another queue's runs, that no thread ever waits on
 * (only polled), still runs. Under load the pool leaves a job to the thread that waits
 * for it, so this checks the other way such a job starts: a worker takes it when a job
 * completes. Thread 1 runs a short job, thread 2 a long one that starts beside it (so it
 * is left to thread 2); the short one done and the workers asleep, this thread commits
 * the job it only polls. */
typedef struct busy_job {
    alloy_cmdbuf *cb;
    _Atomic int started;
} busy_job;

static void *commit_and_wait(void *p)
{
    busy_job *bj = p;
    ASSERT_OK(alloy_cmdbuf_commit(bj->cb));
    atomic_store(&bj->started, 1);
    ASSERT_OK(alloy_cmdbuf_wait(bj->cb));
    return NULL;
}

TEST(unwaited_job_beside_another_runs)
{
    for (int workers = 1; workers <= 3; workers += 2) {
        alloy_device *dev = test_cpu_device(workers);
        alloy_queue *q1 = test_queue(dev), *q2 = test_queue(dev), *qb = test_queue(dev);
        enum { BIG = 384, SMALL = 8 };
        alloy_buffer *ba = test_buffer(dev, BIG * BIG * 4), *c1 = test_buffer(dev, BIG * BIG * 4);
        alloy_buffer *c2 = test_buffer(dev, BIG * BIG * 4);
        alloy_buffer *bb = test_buffer(dev, SMALL * SMALL * 4);
        alloy_buffer *cbuf = test_buffer(dev, SMALL * SMALL * 4);
        float *pb = alloy_buffer_contents(bb);
        memset(alloy_buffer_contents(ba), 0, BIG * BIG * 4);
        for (int i = 0; i < SMALL * SMALL; i++)
            pb[i] = i % SMALL == i / SMALL ? 1.0f : 0.0f; /* the identity */
        memset(alloy_buffer_contents(cbuf), 0xff, SMALL * SMALL * 4);
        int64_t big[2] = {BIG, BIG}, small[2] = {SMALL, SMALL};
        alloy_array va = alloy_array_contiguous(ba, 0, ALLOY_F32, 2, big);
        alloy_array v1 = alloy_array_contiguous(c1, 0, ALLOY_F32, 2, big);
        alloy_array v2 = alloy_array_contiguous(c2, 0, ALLOY_F32, 2, big);
        alloy_array vb = alloy_array_contiguous(bb, 0, ALLOY_F32, 2, small);
        alloy_array vcb = alloy_array_contiguous(cbuf, 0, ALLOY_F32, 2, small);
        alloy_matmul_desc d = alloy_matmul_desc_default();
        busy_job j1 = {test_cmdbuf(q1), 0}, j2 = {test_cmdbuf(q2), 0};
        for (int i = 0; i < 4; i++)
            ASSERT_OK(alloy_encode_matmul(j1.cb, &d, &va, &va, NULL, &v1));
        for (int i = 0; i < 16; i++) /* ~10 ms here, a minute under qemu */
            ASSERT_OK(alloy_encode_matmul(j2.cb, &d, &va, &va, NULL, &v2));
        alloy_cmdbuf *b = test_cmdbuf(qb);
        ASSERT_OK(alloy_encode_matmul(b, &d, &vb, &vb, NULL, &vcb));
        pthread_t t1, t2;
        ASSERT_EQ(pthread_create(&t1, NULL, commit_and_wait, &j1), 0);
        while (!atomic_load(&j1.started))
            sched_yield();
        ASSERT_EQ(pthread_create(&t2, NULL, commit_and_wait, &j2), 0);
        while (!atomic_load(&j2.started))
            sched_yield();
        ASSERT_EQ(pthread_join(t1, NULL), 0);
        struct timespec pause = {0, 2000000}; /* 2 ms: idle workers are asleep by then */
        nanosleep(&pause, NULL);
        ASSERT_OK(alloy_cmdbuf_commit(b));
        /* polled only: it may wait for the long job (under emulation that takes a minute),
         * but must be done within 10 s of it */
        int done = 0, after = 0;
        while (!done && after < 1000) {
            ASSERT_OK(alloy_cmdbuf_poll(b, &done));
            if (!done) {
                int long_done = 0;
                ASSERT_OK(alloy_cmdbuf_poll(j2.cb, &long_done));
                after += long_done;
                struct timespec ms = {0, 10000000};
                nanosleep(&ms, NULL);
            }
        }
        ASSERT_EQ(done, 1);
        const float *c = alloy_buffer_contents(cbuf);
        for (int i = 0; i < SMALL * SMALL; i++)
            ASSERT(c[i] == pb[i]);
        ASSERT_EQ(pthread_join(t2, NULL), 0);
        ASSERT_OK(alloy_cmdbuf_destroy(j1.cb));
        ASSERT_OK(alloy_cmdbuf_destroy(j2.cb));
        ASSERT_OK(alloy_cmdbuf_destroy(b));
        alloy_buffer *bufs[] = {ba, c1, c2, bb, cbuf};
        for (int i = 0; i < 5; i++)
            ASSERT_OK(alloy_buffer_destroy(bufs[i]));
        ASSERT_OK(alloy_queue_destroy(q1));
        ASSERT_OK(alloy_queue_destroy(q2));
        ASSERT_OK(alloy_queue_destroy(qb));
        ASSERT_OK(alloy_device_close(dev));
    }
}

/* A job that starts alone and that no thread waits on (only polled) runs, whether the
 * workers are asleep when it is committed (one of them must be woken) or one is still
 * polling after the previous job. */
TEST(unwaited_job_alone_runs)
{
    for (int workers = 1; workers <= 3; workers += 2) {
        alloy_device *dev = test_cpu_device(workers);
        alloy_queue *q = test_queue(dev);
        enum { SMALL = 8 };
        alloy_buffer *bb = test_buffer(dev, SMALL * SMALL * 4);
        alloy_buffer *cbuf = test_buffer(dev, SMALL * SMALL * 4);
        float *pb = alloy_buffer_contents(bb);
        for (int i = 0; i < SMALL * SMALL; i++)
            pb[i] = (float)(i % 7) - 3.0f;
        int64_t small[2] = {SMALL, SMALL};
        alloy_array vb = alloy_array_contiguous(bb, 0, ALLOY_F32, 2, small);
        alloy_array vc = alloy_array_contiguous(cbuf, 0, ALLOY_F32, 2, small);
        alloy_array vbt = alloy_array_swap_dims(vb, 0, 1); /* C = B B^T */
        alloy_matmul_desc d = alloy_matmul_desc_default();
        for (int round = 0; round < 6; round++) {
            if (round % 2 == 0) {
                struct timespec pause = {0, 5000000}; /* 5 ms: idle workers are asleep */
                nanosleep(&pause, NULL);
            }
            memset(alloy_buffer_contents(cbuf), 0xff, SMALL * SMALL * 4);
            alloy_cmdbuf *b = test_cmdbuf(q);
            ASSERT_OK(alloy_encode_matmul(b, &d, &vb, &vbt, NULL, &vc));
            ASSERT_OK(alloy_cmdbuf_commit(b));
            int done = 0;
            for (int polls = 0; !done && polls < 20000; polls++) { /* 2 s at most */
                ASSERT_OK(alloy_cmdbuf_poll(b, &done));
                if (!done) {
                    struct timespec us = {0, 100000};
                    nanosleep(&us, NULL);
                }
            }
            ASSERT_EQ(done, 1);
            const float *c = alloy_buffer_contents(cbuf);
            for (int i = 0; i < SMALL; i++)
                for (int j = 0; j < SMALL; j++) {
                    float want = 0.0f;
                    for (int k = 0; k < SMALL; k++)
                        want += pb[i * SMALL + k] * pb[j * SMALL + k];
                    ASSERT(c[i * SMALL + j] == want); /* small integers: exact */
                }
            ASSERT_OK(alloy_cmdbuf_destroy(b));
        }
        ASSERT_OK(alloy_buffer_destroy(bb));
        ASSERT_OK(alloy_buffer_destroy(cbuf));
        ASSERT_OK(alloy_queue_destroy(q));
        ASSERT_OK(alloy_device_close(dev));
    }
}

/* Tiny command buffers committed and waited back to back: the waiting thread polls
 * briefly before it sleeps, and a completion landing between its last poll and its
 * sleep must still wake it (a lost wake-up hangs here: one did, about once in 10^5 ops).
 * Two application threads share each device, so both sides of every race run. */
typedef struct tiny_loop {
    alloy_device *dev;
    int ops;
} tiny_loop;

static void *run_tiny_loop(void *p)
{
    tiny_loop *t = p;
    alloy_queue *q = test_queue(t->dev);
    alloy_buffer *ba = test_buffer(t->dev, 4), *bc = test_buffer(t->dev, 4);
    int64_t one[2] = {1, 1};
    alloy_array a = alloy_array_contiguous(ba, 0, ALLOY_F32, 2, one);
    alloy_array c = alloy_array_contiguous(bc, 0, ALLOY_F32, 2, one);
    alloy_matmul_desc d = alloy_matmul_desc_default();
    float *pa = alloy_buffer_contents(ba), *pc = alloy_buffer_contents(bc);
    for (int i = 0; i < t->ops; i++) {
        pa[0] = (float)(i % 1000);
        alloy_cmdbuf *cb = test_cmdbuf(q);
        ASSERT_OK(alloy_encode_matmul(cb, &d, &a, &a, NULL, &c));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_wait(cb));
        ASSERT(pc[0] == pa[0] * pa[0]);
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
    }
    ASSERT_OK(alloy_buffer_destroy(ba));
    ASSERT_OK(alloy_buffer_destroy(bc));
    ASSERT_OK(alloy_queue_destroy(q));
    return NULL;
}

TEST(tiny_ops_back_to_back)
{
    for (int workers = 1; workers <= 2; workers++) {
        tiny_loop t = {test_cpu_device(workers), 150000};
        pthread_t th;
        ASSERT_EQ(pthread_create(&th, NULL, run_tiny_loop, &t), 0);
        run_tiny_loop(&t);
        ASSERT_EQ(pthread_join(th, NULL), 0);
        ASSERT_OK(alloy_device_close(t.dev));
    }
}

TEST_LIST{
    TEST_ENTRY(eight_threads_bitwise),
    TEST_ENTRY(shared_queue_bitwise),
    TEST_ENTRY(cmdbuf_moves_between_threads),
    TEST_ENTRY(queue_runs_in_commit_order),
    TEST_ENTRY(unwaited_job_beside_another_runs),
    TEST_ENTRY(unwaited_job_alone_runs),
    TEST_ENTRY(tiny_ops_back_to_back),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
