/* The alloy modes. lockfree: each thread has its own queue and command buffers and never
 * takes a lock. mutex: the same, with one global mutex held around each op's
 * encode+commit+wait, the workaround a patched PyTorch MPS backend had to use. The mutex
 * must cover the wait (the hidden state it protects is used while the kernel runs), so
 * mutex rows wait after every op whatever the row's sync setting. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct alloy_ctx {
    alloy_device *dev;
    const problem *p;
    int mutex_mode;
    pthread_mutex_t global; /* the workaround's one lock */
    alloy_buffer *shared[MAX_OPERANDS];
} alloy_ctx;

typedef struct alloy_thread {
    alloy_ctx *c;
    alloy_queue *q;
    alloy_buffer *buf[MAX_OPERANDS];
    int owned[MAX_OPERANDS];
    alloy_buffer *pristine[MAX_OPERANDS]; /* INOUT operands: the input, restored each op */
    alloy_array arr[MAX_OPERANDS], src[MAX_OPERANDS];
    alloy_cmdbuf **ring; /* SYNC_END: command buffers in flight, oldest at head */
    int head, count;
    void *host_out[MAX_OPERANDS];
} alloy_thread;

static int fail(alloy_status s, const char *what, char *err, size_t len)
{
    snprintf(err, len, "%s: %s: %s", what, alloy_status_string(s), alloy_last_error());
    return s == ALLOY_ERR_UNSUPPORTED ? BENCH_NA : BENCH_FAIL;
}

void *alloy_mode_create(alloy_device *dev, const problem *p, int mutex_mode)
{
    alloy_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->dev = dev;
    c->p = p;
    c->mutex_mode = mutex_mode;
    pthread_mutex_init(&c->global, NULL);
    return c;
}

void alloy_mode_destroy(void *ctx)
{
    alloy_ctx *c = ctx;
    if (!c)
        return;
    pthread_mutex_destroy(&c->global);
    free(c);
}

static int new_buffer(alloy_device *dev, const operand *o, alloy_buffer **out, char *err,
                      size_t len)
{
    alloy_status s = alloy_buffer_create(dev, o->bytes, ALLOY_MEMORY_DEVICE, out);
    if (s != ALLOY_OK)
        return fail(s, "alloy_buffer_create", err, len);
    if (o->host && (s = alloy_buffer_write(*out, 0, o->host, o->bytes)) != ALLOY_OK)
        return fail(s, "alloy_buffer_write", err, len);
    return BENCH_OK;
}

static int a_window_begin(void *ctx, int threads, char *err, size_t len)
{
    alloy_ctx *c = ctx;
    (void)threads;
    if (!c->p->spec.shared)
        return BENCH_OK;
    for (int i = 0; i < c->p->n; i++)
        if (c->p->opd[i].role == ROLE_WEIGHT) {
            int s = new_buffer(c->dev, &c->p->opd[i], &c->shared[i], err, len);
            if (s != BENCH_OK)
                return s;
        }
    return BENCH_OK;
}

static void a_window_end(void *ctx)
{
    alloy_ctx *c = ctx;
    for (int i = 0; i < MAX_OPERANDS; i++) {
        alloy_buffer_destroy(c->shared[i]);
        c->shared[i] = NULL;
    }
}

static int a_thread_setup(void *ctx, int tid, void **state, char *err, size_t len)
{
    alloy_ctx *c = ctx;
    const problem *p = c->p;
    (void)tid;
    alloy_thread *t = calloc(1, sizeof *t);
    *state = t;
    if (!t) {
        snprintf(err, len, "out of host memory");
        return BENCH_FAIL;
    }
    t->c = c;
    int depth = p->spec.sync == SYNC_END && !c->mutex_mode ? p->spec.depth : 1;
    t->ring = calloc((size_t)(depth > 0 ? depth : 1), sizeof *t->ring);
    if (!t->ring) {
        snprintf(err, len, "out of host memory");
        return BENCH_FAIL;
    }
    alloy_status s = alloy_queue_create(c->dev, &t->q);
    if (s != ALLOY_OK)
        return fail(s, "alloy_queue_create", err, len);
    for (int i = 0; i < p->n; i++) {
        const operand *o = &p->opd[i];
        if (o->role == ROLE_WEIGHT && p->spec.shared) {
            t->buf[i] = c->shared[i];
        } else {
            int r = new_buffer(c->dev, o, &t->buf[i], err, len);
            t->owned[i] = 1;
            if (r != BENCH_OK)
                return r;
        }
        t->arr[i] = alloy_array_contiguous(t->buf[i], 0, o->dtype, o->rank, o->shape);
        if (o->role == ROLE_INOUT) {
            int r = new_buffer(c->dev, o, &t->pristine[i], err, len);
            if (r != BENCH_OK)
                return r;
            t->src[i] = alloy_array_contiguous(t->pristine[i], 0, o->dtype, o->rank, o->shape);
        }
    }
    return BENCH_OK;
}

static int encode(alloy_thread *t, alloy_cmdbuf *cb, char *err, size_t len)
{
    const problem *p = t->c->p;
    const alloy_array *a = t->arr;
    alloy_status s = ALLOY_OK;
    for (int i = 0; i < p->n; i++)
        if (p->opd[i].role == ROLE_INOUT && (s = alloy_encode_copy(cb, &t->src[i], &a[i])))
            return fail(s, "alloy_encode_copy (restoring the in-place operand)", err, len);
    switch (p->spec.op) {
    case OP_MATMUL: {
        alloy_matmul_desc d = alloy_matmul_desc_default();
        if ((s = alloy_encode_matmul(cb, &d, &a[0], &a[1], NULL, &a[2])))
            return fail(s, "alloy_encode_matmul", err, len);
        break;
    }
    case OP_LAYER_NORM: {
        alloy_norm_desc d = alloy_norm_desc_default();
        if ((s = alloy_encode_layer_norm(cb, &d, &a[0], &a[1], &a[2], &a[3], NULL, NULL)))
            return fail(s, "alloy_encode_layer_norm", err, len);
        break;
    }
    case OP_LU_FACTOR:
        if ((s = alloy_encode_lu_factor(cb, &a[0], &a[1], &a[2])))
            return fail(s, "alloy_encode_lu_factor", err, len);
        break;
    case OP_LU_SOLVE: {
        alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
        if ((s = alloy_encode_lu_solve(cb, &d, &a[0], &a[1], &a[2])))
            return fail(s, "alloy_encode_lu_solve", err, len);
        break;
    }
    case OP_TRIANGULAR_SOLVE: {
        alloy_triangular_desc d = alloy_triangular_desc_default();
        d.side = ALLOY_LEFT;
        d.uplo = ALLOY_LOWER;
        if ((s = alloy_encode_triangular_solve(cb, &d, &a[0], &a[1])))
            return fail(s, "alloy_encode_triangular_solve", err, len);
        break;
    }
    case OP_COPY:
        if ((s = alloy_encode_copy(cb, &a[0], &a[1])))
            return fail(s, "alloy_encode_copy", err, len);
        break;
    default: snprintf(err, len, "unknown op"); return BENCH_FAIL;
    }
    return BENCH_OK;
}

/* Waits for a committed command buffer and destroys it. */
static int finish(alloy_cmdbuf *cb, char *err, size_t len)
{
    alloy_status s = alloy_cmdbuf_wait(cb);
    int r = BENCH_OK;
    if (s != ALLOY_OK) {
        snprintf(err, len, "alloy_cmdbuf_wait: %s: %s", alloy_status_string(s),
                 alloy_cmdbuf_error(cb));
        r = s == ALLOY_ERR_UNSUPPORTED ? BENCH_NA : BENCH_FAIL;
    }
    alloy_cmdbuf_destroy(cb);
    return r;
}

static int issue(alloy_thread *t, char *err, size_t len)
{
    alloy_cmdbuf *cb = NULL;
    alloy_status s = alloy_cmdbuf_create(t->q, &cb);
    if (s != ALLOY_OK)
        return fail(s, "alloy_cmdbuf_create", err, len);
    int r = encode(t, cb, err, len);
    if (r != BENCH_OK) {
        alloy_cmdbuf_destroy(cb);
        return r;
    }
    if ((s = alloy_cmdbuf_commit(cb)) != ALLOY_OK) {
        r = fail(s, "alloy_cmdbuf_commit", err, len);
        alloy_cmdbuf_destroy(cb);
        return r;
    }
    int depth = t->c->p->spec.sync == SYNC_END && !t->c->mutex_mode ? t->c->p->spec.depth : 1;
    if (depth <= 1)
        return finish(cb, err, len);
    if (t->count == depth) {
        r = finish(t->ring[t->head], err, len);
        t->head = (t->head + 1) % depth;
        t->count--;
    }
    t->ring[(t->head + t->count) % depth] = cb;
    t->count++;
    return r;
}

static int a_op(void *state, char *err, size_t len)
{
    alloy_thread *t = state;
    if (!t->c->mutex_mode)
        return issue(t, err, len);
    pthread_mutex_lock(&t->c->global);
    int r = issue(t, err, len);
    pthread_mutex_unlock(&t->c->global);
    return r;
}

static int a_drain(void *state, char *err, size_t len)
{
    alloy_thread *t = state;
    int depth = t->c->p->spec.sync == SYNC_END && !t->c->mutex_mode ? t->c->p->spec.depth : 1;
    int r = BENCH_OK;
    for (; t->count > 0; t->count--) {
        char e[300];
        int s = finish(t->ring[t->head], e, sizeof e);
        t->head = (t->head + 1) % depth;
        if (s != BENCH_OK && r == BENCH_OK) {
            r = s;
            snprintf(err, len, "%s", e);
        }
    }
    return r;
}

static int a_fetch(void *state, out_view *views, char *err, size_t len)
{
    alloy_thread *t = state;
    const problem *p = t->c->p;
    for (int i = 0; i < p->n; i++) {
        const operand *o = &p->opd[i];
        if (o->role != ROLE_OUTPUT && o->role != ROLE_INOUT)
            continue;
        if (!t->host_out[i] && !(t->host_out[i] = malloc(o->bytes))) {
            snprintf(err, len, "out of host memory");
            return BENCH_FAIL;
        }
        alloy_status s = alloy_buffer_read(t->buf[i], 0, t->host_out[i], o->bytes);
        if (s != ALLOY_OK)
            return fail(s, "alloy_buffer_read", err, len);
        views[i] = (out_view){t->host_out[i], o->bytes, o->dtype, 0};
    }
    return BENCH_OK;
}

static void a_thread_teardown(void *state)
{
    alloy_thread *t = state;
    char err[300];
    a_drain(t, err, sizeof err);
    for (int i = 0; i < MAX_OPERANDS; i++) {
        if (t->owned[i])
            alloy_buffer_destroy(t->buf[i]);
        alloy_buffer_destroy(t->pristine[i]);
        free(t->host_out[i]);
    }
    alloy_queue_destroy(t->q);
    free(t->ring);
    free(t);
}

const impl_vtable alloy_mode_vtable = {a_window_begin, a_window_end, a_thread_setup, a_op,
                                       a_drain,        a_fetch,      a_thread_teardown};
