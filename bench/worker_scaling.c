/* One large product on a one-worker CPU device against the same product on a device with
 * every core a worker: the speedup, and whether the two results are the same bits. Needs
 * no vendor library, so it runs on any machine (the GPU machine's 16 cores among them).
 *   worker_scaling [pairs] [workers]   (default 5 pairs; workers 0: one per core)
 * For f32 and f64 at n = 512, 1024, 2048, 4096 it runs the two devices in interleaved
 * pairs, each side the best of 2-3 timings (commit to the end of wait), and prints the
 * median GFLOPS of each and the median speedup with its spread over the pairs.
 * ALLOY_BENCH_KERNEL=avx2 (or portable, avx512) forces alloy's microkernel set. */
#include "alloy.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct side {
    alloy_device *dev;
    alloy_queue *q;
    alloy_buffer *a, *b, *c;
} side;

static side side_open(int workers, alloy_dtype t, int n)
{
    side s;
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = workers;
    d.cpu_kernel = bench_kernel();
    check(alloy_device_open(&d, &s.dev), "device");
    check(alloy_queue_create(s.dev, &s.q), "queue");
    const size_t bytes = alloy_dtype_size(t) * (size_t)n * (size_t)n;
    check(alloy_buffer_create(s.dev, bytes, ALLOY_MEMORY_HOST, &s.a), "buffer");
    check(alloy_buffer_create(s.dev, bytes, ALLOY_MEMORY_HOST, &s.b), "buffer");
    check(alloy_buffer_create(s.dev, bytes, ALLOY_MEMORY_HOST, &s.c), "buffer");
    unsigned seed = 777;
    for (int which = 0; which < 2; which++) {
        void *p = alloy_buffer_contents(which ? s.b : s.a);
        for (size_t i = 0; i < (size_t)n * (size_t)n; i++) {
            seed = seed * 1103515245u + 12345u;
            double v = (double)((seed >> 8) & 0xffff) / 65536.0 - 0.5;
            if (t == ALLOY_F64)
                ((double *)p)[i] = v;
            else
                ((float *)p)[i] = (float)v;
        }
    }
    return s;
}

static void side_close(side *s)
{
    alloy_buffer_destroy(s->a);
    alloy_buffer_destroy(s->b);
    alloy_buffer_destroy(s->c);
    alloy_queue_destroy(s->q);
    alloy_device_close(s->dev);
}

/* The best of `reps` timings of C = A B. */
static double run(side *s, alloy_dtype t, int n, int reps)
{
    int64_t sh[2] = {n, n};
    alloy_array a = alloy_array_contiguous(s->a, 0, t, 2, sh);
    alloy_array b = alloy_array_contiguous(s->b, 0, t, 2, sh);
    alloy_array c = alloy_array_contiguous(s->c, 0, t, 2, sh);
    alloy_matmul_desc d = alloy_matmul_desc_default();
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        alloy_cmdbuf *cb;
        check(alloy_cmdbuf_create(s->q, &cb), "cmdbuf");
        check(alloy_encode_matmul(cb, &d, &a, &b, NULL, &c), "matmul");
        double t0 = now();
        check(alloy_cmdbuf_commit(cb), "commit");
        check(alloy_cmdbuf_wait(cb), "wait");
        double el = now() - t0;
        best = el < best ? el : best;
        alloy_cmdbuf_destroy(cb);
    }
    return best;
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 5;
    pairs = pairs < 1 ? 1 : pairs > 51 ? 51 : pairs;
    const int many = argc > 2 ? atoi(argv[2]) : 0;
    static const int sizes[] = {512, 1024, 2048, 4096};
    int failed = 0, workers = 0;
    printf("%-14s %12s %12s %10s %18s %8s\n", "case", "one GF/s", "all GF/s", "speedup",
           "speedup min..max", "bits");
    for (int f64 = 0; f64 < 2; f64++)
        for (int si = 0; si < 4; si++) {
            const int n = sizes[si];
            const alloy_dtype t = f64 ? ALLOY_F64 : ALLOY_F32;
            side one = side_open(1, t, n), all = side_open(many, t, n);
            workers = alloy_device_workers(all.dev);
            const int reps = n >= 4096 ? 2 : 3;
            double t1[51], tn[51], sp[51];
            for (int p = 0; p < pairs; p++) {
                t1[p] = run(&one, t, n, reps);
                tn[p] = run(&all, t, n, reps);
                sp[p] = t1[p] / tn[p];
            }
            const size_t bytes = alloy_dtype_size(t) * (size_t)n * (size_t)n;
            const int same =
                memcmp(alloy_buffer_contents(one.c), alloy_buffer_contents(all.c), bytes) == 0;
            failed |= !same;
            qsort(t1, (size_t)pairs, sizeof(double), cmp);
            qsort(tn, (size_t)pairs, sizeof(double), cmp);
            qsort(sp, (size_t)pairs, sizeof(double), cmp);
            const double fl = 2.0 * n * (double)n * n * 1e-9;
            char name[32];
            snprintf(name, sizeof name, "%cgemm %d", f64 ? 'd' : 's', n);
            printf("%-14s %12.1f %12.1f %10.3f %8.3f..%-8.3f %8s\n", name, fl / t1[pairs / 2],
                   fl / tn[pairs / 2], sp[pairs / 2], sp[0], sp[pairs - 1],
                   same ? "equal" : "DIFFER");
            fflush(stdout);
            side_close(&one);
            side_close(&all);
        }
    printf("all = %d workers; %d interleaved pairs\n", workers, pairs);
    return failed;
}
