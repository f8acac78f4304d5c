/* The API surface without operations: status text, version, dtypes, devices and their
 * descriptors, buffers, array helpers, the allocator hook (every allocation failure is
 * ALLOY_ERR_OUT_OF_MEMORY and changes nothing), and which calls give which status.
 *
 * Status codes a CPU build can produce, and the test that produces each:
 *   ALLOY_ERR_INVALID_ARGUMENT  device_desc_errors, buffers, array_invalid_rank_rejected,
 *                               and the bad-input tests of test_copy and test_matmul
 *   ALLOY_ERR_UNSUPPORTED       unsupported_calls (and dtype cases in test_copy/test_matmul)
 *   ALLOY_ERR_OUT_OF_MEMORY     oom_* below (a failing allocator hook), huge_buffer_oom
 *   ALLOY_ERR_BUSY              test_misuse: busy_deterministic, two_encoders_race
 *   ALLOY_ERR_STATE             test_misuse (commit/poll/wait order, lifetimes, fork)
 *   ALLOY_ERR_NO_DEVICE         no_device below (CUDA in a build without it, bad ordinals)
 *   ALLOY_ERR_DEVICE            cannot happen on the CPU backend: it means a GPU failed or
 *                               was lost, and a CPU device has no device to lose. Its text
 *                               is still checked in status_strings. */
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>

TEST(status_strings)
{
    const alloy_status all[] = {ALLOY_OK,
                                ALLOY_ERR_INVALID_ARGUMENT,
                                ALLOY_ERR_UNSUPPORTED,
                                ALLOY_ERR_OUT_OF_MEMORY,
                                ALLOY_ERR_BUSY,
                                ALLOY_ERR_STATE,
                                ALLOY_ERR_DEVICE,
                                ALLOY_ERR_NO_DEVICE};
    const int n = (int)(sizeof all / sizeof all[0]);
    ASSERT_EQ(ALLOY_OK, 0);
    for (int i = 0; i < n; i++) {
        const char *s = alloy_status_string(all[i]);
        ASSERT(s != NULL && *s);
        for (int j = 0; j < i; j++)
            ASSERT(strcmp(s, alloy_status_string(all[j])) != 0);
    }
    ASSERT(mentions(alloy_status_string(ALLOY_ERR_OUT_OF_MEMORY), "memory"));
    ASSERT(mentions(alloy_status_string(ALLOY_ERR_BUSY), "busy"));
    /* Values outside the enum still give text, never NULL. */
    const char *u = alloy_status_string((alloy_status)1234);
    ASSERT(u != NULL && *u);
    u = alloy_status_string((alloy_status)-1);
    ASSERT(u != NULL && *u);
}

TEST(version)
{
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", ALLOY_VERSION_MAJOR, ALLOY_VERSION_MINOR,
             ALLOY_VERSION_PATCH);
    ASSERT(alloy_version() != NULL);
    if (strcmp(alloy_version(), want) != 0)
        FAIL_AT("alloy_version() is \"%s\", the header says %s", alloy_version(), want);
}

TEST(dtype_sizes)
{
    ASSERT_EQ(alloy_dtype_size(ALLOY_F32), sizeof(float));
    ASSERT_EQ(alloy_dtype_size(ALLOY_F64), sizeof(double));
    ASSERT_EQ(alloy_dtype_size(ALLOY_F16), sizeof(uint16_t));
    ASSERT_EQ(alloy_dtype_size(ALLOY_BF16), sizeof(uint16_t));
    ASSERT_EQ(alloy_dtype_size(ALLOY_I32), sizeof(int32_t));
    ASSERT_EQ(alloy_dtype_size((alloy_dtype)5), 0);
    ASSERT_EQ(alloy_dtype_size((alloy_dtype)-1), 0);
    ASSERT_EQ(alloy_dtype_size((alloy_dtype)100), 0);
}

/* The last error is per thread: a failure on one thread never shows on another. */
static void *fail_on_thread(void *arg)
{
    char *out = arg;
    if (strcmp(alloy_last_error(), "") != 0) {
        snprintf(out, 256, "new thread's last error not empty: %s", alloy_last_error());
        return NULL;
    }
    alloy_queue *q = NULL;
    if (alloy_queue_create(NULL, &q) != ALLOY_ERR_INVALID_ARGUMENT) {
        snprintf(out, 256, "queue_create(NULL) did not fail");
        return NULL;
    }
    snprintf(out, 256, "%s", alloy_last_error());
    return NULL;
}

TEST(last_error_is_per_thread)
{
    alloy_device *dev = NULL;
    ASSERT_FAILS(alloy_device_open(NULL, NULL), ALLOY_ERR_INVALID_ARGUMENT, "out");
    char mine[256];
    snprintf(mine, sizeof mine, "%s", alloy_last_error());
    ASSERT(*mine);
    char theirs[256] = "";
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, fail_on_thread, theirs), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT(mentions(theirs, "queue") || mentions(theirs, "device"));
    /* The other thread's failure did not overwrite this thread's text. */
    ASSERT(strcmp(alloy_last_error(), mine) == 0);
    /* A successful call leaves the last failure in place. */
    ASSERT_OK(alloy_device_open(NULL, &dev));
    ASSERT(strcmp(alloy_last_error(), mine) == 0);
    ASSERT_OK(alloy_device_close(dev));
}

TEST(device_defaults)
{
    alloy_device_desc d = alloy_device_desc_default();
    ASSERT_EQ(d.backend, ALLOY_BACKEND_AUTO);
    ASSERT_EQ(d.ordinal, 0);
    ASSERT_EQ(d.cpu_workers, 0);
    ASSERT(d.allocator == NULL);
    ASSERT_EQ(d.cpu_kernel, ALLOY_CPU_KERNEL_AUTO);

    /* NULL means the defaults: AUTO, which is the CPU unless a CUDA device is usable. */
    alloy_device *dev = (alloy_device *)&d; /* must be overwritten */
    ASSERT_OK(alloy_device_open(NULL, &dev));
    ASSERT(dev != NULL && dev != (alloy_device *)&d);
    alloy_device_desc cuda = alloy_device_desc_default();
    cuda.backend = ALLOY_BACKEND_CUDA;
    alloy_device *gpu = NULL;
    int have_gpu = alloy_device_open(&cuda, &gpu) == ALLOY_OK;
    ASSERT_OK(alloy_device_close(gpu));
    ASSERT_EQ(alloy_device_backend(dev), have_gpu ? ALLOY_BACKEND_CUDA : ALLOY_BACKEND_CPU);
    ASSERT(alloy_device_name(dev) != NULL && *alloy_device_name(dev));
    ASSERT(alloy_device_workers(dev) >= 1);
    ASSERT_OK(alloy_device_close(dev));
    ASSERT_OK(alloy_device_close(NULL));

    /* An explicit worker count is honoured. */
    for (int w = 1; w <= 5; w += 2) {
        d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_workers = w;
        ASSERT_OK(alloy_device_open(&d, &dev));
        ASSERT_EQ(alloy_device_workers(dev), w);
        ASSERT_EQ(alloy_device_backend(dev), ALLOY_BACKEND_CPU);
        ASSERT_OK(alloy_device_close(dev));
    }
}

TEST(device_desc_errors)
{
    alloy_device *dev = NULL;
    alloy_device_desc d;

    d = alloy_device_desc_default();
    d.cpu_workers = -1;
    dev = (alloy_device *)&d;
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_INVALID_ARGUMENT, "cpu_workers");
    ASSERT(dev == NULL);

    d = alloy_device_desc_default();
    d.ordinal = -1;
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_INVALID_ARGUMENT, "ordinal");

    d = alloy_device_desc_default();
    d.cpu_kernel = (alloy_cpu_kernel)42;
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_INVALID_ARGUMENT, "cpu_kernel");

    d = alloy_device_desc_default();
    d.backend = (alloy_backend)42;
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_INVALID_ARGUMENT, "backend");

    alloy_allocator half = {NULL, NULL, NULL};
    d = alloy_device_desc_default();
    d.allocator = &half;
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_INVALID_ARGUMENT, "allocator");

    ASSERT_FAILS(alloy_device_open(NULL, NULL), ALLOY_ERR_INVALID_ARGUMENT, "out");
}

TEST(no_device)
{
    alloy_device *dev = NULL;
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CUDA;
    dev = (alloy_device *)&d;
    alloy_status s = alloy_device_open(&d, &dev);
    if (s == ALLOY_OK) {
        /* a CUDA build on a machine with a GPU: there is a device after all */
        fprintf(stderr, "  (a CUDA device is present: %s)\n", alloy_device_name(dev));
        ASSERT_OK(alloy_device_close(dev));
    } else {
        /* this CUDA-less build, or no usable GPU: NO_DEVICE, naming CUDA */
        ASSERT_FAILS(s, ALLOY_ERR_NO_DEVICE, "CUDA");
        ASSERT(dev == NULL);
    }
    d.ordinal = 1000; /* no machine has that many GPUs */
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_NO_DEVICE, "CUDA");
    ASSERT(dev == NULL);

    d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.ordinal = 1;
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_NO_DEVICE, "ordinal");

    d = alloy_device_desc_default();
    d.ordinal = 3; /* AUTO with no GPU: there is no device 3 */
    ASSERT_FAILS(alloy_device_open(&d, &dev), ALLOY_ERR_NO_DEVICE, "ordinal");
}

/* Forced kernels open where the CPU has the instructions (per the compiler's own CPU
 * feature test, independent of alloy's CPUID code) and answer UNSUPPORTED elsewhere. */
TEST(cpu_kernel_choice)
{
    struct {
        alloy_cpu_kernel k;
        const char *name;
        int have;
    } ks[] = {
        {ALLOY_CPU_KERNEL_PORTABLE, "portable", 1},
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        {ALLOY_CPU_KERNEL_AVX2, "avx2",
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")},
        {ALLOY_CPU_KERNEL_AVX512, "avx512", __builtin_cpu_supports("avx512f")},
#else
        {ALLOY_CPU_KERNEL_AVX2, "avx2", 0},
        {ALLOY_CPU_KERNEL_AVX512, "avx512", 0},
#endif
    };
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        alloy_device_desc d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_workers = 1;
        d.cpu_kernel = ks[i].k;
        alloy_device *dev = NULL;
        alloy_status s = alloy_device_open(&d, &dev);
        if (ks[i].have) {
            if (s != ALLOY_OK)
                FAIL_AT("kernel %s: the CPU has it but open said %s (%s)", ks[i].name,
                        alloy_status_string(s), alloy_last_error());
            if (!strstr(alloy_device_name(dev), ks[i].name))
                FAIL_AT("kernel %s: device name \"%s\" does not say so", ks[i].name,
                        alloy_device_name(dev));
            ASSERT_OK(alloy_device_close(dev));
        } else {
            ASSERT_EQ(s, ALLOY_ERR_UNSUPPORTED);
            ASSERT(dev == NULL);
            ASSERT(*alloy_last_error());
        }
    }
}

TEST(buffers)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_buffer *b = NULL, *z = NULL, *h = NULL;

    ASSERT_OK(alloy_buffer_create(dev, 1000, ALLOY_MEMORY_DEVICE, &b));
    ASSERT_EQ(alloy_buffer_size(b), 1000);
    ASSERT(alloy_buffer_contents(b) != NULL);
    ASSERT_EQ((uintptr_t)alloy_buffer_contents(b) % 64, 0);
    ASSERT_OK(alloy_buffer_create(dev, 0, ALLOY_MEMORY_DEVICE, &z));
    ASSERT_EQ(alloy_buffer_size(z), 0);
    ASSERT_OK(alloy_buffer_create(dev, 100, ALLOY_MEMORY_HOST, &h));
    ASSERT(alloy_buffer_contents(h) != NULL);
    ASSERT_EQ((uintptr_t)alloy_buffer_contents(h) % 64, 0);

    /* write/read round trip, at an offset, against the host view */
    unsigned char src[256], dst[256];
    for (int i = 0; i < 256; i++)
        src[i] = (unsigned char)(i * 7 + 3);
    ASSERT_OK(alloy_buffer_write(b, 700, src, 256));
    ASSERT(memcmp((char *)alloy_buffer_contents(b) + 700, src, 256) == 0);
    memset(dst, 0, sizeof dst);
    ASSERT_OK(alloy_buffer_read(b, 700, dst, 256));
    ASSERT(memcmp(src, dst, 256) == 0);
    ASSERT_OK(alloy_buffer_write(b, 1000, NULL, 0)); /* empty at the very end */
    ASSERT_OK(alloy_buffer_read(b, 1000, NULL, 0));

    /* out of range, overflowing, NULL */
    ASSERT_FAILS(alloy_buffer_write(b, 745, src, 256), ALLOY_ERR_INVALID_ARGUMENT, "buffer");
    ASSERT_FAILS(alloy_buffer_read(b, 1001, dst, 0), ALLOY_ERR_INVALID_ARGUMENT, "buffer");
    ASSERT_FAILS(alloy_buffer_read(b, SIZE_MAX, dst, 2), ALLOY_ERR_INVALID_ARGUMENT, "buffer");
    ASSERT_FAILS(alloy_buffer_write(b, 8, src, SIZE_MAX - 4), ALLOY_ERR_INVALID_ARGUMENT,
                 "buffer");
    ASSERT_FAILS(alloy_buffer_write(b, 0, NULL, 4), ALLOY_ERR_INVALID_ARGUMENT, "NULL");
    ASSERT_FAILS(alloy_buffer_read(b, 0, NULL, 4), ALLOY_ERR_INVALID_ARGUMENT, "NULL");
    ASSERT_FAILS(alloy_buffer_write(NULL, 0, src, 4), ALLOY_ERR_INVALID_ARGUMENT, "NULL");
    ASSERT_FAILS(alloy_buffer_read(NULL, 0, dst, 4), ALLOY_ERR_INVALID_ARGUMENT, "NULL");
    /* the failed write changed nothing */
    ASSERT(memcmp((char *)alloy_buffer_contents(b) + 700, src, 256) == 0);

    alloy_buffer *no = b;
    ASSERT_FAILS(alloy_buffer_create(dev, 8, (alloy_memory)7, &no), ALLOY_ERR_INVALID_ARGUMENT,
                 "memory");
    ASSERT(no == NULL);
    no = b;
    ASSERT_FAILS(alloy_buffer_create(NULL, 8, ALLOY_MEMORY_DEVICE, &no),
                 ALLOY_ERR_INVALID_ARGUMENT, "device");
    ASSERT(no == NULL);
    ASSERT_FAILS(alloy_buffer_create(dev, 8, ALLOY_MEMORY_DEVICE, NULL),
                 ALLOY_ERR_INVALID_ARGUMENT, "out");

    /* wrapped memory is used in place */
    double host[16];
    alloy_buffer *w = NULL;
    ASSERT_OK(alloy_buffer_wrap_host(dev, host, sizeof host, &w));
    ASSERT(alloy_buffer_contents(w) == (void *)host);
    ASSERT_EQ(alloy_buffer_size(w), sizeof host);
    double v = 2.5;
    ASSERT_OK(alloy_buffer_write(w, 3 * sizeof(double), &v, sizeof v));
    ASSERT(host[3] == 2.5);
    alloy_buffer *wz = NULL;
    ASSERT_OK(alloy_buffer_wrap_host(dev, NULL, 0, &wz));
    ASSERT_EQ(alloy_buffer_size(wz), 0);
    ASSERT_OK(alloy_buffer_destroy(wz));
    no = b;
    ASSERT_FAILS(alloy_buffer_wrap_host(dev, NULL, 8, &no), ALLOY_ERR_INVALID_ARGUMENT, "ptr");
    ASSERT(no == NULL);

    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_buffer_destroy(z));
    ASSERT_OK(alloy_buffer_destroy(h));
    ASSERT_OK(alloy_buffer_destroy(w));
    ASSERT_OK(alloy_buffer_destroy(NULL));
    ASSERT_OK(alloy_device_close(dev));
}

TEST(unsupported_calls)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_buffer *b = (alloy_buffer *)dev;
    uint64_t fake = 0x10000;
    ASSERT_FAILS(alloy_buffer_wrap_device(dev, fake, 64, &b), ALLOY_ERR_UNSUPPORTED,
                 "alloy_buffer_wrap_host");
    ASSERT(b == NULL);
    ASSERT_FAILS(alloy_buffer_wrap_device(dev, 0, 64, &b), ALLOY_ERR_INVALID_ARGUMENT,
                 "device_ptr");

    /* copy: i32 only to i32; matmul: a and b must share a dtype. */
    b = test_buffer(dev, 4096);
    alloy_queue *q = test_queue(dev);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    int64_t shape[2] = {4, 4};
    alloy_array f = alloy_array_contiguous(b, 0, ALLOY_F32, 2, shape);
    alloy_array i = alloy_array_contiguous(b, 1024, ALLOY_I32, 2, shape);
    alloy_array h = alloy_array_contiguous(b, 2048, ALLOY_F16, 2, shape);
    alloy_array c = alloy_array_contiguous(b, 3072, ALLOY_F32, 2, shape);
    ASSERT_FAILS(alloy_encode_copy(cb, &f, &i), ALLOY_ERR_UNSUPPORTED, "i32");
    ASSERT_FAILS(alloy_encode_copy(cb, &i, &f), ALLOY_ERR_UNSUPPORTED, "i32");
    alloy_matmul_desc md = alloy_matmul_desc_default();
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &f, &h, NULL, &c), ALLOY_ERR_UNSUPPORTED, "b");
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_device_close(dev));
}

TEST(null_handles)
{
    alloy_queue *q = NULL;
    alloy_cmdbuf *cb = NULL;
    int done = 7;
    ASSERT_FAILS(alloy_queue_create(NULL, &q), ALLOY_ERR_INVALID_ARGUMENT, "device");
    ASSERT_FAILS(alloy_cmdbuf_create(NULL, &cb), ALLOY_ERR_INVALID_ARGUMENT, "queue");
    ASSERT_FAILS(alloy_queue_wait_idle(NULL), ALLOY_ERR_INVALID_ARGUMENT, "queue");
    ASSERT_FAILS(alloy_cmdbuf_commit(NULL), ALLOY_ERR_INVALID_ARGUMENT, "command");
    ASSERT_FAILS(alloy_cmdbuf_wait(NULL), ALLOY_ERR_INVALID_ARGUMENT, "command");
    ASSERT_FAILS(alloy_cmdbuf_poll(NULL, &done), ALLOY_ERR_INVALID_ARGUMENT, "command");
    ASSERT_OK(alloy_queue_destroy(NULL));
    ASSERT_OK(alloy_cmdbuf_destroy(NULL));
    ASSERT(alloy_cmdbuf_error(NULL) != NULL);
    ASSERT(alloy_device_name(NULL) != NULL);

    alloy_device *dev = test_cpu_device(1);
    ASSERT_FAILS(alloy_queue_create(dev, NULL), ALLOY_ERR_INVALID_ARGUMENT, "out");
    q = test_queue(dev);
    ASSERT_FAILS(alloy_cmdbuf_create(q, NULL), ALLOY_ERR_INVALID_ARGUMENT, "out");
    cb = test_cmdbuf(q);
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_FAILS(alloy_cmdbuf_poll(cb, NULL), ALLOY_ERR_INVALID_ARGUMENT, "done");
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- array helpers */

TEST(array_helpers)
{
    alloy_buffer *buf = (alloy_buffer *)(uintptr_t)0x1000; /* never dereferenced here */
    for (int rank = 0; rank <= ALLOY_MAX_RANK; rank++) {
        int64_t shape[ALLOY_MAX_RANK];
        for (int d = 0; d < rank; d++)
            shape[d] = 2 + d; /* 2, 3, 4, ... */
        alloy_array a = alloy_array_contiguous(buf, 24, ALLOY_F64, rank, rank ? shape : NULL);
        ASSERT_EQ(a.rank, rank);
        ASSERT(a.buffer == buf);
        ASSERT_EQ(a.offset, 24);
        ASSERT_EQ(a.dtype, ALLOY_F64);
        int64_t expect_count = 1;
        for (int d = 0; d < rank; d++)
            expect_count *= shape[d];
        ASSERT_EQ(alloy_array_count(&a), expect_count);
        /* row major: stride of d = product of the later extents */
        for (int d = 0; d < rank; d++) {
            int64_t s = 1;
            for (int e = d + 1; e < rank; e++)
                s *= shape[e];
            ASSERT_EQ(a.shape[d], shape[d]);
            ASSERT_EQ(a.strides[d], s);
        }
        /* swap every pair and back */
        for (int d0 = 0; d0 < rank; d0++)
            for (int d1 = 0; d1 < rank; d1++) {
                alloy_array t = alloy_array_swap_dims(a, d0, d1);
                ASSERT_EQ(t.rank, rank);
                ASSERT_EQ(t.shape[d0], a.shape[d1]);
                ASSERT_EQ(t.shape[d1], a.shape[d0]);
                ASSERT_EQ(t.strides[d0], a.strides[d1]);
                ASSERT_EQ(t.strides[d1], a.strides[d0]);
                for (int e = 0; e < rank; e++)
                    if (e != d0 && e != d1) {
                        ASSERT_EQ(t.shape[e], a.shape[e]);
                        ASSERT_EQ(t.strides[e], a.strides[e]);
                    }
                ASSERT_EQ(alloy_array_count(&t), expect_count);
                ASSERT(t.buffer == buf && t.offset == 24 && t.dtype == ALLOY_F64);
            }
        /* out-of-range dims give rank -1 */
        ASSERT_EQ(alloy_array_swap_dims(a, -1, 0).rank, -1);
        ASSERT_EQ(alloy_array_swap_dims(a, 0, rank).rank, -1);
        ASSERT_EQ(alloy_array_swap_dims(a, rank, rank).rank, -1);
    }

    int64_t shape[3] = {4, 0, 5}, strides[3] = {7, 100, 0};
    alloy_array s = alloy_array_strided(buf, 6, ALLOY_F16, 3, shape, strides);
    ASSERT_EQ(s.rank, 3);
    ASSERT_EQ(s.offset, 6);
    ASSERT_EQ(s.dtype, ALLOY_F16);
    for (int d = 0; d < 3; d++) {
        ASSERT_EQ(s.shape[d], shape[d]);
        ASSERT_EQ(s.strides[d], strides[d]);
    }
    ASSERT_EQ(alloy_array_count(&s), 0); /* an extent of 0 */
    int64_t one[1] = {9}, ones[1] = {3};
    alloy_array v = alloy_array_strided(buf, 0, ALLOY_I32, 1, one, ones);
    ASSERT_EQ(alloy_array_count(&v), 9);

    /* invalid ranks and NULL shapes give rank -1 and count 0 */
    alloy_array bad[6];
    bad[0] = alloy_array_contiguous(buf, 0, ALLOY_F32, -1, shape);
    bad[1] = alloy_array_contiguous(buf, 0, ALLOY_F32, ALLOY_MAX_RANK + 1, shape);
    bad[2] = alloy_array_contiguous(buf, 0, ALLOY_F32, 2, NULL);
    bad[3] = alloy_array_strided(buf, 0, ALLOY_F32, 2, shape, NULL);
    bad[4] = alloy_array_strided(buf, 0, ALLOY_F32, 2, NULL, strides);
    bad[5] = alloy_array_strided(buf, 0, ALLOY_F32, 9, shape, strides);
    for (int i = 0; i < 6; i++) {
        ASSERT_EQ(bad[i].rank, -1);
        ASSERT_EQ(alloy_array_count(&bad[i]), 0);
        ASSERT_EQ(alloy_array_swap_dims(bad[i], 0, 0).rank, -1);
    }
    /* rank 0 with NULL shape is a scalar */
    alloy_array sc = alloy_array_contiguous(buf, 0, ALLOY_F32, 0, NULL);
    ASSERT_EQ(sc.rank, 0);
    ASSERT_EQ(alloy_array_count(&sc), 1);
    sc = alloy_array_strided(buf, 0, ALLOY_F32, 0, NULL, NULL);
    ASSERT_EQ(sc.rank, 0);
    ASSERT_EQ(alloy_array_count(NULL), 0);
    /* a negative extent is not a count */
    int64_t neg[2] = {3, -2};
    alloy_array n = alloy_array_contiguous(buf, 0, ALLOY_F32, 2, neg);
    ASSERT_EQ(alloy_array_count(&n), 0);
}

/* Arrays of rank -1 (from the helpers) are rejected by encodes, and so are hand-made
 * ranks outside 0..8 on a real buffer. */
TEST(array_invalid_rank_rejected)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_buffer *b = test_buffer(dev, 1024);
    memset(alloy_buffer_contents(b), 0x5a, 1024);
    alloy_queue *q = test_queue(dev);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    int64_t shape[2] = {4, 4};
    alloy_array good = alloy_array_contiguous(b, 0, ALLOY_F32, 2, shape);
    alloy_array out = alloy_array_contiguous(b, 512, ALLOY_F32, 2, shape);
    alloy_array bad = alloy_array_contiguous(b, 0, ALLOY_F32, 9, shape);
    ASSERT_EQ(bad.rank, -1);
    ASSERT_FAILS(alloy_encode_copy(cb, &bad, &out), ALLOY_ERR_INVALID_ARGUMENT, "src");
    bad.buffer = b; /* a real buffer, still rank -1 */
    ASSERT_FAILS(alloy_encode_copy(cb, &bad, &out), ALLOY_ERR_INVALID_ARGUMENT, "src.rank");
    ASSERT_FAILS(alloy_encode_copy(cb, &good, &bad), ALLOY_ERR_INVALID_ARGUMENT, "dst.rank");
    alloy_array big = good;
    big.rank = 9;
    ASSERT_FAILS(alloy_encode_copy(cb, &big, &out), ALLOY_ERR_INVALID_ARGUMENT, "src.rank");
    alloy_matmul_desc md = alloy_matmul_desc_default();
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &bad, &good, NULL, &out),
                 ALLOY_ERR_INVALID_ARGUMENT, "a.rank");
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &good, &bad, NULL, &out),
                 ALLOY_ERR_INVALID_ARGUMENT, "b.rank");
    ASSERT_FAILS(alloy_encode_matmul(cb, &md, &good, &good, NULL, &bad),
                 ALLOY_ERR_INVALID_ARGUMENT, "c.rank");
    alloy_array swapped = alloy_array_swap_dims(good, 0, 2);
    ASSERT_FAILS(alloy_encode_copy(cb, &swapped, &out), ALLOY_ERR_INVALID_ARGUMENT, "src");
    /* nothing was recorded: the command buffer runs empty and memory is untouched */
    test_commit_wait(cb);
    for (int i = 0; i < 1024; i++)
        ASSERT_EQ(((unsigned char *)alloy_buffer_contents(b))[i], 0x5a);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_device_close(dev));
}

/* alloy_cmdbuf_error is "" for a command buffer that succeeded, empty or not. */
TEST(cmdbuf_error_empty_on_success)
{
    alloy_device *dev = test_cpu_device(0);
    alloy_queue *q = test_queue(dev);
    alloy_cmdbuf *cb = test_cmdbuf(q);
    ASSERT(alloy_cmdbuf_error(cb) != NULL);
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
    ASSERT_OK(alloy_cmdbuf_destroy(cb));

    alloy_buffer *b = test_buffer(dev, 256);
    float *p = alloy_buffer_contents(b);
    for (int i = 0; i < 8; i++)
        p[i] = (float)i;
    int64_t n = 8;
    alloy_array s = alloy_array_contiguous(b, 0, ALLOY_F32, 1, &n);
    alloy_array d = alloy_array_contiguous(b, 128, ALLOY_F32, 1, &n);
    cb = test_cmdbuf(q);
    ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT(strcmp(alloy_cmdbuf_error(cb), "") == 0);
    int done = 0;
    ASSERT_OK(alloy_cmdbuf_poll(cb, &done));
    ASSERT_EQ(done, 1);
    ASSERT_OK(alloy_cmdbuf_wait(cb)); /* waiting again is fine */
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
    for (int i = 0; i < 8; i++)
        ASSERT(p[32 + i] == (float)i);
    ASSERT_OK(alloy_queue_wait_idle(q));
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_buffer_destroy(b));
    ASSERT_OK(alloy_device_close(dev));
}

/* ---------------------------------------------------------------- allocator hook */

/* Counts allocations, fails the one numbered fail_at, checks that free gets back the
 * size alloc was given, and that alignment requests are powers of two up to 4096. */
typedef struct fail_alloc {
    _Atomic long calls;
    _Atomic long fail_at; /* -1: never */
    _Atomic long live;
    _Atomic long failed;
    _Atomic long bad_free; /* frees whose size differs from the allocation's */
    _Atomic long bad_align;
} fail_alloc;

static void *fa_alloc(void *ctx, size_t bytes, size_t align)
{
    fail_alloc *fa = ctx;
    long n = atomic_fetch_add(&fa->calls, 1);
    if (align == 0 || (align & (align - 1)) || align > 4096)
        atomic_fetch_add(&fa->bad_align, 1);
    if (n == atomic_load(&fa->fail_at)) {
        atomic_fetch_add(&fa->failed, 1);
        return NULL;
    }
    size_t hdr = align < 16 ? 16 : align;
    void *raw = NULL;
    if (posix_memalign(&raw, hdr, hdr + bytes) != 0)
        return NULL;
    char *p = (char *)raw + hdr;
    ((size_t *)p)[-1] = bytes;
    ((size_t *)p)[-2] = hdr;
    atomic_fetch_add(&fa->live, 1);
    return p;
}

static void fa_free(void *ctx, void *ptr, size_t bytes)
{
    fail_alloc *fa = ctx;
    if (!ptr)
        return;
    char *p = ptr;
    if (((size_t *)p)[-1] != bytes)
        atomic_fetch_add(&fa->bad_free, 1);
    size_t hdr = ((size_t *)p)[-2];
    atomic_fetch_sub(&fa->live, 1);
    free(p - hdr);
}

static void fa_init(fail_alloc *fa, alloy_allocator *a)
{
    atomic_init(&fa->calls, 0);
    atomic_init(&fa->fail_at, -1);
    atomic_init(&fa->live, 0);
    atomic_init(&fa->failed, 0);
    atomic_init(&fa->bad_free, 0);
    atomic_init(&fa->bad_align, 0);
    a->ctx = fa;
    a->alloc = fa_alloc;
    a->free = fa_free;
}

/* Fail the n-th allocation from now (0: the next one). */
static void fa_arm(fail_alloc *fa, long n) { atomic_store(&fa->fail_at, atomic_load(&fa->calls) + n); }
static void fa_disarm(fail_alloc *fa) { atomic_store(&fa->fail_at, -1); }

static alloy_device *fa_device(fail_alloc *fa, alloy_allocator *a, int workers)
{
    fa_init(fa, a);
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = workers;
    d.allocator = a;
    alloy_device *dev = NULL;
    ASSERT_OK(alloy_device_open(&d, &dev));
    ASSERT(atomic_load(&fa->live) > 0); /* the hook is really used */
    return dev;
}

static void fa_check_clean(fail_alloc *fa)
{
    ASSERT_EQ(atomic_load(&fa->live), 0);
    ASSERT_EQ(atomic_load(&fa->bad_free), 0);
    ASSERT_EQ(atomic_load(&fa->bad_align), 0);
}

TEST(oom_device_open)
{
    fail_alloc fa;
    alloy_allocator a;
    fa_init(&fa, &a);
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = 3;
    d.allocator = &a;
    int failures = 0;
    for (long n = 0;; n++) {
        ASSERT(n < 1000);
        fa_arm(&fa, n);
        alloy_device *dev = (alloy_device *)&d;
        alloy_status s = alloy_device_open(&d, &dev);
        if (s == ALLOY_OK) {
            fa_disarm(&fa);
            ASSERT_EQ(alloy_device_workers(dev), 3);
            ASSERT_OK(alloy_device_close(dev));
            break;
        }
        ASSERT_FAILS(s, ALLOY_ERR_OUT_OF_MEMORY, "memory");
        ASSERT(dev == NULL);
        ASSERT_EQ(atomic_load(&fa.live), 0); /* nothing leaked */
        failures++;
    }
    ASSERT(failures >= 1);
    ASSERT_EQ(atomic_load(&fa.failed), failures);
    fa_check_clean(&fa);
}

TEST(oom_objects)
{
    fail_alloc fa;
    alloy_allocator a;
    alloy_device *dev = fa_device(&fa, &a, 2);
    long base = atomic_load(&fa.live);

    /* buffer_create: the object, then its memory */
    for (long n = 0;; n++) {
        ASSERT(n < 100);
        fa_arm(&fa, n);
        alloy_buffer *b = (alloy_buffer *)dev;
        alloy_status s = alloy_buffer_create(dev, 4096, ALLOY_MEMORY_DEVICE, &b);
        fa_disarm(&fa);
        if (s == ALLOY_OK) {
            ASSERT(n >= 1);
            ASSERT_OK(alloy_buffer_destroy(b));
            break;
        }
        ASSERT_FAILS(s, ALLOY_ERR_OUT_OF_MEMORY, "memory");
        ASSERT(b == NULL);
        ASSERT_EQ(atomic_load(&fa.live), base);
    }
    /* wrap_host */
    char host[64];
    for (long n = 0;; n++) {
        ASSERT(n < 100);
        fa_arm(&fa, n);
        alloy_buffer *b = (alloy_buffer *)dev;
        alloy_status s = alloy_buffer_wrap_host(dev, host, sizeof host, &b);
        fa_disarm(&fa);
        if (s == ALLOY_OK) {
            ASSERT(n >= 1);
            ASSERT_OK(alloy_buffer_destroy(b));
            break;
        }
        ASSERT_FAILS(s, ALLOY_ERR_OUT_OF_MEMORY, "memory");
        ASSERT(b == NULL);
        ASSERT_EQ(atomic_load(&fa.live), base);
    }
    /* queue_create */
    alloy_queue *q = NULL;
    for (long n = 0;; n++) {
        ASSERT(n < 100);
        fa_arm(&fa, n);
        alloy_status s = alloy_queue_create(dev, &q);
        fa_disarm(&fa);
        if (s == ALLOY_OK) {
            ASSERT(n >= 1);
            break;
        }
        ASSERT_FAILS(s, ALLOY_ERR_OUT_OF_MEMORY, "memory");
        ASSERT(q == NULL);
        ASSERT_EQ(atomic_load(&fa.live), base);
    }
    long with_q = atomic_load(&fa.live);
    /* cmdbuf_create */
    alloy_cmdbuf *cb = NULL;
    for (long n = 0;; n++) {
        ASSERT(n < 100);
        fa_arm(&fa, n);
        alloy_status s = alloy_cmdbuf_create(q, &cb);
        fa_disarm(&fa);
        if (s == ALLOY_OK) {
            ASSERT(n >= 1);
            break;
        }
        ASSERT_FAILS(s, ALLOY_ERR_OUT_OF_MEMORY, "memory");
        ASSERT(cb == NULL);
        ASSERT_EQ(atomic_load(&fa.live), with_q);
    }
    test_commit_wait(cb);
    /* Everything failed above left no child behind: the queue and device close. */
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    fa_check_clean(&fa);
}

/* A huge request fails with OUT_OF_MEMORY through the system allocator too. */
TEST(huge_buffer_oom)
{
    alloy_device *dev = test_cpu_device(1);
    alloy_buffer *b = (alloy_buffer *)dev;
    ASSERT_FAILS(alloy_buffer_create(dev, SIZE_MAX / 2, ALLOY_MEMORY_DEVICE, &b),
                 ALLOY_ERR_OUT_OF_MEMORY, "memory");
    ASSERT(b == NULL);
    ASSERT_OK(alloy_device_close(dev)); /* no child was left behind */
}

/* Encoding may allocate (a command buffer outgrowing its inline storage). Each failure
 * is OUT_OF_MEMORY, records nothing, takes no reference, and leaves the command buffer
 * usable: afterwards exactly the accepted operations run. */
TEST(oom_encode)
{
    fail_alloc fa;
    alloy_allocator a;
    alloy_device *dev = fa_device(&fa, &a, 2);
    enum { NB = 40, N = 16 };
    alloy_buffer *src[NB], *dst[NB];
    int64_t n = N;
    for (int i = 0; i < NB; i++) {
        src[i] = test_buffer(dev, N * sizeof(float));
        dst[i] = test_buffer(dev, N * sizeof(float));
        float *s = alloy_buffer_contents(src[i]);
        for (int j = 0; j < N; j++)
            s[j] = (float)(100 * i + j);
        memset(alloy_buffer_contents(dst[i]), 0xee, N * sizeof(float));
    }
    alloy_queue *q = test_queue(dev);

    /* 1: copy i goes src[i] -> dst[i], two new buffers per op. Every allocation an
     * encode makes is failed once in turn before the encode is let through. */
    alloy_cmdbuf *cb = test_cmdbuf(q);
    int oom_seen = 0, destroyed_once = 0;
    for (int i = 0; i < NB / 2; i++) {
        alloy_array s = alloy_array_contiguous(src[i], 0, ALLOY_F32, 1, &n);
        alloy_array d = alloy_array_contiguous(dst[i], 0, ALLOY_F32, 1, &n);
        for (long k = 0;; k++) {
            ASSERT(k < 10);
            fa_arm(&fa, k);
            alloy_status st = alloy_encode_copy(cb, &s, &d);
            fa_disarm(&fa);
            if (st == ALLOY_OK)
                break;
            ASSERT_FAILS(st, ALLOY_ERR_OUT_OF_MEMORY, "memory");
            oom_seen++;
            if (!destroyed_once) {
                /* the failed encode took no reference on dst[i]: it can be destroyed */
                destroyed_once = 1;
                ASSERT_OK(alloy_buffer_destroy(dst[i]));
                dst[i] = test_buffer(dev, N * sizeof(float));
                memset(alloy_buffer_contents(dst[i]), 0xee, N * sizeof(float));
                d = alloy_array_contiguous(dst[i], 0, ALLOY_F32, 1, &n);
            }
        }
    }
    ASSERT(oom_seen >= 2);
    test_commit_wait(cb);
    for (int i = 0; i < NB / 2; i++) {
        const float *d = alloy_buffer_contents(dst[i]);
        for (int j = 0; j < N; j++)
            ASSERT(d[j] == (float)(100 * i + j));
    }

    /* 2: ops are added with the next allocation armed to fail; the first encode that
     * needs memory fails and is never retried. Its output must stay untouched while the
     * accepted ops before it, and one accepted after it, run. */
    cb = test_cmdbuf(q);
    int lost = -1, i;
    for (i = NB / 2; i < NB - 1; i++) {
        alloy_array s = alloy_array_contiguous(src[i], 0, ALLOY_F32, 1, &n);
        alloy_array d = alloy_array_contiguous(dst[i], 0, ALLOY_F32, 1, &n);
        fa_arm(&fa, 0);
        alloy_status st = alloy_encode_copy(cb, &s, &d);
        fa_disarm(&fa);
        if (st != ALLOY_OK) {
            ASSERT_FAILS(st, ALLOY_ERR_OUT_OF_MEMORY, "memory");
            lost = i;
            break;
        }
    }
    ASSERT(lost >= 0); /* some encode allocates within 19 ops */
    {
        int last = NB - 1;
        alloy_array s = alloy_array_contiguous(src[last], 0, ALLOY_F32, 1, &n);
        alloy_array d = alloy_array_contiguous(dst[last], 0, ALLOY_F32, 1, &n);
        ASSERT_OK(alloy_encode_copy(cb, &s, &d));
    }
    test_commit_wait(cb);
    for (int k = NB / 2; k < NB; k++) {
        if (k > lost && k < NB - 1)
            continue; /* never encoded */
        const unsigned char *d = alloy_buffer_contents(dst[k]);
        if (k == lost) {
            for (int j = 0; j < N * 4; j++)
                ASSERT_EQ(d[j], 0xee);
        } else {
            for (int j = 0; j < N; j++)
                ASSERT(((const float *)d)[j] == (float)(100 * k + j));
        }
    }
    for (int k = 0; k < NB; k++) {
        ASSERT_OK(alloy_buffer_destroy(src[k]));
        ASSERT_OK(alloy_buffer_destroy(dst[k]));
    }
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
    fa_check_clean(&fa);
}

TEST_LIST{
    TEST_ENTRY(status_strings),
    TEST_ENTRY(version),
    TEST_ENTRY(dtype_sizes),
    TEST_ENTRY(last_error_is_per_thread),
    TEST_ENTRY(device_defaults),
    TEST_ENTRY(device_desc_errors),
    TEST_ENTRY(no_device),
    TEST_ENTRY(cpu_kernel_choice),
    TEST_ENTRY(buffers),
    TEST_ENTRY(unsupported_calls),
    TEST_ENTRY(null_handles),
    TEST_ENTRY(array_helpers),
    TEST_ENTRY(array_invalid_rank_rejected),
    TEST_ENTRY(cmdbuf_error_empty_on_success),
    TEST_ENTRY(oom_device_open),
    TEST_ENTRY(oom_objects),
    TEST_ENTRY(huge_buffer_oom),
    TEST_ENTRY(oom_encode),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
