/* The floating-point environment part of the threading contract: a thread that waits
 * helps run its command buffer's tasks, under the default environment (round to nearest,
 * no flush to zero), and gets its own environment back, sticky flags included. So an
 * application's rounding mode or flush-to-zero setting never changes alloy's results, and
 * alloy's work never raises flags in the application's thread.
 *
 * Each case commits a product whose bits depend on the environment (random inputs, and
 * subnormal ones that flush-to-zero would lose) from a thread whose environment is not the
 * default, many times over: a busy worker (on another queue's long product) leaves the
 * waiting thread to run it itself, and the rest of the time the worker does. Either way the
 * bits must equal a product computed in the default environment. */
#include "harness.h"
#include "test_util.h"

#include <fenv.h>
#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#define HAVE_MXCSR 1
#endif

#define N 48
#define BIG 256
#define ROUNDS 60

typedef struct product {
    alloy_buffer *a, *b, *c;
    alloy_array va, vb, vc;
} product;

static product product_new(alloy_device *dev, int64_t n, int subnormal)
{
    product p;
    size_t bytes = (size_t)(n * n) * sizeof(float);
    p.a = test_buffer(dev, bytes);
    p.b = test_buffer(dev, bytes);
    p.c = test_buffer(dev, bytes);
    float *a = alloy_buffer_contents(p.a), *b = alloy_buffer_contents(p.b);
    test_rng r = {0x5eedu + (uint64_t)n};
    for (int64_t i = 0; i < n * n; i++) {
        a[i] = (float)(rng_uniform(&r) - 0.5);
        b[i] = (float)(rng_uniform(&r) - 0.5);
        /* a few rows of A far below FLT_MIN: subnormal products that flush-to-zero (or
         * denormals-are-zero on the inputs) would turn into zeros */
        if (subnormal && (i / n) % 7 == 3)
            a[i] *= 1e-37f;
    }
    int64_t shape[2] = {n, n};
    p.va = alloy_array_contiguous(p.a, 0, ALLOY_F32, 2, shape);
    p.vb = alloy_array_contiguous(p.b, 0, ALLOY_F32, 2, shape);
    p.vc = alloy_array_contiguous(p.c, 0, ALLOY_F32, 2, shape);
    return p;
}

static void product_free(product *p)
{
    ASSERT_OK(alloy_buffer_destroy(p->a));
    ASSERT_OK(alloy_buffer_destroy(p->b));
    ASSERT_OK(alloy_buffer_destroy(p->c));
}

static alloy_cmdbuf *encode_product(alloy_queue *q, const product *p)
{
    alloy_cmdbuf *cb = test_cmdbuf(q);
    alloy_matmul_desc d = alloy_matmul_desc_default();
    ASSERT_OK(alloy_encode_matmul(cb, &d, &p->va, &p->vb, NULL, &p->vc));
    return cb;
}

static alloy_device *open_one_worker(void)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = 1;
    alloy_device *dev = NULL;
    ASSERT_OK(alloy_device_open(&d, &dev));
    return dev;
}

/* The product's bits in the default environment (this thread's, at start). */
static float *reference(alloy_device *dev, alloy_queue *q, const product *p)
{
    ASSERT_EQ(fegetround(), FE_TONEAREST);
    test_commit_wait(encode_product(q, p));
    float *want = test_malloc(N * N * sizeof(float));
    memcpy(want, alloy_buffer_contents(p->c), N * N * sizeof(float));
    memset(alloy_buffer_contents(p->c), 0xff, N * N * sizeof(float));
    (void)dev;
    return want;
}

/* ROUNDS products under the current (non-default or default) environment, each committed
 * while the worker runs a long product on another queue; checks the bits, and that the
 * environment and its flags are what they were before the commit. */
static void rounds(alloy_device *dev, const product *p, const float *want, int flags_before)
{
    alloy_queue *q = test_queue(dev), *busy_q = test_queue(dev);
    product big = product_new(dev, BIG, 0);
    fenv_t env_before;
    int mode = fegetround();
#ifdef HAVE_MXCSR
    unsigned csr_mode = _mm_getcsr() & ~0x3fu; /* all but the sticky flags */
#endif
    for (int r = 0; r < ROUNDS; r++) {
        alloy_cmdbuf *busy = encode_product(busy_q, &big);
        alloy_cmdbuf *cb = encode_product(q, p);
        ASSERT_OK(alloy_cmdbuf_commit(busy));
        feclearexcept(FE_ALL_EXCEPT);
        if (flags_before)
            feraiseexcept(FE_INEXACT);
        fegetenv(&env_before);
        ASSERT_OK(alloy_cmdbuf_commit(cb));
        ASSERT_OK(alloy_cmdbuf_wait(cb));
        /* the environment came back as it was: mode and flags */
        ASSERT_EQ(fegetround(), mode);
        ASSERT_EQ(fetestexcept(FE_ALL_EXCEPT) & (FE_INEXACT | FE_UNDERFLOW),
                  flags_before ? FE_INEXACT : 0);
#ifdef HAVE_MXCSR
        ASSERT_EQ(_mm_getcsr() & ~0x3fu, csr_mode);
#endif
        fesetenv(&env_before);
        const float *got = alloy_buffer_contents(p->c);
        if (memcmp(got, want, N * N * sizeof(float)) != 0) {
            for (int i = 0; i < N * N; i++)
                if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
                    FAIL_AT("round %d: C[%d] is %a, in the default environment %a", r, i,
                            (double)got[i], (double)want[i]);
        }
        memset(alloy_buffer_contents(p->c), 0xff, N * N * sizeof(float));
        ASSERT_OK(alloy_cmdbuf_destroy(cb));
        ASSERT_OK(alloy_cmdbuf_wait(busy));
        ASSERT_OK(alloy_cmdbuf_destroy(busy));
    }
    product_free(&big);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_queue_destroy(busy_q));
}

TEST(rounding_mode_upward)
{
    alloy_device *dev = open_one_worker();
    alloy_queue *q = test_queue(dev);
    product p = product_new(dev, N, 0);
    float *want = reference(dev, q, &p);
    ASSERT_EQ(fesetround(FE_UPWARD), 0);
    rounds(dev, &p, want, 0);
    ASSERT_EQ(fesetround(FE_TONEAREST), 0);
    free(want);
    product_free(&p);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST(flush_to_zero)
{
#ifdef HAVE_MXCSR
    alloy_device *dev = open_one_worker();
    alloy_queue *q = test_queue(dev);
    product p = product_new(dev, N, 1);
    float *want = reference(dev, q, &p);
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u); /* FTZ and DAZ */
    rounds(dev, &p, want, 0);
    _mm_setcsr(saved);
    free(want);
    product_free(&p);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
#else
    printf("skipped: flush-to-zero is set through MXCSR, x86-64 only here\n");
#endif
}

/* The default environment itself: the tasks' inexact results must not raise flags in the
 * waiting thread, and a flag it had raised before must still be raised after. */
TEST(flags_default_mode)
{
    alloy_device *dev = open_one_worker();
    alloy_queue *q = test_queue(dev);
    product p = product_new(dev, N, 1);
    float *want = reference(dev, q, &p);
    rounds(dev, &p, want, 0);
    rounds(dev, &p, want, 1);
    feclearexcept(FE_ALL_EXCEPT);
    free(want);
    product_free(&p);
    ASSERT_OK(alloy_queue_destroy(q));
    ASSERT_OK(alloy_device_close(dev));
}

TEST_LIST{
    TEST_ENTRY(rounding_mode_upward),
    TEST_ENTRY(flush_to_zero),
    TEST_ENTRY(flags_default_mode),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
