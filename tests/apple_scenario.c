/* apple_scenario: the scenario of Apple's MPS bug report, ported (issue 4, part 2).
 *
 * The report: several threads, each with its own command queue, encode
 * MPSNDArrayMatrixMultiplication, MPSMatrixDecompositionLU + MPSMatrixSolveLU,
 * MPSMatrixSolveTriangular and the layer-norm kernels at the same time, and MPS crashes.
 * Here 4, 8 and 16 threads (one device, each thread with its own queue) start together
 * and each runs ITERATIONS iterations of
 *   matmul            C = A B, 512 x 512 x 512, f32
 *   lu_factor + solve copy A0 -> LU; lu_factor(LU); copy B0 -> X; lu_solve(LU, X)
 *                     (512 x 512 f32, 64 right-hand sides)
 *   triangular_solve  copy T0 -> TB; L X = TB in place (512 x 512 lower, 512 columns)
 *   layer_norm        Y = layer_norm(XN) with gamma, beta, mean and rstd (512 x 512 f32)
 * as four command buffers committed together and then waited on. The inputs are shared
 * by all threads (only read); outputs belong to the thread. Every output of every
 * iteration is compared bit for bit with a reference computed once up front, alone, on a
 * quiet device with one worker, and that reference is checked against a float64
 * computation (relative residuals). Zero failures and zero mismatches, or exit 1.
 *
 * Usage: apple_scenario [--full] [-i ITERATIONS] [-w WORKERS]
 *   no options: the short form ctest runs (2 iterations per thread);
 *   --full: 100 iterations per thread, as in the issue. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define N 512
#define NRHS 64

typedef struct inputs {
    alloy_buffer *ma, *mb;       /* matmul A, B (N x N f32) */
    alloy_buffer *a0, *b0;       /* LU input (N x N) and right-hand sides (N x NRHS) */
    alloy_buffer *tl, *t0;       /* lower-triangular L (N x N), B for the triangular solve */
    alloy_buffer *nx, *ng, *nb;  /* layer norm x (N x N), gamma (N), beta (N) */
} inputs;

typedef struct outputs {
    alloy_buffer *mc;          /* N x N */
    alloy_buffer *lu, *piv, *info, *x; /* N x N, N i32, 1 i32, N x NRHS */
    alloy_buffer *tb;          /* N x N */
    alloy_buffer *y, *mean, *rstd; /* N x N, N, N */
} outputs;

/* Host copies of every output, in a fixed order. */
enum { O_MC, O_LU, O_PIV, O_INFO, O_X, O_TB, O_Y, O_MEAN, O_RSTD, O_COUNT };
static const char *const out_names[O_COUNT] = {"matmul C",  "lu_factor LU", "pivots",
                                               "info",      "lu_solve X",   "trsm X",
                                               "norm y",    "norm mean",    "norm rstd"};
static const size_t out_bytes[O_COUNT] = {
    (size_t)N * N * 4, (size_t)N * N * 4, N * 4, 4, (size_t)N * NRHS * 4, (size_t)N * N * 4,
    (size_t)N * N * 4, N * 4, N * 4};

static alloy_buffer *out_buffer(const outputs *o, int i)
{
    alloy_buffer *const all[O_COUNT] = {o->mc, o->lu, o->piv, o->info, o->x,
                                        o->tb, o->y,  o->mean, o->rstd};
    return all[i];
}

static alloy_array mat(alloy_buffer *b, int64_t r, int64_t c)
{
    int64_t s[2] = {r, c};
    return alloy_array_contiguous(b, 0, ALLOY_F32, 2, s);
}

static alloy_array vec(alloy_buffer *b, alloy_dtype t, int64_t n)
{
    return alloy_array_contiguous(b, 0, t, 1, &n);
}

static alloy_array scalar_i32(alloy_buffer *b) { return alloy_array_contiguous(b, 0, ALLOY_I32, 0, NULL); }

/* The four command buffers of one iteration, encoded on q. */
static alloy_status encode_iteration(alloy_queue *q, const inputs *in, const outputs *o,
                                     alloy_cmdbuf *cb[4])
{
    alloy_status s;
    for (int i = 0; i < 4; i++)
        cb[i] = NULL;
    for (int i = 0; i < 4; i++)
        if ((s = alloy_cmdbuf_create(q, &cb[i])) != ALLOY_OK)
            return s;
    /* matmul */
    alloy_matmul_desc md = alloy_matmul_desc_default();
    alloy_array a = mat(in->ma, N, N), b = mat(in->mb, N, N), c = mat(o->mc, N, N);
    if ((s = alloy_encode_matmul(cb[0], &md, &a, &b, NULL, &c)) != ALLOY_OK)
        return s;
    /* lu_factor + lu_solve */
    alloy_array a0 = mat(in->a0, N, N), lu = mat(o->lu, N, N), piv = vec(o->piv, ALLOY_I32, N),
                info = scalar_i32(o->info), b0 = mat(in->b0, N, NRHS), x = mat(o->x, N, NRHS);
    alloy_lu_solve_desc ld = alloy_lu_solve_desc_default();
    if ((s = alloy_encode_copy(cb[1], &a0, &lu)) != ALLOY_OK ||
        (s = alloy_encode_copy(cb[1], &b0, &x)) != ALLOY_OK ||
        (s = alloy_encode_lu_factor(cb[1], &lu, &piv, &info)) != ALLOY_OK ||
        (s = alloy_encode_lu_solve(cb[1], &ld, &lu, &piv, &x)) != ALLOY_OK)
        return s;
    /* triangular solve */
    alloy_triangular_desc td = alloy_triangular_desc_default();
    td.side = ALLOY_LEFT;
    td.uplo = ALLOY_LOWER;
    alloy_array tl = mat(in->tl, N, N), t0 = mat(in->t0, N, N), tb = mat(o->tb, N, N);
    if ((s = alloy_encode_copy(cb[2], &t0, &tb)) != ALLOY_OK ||
        (s = alloy_encode_triangular_solve(cb[2], &td, &tl, &tb)) != ALLOY_OK)
        return s;
    /* layer norm */
    alloy_norm_desc nd = alloy_norm_desc_default();
    alloy_array nx = mat(in->nx, N, N), ng = vec(in->ng, ALLOY_F32, N),
                nb = vec(in->nb, ALLOY_F32, N), y = mat(o->y, N, N),
                mean = vec(o->mean, ALLOY_F32, N), rstd = vec(o->rstd, ALLOY_F32, N);
    if ((s = alloy_encode_layer_norm(cb[3], &nd, &nx, &ng, &nb, &y, &mean, &rstd)) != ALLOY_OK)
        return s;
    return ALLOY_OK;
}

static void destroy_cmdbufs(alloy_cmdbuf *cb[4])
{
    for (int i = 0; i < 4; i++)
        if (cb[i])
            ASSERT_OK(alloy_cmdbuf_destroy(cb[i]));
}

static alloy_buffer *new_buffer(alloy_device *dev, size_t bytes)
{
    alloy_buffer *b = NULL;
    ASSERT_OK(alloy_buffer_create(dev, bytes, ALLOY_MEMORY_DEVICE, &b));
    return b;
}

static void make_outputs(alloy_device *dev, outputs *o)
{
    o->mc = new_buffer(dev, out_bytes[O_MC]);
    o->lu = new_buffer(dev, out_bytes[O_LU]);
    o->piv = new_buffer(dev, out_bytes[O_PIV]);
    o->info = new_buffer(dev, out_bytes[O_INFO]);
    o->x = new_buffer(dev, out_bytes[O_X]);
    o->tb = new_buffer(dev, out_bytes[O_TB]);
    o->y = new_buffer(dev, out_bytes[O_Y]);
    o->mean = new_buffer(dev, out_bytes[O_MEAN]);
    o->rstd = new_buffer(dev, out_bytes[O_RSTD]);
}

static void free_outputs(outputs *o)
{
    for (int i = 0; i < O_COUNT; i++)
        ASSERT_OK(alloy_buffer_destroy(out_buffer(o, i)));
}

/* Host data of the inputs (f32), made once. */
typedef struct host_inputs {
    float *ma, *mb, *a0, *b0, *tl, *t0, *nx, *ng, *nb;
} host_inputs;

static float *rand_floats(test_rng *r, size_t n)
{
    float *p = malloc(n * sizeof *p);
    ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rng_uniform(r);
    return p;
}

static void make_host_inputs(host_inputs *h, uint64_t seed)
{
    test_rng r = {seed};
    const size_t nn = (size_t)N * N;
    h->ma = rand_floats(&r, nn);
    h->mb = rand_floats(&r, nn);
    h->a0 = rand_floats(&r, nn);
    h->b0 = rand_floats(&r, (size_t)N * NRHS);
    h->tl = rand_floats(&r, nn);
    for (int i = 0; i < N; i++) /* lower triangular, diagonally dominant */
        for (int j = 0; j < N; j++) {
            float *e = &h->tl[(size_t)i * N + j];
            if (j > i)
                *e = 0.0f;
            else if (i == j)
                *e = (*e < 0 ? -1.0f : 1.0f) * (1.0f + fabsf(*e));
            else
                *e = *e / (float)N;
        }
    h->t0 = rand_floats(&r, nn);
    h->nx = rand_floats(&r, nn);
    for (size_t i = 0; i < nn; i++) /* rows with an offset, so the mean matters */
        h->nx[i] = h->nx[i] * 3.0f + (float)((i / N) % 7);
    h->ng = rand_floats(&r, N);
    h->nb = rand_floats(&r, N);
}

static void free_host_inputs(host_inputs *h)
{
    free(h->ma);
    free(h->mb);
    free(h->a0);
    free(h->b0);
    free(h->tl);
    free(h->t0);
    free(h->nx);
    free(h->ng);
    free(h->nb);
}

static alloy_buffer *upload(alloy_device *dev, const float *p, size_t n)
{
    alloy_buffer *b = new_buffer(dev, n * sizeof(float));
    ASSERT_OK(alloy_buffer_write(b, 0, p, n * sizeof(float)));
    return b;
}

static void make_inputs(alloy_device *dev, const host_inputs *h, inputs *in)
{
    const size_t nn = (size_t)N * N;
    in->ma = upload(dev, h->ma, nn);
    in->mb = upload(dev, h->mb, nn);
    in->a0 = upload(dev, h->a0, nn);
    in->b0 = upload(dev, h->b0, (size_t)N * NRHS);
    in->tl = upload(dev, h->tl, nn);
    in->t0 = upload(dev, h->t0, nn);
    in->nx = upload(dev, h->nx, nn);
    in->ng = upload(dev, h->ng, N);
    in->nb = upload(dev, h->nb, N);
}

static void free_inputs(inputs *in)
{
    alloy_buffer *all[] = {in->ma, in->mb, in->a0, in->b0, in->tl, in->t0, in->nx, in->ng, in->nb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ASSERT_OK(alloy_buffer_destroy(all[i]));
}

/* ---------------------------------------------------------------- the float64 check */

static double maxd(double a, double b) { return a > b ? a : b; }

/* Checks the reference outputs against float64 computations from the same inputs; returns
 * the number of checks that fail. */
static int check_reference(const host_inputs *h, unsigned char *const ref[O_COUNT])
{
    int bad = 0;
    const float *c = (const float *)ref[O_MC];
    /* matmul: |C - A B| <= 1e-5 * (|A| |B|) elementwise */
    double worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, sa = 0;
            for (int k = 0; k < N; k++) {
                double p = (double)h->ma[(size_t)i * N + k] * (double)h->mb[(size_t)k * N + j];
                s += p;
                sa += fabs(p);
            }
            worst = maxd(worst, fabs((double)c[(size_t)i * N + j] - s) / maxd(sa, 1e-30));
        }
    fprintf(stderr, "apple_scenario: reference matmul vs float64: max |C - AB| / (|A||B|) = %.2e\n",
            worst);
    bad += !(worst <= 1e-5);

    /* lu_factor: P A = L U, relative to |L||U| */
    const float *lu = (const float *)ref[O_LU];
    const int32_t *piv = (const int32_t *)ref[O_PIV];
    int32_t info;
    memcpy(&info, ref[O_INFO], 4);
    double *pa = malloc(sizeof(double) * N * N);
    ASSERT(pa != NULL);
    for (size_t i = 0; i < (size_t)N * N; i++)
        pa[i] = h->a0[i];
    int piv_ok = 1;
    for (int i = 0; i < N; i++) {
        int p = piv[i] - 1;
        if (p < i || p >= N) {
            piv_ok = 0;
            break;
        }
        for (int j = 0; j < N; j++) {
            double t = pa[(size_t)i * N + j];
            pa[(size_t)i * N + j] = pa[(size_t)p * N + j];
            pa[(size_t)p * N + j] = t;
        }
    }
    worst = 0;
    for (int i = 0; i < N && piv_ok; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, sa = 0;
            int kmax = i < j ? i : j;
            for (int k = 0; k <= kmax; k++) {
                double l = k == i ? 1.0 : (double)lu[(size_t)i * N + k];
                double u = (double)lu[(size_t)k * N + j];
                s += l * u;
                sa += fabs(l * u);
            }
            worst = maxd(worst, fabs(s - pa[(size_t)i * N + j]) / maxd(sa, 1e-30));
        }
    free(pa);
    fprintf(stderr,
            "apple_scenario: reference lu_factor vs float64: info %d, pivots %s, max |PA - LU| / "
            "(|L||U|) = %.2e\n",
            (int)info, piv_ok ? "valid" : "INVALID", worst);
    bad += !(info == 0 && piv_ok && worst <= 1e-5);

    /* lu_solve: A X = B, relative to |A||X| */
    const float *x = (const float *)ref[O_X];
    worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < NRHS; j++) {
            double s = 0, sa = 0;
            for (int k = 0; k < N; k++) {
                double p = (double)h->a0[(size_t)i * N + k] * (double)x[(size_t)k * NRHS + j];
                s += p;
                sa += fabs(p);
            }
            worst = maxd(worst, fabs(s - h->b0[(size_t)i * NRHS + j]) / maxd(sa, 1e-30));
        }
    fprintf(stderr, "apple_scenario: reference lu_solve vs float64: max |AX - B| / (|A||X|) = %.2e\n",
            worst);
    bad += !(worst <= 1e-4);

    /* triangular solve: L X = B */
    const float *tx = (const float *)ref[O_TB];
    worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, sa = 0;
            for (int k = 0; k <= i; k++) {
                double p = (double)h->tl[(size_t)i * N + k] * (double)tx[(size_t)k * N + j];
                s += p;
                sa += fabs(p);
            }
            worst = maxd(worst, fabs(s - h->t0[(size_t)i * N + j]) / maxd(sa, 1e-30));
        }
    fprintf(stderr, "apple_scenario: reference triangular_solve vs float64: max |LX - B| / (|L||X|) = %.2e\n",
            worst);
    bad += !(worst <= 1e-4);

    /* layer norm: y, mean, rstd against float64 */
    const float *y = (const float *)ref[O_Y], *mean = (const float *)ref[O_MEAN],
                *rstd = (const float *)ref[O_RSTD];
    double wy = 0, wm = 0, wr = 0;
    for (int i = 0; i < N; i++) {
        const float *row = h->nx + (size_t)i * N;
        double mu = 0, var = 0;
        for (int j = 0; j < N; j++)
            mu += row[j];
        mu /= N;
        for (int j = 0; j < N; j++)
            var += (row[j] - mu) * (row[j] - mu);
        var /= N;
        double rs = 1.0 / sqrt(var + 1e-5);
        wm = maxd(wm, fabs(mean[i] - mu) / maxd(fabs(mu), 1.0));
        wr = maxd(wr, fabs(rstd[i] - rs) / rs);
        for (int j = 0; j < N; j++) {
            double want = (row[j] - mu) * rs * h->ng[j] + h->nb[j];
            wy = maxd(wy, fabs(y[(size_t)i * N + j] - want) / maxd(fabs(want), 1.0));
        }
    }
    fprintf(stderr,
            "apple_scenario: reference layer_norm vs float64: max error y %.2e, mean %.2e, rstd "
            "%.2e\n",
            wy, wm, wr);
    bad += !(wy <= 1e-5 && wm <= 1e-5 && wr <= 1e-5);
    return bad;
}

/* ---------------------------------------------------------------- the threads */

typedef struct shared_run {
    alloy_device *dev;
    const inputs *in;
    unsigned char *const *ref;
    int iterations;
    pthread_barrier_t *start;
    _Atomic long failures, mismatches, checked;
} shared_run;

typedef struct thread_arg {
    shared_run *S;
    int index;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *t = p;
    shared_run *S = t->S;
    alloy_queue *q = NULL;
    outputs o;
    alloy_status s = alloy_queue_create(S->dev, &q);
    if (s != ALLOY_OK) {
        fprintf(stderr, "thread %d: alloy_queue_create: %s\n", t->index, alloy_last_error());
        atomic_fetch_add(&S->failures, 1);
        pthread_barrier_wait(S->start);
        return NULL;
    }
    make_outputs(S->dev, &o);
    unsigned char *got = malloc(out_bytes[O_MC]);
    ASSERT(got != NULL);
    pthread_barrier_wait(S->start);
    for (int it = 0; it < S->iterations; it++) {
        alloy_cmdbuf *cb[4];
        s = encode_iteration(q, S->in, &o, cb);
        for (int i = 0; i < 4 && s == ALLOY_OK; i++)
            s = alloy_cmdbuf_commit(cb[i]);
        if (s != ALLOY_OK) {
            fprintf(stderr, "thread %d iteration %d: encode/commit: %s: %s\n", t->index, it,
                    alloy_status_string(s), alloy_last_error());
            atomic_fetch_add(&S->failures, 1);
            destroy_cmdbufs(cb);
            continue;
        }
        for (int i = 0; i < 4; i++) {
            s = alloy_cmdbuf_wait(cb[i]);
            if (s != ALLOY_OK) {
                fprintf(stderr, "thread %d iteration %d: command buffer %d: %s: %s\n", t->index,
                        it, i, alloy_status_string(s), alloy_cmdbuf_error(cb[i]));
                atomic_fetch_add(&S->failures, 1);
            }
        }
        destroy_cmdbufs(cb);
        for (int i = 0; i < O_COUNT; i++) {
            ASSERT_OK(alloy_buffer_read(out_buffer(&o, i), 0, got, out_bytes[i]));
            if (memcmp(got, S->ref[i], out_bytes[i]) != 0) {
                size_t at = 0;
                while (got[at] == S->ref[i][at])
                    at++;
                fprintf(stderr, "MISMATCH: thread %d iteration %d: %s differs from the reference at byte %zu\n",
                        t->index, it, out_names[i], at);
                atomic_fetch_add(&S->mismatches, 1);
            }
            atomic_fetch_add(&S->checked, 1);
        }
    }
    free(got);
    free_outputs(&o);
    ASSERT_OK(alloy_queue_destroy(q));
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static alloy_device *open_cpu(int workers)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = workers;
    d.cpu_kernel = test_kernel_from_env();
    alloy_device *dev = NULL;
    ASSERT_OK(alloy_device_open(&d, &dev));
    return dev;
}

int main(int argc, char **argv)
{
    int iterations = 2, workers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full"))
            iterations = 100;
        else if (!strcmp(argv[i], "-i") && i + 1 < argc)
            iterations = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-w") && i + 1 < argc)
            workers = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: apple_scenario [--full] [-i ITERATIONS] [-w WORKERS]\n");
            return 2;
        }
    }
    const char *seed_env = getenv("ALLOY_TEST_SEED");
    uint64_t seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0) : 0xa11e5ce7a210ull;
    fprintf(stderr, "apple_scenario: seed %#llx (ALLOY_TEST_SEED), %d iterations per thread\n",
            (unsigned long long)seed, iterations);
    host_inputs h;
    make_host_inputs(&h, seed);

    /* The reference: alone, on a quiet device with one worker. */
    unsigned char *ref[O_COUNT];
    {
        alloy_device *qdev = open_cpu(1);
        inputs in;
        outputs o;
        make_inputs(qdev, &h, &in);
        make_outputs(qdev, &o);
        alloy_queue *q = NULL;
        ASSERT_OK(alloy_queue_create(qdev, &q));
        alloy_cmdbuf *cb[4];
        ASSERT_OK(encode_iteration(q, &in, &o, cb));
        for (int i = 0; i < 4; i++)
            ASSERT_OK(alloy_cmdbuf_commit(cb[i]));
        for (int i = 0; i < 4; i++)
            ASSERT_OK(alloy_cmdbuf_wait(cb[i]));
        destroy_cmdbufs(cb);
        for (int i = 0; i < O_COUNT; i++) {
            ref[i] = malloc(out_bytes[i]);
            ASSERT(ref[i] != NULL);
            ASSERT_OK(alloy_buffer_read(out_buffer(&o, i), 0, ref[i], out_bytes[i]));
        }
        free_outputs(&o);
        free_inputs(&in);
        ASSERT_OK(alloy_queue_destroy(q));
        ASSERT_OK(alloy_device_close(qdev));
    }
    int ref_bad = check_reference(&h, ref);
    if (ref_bad)
        fprintf(stderr, "apple_scenario: FAILED: %d reference checks against float64 failed\n", ref_bad);

    alloy_device *dev = open_cpu(workers);
    fprintf(stderr, "apple_scenario: device \"%s\"\n", alloy_device_name(dev));
    inputs in;
    make_inputs(dev, &h, &in);
    long total_fail = 0, total_mism = 0;
    static const int counts[3] = {4, 8, 16};
    for (int c = 0; c < 3; c++) {
        int T = counts[c];
        shared_run S;
        memset(&S, 0, sizeof S);
        S.dev = dev;
        S.in = &in;
        S.ref = ref;
        S.iterations = iterations;
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, (unsigned)T);
        S.start = &start;
        pthread_t th[16];
        thread_arg ta[16];
        double t0 = now();
        for (int i = 0; i < T; i++) {
            ta[i].S = &S;
            ta[i].index = i;
            if (pthread_create(&th[i], NULL, thread_main, &ta[i]) != 0)
                FAIL_AT("pthread_create failed");
        }
        for (int i = 0; i < T; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        long f = atomic_load(&S.failures), m = atomic_load(&S.mismatches);
        printf("apple_scenario: %2d threads x %d iterations (matmul 512^3, lu_factor+lu_solve, "
               "triangular_solve, layer_norm; each its own queue): %ld outputs checked, "
               "failures=%ld mismatches=%ld, %.2f s\n",
               T, iterations, (long)atomic_load(&S.checked), f, m, now() - t0);
        fflush(stdout);
        total_fail += f;
        total_mism += m;
    }
    free_inputs(&in);
    ASSERT_OK(alloy_device_close(dev));
    for (int i = 0; i < O_COUNT; i++)
        free(ref[i]);
    free_host_inputs(&h);
    printf("apple_scenario: failures=%ld mismatches=%ld reference_checks_failed=%d\n", total_fail,
           total_mism, ref_bad);
    return total_fail || total_mism || ref_bad ? 1 : 0;
}
