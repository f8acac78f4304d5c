/* op_latency: how long one small op takes from commit to the end of wait, on a device of
 * one worker and on one of many (by default every core: the default device), in the same
 * run. Small ops are one task, so the many-worker device should be no slower; where it is,
 * the cost is the pool's (workers racing or polling beside the thread that runs the op).
 *   op_latency [rounds] [workers]   (default 15 rounds; workers 0: every core)
 * Each round runs 200 ops (fewer for the larger cases) on each device, alternating which
 * goes first, and keeps each side's median; the table gives the median of those medians,
 * their ratio many / one (1: no cost), the mean over every op of the run (where the rare
 * slow ones show) and, on Linux, the application thread's voluntary context switches per
 * op (each is a sleep in wait and a wake-up). The two devices' results are compared bit
 * for bit. */
#include "alloy.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static long sleeps(void)
{
#ifdef RUSAGE_THREAD
    struct rusage u;
    if (getrusage(RUSAGE_THREAD, &u) == 0)
        return u.ru_nvcsw;
#endif
    return 0;
}

typedef enum { MATMUL, TRSM, NORM } kind;

typedef struct op_case {
    const char *name;
    kind k;
    int64_t m, n, kk; /* matmul m x kk @ kk x n; trsm m x m, n rhs; norm m x n */
    int reps;
} op_case;

/* One device's arrays for a case: a (input), b (input), c (output). */
typedef struct side {
    alloy_device *dev;
    alloy_queue *q;
    alloy_buffer *ba, *bb, *bc;
    alloy_array a, b, c;
    double *t;
    double sum; /* of every op's time, for the mean */
    long nvcsw;
} side;

static void fill(alloy_buffer *buf, size_t n, int diag, int64_t cols)
{
    float *p = alloy_buffer_contents(buf);
    unsigned s = 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
        if (diag && (int64_t)(i / (size_t)cols) == (int64_t)(i % (size_t)cols))
            p[i] += (float)cols; /* a well-conditioned triangle */
    }
}

static void side_setup(side *sd, const op_case *oc)
{
    int64_t sa[2], sb[2], sc[2];
    if (oc->k == MATMUL) {
        sa[0] = oc->m, sa[1] = oc->kk, sb[0] = oc->kk, sb[1] = oc->n, sc[0] = oc->m, sc[1] = oc->n;
    } else if (oc->k == TRSM) {
        sa[0] = sa[1] = oc->m, sb[0] = oc->m, sb[1] = oc->n, sc[0] = oc->m, sc[1] = oc->n;
    } else {
        sa[0] = sb[0] = sc[0] = oc->m, sa[1] = sb[1] = sc[1] = oc->n;
    }
    check(alloy_buffer_create(sd->dev, (size_t)(sa[0] * sa[1]) * 4, ALLOY_MEMORY_HOST, &sd->ba),
          "buffer");
    check(alloy_buffer_create(sd->dev, (size_t)(sb[0] * sb[1]) * 4, ALLOY_MEMORY_HOST, &sd->bb),
          "buffer");
    check(alloy_buffer_create(sd->dev, (size_t)(sc[0] * sc[1]) * 4, ALLOY_MEMORY_HOST, &sd->bc),
          "buffer");
    fill(sd->ba, (size_t)(sa[0] * sa[1]), oc->k == TRSM, sa[1]);
    fill(sd->bb, (size_t)(sb[0] * sb[1]), 0, sb[1]);
    sd->a = alloy_array_contiguous(sd->ba, 0, ALLOY_F32, 2, sa);
    sd->b = alloy_array_contiguous(sd->bb, 0, ALLOY_F32, 2, sb);
    sd->c = alloy_array_contiguous(sd->bc, 0, ALLOY_F32, 2, sc);
}

static void side_teardown(side *sd)
{
    alloy_buffer_destroy(sd->ba);
    alloy_buffer_destroy(sd->bb);
    alloy_buffer_destroy(sd->bc);
}

/* Runs the case reps times; returns the median seconds from commit to the end of wait. */
static double side_run(side *sd, const op_case *oc)
{
    size_t bytes = alloy_buffer_size(sd->bc);
    long v0 = sleeps();
    for (int r = 0; r < oc->reps; r++) {
        if (oc->k == TRSM) /* solved in place: the right-hand sides again */
            memcpy(alloy_buffer_contents(sd->bc), alloy_buffer_contents(sd->bb), bytes);
        alloy_cmdbuf *cb;
        check(alloy_cmdbuf_create(sd->q, &cb), "cmdbuf");
        if (oc->k == MATMUL) {
            alloy_matmul_desc d = alloy_matmul_desc_default();
            check(alloy_encode_matmul(cb, &d, &sd->a, &sd->b, NULL, &sd->c), "matmul");
        } else if (oc->k == TRSM) {
            alloy_triangular_desc d = alloy_triangular_desc_default();
            d.uplo = ALLOY_LOWER;
            check(alloy_encode_triangular_solve(cb, &d, &sd->a, &sd->c), "triangular_solve");
        } else {
            alloy_norm_desc d = alloy_norm_desc_default();
            check(alloy_encode_layer_norm(cb, &d, &sd->a, NULL, NULL, &sd->c, NULL, NULL),
                  "layer_norm");
        }
        double t0 = now();
        check(alloy_cmdbuf_commit(cb), "commit");
        check(alloy_cmdbuf_wait(cb), "wait");
        sd->t[r] = now() - t0;
        sd->sum += sd->t[r];
        check(alloy_cmdbuf_destroy(cb), "destroy");
    }
    sd->nvcsw += sleeps() - v0;
    qsort(sd->t, (size_t)oc->reps, sizeof(double), cmp);
    return sd->t[oc->reps / 2];
}

static void open_side(side *sd, int workers)
{
    memset(sd, 0, sizeof *sd);
    alloy_device_desc dd = alloy_device_desc_default();
    dd.backend = ALLOY_BACKEND_CPU;
    dd.cpu_workers = workers;
    check(alloy_device_open(&dd, &sd->dev), "device");
    check(alloy_queue_create(sd->dev, &sd->q), "queue");
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 15;
    int workers = argc > 2 ? atoi(argv[2]) : 0;
    if (rounds < 1)
        rounds = 1;
    const op_case cases[] = {
        {"matmul f32 1x1x1", MATMUL, 1, 1, 1, 400},
        {"matmul f32 64^3", MATMUL, 64, 64, 64, 200},
        {"matmul f32 128^3", MATMUL, 128, 128, 128, 100},
        {"matmul f32 256^3", MATMUL, 256, 256, 256, 40},
        {"matmul f32 512^3", MATMUL, 512, 512, 512, 10},
        {"triangular_solve f32 128x128", TRSM, 128, 128, 0, 100},
        {"triangular_solve f32 512x512", TRSM, 512, 512, 0, 20},
        {"layer_norm f32 64x1024", NORM, 64, 1024, 0, 200},
    };
    side one, many;
    open_side(&one, 1);
    open_side(&many, workers);
    const int nworkers = alloy_device_workers(many.dev);
    printf("one op a command buffer, commit to end of wait; medians of %d rounds\n", rounds);
    printf("%-30s %11s %11s %7s %11s %11s %8s %8s\n", "case", "1 worker", "many", "ratio",
           "mean (1)", "mean (n)", "sleeps/op", "(n)");
    int bad = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const op_case *oc = &cases[ci];
        side *s[2] = {&one, &many};
        double *med[2];
        for (int i = 0; i < 2; i++) {
            side_setup(s[i], oc);
            s[i]->t = malloc(sizeof(double) * (size_t)oc->reps);
            med[i] = malloc(sizeof(double) * (size_t)rounds);
            s[i]->nvcsw = 0;
            s[i]->sum = 0;
            if (!s[i]->t || !med[i]) {
                fprintf(stderr, "out of memory\n");
                return 1;
            }
        }
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < 2; i++) {
                int who = (r & 1) ? 1 - i : i;
                med[who][r] = side_run(s[who], oc);
            }
        double m[2];
        for (int i = 0; i < 2; i++) {
            qsort(med[i], (size_t)rounds, sizeof(double), cmp);
            m[i] = med[i][rounds / 2];
        }
        int same = memcmp(alloy_buffer_contents(one.bc), alloy_buffer_contents(many.bc),
                          alloy_buffer_size(one.bc)) == 0;
        bad |= !same;
        double ops = (double)rounds * oc->reps;
        printf("%-30s %8.2f us %8.2f us %7.3f %8.2f us %8.2f us %8.3f %8.3f%s\n", oc->name,
               m[0] * 1e6, m[1] * 1e6, m[1] / m[0], one.sum / ops * 1e6, many.sum / ops * 1e6,
               (double)one.nvcsw / ops, (double)many.nvcsw / ops, same ? "" : "  RESULTS DIFFER");
        for (int i = 0; i < 2; i++) {
            side_teardown(s[i]);
            free(s[i]->t);
            free(med[i]);
        }
    }
    printf("many = %d workers\n", nworkers);
    alloy_queue_destroy(one.q);
    alloy_queue_destroy(many.q);
    alloy_device_close(one.dev);
    alloy_device_close(many.dev);
    return bad;
}
