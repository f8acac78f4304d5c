/* Misuse and lifetimes: the one-encoder rule (BUSY, deterministically and under a race),
 * commit/poll/wait order (STATE), destroying buffers, queues and devices that are still
 * in use (STATE, and nothing changes), fire-and-forget command buffers, many waiters on
 * one command buffer, and fork(): a child's calls on its parent's device answer STATE. */
#include "test_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static alloy_device *device_with(int workers, const alloy_allocator *a)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = workers;
    d.allocator = a;
    alloy_device *dev = NULL;
    ASSERT_OK(alloy_device_open(&d, &dev));
    return dev;
}

/* ---------------------------------------------------------------- an allocator that
 * can hold the thread that calls it (inside a library call, holding whatever the library
 * holds at that moment) until the test lets it go. */

typedef struct hold_alloc {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int armed;    /* the next allocation holds */
    int inside;   /* a thread is held */
    int released; /* let it go */
    _Atomic long live;
} hold_alloc;

static void *hold_alloc_fn(void *ctx, size_t bytes, size_t align)
{
    hold_alloc *h = ctx;
    pthread_mutex_lock(&h->mu);
    if (h->armed) {
        h->armed = 0;
        h->inside = 1;
        pthread_cond_broadcast(&h->cv);
        while (!h->released)
            pthread_cond_wait(&h->cv, &h->mu);
        h->inside = 0;
    }
    pthread_mutex_unlock(&h->mu);
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, bytes ? bytes : 1))
        return NULL;
    atomic_fetch_add(&h->live, 1);
    return p;
}

static void hold_free_fn(void *ctx, void *p, size_t bytes)
{
    hold_alloc *h = ctx;
    (void)bytes;
    if (p)
        atomic_fetch_sub(&h->live, 1);
    free(p);
}

static void hold_init(hold_alloc *h, alloy_allocator *a)
{
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->armed = h->inside = h->released = 0;
    atomic_init(&h->live, 0);
    a->ctx = h;
    a->alloc = hold_alloc_fn;
    a->free = hold_free_fn;
}

static void hold_fini(hold_alloc *h)
{
    ASSERT_EQ(atomic_load(&h->live), 0);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
}

/* Waits until a thread is held; 0 after `seconds` without one. */
static int hold_wait_inside(hold_alloc *h, int seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    while (!h->inside && rc == 0)
        rc = pthread_cond_timedwait(&h->cv, &h->mu, &until);
    int in = h->inside;
    pthread_mutex_unlock(&h->mu);
    return in;
}

static void hold_release(hold_alloc *h)
{
    pthread_mutex_lock(&h->mu);
    h->released = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* ---------------------------------------------------------------- BUSY */

enum { SLOTS = 64, SLOT = 8 }; /* floats per slot */

typedef struct encoder_arg {
    alloy_cmdbuf *cb;
    alloy_buffer *src, *dst;
    hold_alloc *hold;
    int encoded; /* ops encoded before the held one, plus the held one */
    alloy_status held_status;
} encoder_arg;

static void copy_slot(alloy_buffer *src, alloy_buffer *dst, int slot, alloy_array *s,
                      alloy_array *d)
{
    int64_t n = SLOT;
    *s = alloy_array_contiguous(src, (size_t)slot * SLOT * 4, ALLOY_F32, 1, &n);
    *d = alloy_array_contiguous(dst, (size_t)slot * SLOT * 4, ALLOY_F32, 1, &n);
}

/* Encodes copies of slots 0, 1, 2, ... with the allocator armed, until the encode whose
 * allocation is held has returned. */
static void *encoder_main(void *p)
{
    encoder_arg *e = p;
    for (int i = 0; i < SLOTS - 1; i++) {
        alloy_array s, d;
        copy_slot(e->src, e->dst, i, &s, &d);
        alloy_status st = alloy_encode_copy(e->cb, &s, &d);
        e->encoded = i + 1;
        pthread_mutex_lock(&e->hold->mu);
        int fired = !e->hold->armed;
        pthread_mutex_unlock(&e->hold->mu);
        if (fired) {
            e->held_status = st;
            return NULL;
        }
        if (st != ALLOY_OK) {
            e->held_status = st;
            return NULL;
        }
    }
    e->held_status = ALLOY_ERR_DEVICE; /* never held: reported by the test */
    return NULL;
}

static void fill_n_slots(alloy_buffer *src, alloy_buffer *dst, int nslots)
{
    float *s = alloy_buffer_contents(src);
    for (int i = 0; i < nslots * SLOT; i++)
        s[i] = (float)(i + 1);
    memset(alloy_buffer_contents(dst), 0, (size_t)nslots * SLOT * 4);
}

static void fill_slots(alloy_buffer *src, alloy_buffer *dst) { fill_n_slots(src, dst, SLOTS); }

static int slot_copied(alloy_buffer *dst, int slot)
{
    const float *d = alloy_buffer_contents(dst);
    int all = 1, none = 1;
    for (int j = 0; j < SLOT; j++) {
        float v = d[slot * SLOT + j];
        if (v != (float)(slot * SLOT + j + 1))
            all = 0;
        if (v != 0)
            none = 0;
    }
    if (!all && !none)
        FAIL_AT("slot %d is partly written", slot);
    return all;
}

/* While one thread is inside an encode (held in the allocator), another thread's encode,
 * commit and destroy of that command buffer answer BUSY and change nothing; afterwards
 * the first thread's work is all there and the BUSY op is not. */
TEST(busy_deterministic)
{
    hold_alloc h;
    alloy_allocator a;
    hold_init(&h, &a);
    alloy_device *dev = device_with(2, &a);
    alloy_buffer *src = test_buffer(dev, SLOTS * SLOT * 4), *dst = test_buffer(dev, SLOTS * SLOT * 4);
    fill_slots(src, dst);
    alloy_queue *q = test_queue(dev);
    alloy_cmdbuf *cb = test_cmdbuf(q);

    encoder_arg e = {cb, src, dst, &h, 0, ALLOY_OK};
    pthread_mutex_lock(&h.mu);
    h.armed = 1;
    pthread_mutex_unlock(&h.mu);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, encoder_main, &e), 0);
    int held = hold_wait_inside(&h, 30);
    if (!held) {
        hold_release(&h);
        pthread_join(t, NULL);
        FAIL_AT("no encode of %d ops allocated memory; cannot hold an encoder", e.encoded);
    }
    /* the encoder is inside alloy_encode_copy now */
    alloy_array s, d;
    copy_slot(src, dst, SLOTS - 1, &s, &d);
    ASSERT_FAILS(alloy_encode_copy(cb, &s, &d), ALLOY_ERR_BUSY, "thread");
    alloy_matmul_desc md = alloy_matmul_desc_default();
    int64_t sq[2] = {2, 2};
    alloy_array m = alloy_array_contiguous(src, 0, ALLOY_F32, 2, sq);
    alloy_array mc = alloy_array_contiguous(dst, (SLOTS - 1) * SLOT * 4, ALLOY_F32, 2, sq);
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &m, &m, NULL, &mc), ALLOY_ERR_BUSY, "thread");
    ASSERT_FAILS(alloy_cmdbuf_commit(cb), ALLOY_ERR_BUSY, "thread");
    ASSERT_STATUS(alloy_cmdbuf_destroy(cb), ALLOY_ERR_BUSY);
    int done = 0;
    ASSERT_STATUS(alloy_cmdbuf_poll(cb, &done), ALLOY_ERR_STATE); /* not committed */
    hold_release(&h);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_OK(e.held_status);
    int n = e.encoded;
    ASSERT(n >= 1 && n < SLOTS - 1);
    test_commit_wait(cb);
    for (int i = 0; i < SLOTS; i++)
        ASSERT_EQ(slot_copied(dst, i), i < n);
    ASSERT_OK(alloy_buffer_destroy(src));
    ASSERT_OK(alloy_buffer_destroy(dst));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    hold_fini(&h);
}

/* Two threads hammer one command buffer with encodes, many rounds: each call answers OK
 * or BUSY and nothing else, never crashes, and exactly the slots some OK encode wrote are
 * written. Each thread keeps going (cycling over its slots) until the other has also
 * made its first pass, so their busy periods overlap even on a loaded machine. */
enum { RACE_THREADS = 2, RACE_ROUNDS = 100, RACE_SLOTS = 512,
       RACE_TRIES = RACE_SLOTS / RACE_THREADS, RACE_CAP = 8 * RACE_TRIES };

typedef struct race {
    pthread_barrier_t bar;
    alloy_cmdbuf *_Atomic cb;
    _Atomic int arrived;               /* threads spin on it to start together */
    _Atomic long tries[RACE_THREADS];  /* encodes so far this round */
    alloy_buffer *src, *dst;
    unsigned char ok[RACE_SLOTS];      /* some encode of this slot answered OK */
    long busy[RACE_THREADS], oks[RACE_THREADS];
} race;

typedef struct race_arg {
    race *r;
    int id;
} race_arg;

static void *race_main(void *p)
{
    race_arg *ra = p;
    race *r = ra->r;
    const int other = 1 - ra->id;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        pthread_barrier_wait(&r->bar); /* the command buffer is ready */
        alloy_cmdbuf *cb = atomic_load(&r->cb);
        atomic_fetch_add(&r->arrived, 1);
        for (int spin = 0; atomic_load(&r->arrived) < RACE_THREADS * (round + 1); spin++)
            if (spin > 100000)
                sched_yield(); /* a loaded machine: do not burn the other thread's core */
        for (int k = 0; k < RACE_CAP; k++) {
            if (k >= RACE_TRIES && atomic_load(&r->tries[other]) >= RACE_TRIES)
                break;
            alloy_array s, d;
            int slot = (k % RACE_TRIES) * RACE_THREADS + ra->id;
            copy_slot(r->src, r->dst, slot, &s, &d);
            alloy_status st = alloy_encode_copy(cb, &s, &d);
            if (st == ALLOY_OK) {
                r->ok[slot] = 1;
                r->oks[ra->id]++;
            } else if (st == ALLOY_ERR_BUSY) {
                r->busy[ra->id]++;
            } else {
                FAIL_AT("round %d: encode answered %s (%s)", round, alloy_status_string(st),
                        alloy_last_error());
            }
            atomic_fetch_add(&r->tries[ra->id], 1);
        }
        pthread_barrier_wait(&r->bar); /* done encoding */
        pthread_barrier_wait(&r->bar); /* checked */
    }
    return NULL;
}

TEST(two_encoders_race)
{
    alloy_device *dev = test_cpu_device(2);
    alloy_queue *q = test_queue(dev);
    race *r = test_malloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->src = test_buffer(dev, RACE_SLOTS * SLOT * 4);
    r->dst = test_buffer(dev, RACE_SLOTS * SLOT * 4);
    ASSERT_EQ(pthread_barrier_init(&r->bar, NULL, RACE_THREADS + 1), 0);
    pthread_t t[RACE_THREADS];
    race_arg ra[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        ra[i].r = r;
        ra[i].id = i;
        ASSERT_EQ(pthread_create(&t[i], NULL, race_main, &ra[i]), 0);
    }
    for (int round = 0; round < RACE_ROUNDS; round++) {
        fill_n_slots(r->src, r->dst, RACE_SLOTS);
        memset(r->ok, 0, sizeof r->ok);
        for (int i = 0; i < RACE_THREADS; i++)
            atomic_store(&r->tries[i], 0);
        atomic_store(&r->cb, test_cmdbuf(q));
        pthread_barrier_wait(&r->bar);
        pthread_barrier_wait(&r->bar);
        alloy_cmdbuf *cb = atomic_load(&r->cb);
        test_commit_wait(cb);
        for (int slot = 0; slot < RACE_SLOTS; slot++)
            if (slot_copied(r->dst, slot) != r->ok[slot])
                FAIL_AT("round %d slot %d: %s", round, slot,
                        r->ok[slot] ? "an encode said OK but the copy is missing"
                                    : "every encode said BUSY but the copy ran");
        pthread_barrier_wait(&r->bar);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    long oks = r->oks[0] + r->oks[1], busy = r->busy[0] + r->busy[1];
    fprintf(stderr, "  %ld encodes OK, %ld BUSY\n", oks, busy);
    ASSERT(oks > 0);
    pthread_barrier_destroy(&r->bar);
    ASSERT_OK(alloy_buffer_destroy(r->src));
    ASSERT_OK(alloy_buffer_destroy(r->dst));
    free(r);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- STATE: order */

TEST(commit_wait_poll_order)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    alloy_buffer *src = test_buffer(dev, SLOTS * SLOT * 4), *dst = test_buffer(dev, SLOTS * SLOT * 4);
    fill_slots(src, dst);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    alloy_array s, d;
    copy_slot(src, dst, 0, &s, &d);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));

    int done = 5;
    ASSERT_FAILS(alloy_cmdbuf_wait(cb), ALLOY_ERR_STATE, "committed");
    ASSERT_FAILS(alloy_cmdbuf_poll(cb, &done), ALLOY_ERR_STATE, "committed");
    ASSERT_EQ(done, 0);
    ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
    /* still usable after those */
    copy_slot(src, dst, 1, &s, &d);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    copy_slot(src, dst, 2, &s, &d);
    ASSERT_FAILS(alloy_encode_copy(cb, &s, &d), ALLOY_ERR_STATE, "committed");
    alloy_matmul_desc md = alloy_matmul_desc_default();
    int64_t sq[2] = {2, 2};
    alloy_array m = alloy_array_contiguous(src, 0, ALLOY_F32, 2, sq);
    alloy_array mc = alloy_array_contiguous(dst, 3 * SLOT * 4, ALLOY_F32, 2, sq);
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &m, &m, NULL, &mc), ALLOY_ERR_STATE, "committed");
    ASSERT_FAILS(alloy_cmdbuf_commit(cb), ALLOY_ERR_STATE, "committed");
    for (int spins = 0; !done; spins++) {
        ASSERT(spins < 100000000);
        ASSERT_OK(alloy_cmdbuf_poll(cb, &done));
    }
    ASSERT_EQ(done, 1);
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_FAILS(alloy_encode_copy(cb, &s, &d), ALLOY_ERR_STATE, "committed");
    ASSERT_STATUS(alloy_cmdbuf_commit(cb), ALLOY_ERR_STATE);
    ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_EQ(slot_copied(dst, 0), 1);
    ASSERT_EQ(slot_copied(dst, 1), 1);
    ASSERT_EQ(slot_copied(dst, 2), 0);
    ASSERT_EQ(slot_copied(dst, 3), 0);
    ASSERT_OK(alloy_buffer_destroy(src));
    ASSERT_OK(alloy_buffer_destroy(dst));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- STATE: lifetimes */

/* A long command buffer: an f64 product big enough to keep one worker busy for a while. */
typedef struct slow {
    alloy_buffer *a, *c;
    alloy_cmdbuf *cb;
} slow;

static slow slow_commit(alloy_device *dev, alloy_queue *q, int64_t n)
{
    slow s;
    s.a = test_buffer(dev, (size_t)(n * n) * 8);
    s.c = test_buffer(dev, (size_t)(n * n) * 8);
    double *p = alloy_buffer_contents(s.a);
    for (int64_t i = 0; i < n * n; i++)
        p[i] = (double)(i % 5) - 2.0;
    int64_t sh[2] = {n, n};
    alloy_array a = alloy_array_contiguous(s.a, 0, ALLOY_F64, 2, sh);
    alloy_array c = alloy_array_contiguous(s.c, 0, ALLOY_F64, 2, sh);
    alloy_matmul_desc md = alloy_matmul_desc_default();
    s.cb = test_cmdbuf(q);
    ASSERT_OK(alloy_encode_matmul(s.cb, &md, &a, &a, NULL, &c));
    ASSERT_OK(alloy_cmdbuf_commit(s.cb));
    return s;
}

static void slow_finish(slow *s)
{
    ASSERT_OK(alloy_cmdbuf_wait(s->cb));
    ASSERT_OK(alloy_cmdbuf_destroy(s->cb));
    ASSERT_OK(alloy_buffer_destroy(s->a));
    ASSERT_OK(alloy_buffer_destroy(s->c));
}

static int still_running(alloy_cmdbuf *cb)
{
    int done = 0;
    ASSERT_OK(alloy_cmdbuf_poll(cb, &done));
    return !done;
}

TEST(destroy_referenced_buffer)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    alloy_buffer *src = test_buffer(dev, SLOTS * SLOT * 4), *dst = test_buffer(dev, SLOTS * SLOT * 4);
    fill_slots(src, dst);

    /* referenced by an uncommitted command buffer */
    alloy_cmdbuf *cb = test_cmdbuf(q);
    alloy_array s, d;
    copy_slot(src, dst, 0, &s, &d);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    ASSERT_FAILS(alloy_buffer_destroy(src), ALLOY_ERR_STATE, "buffer");
    ASSERT_FAILS(alloy_buffer_destroy(dst), ALLOY_ERR_STATE, "buffer");
    /* nothing changed: both buffers still work, and the op still runs */
    float v = 0;
    ASSERT_OK(alloy_buffer_read(src, 4, &v, 4));
    ASSERT(v == 2.0f);
    test_commit_wait(cb);
    ASSERT_EQ(slot_copied(dst, 0), 1);

    /* an uncommitted command buffer destroyed releases its references */
    cb = test_cmdbuf(q);
    copy_slot(src, dst, 1, &s, &d);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    ASSERT_STATUS(alloy_buffer_destroy(dst), ALLOY_ERR_STATE);
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_EQ(slot_copied(dst, 1), 0);
    alloy_buffer *b2 = test_buffer(dev, 64);
    cb = test_cmdbuf(q);
    int64_t n = 4;
    alloy_array s2 = alloy_array_contiguous(src, 0, ALLOY_F32, 1, &n);
    alloy_array d2 = alloy_array_contiguous(b2, 0, ALLOY_F32, 1, &n);
    ASSERT_OK(alloy_encode_copy(cb, &s2, &d2));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_OK(alloy_buffer_destroy(b2));

    /* a finished command buffer holds no references even before it is destroyed */
    cb = test_cmdbuf(q);
    b2 = test_buffer(dev, 64);
    d2 = alloy_array_contiguous(b2, 0, ALLOY_F32, 1, &n);
    ASSERT_OK(alloy_encode_copy(cb, &s2, &d2));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_buffer_destroy(b2));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));

    /* referenced by a committed command buffer queued behind a slow one: the destroy
     * answers STATE whenever the slow one is provably still running after it */
    int conclusive = 0;
    for (int attempt = 0; attempt < 6 && !conclusive; attempt++) {
        slow sl = slow_commit(dev, q, 200 + 100 * attempt);
        b2 = test_buffer(dev, 64);
        d2 = alloy_array_contiguous(b2, 0, ALLOY_F32, 1, &n);
        cb = test_cmdbuf(q);
        ASSERT_OK(alloy_encode_copy(cb, &s2, &d2));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        alloy_status st = alloy_buffer_destroy(b2);
        if (still_running(sl.cb)) {
            /* cb cannot have started: it is behind sl.cb on the queue */
            conclusive = 1;
            ASSERT_STATUS(st, ALLOY_ERR_STATE);
        }
        ASSERT_OK(alloy_cmdbuf_wait(cb));
        if (st != ALLOY_OK) {
            const float *p = alloy_buffer_contents(b2);
            for (int i = 0; i < 4; i++)
                ASSERT(p[i] == (float)(i + 1)); /* the copy ran into the kept buffer */
            ASSERT_OK(alloy_buffer_destroy(b2));
        }
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        slow_finish(&sl);
    }
    ASSERT(conclusive);
    ASSERT_OK(alloy_buffer_destroy(src));
    ASSERT_OK(alloy_buffer_destroy(dst));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST(destroy_queue_with_live_cmdbufs)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_queue *q = test_queue(dev);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    ASSERT_FAILS(alloy_queue_destroy(q), ALLOY_ERR_STATE, "queue");
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    /* finished but not destroyed: still alive */
    ASSERT_STATUS(alloy_queue_destroy(q), ALLOY_ERR_STATE);
    /* the queue still works after the refusals */
    alloy_cmdbuf *cb2 = test_cmdbuf(q);
    test_commit_wait(cb2);
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_OK(alloy_queue_destroy(q));

    /* destroyed while running (fire and forget): alive until it finishes. Whether it
     * was still running is read from its output buffer afterwards: it holds that buffer
     * until it finishes, and lets go of it before it lets go of the queue. */
    q = test_queue(dev);
    int conclusive = 0;
    for (int attempt = 0; attempt < 6 && !conclusive; attempt++) {
        slow sl = slow_commit(dev, q, 200 + 100 * attempt);
        ASSERT_OK(alloy_cmdbuf_destroy(sl.cb));
        alloy_status sq = alloy_queue_destroy(q);
        alloy_status sb = alloy_buffer_destroy(sl.c);
        if (sb == ALLOY_ERR_STATE) {
            conclusive = 1;
            ASSERT_STATUS(sq, ALLOY_ERR_STATE);
        }
        if (sq == ALLOY_ERR_STATE) {
            ASSERT_OK(alloy_queue_wait_idle(q));
        } else {
            ASSERT_OK(sq);
            q = test_queue(dev);
        }
        if (sb == ALLOY_ERR_STATE)
            ASSERT_OK(alloy_buffer_destroy(sl.c));
        else
            ASSERT_OK(sb);
        ASSERT_OK(alloy_buffer_destroy(sl.a));
    }
    ASSERT(conclusive);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST(close_device_with_children)
{
    alloy_device *dev = test_cpu_device(2);
    alloy_buffer *b = test_buffer(dev, 256);
    ASSERT_FAILS(alloy_device_close(dev), ALLOY_ERR_STATE, "destroy");
    alloy_queue *q = test_queue(dev);
    ASSERT_FAILS(alloy_device_close(dev), ALLOY_ERR_STATE, "destroy");
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_STATUS(alloy_device_close(dev), ALLOY_ERR_STATE);
    /* the device is intact: it still runs work */
    b = test_buffer(dev, 256);
    float *p = alloy_buffer_contents(b);
    for (int i = 0; i < 8; i++)
        p[i] = (float)i;
    int64_t n = 8;
    alloy_array s = alloy_array_contiguous(b, 0, ALLOY_F32, 1, &n);
    alloy_array d = alloy_array_contiguous(b, 128, ALLOY_F64, 1, &n);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    test_commit_wait(cb);
    for (int i = 0; i < 8; i++)
        ASSERT(((double *)(p + 32))[i] == (double)i);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- fire and forget */

typedef struct count_alloc {
    _Atomic long live;
} count_alloc;
static void *count_alloc_fn(void *ctx, size_t bytes, size_t align)
{
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, bytes ? bytes : 1))
        return NULL;
    atomic_fetch_add(&((count_alloc *)ctx)->live, 1);
    return p;
}
static void count_free_fn(void *ctx, void *p, size_t bytes)
{
    (void)bytes;
    if (p)
        atomic_fetch_sub(&((count_alloc *)ctx)->live, 1);
    free(p);
}

/* Commit then destroy without waiting, many times; queue_wait_idle; then every result is
 * there, every command buffer's memory is back, and buffers, queue and device go. */
TEST(fire_and_forget)
{
    count_alloc ca;
    atomic_init(&ca.live, 0);
    alloy_allocator a = {&ca, count_alloc_fn, count_free_fn};
    alloy_device *dev = device_with(2, &a);
    alloy_queue *q = test_queue(dev);
    enum { N = 300, E = 64 };
    alloy_buffer *src = test_buffer(dev, E * 8), *dst = test_buffer(dev, (size_t)N * E * 8);
    double *sp = alloy_buffer_contents(src);
    for (int i = 0; i < E; i++)
        sp[i] = 0.25 * i;
    memset(alloy_buffer_contents(dst), 0, (size_t)N * E * 8);
    int64_t e = E, sh[2] = {8, 8};
    for (int i = 0; i < N; i++) {
        alloy_cmdbuf *cb = test_cmdbuf(q);
        alloy_array s = alloy_array_contiguous(src, 0, ALLOY_F64, 1, &e);
        alloy_array d = alloy_array_contiguous(dst, (size_t)i * E * 8, ALLOY_F64, 1, &e);
        if (i % 3 == 2) {
            /* a product instead: C = S @ S^T, small integers scaled, exact */
            alloy_array m = alloy_array_contiguous(src, 0, ALLOY_F64, 2, sh);
            alloy_array mt = alloy_array_swap_dims(m, 0, 1);
            alloy_array c = alloy_array_contiguous(dst, (size_t)i * E * 8, ALLOY_F64, 2, sh);
            alloy_matmul_desc md = alloy_matmul_desc_default();
            ASSERT_OK(alloy_encode_matmul(cb, &md, &m, &mt, NULL, &c));
        } else {
            ASSERT_OK(alloy_encode_copy(cb, &s, &d));
        }
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
    }
    ASSERT_OK(alloy_queue_wait_idle(q));
    ASSERT_OK(alloy_buffer_destroy(src));
    const double *dp = alloy_buffer_contents(dst);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < E; j++) {
            double want;
            if (i % 3 == 2) {
                int r = j / 8, c = j % 8;
                want = 0;
                for (int k = 0; k < 8; k++)
                    want += (0.25 * (r * 8 + k)) * (0.25 * (c * 8 + k));
            } else {
                want = 0.25 * j;
            }
            if (dp[i * E + j] != want)
                FAIL_AT("command buffer %d element %d: %g, expected %g", i, j, dp[i * E + j], want);
        }
    ASSERT_OK(alloy_buffer_destroy(dst));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    ASSERT_EQ(atomic_load(&ca.live), 0);
}

/* Fire and forget, then destroy the queue as soon as it lets us: the queue may be
 * destroyed the moment queue_destroy answers OK, even while the library is finishing
 * the last command buffer on another thread. Run under ASan/TSan this catches a queue
 * freed while still in use. */
TEST(fire_and_forget_then_destroy_queue)
{
    alloy_device *dev = test_cpu_device(2);
    alloy_buffer *src = test_buffer(dev, 256), *dst = test_buffer(dev, 256);
    memset(alloy_buffer_contents(src), 0x3f, 256);
    int64_t n = 16;
    alloy_array s = alloy_array_contiguous(src, 0, ALLOY_F32, 1, &n);
    alloy_array d = alloy_array_contiguous(dst, 0, ALLOY_F32, 1, &n);
    long refusals = 0;
    for (int i = 0; i < 2000; i++) {
        alloy_queue *q = test_queue(dev);
        alloy_cmdbuf *cb = test_cmdbuf(q);
        ASSERT_OK(alloy_encode_copy(cb, &s, &d));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        alloy_status st;
        while ((st = alloy_queue_destroy(q)) == ALLOY_ERR_STATE)
            refusals++;
        ASSERT_OK(st);
        /* the command buffer let go of its buffers before it let go of the queue */
        ASSERT_OK(alloy_buffer_destroy(dst));
        dst = test_buffer(dev, 256);
        d.buffer = dst;
    }
    fprintf(stderr, "  %ld refusals while command buffers finished\n", refusals);
    ASSERT_OK(alloy_buffer_destroy(src));
    ASSERT_OK(alloy_buffer_destroy(dst));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- many waiters */

typedef struct waiter_arg {
    alloy_cmdbuf *cb;
    int poll;
    alloy_status st;
} waiter_arg;

static void *waiter_main(void *p)
{
    waiter_arg *w = p;
    if (w->poll) {
        int done = 0;
        while (!done) {
            w->st = alloy_cmdbuf_poll(w->cb, &done);
            if (w->st != ALLOY_OK)
                return NULL;
        }
    }
    w->st = alloy_cmdbuf_wait(w->cb);
    return NULL;
}

TEST(many_waiters_one_cmdbuf)
{
    alloy_device *dev = test_cpu_device(2);
    alloy_queue *q = test_queue(dev);
    for (int round = 0; round < 20; round++) {
        const int64_t n = 96;
        alloy_buffer *ab = test_buffer(dev, (size_t)(n * n) * 8), *cbuf = test_buffer(dev, (size_t)(n * n) * 8);
        double *ap = alloy_buffer_contents(ab);
        for (int64_t i = 0; i < n * n; i++)
            ap[i] = (double)((i * 7 + round) % 9) - 4.0;
        int64_t sh[2] = {n, n};
        alloy_array a = alloy_array_contiguous(ab, 0, ALLOY_F64, 2, sh);
        alloy_array c = alloy_array_contiguous(cbuf, 0, ALLOY_F64, 2, sh);
        alloy_matmul_desc md = alloy_matmul_desc_default();
        alloy_cmdbuf *cb = test_cmdbuf(q);
        ASSERT_OK(alloy_encode_matmul(cb, &md, &a, &a, NULL, &c));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        enum { W = 6 };
        pthread_t t[W];
        waiter_arg w[W];
        for (int i = 0; i < W; i++) {
            w[i].cb = cb;
            w[i].poll = i % 3 == 2;
            w[i].st = ALLOY_ERR_DEVICE;
            ASSERT_EQ(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
        }
        ASSERT_OK(alloy_cmdbuf_wait(cb));
        for (int i = 0; i < W; i++) {
            ASSERT_EQ(pthread_join(t[i], NULL), 0);
            ASSERT_OK(w[i].st);
        }
        ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        const double *cp = alloy_buffer_contents(cbuf);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t k = 0; k < n; k++)
                    s += ap[i * n + k] * ap[k * n + j];
                ASSERT(cp[i * n + j] == s); /* small integers: exact */
            }
        ASSERT_OK(alloy_buffer_destroy(ab));
        ASSERT_OK(alloy_buffer_destroy(cbuf));
    }
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- fork */

/* In the child: every call on the parent's objects must answer STATE. Returns 0, or the
 * number of the first call that did not (the child's exit code). */
static int child_checks(alloy_device *dev, alloy_queue *q, alloy_buffer *b, alloy_cmdbuf *open_cb,
                        alloy_cmdbuf *done_cb)
{
    int k = 0;
    alloy_buffer *nb = NULL;
    alloy_queue *nq = NULL;
    alloy_cmdbuf *ncb = NULL;
    char host[64];
    int done = 0;
    int64_t n = 4;
    alloy_array s = alloy_array_contiguous(b, 0, ALLOY_F32, 1, &n);
    alloy_array d = alloy_array_contiguous(b, 64, ALLOY_F32, 1, &n);
    int64_t sq[2] = {2, 2};
    alloy_array m = alloy_array_contiguous(b, 0, ALLOY_F32, 2, sq);
    alloy_array mc = alloy_array_contiguous(b, 128, ALLOY_F32, 2, sq);
    alloy_matmul_desc md = alloy_matmul_desc_default();
#define EXPECT_STATE(call)                                                                         \
    do {                                                                                           \
        k++;                                                                                       \
        if ((call) != ALLOY_ERR_STATE)                                                             \
            return k;                                                                              \
        if (!mentions(alloy_last_error(), "fork()"))                                               \
            return 100 + k;                                                                        \
    } while (0)
    EXPECT_STATE(alloy_buffer_create(dev, 64, ALLOY_MEMORY_DEVICE, &nb));
    EXPECT_STATE(alloy_buffer_wrap_host(dev, host, sizeof host, &nb));
    EXPECT_STATE(alloy_buffer_wrap_device(dev, 0x1000, 64, &nb));
    EXPECT_STATE(alloy_buffer_write(b, 0, host, 4));
    EXPECT_STATE(alloy_buffer_read(b, 0, host, 4));
    EXPECT_STATE(alloy_queue_create(dev, &nq));
    EXPECT_STATE(alloy_cmdbuf_create(q, &ncb));
    EXPECT_STATE(alloy_encode_copy(open_cb, &s, &d));
    EXPECT_STATE(alloy_encode_matmul(open_cb, &md, &m, &m, NULL, &mc));
    EXPECT_STATE(alloy_cmdbuf_commit(open_cb));
    EXPECT_STATE(alloy_cmdbuf_poll(done_cb, &done));
    EXPECT_STATE(alloy_cmdbuf_wait(done_cb));
    EXPECT_STATE(alloy_queue_wait_idle(q));
    EXPECT_STATE(alloy_cmdbuf_destroy(open_cb));
    EXPECT_STATE(alloy_cmdbuf_destroy(done_cb));
    EXPECT_STATE(alloy_buffer_destroy(b));
    EXPECT_STATE(alloy_queue_destroy(q));
    EXPECT_STATE(alloy_device_close(dev));
#undef EXPECT_STATE
    if (nb || nq || ncb)
        return 99;
    return 0;
}

TEST(fork_child_gets_state)
{
    alloy_device *dev = test_cpu_device(2);
    alloy_queue *q = test_queue(dev);
    alloy_buffer *b = test_buffer(dev, 256);
    float *p = alloy_buffer_contents(b);
    for (int i = 0; i < 64; i++)
        p[i] = (float)i;
    int64_t n = 4;
    alloy_array s = alloy_array_contiguous(b, 0, ALLOY_F32, 1, &n);
    alloy_array d = alloy_array_contiguous(b, 64, ALLOY_F32, 1, &n);
    alloy_cmdbuf *done_cb = test_cmdbuf(q), *open_cb = test_cmdbuf(q);
    ASSERT_OK(alloy_encode_copy(done_cb, &s, &d));
    ASSERT_OK(alloy_cmdbuf_commit(done_cb));
    ASSERT_OK(alloy_cmdbuf_wait(done_cb));
    ASSERT_OK(alloy_encode_copy(open_cb, &s, &d));
    fflush(stderr);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0)
        _exit(child_checks(dev, q, b, open_cb, done_cb));
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        FAIL_AT("the child died (signal %d)", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    if (WEXITSTATUS(status) != 0)
        FAIL_AT("in the child, check %d did not answer STATE%s", WEXITSTATUS(status) % 100,
                WEXITSTATUS(status) > 100 ? " with text about fork()" : "");
    /* the parent's objects are untouched and work */
    ASSERT_OK(alloy_cmdbuf_commit(open_cb));
    ASSERT_OK(alloy_cmdbuf_wait(open_cb));
    ASSERT_OK(alloy_cmdbuf_destroy(open_cb));
    ASSERT_OK(alloy_cmdbuf_destroy(done_cb));
    for (int i = 0; i < 4; i++)
        ASSERT(p[16 + i] == (float)i);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_device_close(dev));
}

TEST_LIST{
    TEST_ENTRY(busy_deterministic),
    TEST_ENTRY(two_encoders_race),
    TEST_ENTRY(commit_wait_poll_order),
    TEST_ENTRY(destroy_referenced_buffer),
    TEST_ENTRY(destroy_queue_with_live_cmdbufs),
    TEST_ENTRY(close_device_with_children),
    TEST_ENTRY(fire_and_forget),
    TEST_ENTRY(many_waiters_one_cmdbuf),
    TEST_ENTRY(fork_child_gets_state),
    TEST_ENTRY(fire_and_forget_then_destroy_queue),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
