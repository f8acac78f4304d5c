/* A tiny test harness in libuv's style: each test program lists small named cases;
 * ASSERT macros say what was expected, print where it failed, and fail the program.
 *
 *   TEST(copy_basic) { ... ASSERT_EQ(x, 3); ... }
 *   TEST_LIST { TEST_ENTRY(copy_basic), ... };
 *   int main(int argc, char **argv) { return run_tests(argc, argv); }
 *
 * `prog NAME` runs one case; no argument runs them all. Environment: ALLOY_TEST_WORKERS
 * picks the CPU device's worker count for tests that honour it; ALLOY_TEST_KERNEL
 * (portable, avx2, avx512) forces the CPU microkernels; ALLOY_TEST_BACKEND=cuda runs the
 * device tests on the GPU. */
#ifndef ALLOY_TEST_HARNESS_H
#define ALLOY_TEST_HARNESS_H

#include "alloy.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL_AT(...)                                                                               \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        fflush(stderr);                                                                            \
        abort();                                                                                   \
    } while (0)

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            FAIL_AT("assertion failed: %s", #c);                                                   \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            FAIL_AT("expected %s == %s, got %lld and %lld", #a, #b, a_, b_);                       \
    } while (0)

/* Expects status s; prints alloy_last_error() when it differs. */
#define ASSERT_STATUS(expr, want)                                                                  \
    do {                                                                                           \
        alloy_status s_ = (expr);                                                                  \
        if (s_ != (want))                                                                          \
            FAIL_AT("%s returned %s (%d), expected %s; last error: %s", #expr,                     \
                    alloy_status_string(s_), (int)s_, #want, alloy_last_error());                  \
    } while (0)

#define ASSERT_OK(expr) ASSERT_STATUS(expr, ALLOY_OK)

#define ASSERT_LE(a, b)                                                                            \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(a_ <= b_))                                                                           \
            FAIL_AT("expected %s <= %s, got %g and %g", #a, #b, a_, b_);                           \
    } while (0)

typedef void (*test_fn)(void);
typedef struct test_entry {
    const char *name;
    test_fn fn;
} test_entry;

#define TEST(name) static void test_##name(void)
#define TEST_ENTRY(name) {#name, test_##name}
#define TEST_LIST static const test_entry test_list[] =

static inline int run_tests_from(const test_entry *list, size_t n, int argc, char **argv)
{
    int ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], list[i].name) != 0)
            continue;
        fprintf(stderr, "[ RUN  ] %s\n", list[i].name);
        list[i].fn();
        fprintf(stderr, "[  OK  ] %s\n", list[i].name);
        ran++;
    }
    if (argc > 1 && ran == 0) {
        fprintf(stderr, "no test named %s\n", argv[1]);
        return 1;
    }
    fprintf(stderr, "%d tests passed\n", ran);
    return 0;
}
#define run_tests(argc, argv)                                                                      \
    run_tests_from(test_list, sizeof test_list / sizeof test_list[0], argc, argv)

/* ---- deterministic random numbers (xorshift), per caller state, no globals */
typedef struct test_rng {
    uint64_t s;
} test_rng;
static inline uint64_t rng_next(test_rng *r)
{
    uint64_t x = r->s ? r->s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return x;
}
/* uniform in [-1, 1) */
static inline double rng_uniform(test_rng *r)
{
    return (double)(rng_next(r) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}
static inline int64_t rng_range(test_rng *r, int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- devices for tests */
static inline alloy_cpu_kernel test_kernel_from_env(void)
{
    const char *k = getenv("ALLOY_TEST_KERNEL");
    if (!k || !*k)
        return ALLOY_CPU_KERNEL_AUTO;
    if (!strcmp(k, "portable"))
        return ALLOY_CPU_KERNEL_PORTABLE;
    if (!strcmp(k, "avx2"))
        return ALLOY_CPU_KERNEL_AVX2;
    if (!strcmp(k, "avx512"))
        return ALLOY_CPU_KERNEL_AVX512;
    return ALLOY_CPU_KERNEL_AUTO;
}

/* A CPU device with `workers` workers (0: ALLOY_TEST_WORKERS or all cores). */
static inline alloy_device *test_cpu_device(int workers)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    const char *w = getenv("ALLOY_TEST_WORKERS");
    d.cpu_workers = workers ? workers : (w ? atoi(w) : 0);
    d.cpu_kernel = test_kernel_from_env();
    alloy_device *dev = NULL;
    ASSERT_OK(alloy_device_open(&d, &dev));
    return dev;
}

/* Runs the ops encoded by `encode` on a fresh command buffer of q and waits. */
static inline void test_run(alloy_queue *q, void (*encode)(alloy_cmdbuf *, void *), void *arg)
{
    alloy_cmdbuf *cb = NULL;
    ASSERT_OK(alloy_cmdbuf_create(q, &cb));
    encode(cb, arg);
    ASSERT_OK(alloy_cmdbuf_commit(cb));
    ASSERT_OK(alloy_cmdbuf_wait(cb));
    ASSERT_OK(alloy_cmdbuf_destroy(cb));
}

#endif
