/* Timed windows: T threads start together, run ops until the window closes, wait for
 * their work, and report. Modes plug in through impl_vtable, so alloy and the vendors
 * are timed by the same code. */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* All threads start together: each reports ready and waits for go. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready, go;
} gate;

static void gate_pass(gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->ready++;
    pthread_cond_broadcast(&g->cond);
    while (!g->go)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_open(gate *g, int threads)
{
    pthread_mutex_lock(&g->lock);
    while (g->ready < threads)
        pthread_cond_wait(&g->cond, &g->lock);
    g->go = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

typedef struct thread_arg {
    const impl_vtable *v;
    void *ctx;
    int tid;
    int single;
    gate *start;
    atomic_int *stop;
    post_fn post;
    void *post_arg;
    uint64_t ops;
    double t_end;
    int status;
    char err[300];
} thread_arg;

static void *thread_main(void *x)
{
    thread_arg *a = x;
    void *st = NULL;
    a->status = a->v->thread_setup(a->ctx, a->tid, &st, a->err, sizeof a->err);
    gate_pass(a->start);
    if (a->status == BENCH_OK) {
        do {
            int s = a->v->op(st, a->err, sizeof a->err);
            if (s != BENCH_OK) {
                a->status = s;
                break;
            }
            a->ops++;
        } while (!a->single && !atomic_load_explicit(a->stop, memory_order_relaxed));
        char err[300];
        int s = a->v->drain(st, err, sizeof err);
        if (s != BENCH_OK && a->status == BENCH_OK) {
            a->status = s;
            memcpy(a->err, err, sizeof err);
        }
        a->t_end = now_seconds();
        if (a->status == BENCH_OK && a->post) {
            out_view views[MAX_OPERANDS];
            memset(views, 0, sizeof views);
            a->status = a->v->fetch(st, views, a->err, sizeof a->err);
            if (a->status == BENCH_OK)
                a->status = a->post(a->post_arg, a->tid, views, a->err, sizeof a->err);
        }
    }
    if (st)
        a->v->thread_teardown(st);
    return NULL;
}

void run_window(const impl_vtable *v, void *ctx, int threads, double seconds, int single_op,
                post_fn post, void *post_arg, window_result *r)
{
    memset(r, 0, sizeof *r);
    int s = v->window_begin(ctx, threads, r->err, sizeof r->err);
    if (s != BENCH_OK) {
        r->status = s;
        return;
    }
    thread_arg *args = calloc((size_t)threads, sizeof *args);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    gate start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    atomic_int stop;
    atomic_init(&stop, 0);
    if (!args || !th) {
        free(args);
        free(th);
        v->window_end(ctx);
        r->status = BENCH_FAIL;
        snprintf(r->err, sizeof r->err, "out of memory for %d threads", threads);
        return;
    }
    int started = 0;
    for (int t = 0; t < threads; t++) {
        args[t] = (thread_arg){.v = v, .ctx = ctx, .tid = t, .single = single_op, .start = &start,
                               .stop = &stop, .post = post, .post_arg = post_arg};
        if (pthread_create(&th[t], NULL, thread_main, &args[t]) != 0) {
            r->status = BENCH_FAIL;
            snprintf(r->err, sizeof r->err, "cannot start thread %d of %d", t, threads);
            atomic_store(&stop, 1);
            break;
        }
        started++;
    }
    gate_open(&start, started);
    double t0 = now_seconds();
    if (!single_op && started == threads) {
        double until = t0 + seconds;
        for (double t = t0; t < until; t = now_seconds()) {
            double left = until - t;
            struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            nanosleep(&ts, NULL);
        }
        atomic_store(&stop, 1);
    }
    double t_end = t0;
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        r->ops += args[t].ops;
        if (args[t].t_end > t_end)
            t_end = args[t].t_end;
        if (args[t].status > r->status) {
            r->status = args[t].status;
            snprintf(r->err, sizeof r->err, "thread %d: %.270s", t, args[t].err);
        }
    }
    r->seconds = t_end - t0;
    pthread_mutex_destroy(&start.lock);
    pthread_cond_destroy(&start.cond);
    free(args);
    free(th);
    v->window_end(ctx);
}

/* ---------------------------------------------------------------- verification */

int outputs_equal(const problem *p, const out_view *a, const out_view *b)
{
    for (int i = 0; i < p->n; i++) {
        if (p->opd[i].role != ROLE_OUTPUT && p->opd[i].role != ROLE_INOUT)
            continue;
        if (a[i].bytes != b[i].bytes || a[i].dtype != b[i].dtype ||
            memcmp(a[i].data, b[i].data, a[i].bytes) != 0)
            return 0;
    }
    return 1;
}

void expected_free(expected_out *e)
{
    for (int i = 0; i < MAX_OPERANDS; i++)
        free((void *)e->v[i].data);
    memset(e, 0, sizeof *e);
}

typedef struct capture {
    const problem *p;
    expected_out *per_thread;
} capture;

static int capture_fn(void *arg, int tid, const out_view *views, char *err, size_t len)
{
    capture *c = arg;
    expected_out *e = &c->per_thread[tid];
    for (int i = 0; i < c->p->n; i++) {
        if (!views[i].data)
            continue;
        void *m = malloc(views[i].bytes ? views[i].bytes : 1);
        if (!m) {
            snprintf(err, len, "out of host memory");
            return BENCH_FAIL;
        }
        memcpy(m, views[i].data, views[i].bytes);
        e->v[i] = views[i];
        e->v[i].data = m;
    }
    return BENCH_OK;
}

int verify_threads(const impl_vtable *v, void *ctx, const problem *p, int threads, int exact,
                   expected_out *keep, verdict *vd, char *err, size_t len)
{
    memset(vd, 0, sizeof *vd);
    memset(keep, 0, sizeof *keep);
    capture c = {p, calloc((size_t)threads, sizeof(expected_out))};
    if (!c.per_thread) {
        snprintf(err, len, "out of host memory");
        return BENCH_FAIL;
    }
    window_result w;
    run_window(v, ctx, threads, 0, 1, capture_fn, &c, &w);
    if (w.status != BENCH_OK) {
        snprintf(err, len, "%s", w.err);
        for (int t = 0; t < threads; t++)
            expected_free(&c.per_thread[t]);
        free(c.per_thread);
        return w.status;
    }
    problem_verify(p, c.per_thread[0].v, vd);
    for (int t = 1; t < threads && vd->ok; t++) {
        if (outputs_equal(p, c.per_thread[t].v, c.per_thread[0].v))
            continue;
        if (exact) {
            vd->ok = 0;
            snprintf(vd->text, sizeof vd->text,
                     "thread %d's result differs bitwise from thread 0's (same inputs)", t);
            break;
        }
        verdict other;
        problem_verify(p, c.per_thread[t].v, &other);
        if (!other.ok) {
            *vd = other;
            char tmp[sizeof vd->text];
            snprintf(tmp, sizeof tmp, "thread %d: %.200s", t, other.text);
            memcpy(vd->text, tmp, sizeof tmp);
        } else if (other.worst > vd->worst) {
            vd->worst = other.worst;
        }
    }
    *keep = c.per_thread[0];
    for (int t = 1; t < threads; t++)
        expected_free(&c.per_thread[t]);
    free(c.per_thread);
    return BENCH_OK;
}

int postcheck_fn(void *arg, int tid, const out_view *views, char *err, size_t len)
{
    const postcheck *pc = arg;
    if (outputs_equal(pc->p, views, pc->want->v))
        return BENCH_OK;
    if (!pc->exact) {
        verdict vd;
        problem_verify(pc->p, views, &vd);
        if (vd.ok)
            return BENCH_OK;
        snprintf(err, len, "wrong result after the timed window on thread %d: %s", tid, vd.text);
        return BENCH_FAIL;
    }
    snprintf(err, len,
             "thread %d's last result in the timed window differs bitwise from the verified one",
             tid);
    return BENCH_FAIL;
}
