/* The API on a CUDA device: buffers of every kind (device, pinned host, wrapped host,
 * wrapped device pointers as PyTorch or CuPy hand them over), the caller's CUDA context
 * left untouched, misuse answered with statuses, fire-and-forget work, waiters, and
 * concurrency: 16 threads with a queue each give results bitwise equal to the same work
 * run alone, and threads sharing one queue never see their command buffers interleave.
 *
 * No CUDA device: prints "SKIP: no CUDA device: <reason>" and passes.
 * ALLOY_TEST_SMALL=1 shrinks the problems (compute-sanitizer runs). */
#include "harness.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

static int small_run(void)
{
    const char *s = getenv("ALLOY_TEST_SMALL");
    return s && *s && *s != '0';
}

static alloy_device *gpu_open(void)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CUDA;
    alloy_device *dev = NULL;
    ASSERT_OK(alloy_device_open(&d, &dev));
    return dev;
}

static alloy_buffer *buf(alloy_device *dev, size_t bytes, alloy_memory where)
{
    alloy_buffer *b = NULL;
    ASSERT_OK(alloy_buffer_create(dev, bytes, where, &b));
    return b;
}

static alloy_queue *queue(alloy_device *dev)
{
    alloy_queue *q = NULL;
    ASSERT_OK(alloy_queue_create(dev, &q));
    return q;
}

static alloy_cmdbuf *cmdbuf(alloy_queue *q)
{
    alloy_cmdbuf *cb = NULL;
    ASSERT_OK(alloy_cmdbuf_create(q, &cb));
    return cb;
}

static void fill_bytes(unsigned char *p, size_t n, uint64_t seed)
{
    test_rng r = {seed};
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rng_next(&r) >> 24);
}

/* Runs a copy of n f32 elements src -> dst on q and waits. */
static void copy_f32(alloy_queue *q, alloy_buffer *src, size_t so, alloy_buffer *dst, size_t dof,
                     int64_t n)
{
    alloy_array s = alloy_array_contiguous(src, so, ALLOY_F32, 1, &n);
    alloy_array d = alloy_array_contiguous(dst, dof, ALLOY_F32, 1, &n);
    alloy_cmdbuf *cb = cmdbuf(q);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
}

/* ---------------------------------------------------------------- devices */

TEST(device_basics)
{
    alloy_device *dev = gpu_open();
    ASSERT_EQ(alloy_device_backend(dev), ALLOY_BACKEND_CUDA);
    ASSERT(strncmp(alloy_device_name(dev), "cuda:0", 6) == 0);
    ASSERT(alloy_device_workers(dev) > 0);
    fprintf(stderr, "  %s\n", alloy_device_name(dev));
    /* a second open of the same GPU shares the primary context and works on its own */
    alloy_device *dev2 = gpu_open();
    ASSERT_OK(alloy_device_close(dev2));
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CUDA;
    d.ordinal = 99;
    alloy_device *none = NULL;
    ASSERT_STATUS(alloy_device_open(&d, &none), ALLOY_ERR_NO_DEVICE);
    ASSERT(none == NULL);
    ASSERT(strstr(alloy_last_error(), "99") != NULL);
    d = alloy_device_desc_default(); /* AUTO prefers the GPU */
    alloy_device *autod = NULL;
    ASSERT_OK(alloy_device_open(&d, &autod));
    ASSERT_EQ(alloy_device_backend(autod), ALLOY_BACKEND_CUDA);
    ASSERT_OK(alloy_device_close(autod));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- buffers */

TEST(buffers_round_trip)
{
    alloy_device *dev = gpu_open();
    static const size_t sizes[] = {0, 1, 7, 4099, 1 << 20};
    for (int kind = 0; kind < 2; kind++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            alloy_buffer *b = buf(dev, n, kind ? ALLOY_MEMORY_HOST : ALLOY_MEMORY_DEVICE);
            ASSERT_EQ(alloy_buffer_size(b), n);
            ASSERT(kind ? alloy_buffer_contents(b) != NULL : alloy_buffer_contents(b) == NULL);
            unsigned char *w = malloc(n + 1), *r = malloc(n + 1);
            fill_bytes(w, n, 7 + n);
            ASSERT_OK(alloy_buffer_write(b, 0, w, n));
            memset(r, 0, n + 1);
            ASSERT_OK(alloy_buffer_read(b, 0, r, n));
            ASSERT(memcmp(w, r, n) == 0);
            if (n > 3) { /* partial, at odd offsets */
                ASSERT_OK(alloy_buffer_write(b, 1, w + 2, n - 3));
                ASSERT_OK(alloy_buffer_read(b, 1, r, n - 3));
                ASSERT(memcmp(w + 2, r, n - 3) == 0);
            }
            if (kind && n) { /* host-visible: the pointer and read/write agree */
                memset(alloy_buffer_contents(b), 0x5a, n);
                ASSERT_OK(alloy_buffer_read(b, 0, r, n));
                ASSERT(r[0] == 0x5a && r[n - 1] == 0x5a);
            }
            ASSERT_STATUS(alloy_buffer_read(b, n, r, 1), ALLOY_ERR_INVALID_ARGUMENT);
            free(w);
            free(r);
            ASSERT_OK(alloy_buffer_destroy(b));
        }
    ASSERT_OK(alloy_device_close(dev));
}

/* Caller host memory used in place: the GPU reads it and writes it. */
TEST(wrap_host_memory)
{
    alloy_device *dev = gpu_open();
    alloy_queue *q = queue(dev);
    enum { N = 1000 };
    float *host = NULL;
    ASSERT(posix_memalign((void **)&host, 4096, 3 * 4096) == 0);
    for (int i = 0; i < N; i++)
        host[i] = (float)i * 0.5f;
    alloy_buffer *w = NULL, *d = buf(dev, N * 4, ALLOY_MEMORY_DEVICE);
    ASSERT_OK(alloy_buffer_wrap_host(dev, host, N * 4, &w));
    ASSERT(alloy_buffer_contents(w) == host);
    copy_f32(q, w, 0, d, 0, N); /* GPU reads caller memory */
    float back[N];
    ASSERT_OK(alloy_buffer_read(d, 0, back, sizeof back));
    for (int i = 0; i < N; i++)
        ASSERT(back[i] == (float)i * 0.5f);
    for (int i = 0; i < N; i++)
        back[i] = -(float)i;
    ASSERT_OK(alloy_buffer_write(d, 0, back, sizeof back));
    copy_f32(q, d, 0, w, 0, N); /* GPU writes caller memory */
    for (int i = 0; i < N; i++)
        ASSERT(host[i] == -(float)i);
    ASSERT_OK(alloy_buffer_destroy(w));
    /* Two wraps inside one page (two tensors in one allocation): both pinned or a status. */
    alloy_buffer *w1 = NULL, *w2 = NULL;
    alloy_status s1 = alloy_buffer_wrap_host(dev, (char *)host + 4096 + 64, 256, &w1);
    alloy_status s2 = alloy_buffer_wrap_host(dev, (char *)host + 4096 + 1024, 256, &w2);
    fprintf(stderr, "  two wraps in one page: %s, %s%s%s\n", alloy_status_string(s1),
            alloy_status_string(s2), s2 ? ": " : "", s2 ? alloy_last_error() : "");
    ASSERT(s1 == ALLOY_OK);
    ASSERT(s2 == ALLOY_OK || s2 == ALLOY_ERR_INVALID_ARGUMENT || s2 == ALLOY_ERR_UNSUPPORTED);
    if (s2 == ALLOY_OK) {
        copy_f32(q, w1, 0, w2, 0, 64);
        ASSERT(memcmp((char *)host + 4096 + 64, (char *)host + 4096 + 1024, 256) == 0);
        ASSERT_OK(alloy_buffer_destroy(w2));
    }
    ASSERT_OK(alloy_buffer_destroy(w1));
    ASSERT_OK(alloy_buffer_destroy(d));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    free(host);
}

/* ---------------------------------------------------------------- caller device pointers
 * The test plays PyTorch: it opens the driver itself, allocates in the primary context and
 * keeps a context of its own current; alloy must use the pointer in place and leave that
 * context current after every call. */

typedef struct drv {
    void *lib;
    int (*Init)(unsigned);
    int (*DeviceGet)(int *, int);
    int (*PrimaryCtxRetain)(void **, int);
    int (*PrimaryCtxRelease)(int);
    int (*CtxCreate)(void **, unsigned, int);
    int (*CtxDestroy)(void *);
    int (*CtxPushCurrent)(void *);
    int (*CtxPopCurrent)(void **);
    int (*CtxGetCurrent)(void **);
    int (*MemAlloc)(unsigned long long *, size_t);
    int (*MemFree)(unsigned long long);
} drv;

static void *proc(void *getp, const char *name)
{
    int (*get)(const char *, void **, int, unsigned long long, int *);
    memcpy(&get, &getp, sizeof get);
    void *p = NULL;
    int q = 0;
    if (get(name, &p, 12000, 0, &q) != 0 || !p)
        FAIL_AT("cuGetProcAddress(%s) failed", name);
    return p;
}

#define PROC(field, name)                                                                          \
    do {                                                                                           \
        void *p_ = proc(getp, name);                                                               \
        memcpy(&d->field, &p_, sizeof p_);                                                         \
    } while (0)

static void drv_open(drv *d)
{
    d->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    ASSERT(d->lib != NULL);
    void *getp = dlsym(d->lib, "cuGetProcAddress_v2");
    ASSERT(getp != NULL);
    PROC(Init, "cuInit");
    PROC(DeviceGet, "cuDeviceGet");
    PROC(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    PROC(PrimaryCtxRelease, "cuDevicePrimaryCtxRelease");
    PROC(CtxCreate, "cuCtxCreate");
    PROC(CtxDestroy, "cuCtxDestroy");
    PROC(CtxPushCurrent, "cuCtxPushCurrent");
    PROC(CtxPopCurrent, "cuCtxPopCurrent");
    PROC(CtxGetCurrent, "cuCtxGetCurrent");
    PROC(MemAlloc, "cuMemAlloc");
    PROC(MemFree, "cuMemFree");
    ASSERT_EQ(d->Init(0), 0);
}

static void *current_ctx(drv *d)
{
    void *c = NULL;
    ASSERT_EQ(d->CtxGetCurrent(&c), 0);
    return c;
}

TEST(wrap_device_pointer_and_context)
{
    drv d;
    drv_open(&d);
    int cudev = 0;
    ASSERT_EQ(d.DeviceGet(&cudev, 0), 0);
    void *primary = NULL, *mine = NULL, *popped = NULL;
    ASSERT_EQ(d.PrimaryCtxRetain(&primary, cudev), 0);
    const size_t bytes = 1 << 20;
    unsigned long long ptr = 0;
    ASSERT_EQ(d.CtxPushCurrent(primary), 0);
    ASSERT_EQ(d.MemAlloc(&ptr, bytes), 0);
    ASSERT_EQ(d.CtxPopCurrent(&popped), 0);
    /* The caller's own context, current on this thread. Where the driver refuses a second
     * context (some virtual machines answer CUDA_ERROR_INVALID_DEVICE), the primary one
     * pushed by the caller plays it, as PyTorch does. */
    int created = d.CtxCreate(&mine, 0, cudev) == 0;
    if (!created) {
        mine = primary;
        ASSERT_EQ(d.CtxPushCurrent(primary), 0);
        fprintf(stderr, "  cuCtxCreate refused: the caller's context is the primary one\n");
    }
    ASSERT(current_ctx(&d) == mine);

    alloy_device *dev = gpu_open();
    ASSERT(current_ctx(&d) == mine);
    alloy_queue *q = queue(dev);
    alloy_buffer *w = NULL, *b = buf(dev, bytes, ALLOY_MEMORY_DEVICE);
    ASSERT_OK(alloy_buffer_wrap_device(dev, ptr, bytes, &w));
    ASSERT(alloy_buffer_contents(w) == NULL);
    ASSERT(current_ctx(&d) == mine);
    int64_t n = (int64_t)(bytes / 4);
    float *h = malloc(bytes), *back = malloc(bytes);
    for (int64_t i = 0; i < n; i++)
        h[i] = (float)(i % 977) - 3.0f;
    ASSERT_OK(alloy_buffer_write(w, 0, h, bytes));
    ASSERT(current_ctx(&d) == mine);
    copy_f32(q, w, 0, b, 0, n);
    ASSERT(current_ctx(&d) == mine);
    ASSERT_OK(alloy_buffer_read(b, 0, back, bytes));
    ASSERT(memcmp(h, back, bytes) == 0);
    ASSERT(current_ctx(&d) == mine);

    /* not driver memory; past the end of the allocation; zero bytes is fine anywhere */
    alloy_buffer *bad = NULL;
    ASSERT_STATUS(alloy_buffer_wrap_device(dev, 0x1000, 64, &bad), ALLOY_ERR_INVALID_ARGUMENT);
    ASSERT_STATUS(alloy_buffer_wrap_device(dev, ptr + bytes / 2, 8 * bytes, &bad),
                  ALLOY_ERR_INVALID_ARGUMENT);
    ASSERT(strstr(alloy_last_error(), "past the end") != NULL);
    ASSERT(current_ctx(&d) == mine);
    alloy_buffer *empty = NULL;
    ASSERT_OK(alloy_buffer_wrap_device(dev, ptr, 0, &empty));
    ASSERT_OK(alloy_buffer_destroy(empty));

    ASSERT_OK(alloy_buffer_destroy(w)); /* the caller's memory stays the caller's */
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    ASSERT(current_ctx(&d) == mine);
    if (created)
        ASSERT_EQ(d.CtxDestroy(mine), 0);
    else
        ASSERT_EQ(d.CtxPopCurrent(&popped), 0);
    ASSERT(current_ctx(&d) == NULL); /* nothing of alloy's was left on the stack */
    ASSERT_EQ(d.CtxPushCurrent(primary), 0);
    ASSERT_EQ(d.MemFree(ptr), 0);
    ASSERT_EQ(d.CtxPopCurrent(&popped), 0);
    ASSERT_EQ(d.PrimaryCtxRelease(cudev), 0);
    free(h);
    free(back);
    dlclose(d.lib);
}

/* ---------------------------------------------------------------- misuse */

TEST(misuse_statuses)
{
    alloy_device *dev = gpu_open();
    alloy_device *cpu = test_cpu_device(1);
    alloy_queue *q = queue(dev);
    alloy_buffer *a = buf(dev, 4096, ALLOY_MEMORY_DEVICE), *b = buf(dev, 4096, ALLOY_MEMORY_DEVICE);
    alloy_buffer *c = NULL;
    ASSERT_OK(alloy_buffer_create(cpu, 4096, ALLOY_MEMORY_DEVICE, &c));
    int64_t n = 1024;
    alloy_array A = alloy_array_contiguous(a, 0, ALLOY_F32, 1, &n);
    alloy_array B = alloy_array_contiguous(b, 0, ALLOY_F32, 1, &n);
    alloy_array C = alloy_array_contiguous(c, 0, ALLOY_F32, 1, &n);

    alloy_cmdbuf *cb = cmdbuf(q);
    int done = 0;
    ASSERT_STATUS(alloy_cmdbuf_wait(cb), ALLOY_ERR_STATE);
    ASSERT_STATUS(alloy_cmdbuf_poll(cb, &done), ALLOY_ERR_STATE);
    ASSERT_STATUS(alloy_encode_copy(cb, &C, &B), ALLOY_ERR_INVALID_ARGUMENT); /* CPU buffer */
    ASSERT_OK(alloy_encode_copy(cb, &A, &B));
    /* referenced by an uncommitted command buffer: nothing can go */
    ASSERT_STATUS(alloy_buffer_destroy(a), ALLOY_ERR_STATE);
    ASSERT_STATUS(alloy_queue_destroy(q), ALLOY_ERR_STATE);
    ASSERT_STATUS(alloy_device_close(dev), ALLOY_ERR_STATE);
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_STATUS(alloy_cmdbuf_commit(cb), ALLOY_ERR_STATE);
    ASSERT_STATUS(alloy_encode_copy(cb, &A, &B), ALLOY_ERR_STATE);
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb)); /* again: the same answer */
    ASSERT_OK(alloy_cmdbuf_poll(cb, &done));
    ASSERT_EQ(done, 1);
    ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
    ASSERT_OK(alloy_cmdbuf_destroy(cb));

    cb = cmdbuf(q); /* empty command buffers commit and finish */
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_OK(alloy_queue_wait_idle(q));

    ASSERT_OK(alloy_buffer_destroy(a));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_buffer_destroy(c));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    ASSERT_OK(alloy_device_close(cpu));
}

/* ---------------------------------------------------------------- fire and forget */

TEST(fire_and_forget)
{
    alloy_device *dev = gpu_open();
    alloy_queue *q = queue(dev);
    enum { E = 256 };
    const int N = small_run() ? 20 : 400;
    alloy_buffer *src = buf(dev, E * 4, ALLOY_MEMORY_DEVICE);
    alloy_buffer *dst = buf(dev, (size_t)N * E * 4, ALLOY_MEMORY_DEVICE);
    float s[E];
    for (int i = 0; i < E; i++)
        s[i] = 0.25f * (float)i;
    ASSERT_OK(alloy_buffer_write(src, 0, s, sizeof s));
    for (int i = 0; i < N; i++) {
        int64_t n = E;
        alloy_array a = alloy_array_contiguous(src, 0, ALLOY_F32, 1, &n);
        alloy_array d = alloy_array_contiguous(dst, (size_t)i * E * 4, ALLOY_F32, 1, &n);
        alloy_cmdbuf *cb = cmdbuf(q);
        ASSERT_OK(alloy_encode_copy(cb, &a, &d));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
    }
    ASSERT_OK(alloy_queue_wait_idle(q));
    ASSERT_OK(alloy_buffer_destroy(src)); /* every command buffer let go of it */
    float *back = malloc((size_t)N * E * 4);
    ASSERT_OK(alloy_buffer_read(dst, 0, back, (size_t)N * E * 4));
    for (int i = 0; i < N * E; i++)
        ASSERT(back[i] == s[i % E]);
    free(back);
    /* Fire and forget, then destroy the queue as soon as it lets us. */
    for (int i = 0; i < (small_run() ? 5 : 200); i++) {
        alloy_queue *q2 = queue(dev);
        int64_t n = E;
        alloy_array a = alloy_array_contiguous(dst, 0, ALLOY_F32, 1, &n);
        alloy_array d = alloy_array_contiguous(dst, E * 4, ALLOY_F32, 1, &n);
        alloy_cmdbuf *cb = cmdbuf(q2);
        ASSERT_OK(alloy_encode_copy(cb, &a, &d));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        alloy_status st;
        while ((st = alloy_queue_destroy(q2)) == ALLOY_ERR_STATE)
            ;
        ASSERT_OK(st);
    }
    ASSERT_OK(alloy_buffer_destroy(dst));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- waiters */

typedef struct waiter {
    alloy_cmdbuf *cb;
    int poll;
    alloy_status st;
} waiter;

static void *waiter_main(void *p)
{
    waiter *w = p;
    int done = 0;
    while (w->poll && !done)
        if ((w->st = alloy_cmdbuf_poll(w->cb, &done)) != ALLOY_OK)
            return NULL;
    w->st = alloy_cmdbuf_wait(w->cb);
    return NULL;
}

/* Eight threads wait (or poll) on each of a queue's command buffers at once. */
TEST(many_waiters)
{
    alloy_device *dev = gpu_open();
    alloy_queue *q = queue(dev);
    const int64_t n = 512;
    int64_t sh[2] = {n, n};
    alloy_buffer *a = buf(dev, (size_t)(n * n) * 4, ALLOY_MEMORY_DEVICE);
    alloy_buffer *c = buf(dev, (size_t)(n * n) * 4, ALLOY_MEMORY_DEVICE);
    float *h = malloc((size_t)(n * n) * 4);
    for (int64_t i = 0; i < n * n; i++)
        h[i] = (float)(i % 5) - 2.0f;
    ASSERT_OK(alloy_buffer_write(a, 0, h, (size_t)(n * n) * 4));
    alloy_array A = alloy_array_contiguous(a, 0, ALLOY_F32, 2, sh);
    alloy_array Cc = alloy_array_contiguous(c, 0, ALLOY_F32, 2, sh);
    alloy_matmul_desc md = alloy_matmul_desc_default();
    for (int round = 0; round < (small_run() ? 2 : 10); round++) {
        alloy_cmdbuf *cbs[3];
        for (int j = 0; j < 3; j++) {
            cbs[j] = cmdbuf(q);
            ASSERT_OK(alloy_encode_matmul(cbs[j], &md, &A, &A, NULL, &Cc));
            ASSERT_OK(alloy_cmdbuf_commit(cbs[j]));
        }
        pthread_t t[8];
        waiter w[8];
        for (int i = 0; i < 8; i++) {
            w[i].cb = cbs[i % 3];
            w[i].poll = i % 2;
            w[i].st = ALLOY_ERR_STATE;
            ASSERT_EQ(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
        }
        for (int i = 0; i < 8; i++) {
            ASSERT_EQ(pthread_join(t[i], NULL), 0);
            ASSERT_OK(w[i].st);
        }
        for (int j = 0; j < 3; j++)
            ASSERT_OK(alloy_cmdbuf_destroy(cbs[j]));
    }
    free(h);
    ASSERT_OK(alloy_buffer_destroy(a));
    ASSERT_OK(alloy_buffer_destroy(c));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* f32 products take 128 x 128 tiles when those give every SM a block and 64 x 64 tiles
 * otherwise; each element is the same FMA chain either way. A 1536-square product (144
 * large tiles) against a 200-row slice and a 100-column slice of it (24 and 12 large
 * tiles: the small kernel): the shared elements bitwise equal, and all near a float64
 * reference. */
TEST(f32_tilings_bitwise_equal)
{
    alloy_device *dev = gpu_open();
    alloy_queue *q = queue(dev);
    const int64_t n = small_run() ? 320 : 1536, k = 333, rows = 200, cols = 100;
    float *ha = malloc((size_t)(n * k) * 4), *hb = malloc((size_t)(k * n) * 4);
    float *full = malloc((size_t)(n * n) * 4), *part = malloc((size_t)(n * n) * 4);
    ASSERT(ha && hb && full && part);
    test_rng r = {0x711e5};
    for (int64_t i = 0; i < n * k; i++) {
        ha[i] = (float)((int)(rng_next(&r) % 2001) - 1000) / 997.0f;
        hb[i] = (float)((int)(rng_next(&r) % 2001) - 1000) / 991.0f;
    }
    alloy_buffer *a = buf(dev, (size_t)(n * k) * 4, ALLOY_MEMORY_DEVICE);
    alloy_buffer *b = buf(dev, (size_t)(k * n) * 4, ALLOY_MEMORY_DEVICE);
    alloy_buffer *c = buf(dev, (size_t)(n * n) * 4, ALLOY_MEMORY_DEVICE);
    alloy_buffer *d = buf(dev, (size_t)(n * n) * 4, ALLOY_MEMORY_DEVICE);
    ASSERT_OK(alloy_buffer_write(a, 0, ha, (size_t)(n * k) * 4));
    ASSERT_OK(alloy_buffer_write(b, 0, hb, (size_t)(k * n) * 4));
    alloy_matmul_desc md = alloy_matmul_desc_default();
    int64_t sa[2] = {n, k}, sb[2] = {k, n}, sc[2] = {n, n};
    alloy_array A = alloy_array_contiguous(a, 0, ALLOY_F32, 2, sa);
    alloy_array B = alloy_array_contiguous(b, 0, ALLOY_F32, 2, sb);
    alloy_array C = alloy_array_contiguous(c, 0, ALLOY_F32, 2, sc);
    /* the slices: A's first rows into D's first rows; B's first columns into D's last */
    int64_t sar[2] = {rows, k}, sdr[2] = {rows, n}, sbc[2] = {k, cols}, sdc[2] = {n, cols};
    int64_t stb[2] = {n, 1}, std_[2] = {n, 1};
    alloy_array Ar = alloy_array_contiguous(a, 0, ALLOY_F32, 2, sar);
    alloy_array Dr = alloy_array_contiguous(d, 0, ALLOY_F32, 2, sdr);
    alloy_array Bc = alloy_array_strided(b, 0, ALLOY_F32, 2, sbc, stb);
    alloy_array Dc = alloy_array_strided(d, (size_t)(n - cols) * 4, ALLOY_F32, 2, sdc, std_);
    alloy_cmdbuf *cb = cmdbuf(q);
    ASSERT_OK(alloy_encode_matmul(cb, &md, &A, &B, NULL, &C));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_OK(alloy_buffer_read(c, 0, full, (size_t)(n * n) * 4));
    for (int pass = 0; pass < 2; pass++) { /* rows, then columns (they overlap in D) */
        cb = cmdbuf(q);
        if (pass == 0)
            ASSERT_OK(alloy_encode_matmul(cb, &md, &Ar, &B, NULL, &Dr));
        else
            ASSERT_OK(alloy_encode_matmul(cb, &md, &A, &Bc, NULL, &Dc));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_wait(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        ASSERT_OK(alloy_buffer_read(d, 0, part, (size_t)(n * n) * 4));
        const int64_t i1 = pass == 0 ? rows : n, j0 = pass == 0 ? 0 : n - cols;
        int64_t diffs = 0;
        for (int64_t i = 0; i < i1; i++)
            for (int64_t j = j0; j < n; j++) {
                const int64_t jf = pass == 0 ? j : j - (n - cols); /* column of the product */
                diffs += memcmp(&part[i * n + j], &full[i * n + jf], 4) != 0;
            }
        if (diffs)
            FAIL_AT("pass %d: %lld elements differ between the 64 and 128 tilings", pass,
                    (long long)diffs);
    }
    for (int64_t i = 0; i < n; i += 7) /* and the product is right */
        for (int64_t j = 0; j < n; j += 5) {
            double s = 0, m = 0;
            for (int64_t p = 0; p < k; p++) {
                s += (double)ha[i * k + p] * hb[p * n + j];
                m += fabs((double)ha[i * k + p] * hb[p * n + j]);
            }
            if (fabs(full[i * n + j] - s) > 1e-6 * (double)k * m + 1e-30)
                FAIL_AT("C[%lld][%lld] = %.9g, float64 reference %.9g", (long long)i, (long long)j,
                        full[i * n + j], s);
        }
    free(ha), free(hb), free(full), free(part);
    ASSERT_OK(alloy_buffer_destroy(a));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_buffer_destroy(c));
    ASSERT_OK(alloy_buffer_destroy(d));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- concurrency
 * One problem set per thread: a bf16 product with bias on the tensor cores, an f32 product
 * of a transposed view, a batched f16 product with a broadcast operand, a bf16 layer norm
 * and a converting strided copy. Each thread's outputs are first computed alone; then all
 * threads run their sets at once, each with its own queue, many times, with two command
 * buffers in flight, and every output must be bitwise the one computed alone. */

enum { OUTS = 5 };

typedef struct problem {
    alloy_buffer *in[6];
    alloy_buffer *out[OUTS], *out2[OUTS];
    size_t out_bytes[OUTS];
    unsigned char *want[OUTS];
    int64_t mm, nn, kk;
} problem;

static void upload_random(alloy_buffer *b, size_t bytes, alloy_dtype t, test_rng *r)
{
    unsigned char *h = malloc(bytes);
    size_t es = alloy_dtype_size(t);
    for (size_t i = 0; i < bytes / es; i++) {
        double v = rng_uniform(r);
        if (t == ALLOY_F32) {
            float f = (float)v;
            memcpy(h + i * 4, &f, 4);
        } else { /* bf16 or f16 with few fraction bits: exact in both */
            uint16_t bits;
            float f = (float)ldexp(floor(ldexp(v, 6)), -6);
            if (t == ALLOY_BF16) {
                uint32_t u;
                memcpy(&u, &f, 4);
                bits = (uint16_t)(u >> 16);
            } else {
                /* f16 from an f32 with <= 7 significant bits: exponent rebias, exact */
                uint32_t u;
                memcpy(&u, &f, 4);
                uint32_t e = (u >> 23) & 0xff;
                bits = (uint16_t)((u >> 16) & 0x8000u);
                if (e != 0)
                    bits |= (uint16_t)(((e - 112) << 10) | ((u >> 13) & 0x3ff));
            }
            memcpy(h + i * 2, &bits, 2);
        }
    }
    ASSERT_OK(alloy_buffer_write(b, 0, h, bytes));
    free(h);
}

static void problem_make(alloy_device *dev, problem *p, uint64_t seed, int small)
{
    memset(p, 0, sizeof *p);
    test_rng r = {seed};
    p->mm = small ? 64 : 192 + (int64_t)(seed % 7) * 16;
    p->nn = small ? 64 : 256;
    p->kk = small ? 32 : 320;
    const int64_t M = p->mm, N = p->nn, K = p->kk, D = 4096, R = small ? 4 : 48;
    size_t in_bytes[6] = {(size_t)(M * K) * 2, (size_t)(K * N) * 2, (size_t)N * 2,
                          (size_t)(R * D) * 2, (size_t)(2 * D) * 2, (size_t)(4 * 64 * 64) * 2};
    alloy_dtype in_t[6] = {ALLOY_BF16, ALLOY_BF16, ALLOY_BF16, ALLOY_BF16, ALLOY_BF16, ALLOY_F16};
    for (int i = 0; i < 6; i++) {
        p->in[i] = buf(dev, in_bytes[i], ALLOY_MEMORY_DEVICE);
        upload_random(p->in[i], in_bytes[i], in_t[i], &r);
    }
    p->out_bytes[0] = (size_t)(M * N) * 2;       /* bf16 product */
    p->out_bytes[1] = (size_t)(K * K) * 4;       /* f32 product K x K */
    p->out_bytes[2] = (size_t)(4 * 64 * 64) * 4; /* batched f16 -> f32 */
    p->out_bytes[3] = (size_t)(R * D) * 2;       /* layer norm */
    p->out_bytes[4] = (size_t)(N * K) * 4;       /* copy: bf16 (K, N) transposed -> f32 */
    for (int i = 0; i < OUTS; i++) {
        p->out[i] = buf(dev, p->out_bytes[i], ALLOY_MEMORY_DEVICE);
        p->out2[i] = buf(dev, p->out_bytes[i], ALLOY_MEMORY_DEVICE);
    }
}

static void problem_encode(alloy_cmdbuf *cb, const problem *p)
{
    const int64_t M = p->mm, N = p->nn, K = p->kk, D = 4096;
    const int64_t R = (int64_t)(p->out_bytes[3] / 2) / D;
    alloy_matmul_desc md = alloy_matmul_desc_default();
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, sc[2] = {M, N}, sbias = N;
    alloy_array a = alloy_array_contiguous(p->in[0], 0, ALLOY_BF16, 2, sa);
    alloy_array b = alloy_array_contiguous(p->in[1], 0, ALLOY_BF16, 2, sb);
    alloy_array bias = alloy_array_contiguous(p->in[2], 0, ALLOY_BF16, 1, &sbias);
    alloy_array c = alloy_array_contiguous(p->out[0], 0, ALLOY_BF16, 2, sc);
    ASSERT_OK(alloy_encode_matmul(cb, &md, &a, &b, &bias, &c));
    /* copy B (K x N bf16) transposed into an f32 F (N x K), then C2 = 0.5 * F^T @ F (K x K)
     * with F^T a transposed view */
    int64_t snk[2] = {N, K}, skn[2] = {K, N}, skk[2] = {K, K};
    alloy_array bt =
        alloy_array_swap_dims(alloy_array_contiguous(p->in[1], 0, ALLOY_BF16, 2, skn), 0, 1);
    alloy_array f = alloy_array_contiguous(p->out[4], 0, ALLOY_F32, 2, snk);
    ASSERT_OK(alloy_encode_copy(cb, &bt, &f));
    alloy_array ft = alloy_array_swap_dims(f, 0, 1);
    alloy_array c2 = alloy_array_contiguous(p->out[1], 0, ALLOY_F32, 2, skk);
    alloy_matmul_desc md2 = alloy_matmul_desc_default();
    md2.alpha = 0.5;
    ASSERT_OK(alloy_encode_matmul(cb, &md2, &ft, &f, NULL, &c2));
    /* batched f16 -> f32 with B broadcast over the batch */
    int64_t s3a[3] = {4, 64, 64}, s3b[2] = {64, 64};
    alloy_array a3 = alloy_array_contiguous(p->in[5], 0, ALLOY_F16, 3, s3a);
    alloy_array b3 = alloy_array_contiguous(p->in[5], 0, ALLOY_F16, 2, s3b);
    alloy_array c3 = alloy_array_contiguous(p->out[2], 0, ALLOY_F32, 3, s3a);
    ASSERT_OK(alloy_encode_matmul(cb, &md, &a3, &b3, NULL, &c3));
    /* layer norm */
    int64_t sx[2] = {R, D}, sd = D;
    alloy_array x = alloy_array_contiguous(p->in[3], 0, ALLOY_BF16, 2, sx);
    alloy_array y = alloy_array_contiguous(p->out[3], 0, ALLOY_BF16, 2, sx);
    alloy_array g = alloy_array_contiguous(p->in[4], 0, ALLOY_BF16, 1, &sd);
    alloy_array be = alloy_array_contiguous(p->in[4], (size_t)D * 2, ALLOY_BF16, 1, &sd);
    alloy_norm_desc nd = alloy_norm_desc_default();
    ASSERT_OK(alloy_encode_layer_norm(cb, &nd, &x, &g, &be, &y, NULL, NULL));
}

/* out2 = out, as a second command buffer in flight behind the first. */
static void problem_encode_copies(alloy_cmdbuf *cb, const problem *p)
{
    for (int i = 0; i < OUTS; i++) {
        int64_t n = (int64_t)p->out_bytes[i] / 2;
        alloy_array s = alloy_array_contiguous(p->out[i], 0, ALLOY_BF16, 1, &n);
        alloy_array d = alloy_array_contiguous(p->out2[i], 0, ALLOY_BF16, 1, &n);
        ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    }
}

static void poison(const problem *p)
{
    for (int i = 0; i < OUTS; i++) {
        unsigned char *z = malloc(p->out_bytes[i]);
        memset(z, 0xff, p->out_bytes[i]);
        ASSERT_OK(alloy_buffer_write(p->out[i], 0, z, p->out_bytes[i]));
        ASSERT_OK(alloy_buffer_write(p->out2[i], 0, z, p->out_bytes[i]));
        free(z);
    }
}

/* One round: poison, two command buffers in flight, wait for the second only. Returns the
 * index of a mismatching output (vs want) or -1; with want NULL, records the outputs. */
static int problem_round(alloy_queue *q, problem *p, int record)
{
    poison(p);
    alloy_cmdbuf *c1 = cmdbuf(q), *c2 = cmdbuf(q);
    problem_encode(c1, p);
    problem_encode_copies(c2, p);
    ASSERT_OK(alloy_cmdbuf_commit(c1));
    ASSERT_OK(alloy_cmdbuf_commit(c2));
    ASSERT_OK(alloy_cmdbuf_wait(c2));
    int done = 0;
    ASSERT_OK(alloy_cmdbuf_poll(c1, &done)); /* finished before c2, in commit order */
    ASSERT_EQ(done, 1);
    ASSERT_OK(alloy_cmdbuf_destroy(c1));
    ASSERT_OK(alloy_cmdbuf_destroy(c2));
    int bad = -1;
    for (int i = 0; i < OUTS; i++) {
        unsigned char *h = malloc(p->out_bytes[i]), *h2 = malloc(p->out_bytes[i]);
        ASSERT_OK(alloy_buffer_read(p->out[i], 0, h, p->out_bytes[i]));
        ASSERT_OK(alloy_buffer_read(p->out2[i], 0, h2, p->out_bytes[i]));
        if (memcmp(h, h2, p->out_bytes[i]) != 0)
            bad = i;
        if (record) {
            p->want[i] = h;
            h = NULL;
        } else if (memcmp(h, p->want[i], p->out_bytes[i]) != 0)
            bad = i;
        free(h);
        free(h2);
    }
    return bad;
}

static void problem_free(problem *p)
{
    for (int i = 0; i < 6; i++)
        ASSERT_OK(alloy_buffer_destroy(p->in[i]));
    for (int i = 0; i < OUTS; i++) {
        ASSERT_OK(alloy_buffer_destroy(p->out[i]));
        ASSERT_OK(alloy_buffer_destroy(p->out2[i]));
        free(p->want[i]);
    }
}

typedef struct worker {
    alloy_device *dev;
    problem *p;
    int rounds;
    int bad;
    pthread_barrier_t *start;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    alloy_queue *q = queue(w->dev); /* its own queue */
    pthread_barrier_wait(w->start);
    w->bad = -1;
    for (int r = 0; r < w->rounds && w->bad < 0; r++)
        w->bad = problem_round(q, w->p, 0);
    ASSERT_OK(alloy_queue_destroy(q));
    return NULL;
}

TEST(sixteen_threads_bitwise_equal_to_alone)
{
    alloy_device *dev = gpu_open();
    const int small = small_run(), T = small ? 4 : 16, rounds = small ? 2 : 25;
    problem *ps = calloc((size_t)T, sizeof *ps);
    alloy_queue *q = queue(dev);
    for (int t = 0; t < T; t++) {
        problem_make(dev, &ps[t], 1000 + (uint64_t)t, small);
        ASSERT_EQ(problem_round(q, &ps[t], 1), -1); /* alone */
        ASSERT_EQ(problem_round(q, &ps[t], 0), -1); /* alone again: the same bits */
    }
    ASSERT_OK(alloy_queue_destroy(q));
    pthread_t th[16];
    worker w[16];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)T);
    for (int t = 0; t < T; t++) {
        w[t].dev = dev;
        w[t].p = &ps[t];
        w[t].rounds = rounds;
        w[t].start = &start;
        ASSERT_EQ(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        ASSERT_EQ(pthread_join(th[t], NULL), 0);
        if (w[t].bad >= 0)
            FAIL_AT("thread %d: output %d differs from the run alone", t, w[t].bad);
    }
    pthread_barrier_destroy(&start);
    for (int t = 0; t < T; t++)
        problem_free(&ps[t]);
    free(ps);
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- one queue, many threads
 * Each command buffer copies its source into one scratch buffer shared by all, then the
 * scratch into its own destination: if two command buffers' launches interleaved on the
 * stream, a destination would receive another thread's source. */

typedef struct sharer {
    alloy_queue *q;
    alloy_buffer *src, *dst, *scratch;
    int rounds, id, bad;
} sharer;

static void *sharer_main(void *arg)
{
    sharer *s = arg;
    const int64_t n = 4096;
    alloy_array a = alloy_array_contiguous(s->src, 0, ALLOY_F32, 1, &n);
    alloy_array m = alloy_array_contiguous(s->scratch, 0, ALLOY_F32, 1, &n);
    alloy_array d = alloy_array_contiguous(s->dst, 0, ALLOY_F32, 1, &n);
    float *h = malloc((size_t)n * 4);
    s->bad = 0;
    for (int r = 0; r < s->rounds && !s->bad; r++) {
        alloy_cmdbuf *cb = cmdbuf(s->q);
        ASSERT_OK(alloy_encode_copy(cb, &a, &m));
        ASSERT_OK(alloy_encode_copy(cb, &m, &d));
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_wait(cb));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        ASSERT_OK(alloy_buffer_read(s->dst, 0, h, (size_t)n * 4));
        for (int64_t i = 0; i < n; i++)
            if (h[i] != (float)(s->id * 100000 + i))
                s->bad = 1;
    }
    free(h);
    return NULL;
}

TEST(shared_queue_never_interleaves)
{
    alloy_device *dev = gpu_open();
    alloy_queue *q = queue(dev);
    enum { T = 8 };
    const int64_t n = 4096;
    alloy_buffer *scratch = buf(dev, (size_t)n * 4, ALLOY_MEMORY_DEVICE);
    sharer s[T];
    pthread_t th[T];
    float *h = malloc((size_t)n * 4);
    for (int t = 0; t < T; t++) {
        s[t].q = q;
        s[t].scratch = scratch;
        s[t].src = buf(dev, (size_t)n * 4, ALLOY_MEMORY_DEVICE);
        s[t].dst = buf(dev, (size_t)n * 4, ALLOY_MEMORY_DEVICE);
        for (int64_t i = 0; i < n; i++)
            h[i] = (float)(t * 100000 + i);
        ASSERT_OK(alloy_buffer_write(s[t].src, 0, h, (size_t)n * 4));
        s[t].rounds = small_run() ? 10 : 300;
        s[t].id = t;
        ASSERT_EQ(pthread_create(&th[t], NULL, sharer_main, &s[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        ASSERT_EQ(pthread_join(th[t], NULL), 0);
        if (s[t].bad)
            FAIL_AT("thread %d received another command buffer's data", t);
        ASSERT_OK(alloy_buffer_destroy(s[t].src));
        ASSERT_OK(alloy_buffer_destroy(s[t].dst));
    }
    free(h);
    ASSERT_OK(alloy_buffer_destroy(scratch));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST_LIST{
    TEST_ENTRY(device_basics),
    TEST_ENTRY(buffers_round_trip),
    TEST_ENTRY(wrap_host_memory),
    TEST_ENTRY(wrap_device_pointer_and_context),
    TEST_ENTRY(misuse_statuses),
    TEST_ENTRY(fire_and_forget),
    TEST_ENTRY(many_waiters),
    TEST_ENTRY(f32_tilings_bitwise_equal),
    TEST_ENTRY(sixteen_threads_bitwise_equal_to_alone),
    TEST_ENTRY(shared_queue_never_interleaves),
};

int main(int argc, char **argv)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CUDA;
    alloy_device *dev = NULL;
    alloy_status s = alloy_device_open(&d, &dev);
    if (s == ALLOY_ERR_NO_DEVICE) {
        printf("SKIP: no CUDA device: %s\n", alloy_last_error());
        return 0;
    }
    ASSERT_OK(s);
    ASSERT_OK(alloy_device_close(dev));
    return run_tests(argc, argv);
}
