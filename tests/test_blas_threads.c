/* liballoy-blas from many threads: 16 threads call cblas_sgemm and dgetrf_ at once, and
 * every result is bitwise equal to the same call made alone. Also: short-lived threads
 * (each gets a queue, released at exit), the call counter, and a forked child (which must
 * open a device of its own). Links liballoy-blas only; the BLAS/LAPACK prototypes are
 * declared here so no system cblas.h is needed. */
#include "alloy_blas.h"
#include "harness.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

enum { ROW_MAJOR = 101, COL_MAJOR = 102, NO_TRANS = 111, TRANS = 112 };
void cblas_sgemm(int layout, int transa, int transb, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b,
            const int *ldb, int *info);

#define THREADS 16
#define ROUNDS 4

/* One thread's problems: each thread has inputs of its own (a different seed), so a
 * result that leaked between threads would show. */
typedef struct problem {
    /* cblas_sgemm, row-major, C (m x n, ldc) = alpha A^T (A stored k x m, lda) B + beta C */
    int m, n, k, lda, ldb, ldc;
    float *a, *b, *c0;          /* c0: C before the call */
    float *c_alone;             /* C after the call made alone */
    /* dgetrf_ of an rm x rn matrix with leading dimension rld */
    int rm, rn, rld;
    double *r0, *r_alone;
    int *piv_alone, info_alone;
} problem;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    ASSERT(p != NULL);
    return p;
}

static void problem_init(problem *p, uint64_t seed)
{
    test_rng r = {seed};
    p->m = 150 + (int)rng_range(&r, 0, 40);
    p->n = 170 + (int)rng_range(&r, 0, 40);
    p->k = 190 + (int)rng_range(&r, 0, 40);
    p->lda = p->m + 3; /* A^T: A is stored k x m, row-major */
    p->ldb = p->n + 1;
    p->ldc = p->n + 5;
    p->a = xmalloc(sizeof(float) * (size_t)p->k * (size_t)p->lda);
    p->b = xmalloc(sizeof(float) * (size_t)p->k * (size_t)p->ldb);
    p->c0 = xmalloc(sizeof(float) * (size_t)p->m * (size_t)p->ldc);
    p->c_alone = xmalloc(sizeof(float) * (size_t)p->m * (size_t)p->ldc);
    for (size_t i = 0; i < (size_t)p->k * (size_t)p->lda; i++)
        p->a[i] = (float)rng_uniform(&r);
    for (size_t i = 0; i < (size_t)p->k * (size_t)p->ldb; i++)
        p->b[i] = (float)rng_uniform(&r);
    for (size_t i = 0; i < (size_t)p->m * (size_t)p->ldc; i++)
        p->c0[i] = (float)rng_uniform(&r);
    p->rm = 180 + (int)rng_range(&r, 0, 40);
    p->rn = p->rm - 10 + (int)rng_range(&r, 0, 20);
    p->rld = p->rm + 7;
    size_t rsz = (size_t)p->rld * (size_t)p->rn;
    p->r0 = xmalloc(sizeof(double) * rsz);
    p->r_alone = xmalloc(sizeof(double) * rsz);
    for (size_t i = 0; i < rsz; i++)
        p->r0[i] = rng_uniform(&r);
    p->piv_alone = xmalloc(sizeof(int) * (size_t)(p->rm < p->rn ? p->rm : p->rn));
}

static void problem_free(problem *p)
{
    free(p->a);
    free(p->b);
    free(p->c0);
    free(p->c_alone);
    free(p->r0);
    free(p->r_alone);
    free(p->piv_alone);
}

static void run_sgemm(const problem *p, float *c)
{
    memcpy(c, p->c0, sizeof(float) * (size_t)p->m * (size_t)p->ldc);
    cblas_sgemm(ROW_MAJOR, TRANS, NO_TRANS, p->m, p->n, p->k, 0.75f, p->a, p->lda, p->b, p->ldb,
                -1.25f, c, p->ldc);
}

static int run_dgetrf(const problem *p, double *r, int *piv)
{
    memcpy(r, p->r0, sizeof(double) * (size_t)p->rld * (size_t)p->rn);
    int info = -99;
    dgetrf_(&p->rm, &p->rn, r, &p->rld, piv, &info);
    return info;
}

typedef struct worker {
    problem *p;
    pthread_barrier_t *start;
    int mismatches;
} worker;

static void *worker_main(void *arg)
{
    worker *w = (worker *)arg;
    const problem *p = w->p;
    float *c = xmalloc(sizeof(float) * (size_t)p->m * (size_t)p->ldc);
    double *r = xmalloc(sizeof(double) * (size_t)p->rld * (size_t)p->rn);
    int mn = p->rm < p->rn ? p->rm : p->rn;
    int *piv = xmalloc(sizeof(int) * (size_t)mn);
    pthread_barrier_wait(w->start);
    for (int round = 0; round < ROUNDS; round++) {
        run_sgemm(p, c);
        if (memcmp(c, p->c_alone, sizeof(float) * (size_t)p->m * (size_t)p->ldc) != 0)
            w->mismatches++;
        int info = run_dgetrf(p, r, piv);
        if (info != p->info_alone ||
            memcmp(r, p->r_alone, sizeof(double) * (size_t)p->rld * (size_t)p->rn) != 0 ||
            memcmp(piv, p->piv_alone, sizeof(int) * (size_t)mn) != 0)
            w->mismatches++;
    }
    free(c);
    free(r);
    free(piv);
    return NULL;
}

/* Sanity of the alone results against a plain loop, so "equal to alone" is not "equally
 * wrong": C in double precision, and L*U = P*A for the factorization. */
static void check_alone(const problem *p)
{
    double max_err = 0;
    for (int i = 0; i < p->m; i++)
        for (int j = 0; j < p->n; j++) {
            double s = 0;
            for (int l = 0; l < p->k; l++)
                s += (double)p->a[(size_t)l * p->lda + i] * (double)p->b[(size_t)l * p->ldb + j];
            double want = 0.75 * s - 1.25 * (double)p->c0[(size_t)i * p->ldc + j];
            double e = fabs(want - (double)p->c_alone[(size_t)i * p->ldc + j]);
            if (e > max_err)
                max_err = e;
        }
    ASSERT_LE(max_err, 1e-3);
    ASSERT_EQ(p->info_alone, 0);
    /* P*A: apply the row swaps to a copy of A (column-major) */
    int m = p->rm, n = p->rn, ld = p->rld, mn = m < n ? m : n;
    double *pa = xmalloc(sizeof(double) * (size_t)ld * (size_t)n);
    memcpy(pa, p->r0, sizeof(double) * (size_t)ld * (size_t)n);
    for (int i = 0; i < mn; i++) {
        int r = p->piv_alone[i] - 1;
        ASSERT(r >= i && r < m);
        for (int j = 0; j < n; j++) {
            double t = pa[(size_t)j * ld + i];
            pa[(size_t)j * ld + i] = pa[(size_t)j * ld + r];
            pa[(size_t)j * ld + r] = t;
        }
    }
    const double *lu = p->r_alone;
    double resid = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            int top = i < j ? i : j;
            for (int l = 0; l <= top && l < mn; l++) {
                double lil = l == i ? 1.0 : lu[(size_t)l * ld + i];
                s += lil * lu[(size_t)j * ld + l];
            }
            double e = fabs(s - pa[(size_t)j * ld + i]);
            if (e > resid)
                resid = e;
        }
    free(pa);
    ASSERT_LE(resid, 1e-10);
}

TEST(threads16_bitwise_equal_alone)
{
    problem probs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        problem_init(&probs[t], 0x1234567ull + 7919ull * (uint64_t)t);
        run_sgemm(&probs[t], probs[t].c_alone);
        probs[t].info_alone = run_dgetrf(&probs[t], probs[t].r_alone, probs[t].piv_alone);
        check_alone(&probs[t]);
    }
    unsigned long long before = alloy_blas_calls(NULL);
    pthread_barrier_t start;
    ASSERT_EQ(pthread_barrier_init(&start, NULL, THREADS), 0);
    pthread_t th[THREADS];
    worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t].p = &probs[t];
        w[t].start = &start;
        w[t].mismatches = 0;
        ASSERT_EQ(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    }
    int mismatches = 0;
    for (int t = 0; t < THREADS; t++) {
        ASSERT_EQ(pthread_join(th[t], NULL), 0);
        mismatches += w[t].mismatches;
    }
    pthread_barrier_destroy(&start);
    unsigned long long calls = alloy_blas_calls(NULL) - before;
    fprintf(stderr,
            "%d threads x %d rounds: %d cblas_sgemm and %d dgetrf_ calls ran concurrently; "
            "%d of %d results differ from the call made alone; %llu calls reached alloy\n",
            THREADS, ROUNDS, THREADS * ROUNDS, THREADS * ROUNDS, mismatches,
            2 * THREADS * ROUNDS, calls);
    ASSERT_EQ(mismatches, 0);
    ASSERT_EQ(calls, 2 * THREADS * ROUNDS);
    for (int t = 0; t < THREADS; t++)
        problem_free(&probs[t]);
}

/* Many threads that each make one call and exit: each gets a queue, released at exit. */
static void *short_main(void *arg)
{
    const float *want = (const float *)arg;
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {0};
    cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    return memcmp(c, want, sizeof c) == 0 ? (void *)1 : NULL;
}

TEST(short_lived_threads)
{
    const float want[4] = {19, 22, 43, 50};
    for (int round = 0; round < 16; round++) {
        pthread_t th[8];
        for (int t = 0; t < 8; t++)
            ASSERT_EQ(pthread_create(&th[t], NULL, short_main, (void *)want), 0);
        for (int t = 0; t < 8; t++) {
            void *ok = NULL;
            ASSERT_EQ(pthread_join(th[t], &ok), 0);
            ASSERT(ok != NULL);
        }
    }
}

TEST(counter_counts_calls_that_reach_alloy)
{
    float a[1] = {2}, b[1] = {3}, c[1] = {0};
    unsigned long long s0 = alloy_blas_calls("cblas_sgemm"), all0 = alloy_blas_calls(NULL);
    cblas_sgemm(COL_MAJOR, NO_TRANS, NO_TRANS, 1, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1);
    ASSERT(c[0] == 6.0f);
    /* the reference's quick returns do not reach alloy */
    cblas_sgemm(COL_MAJOR, NO_TRANS, NO_TRANS, 0, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1);
    cblas_sgemm(COL_MAJOR, NO_TRANS, NO_TRANS, 1, 1, 1, 0.0f, a, 1, b, 1, 1.0f, c, 1);
    ASSERT_EQ(alloy_blas_calls("cblas_sgemm") - s0, 1);
    double m[4] = {4, 2, 1, 3}, x[2] = {1, 2};
    int piv[2], info = -1, n = 2, one = 1;
    dgesv_(&n, &one, m, &n, piv, x, &n, &info);
    ASSERT_EQ(info, 0);
    /* [4 1; 2 3] x = [1; 2]: x = [0.1; 0.6] */
    ASSERT_LE(fabs(x[0] - 0.1), 1e-15);
    ASSERT_LE(fabs(x[1] - 0.6), 1e-15);
    ASSERT_EQ(alloy_blas_calls("dgesv_"), 1);
    ASSERT_EQ(alloy_blas_calls("dgesv"), 1);
    ASSERT_EQ(alloy_blas_calls(NULL) - all0, 2);
    ASSERT_EQ(alloy_blas_calls("no_such_routine"), 0);
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* A forked child cannot use the parent's device; the adapter opens one of its own. */
TEST(forked_child_gets_its_own_device)
{
#ifdef UNDER_TSAN
    /* The child starts the new device's workers: TSan kills a child of a multi-threaded
     * process that starts threads (die_after_fork). */
    fprintf(stderr, "skipped under ThreadSanitizer (threads started after fork)\n");
    return;
#endif
    problem p;
    problem_init(&p, 42);
    run_sgemm(&p, p.c_alone); /* the parent's device and queue exist now */
    fflush(stderr);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        float *c = malloc(sizeof(float) * (size_t)p.m * (size_t)p.ldc);
        if (!c)
            _exit(2);
        run_sgemm(&p, c);
        int same = memcmp(c, p.c_alone, sizeof(float) * (size_t)p.m * (size_t)p.ldc) == 0;
        _exit(same ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    /* and the parent goes on as before */
    float *c = xmalloc(sizeof(float) * (size_t)p.m * (size_t)p.ldc);
    run_sgemm(&p, c);
    ASSERT(memcmp(c, p.c_alone, sizeof(float) * (size_t)p.m * (size_t)p.ldc) == 0);
    free(c);
    problem_free(&p);
}

TEST_LIST{
    TEST_ENTRY(threads16_bitwise_equal_alone),
    TEST_ENTRY(short_lived_threads),
    TEST_ENTRY(counter_counts_calls_that_reach_alloy),
    TEST_ENTRY(forked_child_gets_its_own_device),
};

int main(int argc, char **argv)
{
    return run_tests(argc, argv);
}
