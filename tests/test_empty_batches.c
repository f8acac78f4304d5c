/* Empty batches of large matrices, for every operation: a batch dimension of extent 0
 * means no matrices at all, whatever their size. Each op must encode, run and write
 * nothing, on one worker and on all of them, f32 and f64. The matrices are large enough
 * to take each op's big-matrix paths (split K, the panel kernel's wide tiles, thin and
 * skinny products, prepacked operands, panel copies in LU, blocked solves), whose
 * planning divides work and workspace among the batch entries: a division by the entry
 * count once crashed lu_factor here (found by the torture run's random shapes).
 * Non-batched operands (a broadcast B, LU or triangle) are real memory, filled with a
 * byte pattern that must survive; nothing else is read or written. */
#include "harness.h"
#include "test_util.h"

#define PATTERN 0x5a

typedef struct ctx {
    alloy_device *dev;
    alloy_queue *q;
    alloy_buffer *bufs[8];
    int nbufs;
} ctx;

/* A buffer of `bytes` (at least 64) filled with PATTERN, kept to be checked. */
static alloy_buffer *pattern_buffer(ctx *x, size_t bytes)
{
    alloy_buffer *b = test_buffer(x->dev, bytes < 64 ? 64 : bytes);
    memset(alloy_buffer_contents(b), PATTERN, bytes < 64 ? 64 : bytes);
    ASSERT(x->nbufs < 8);
    x->bufs[x->nbufs++] = b;
    return b;
}

static alloy_array arr(ctx *x, alloy_dtype t, int rank, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < rank; d++)
        n *= shape[d];
    alloy_buffer *b = pattern_buffer(x, (size_t)n * alloy_dtype_size(t));
    return alloy_array_contiguous(b, 0, t, rank, shape);
}

/* Runs the encoded command buffer, then checks every buffer still holds the pattern and
 * frees them. */
static void finish(ctx *x, alloy_cmdbuf *cb, const char *what)
{
    test_commit_wait(cb);
    for (int i = 0; i < x->nbufs; i++) {
        const unsigned char *p = alloy_buffer_contents(x->bufs[i]);
        size_t n = alloy_buffer_size(x->bufs[i]);
        for (size_t j = 0; j < n; j++)
            if (p[j] != PATTERN)
                FAIL_AT("%s: buffer %d byte %zu changed to 0x%02x", what, i, j, p[j]);
        ASSERT_OK(alloy_buffer_destroy(x->bufs[i]));
    }
    x->nbufs = 0;
}

static const alloy_dtype dts[] = {ALLOY_F32, ALLOY_F64};
static const int workers[] = {1, 0}; /* one, and all cores */

static ctx ctx_open(int w)
{
    ctx x = {test_cpu_device(w), NULL, {0}, 0};
    x.q = test_queue(x.dev);
    return x;
}

static void ctx_close(ctx *x)
{
    ASSERT_OK(alloy_queue_destroy(x->q));
    ASSERT_OK(alloy_device_close(x->dev));
}

TEST(matmul)
{
    /* M, K, N: wide (panel kernel), skinny with deep K, thin, split K, large square */
    static const int64_t shapes[][3] = {
        {512, 600, 520}, {3, 5000, 700}, {300, 4096, 6}, {64, 9000, 64}, {1000, 300, 1000}};
    for (int wi = 0; wi < 2; wi++) {
        ctx x = ctx_open(workers[wi]);
        for (int di = 0; di < 2; di++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int v = 0; v < 3; v++) {
                    const int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
                    const alloy_dtype t = dts[di];
                    /* v 0: (0,M,K) @ (K,N); 1: (2,0,M,K) @ (K,N) with alpha, beta, bias;
                     * 2: (0,M,K) @ (0,K,N) */
                    alloy_array a = arr(&x, t, 3, (int64_t[3]){0, m, k});
                    if (v == 1)
                        a = arr(&x, t, 4, (int64_t[4]){2, 0, m, k});
                    alloy_array b = v == 2 ? arr(&x, t, 3, (int64_t[3]){0, k, n})
                                           : arr(&x, t, 2, (int64_t[2]){k, n});
                    alloy_array c = v == 1 ? arr(&x, t, 4, (int64_t[4]){2, 0, m, n})
                                           : arr(&x, t, 3, (int64_t[3]){0, m, n});
                    alloy_array bias = arr(&x, t, 1, (int64_t[1]){n});
                    alloy_matmul_desc md = alloy_matmul_desc_default();
                    if (v == 1) {
                        md.alpha = 0.5;
                        md.beta = 2.0;
                    }
                    alloy_cmdbuf *cb = test_cmdbuf(x.q);
                    ASSERT_OK(alloy_encode_matmul(cb, &md, &a, &b, v == 1 ? &bias : NULL, &c));
                    finish(&x, cb, "matmul");
                }
        ctx_close(&x);
    }
}

TEST(lu_factor)
{
    /* square (panels copied), tall and narrow, wide */
    static const int64_t shapes[][2] = {{300, 300}, {2000, 40}, {100, 700}, {1100, 1100}};
    for (int wi = 0; wi < 2; wi++) {
        ctx x = ctx_open(workers[wi]);
        for (int di = 0; di < 2; di++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                const int64_t m = shapes[s][0], n = shapes[s][1], mn = m < n ? m : n;
                alloy_array a = arr(&x, dts[di], 3, (int64_t[3]){0, m, n});
                alloy_array piv = arr(&x, ALLOY_I32, 2, (int64_t[2]){0, mn});
                alloy_array info = arr(&x, ALLOY_I32, 1, (int64_t[1]){0});
                alloy_cmdbuf *cb = test_cmdbuf(x.q);
                ASSERT_OK(alloy_encode_lu_factor(cb, &a, &piv, &info));
                finish(&x, cb, "lu_factor");
            }
        ctx_close(&x);
    }
}

TEST(lu_solve)
{
    static const int64_t ns[][2] = {{300, 64}, {700, 3}, {64, 900}};
    for (int wi = 0; wi < 2; wi++) {
        ctx x = ctx_open(workers[wi]);
        for (int di = 0; di < 2; di++)
            for (size_t s = 0; s < sizeof ns / sizeof ns[0]; s++)
                for (int v = 0; v < 4; v++) {
                    const int64_t n = ns[s][0], nrhs = ns[s][1];
                    /* v & 1: lu and pivots broadcast (real memory); v & 2: transposed */
                    alloy_array lu = v & 1 ? arr(&x, dts[di], 2, (int64_t[2]){n, n})
                                           : arr(&x, dts[di], 3, (int64_t[3]){0, n, n});
                    alloy_array piv = v & 1 ? arr(&x, ALLOY_I32, 1, (int64_t[1]){n})
                                            : arr(&x, ALLOY_I32, 2, (int64_t[2]){0, n});
                    alloy_array b = arr(&x, dts[di], 3, (int64_t[3]){0, n, nrhs});
                    alloy_lu_solve_desc d = alloy_lu_solve_desc_default();
                    d.transpose = v >> 1;
                    alloy_cmdbuf *cb = test_cmdbuf(x.q);
                    ASSERT_OK(alloy_encode_lu_solve(cb, &d, &lu, &piv, &b));
                    finish(&x, cb, "lu_solve");
                }
        ctx_close(&x);
    }
}

TEST(triangular_solve)
{
    static const int64_t shapes[][2] = {{300, 200}, {2048, 5}, {7, 1500}, {600, 600}};
    for (int wi = 0; wi < 2; wi++) {
        ctx x = ctx_open(workers[wi]);
        for (int di = 0; di < 2; di++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int v = 0; v < 16; v++) {
                    const int64_t m = shapes[s][0], n = shapes[s][1];
                    alloy_triangular_desc d = alloy_triangular_desc_default();
                    d.side = v & 1 ? ALLOY_RIGHT : ALLOY_LEFT;
                    d.uplo = v & 2 ? ALLOY_LOWER : ALLOY_UPPER;
                    d.transpose = (v >> 2) & 1;
                    d.alpha = v & 8 ? -1.5 : 1.0;
                    const int64_t kk = d.side == ALLOY_LEFT ? m : n;
                    /* the triangle broadcast (real memory) on odd shapes, batched on even */
                    alloy_array a = s & 1 ? arr(&x, dts[di], 2, (int64_t[2]){kk, kk})
                                          : arr(&x, dts[di], 3, (int64_t[3]){0, kk, kk});
                    alloy_array b = arr(&x, dts[di], 3, (int64_t[3]){0, m, n});
                    alloy_cmdbuf *cb = test_cmdbuf(x.q);
                    ASSERT_OK(alloy_encode_triangular_solve(cb, &d, &a, &b));
                    finish(&x, cb, "triangular_solve");
                }
        ctx_close(&x);
    }
}

TEST(layer_norm)
{
    static const int64_t ds[] = {1, 1000, 100000};
    for (int wi = 0; wi < 2; wi++) {
        ctx x = ctx_open(workers[wi]);
        for (int di = 0; di < 2; di++)
            for (int s = 0; s < 3; s++)
                for (int rms = 0; rms < 2; rms++) {
                    const int64_t d = ds[s];
                    alloy_array in = arr(&x, dts[di], 3, (int64_t[3]){4, 0, d});
                    alloy_array out = arr(&x, dts[di], 3, (int64_t[3]){4, 0, d});
                    alloy_array gamma = arr(&x, dts[di], 1, (int64_t[1]){d});
                    alloy_array beta = arr(&x, dts[di], 1, (int64_t[1]){d});
                    alloy_array mean = arr(&x, ALLOY_F32, 2, (int64_t[2]){4, 0});
                    alloy_array rstd = arr(&x, ALLOY_F32, 2, (int64_t[2]){4, 0});
                    alloy_norm_desc nd = alloy_norm_desc_default();
                    nd.rms = rms;
                    alloy_cmdbuf *cb = test_cmdbuf(x.q);
                    ASSERT_OK(alloy_encode_layer_norm(cb, &nd, &in, &gamma, &beta, &out,
                                                      rms ? NULL : &mean, &rstd));
                    finish(&x, cb, "layer_norm");
                }
        ctx_close(&x);
    }
}

TEST(copy)
{
    for (int wi = 0; wi < 2; wi++) {
        ctx x = ctx_open(workers[wi]);
        for (int di = 0; di < 2; di++)
            for (int v = 0; v < 2; v++) {
                /* v 1: a broadcast source (real memory) into an empty batch, converting */
                alloy_array src = v ? arr(&x, dts[di], 2, (int64_t[2]){1000, 1000})
                                    : arr(&x, dts[di], 3, (int64_t[3]){0, 1000, 1000});
                alloy_array dst =
                    arr(&x, v ? dts[1 - di] : dts[di], 3, (int64_t[3]){0, 1000, 1000});
                alloy_cmdbuf *cb = test_cmdbuf(x.q);
                ASSERT_OK(alloy_encode_copy(cb, &src, &dst));
                finish(&x, cb, "copy");
            }
        ctx_close(&x);
    }
}

TEST_LIST{
    TEST_ENTRY(matmul),           TEST_ENTRY(lu_factor),  TEST_ENTRY(lu_solve),
    TEST_ENTRY(triangular_solve), TEST_ENTRY(layer_norm), TEST_ENTRY(copy),
};

int main(int argc, char **argv) { return run_tests(argc, argv); }
