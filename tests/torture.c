/* torture: the threading contract under load (issue 4, part 1).
 *
 * T threads (default 16) run a random mix of every operation, dtype and shape family
 * on one CPU device, and every result is compared bit for bit with the same operation
 * run alone on a quiet device (a second device, used by one thread, before the load
 * starts). What the mix contains:
 *   - operations drawn from a pool of specs made from the master seed: copy (all dtype
 *     pairs, broadcast, rank 0..4), matmul (f32/f16/bf16/f64, mixed C, bias, alpha/beta,
 *     batch broadcast, transposed views), lu_factor (square/tall/wide, singular),
 *     lu_solve (transpose, broadcast factors, sometimes bad pivots that must fail at run
 *     time and leave b alone), triangular_solve (every side/uplo/transpose/unit, alpha),
 *     layer_norm (every dtype pair, rms, in place, optional gamma/beta/mean/rstd),
 *     lu_factor + lu_solve chained in one command buffer, and "shared" specs that read
 *     buffers every thread reads at once (weights, triangular factors, pivots, gamma);
 *     views have offsets, padding, permuted storage and zero strides; 0-extent shapes;
 *   - every 8th operation a thread picks is a large one (every main dimension >= 256);
 *   - queues private to a thread (recreated now and then), queues shared by all, and
 *     one-shot queues; 1..3 command buffers committed before any wait; 1..3 specs per
 *     command buffer;
 *   - command buffers encoded on one thread and committed on another, committed on one
 *     and waited on another, several threads waiting on one, polled, or destroyed right
 *     after commit (fire and forget) and waited for with alloy_queue_wait_idle;
 *   - churn: threads live a random number of iterations and are replaced; buffers (made
 *     or wrapped), command buffers and queues are created and destroyed throughout; now
 *     and then a thread opens a private device with 1..4 workers for one operation;
 *   - first, a burst: max(T, 16) threads start together and encode operations that all
 *     read the same shared buffers (the shared-weights case).
 * Results: every buffer an operation touched (inputs too, padding included) is read back
 * and compared byte for byte with the reference, and the wait status with the
 * reference's status. Any other status from any call is a failure.
 *
 * Output: the seeds at the start; progress on stderr every few seconds in long runs; a
 * replay command with every mismatch; and a last line
 *   torture: ops=N threads=T mismatches=0 failures=0 ...
 * The exit status is 0 only when mismatches and failures are both 0.
 *
 * Usage: torture [--backend cpu|cuda] [--strict] [-t THREADS] [-n OPS] [-s SECONDS] [--seed S]
 *                [-p POOL] [-w WORKERS] [-r REF_WORKERS] [--long] [--progress SECONDS]
 *                [--burst ROUNDS]
 *        torture [--backend cuda] --seed S --replay SPEC_SEED [--large]
 *                (one spec on 1..8 workers, or on three fresh handles of the GPU)
 * With no options it runs the short form ctest uses (16 threads, about 1200 ops, a pool
 * of 96 specs). --long is the long run: a pool of 1024 specs, until 1,000,000 ops or
 * 3600 s. Options after --long override it. The run stops when OPS operations have been
 * checked or SECONDS have passed, whichever comes first (0 = no limit). WORKERS is the
 * device's worker count (0: one per core); REF_WORKERS the quiet device's (default 1).
 * --huge runs only the huge-batch phase (batches of 2^24 + 1 matrices; --long includes
 * it; about 200 MB). --corrupt flips one byte of one reference: a self-check that the comparison
 * bites (the run must then end with mismatches > 0 and exit 1).
 *
 * GPU mode: --backend cuda runs the same torture on CUDA device 0 (--backend cpu, the
 * default, is all of the above). The device under load and the quiet reference device are
 * two handles of the same GPU, so the oracle is the op run alone on the same GPU model.
 * Buffers are device memory, pinned host memory or wrapped (page-aligned) host memory,
 * written and read back with alloy_buffer_write/read. The spec generator is unchanged: its
 * dtypes are those the CUDA backend offers (matmul f32/f64/f16/bf16, lu and trsm f32/f64,
 * norm and copy every dtype). What is CPU-only is left out or replaced: -w/-r and
 * ALLOY_TEST_KERNEL do not apply; the private devices of the mix are fresh handles of the
 * same GPU; --replay runs the spec on three fresh GPU handles. An encode of lu_factor,
 * lu_solve or triangular_solve that a CUDA device answers ALLOY_ERR_UNSUPPORTED (not yet
 * implemented) is counted as "unsupported=" in the last line, not as a failure; those
 * specs stay out of the mix, and now and then a command buffer also gets one encoded among
 * its specs (it must be refused, recording nothing, and the others must still come out
 * right). --strict makes every such refusal a failure (gpu-check runs it so). Without a
 * CUDA device, --backend cuda prints "SKIP: no CUDA device: <reason>" and exits 0. */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* ====================================================================== specs */

#define MAXB 10    /* buffers of one spec */
#define MAXOPS 2   /* operations of one spec */
#define MAXST 3    /* structure edits of one spec */
#define MAXGROUP 3 /* specs in one command buffer */
#define NSHARED 5  /* shared buffers */
#define SHARED_N 320
#define NOARR (-1000)

enum fill_kind { FILL_RAND, FILL_SPECIAL, FILL_I32_RANGE, FILL_I32_ANY, FILL_PIV_PREFIX };

typedef struct bufspec {
    size_t bytes;
    alloy_dtype dtype;
    int fill;
    int32_t lo, hi;
} bufspec;

/* An array of a spec: buffer index (>= 0), shared buffer (-1 - id) or NOARR (NULL). */
typedef struct vdesc {
    int buf;
    size_t offset;
    alloy_dtype dtype;
    int rank;
    int64_t shape[ALLOY_MAX_RANK];
    int64_t strides[ALLOY_MAX_RANK];
} vdesc;

enum op_kind { OP_COPY, OP_MATMUL, OP_LU_FACTOR, OP_LU_SOLVE, OP_TRSM, OP_NORM };
static const char *const op_names[] = {"copy",     "matmul",           "lu_factor",
                                       "lu_solve", "triangular_solve", "layer_norm"};

/* Operands: copy (src, dst); matmul (a, b, bias, c); lu_factor (a, pivots, info);
 * lu_solve (lu, pivots, b); trsm (a, b); norm (x, gamma, beta, y, mean, rstd). */
typedef struct opspec {
    int kind;
    vdesc v[6];
    alloy_matmul_desc mm;
    alloy_lu_solve_desc ls;
    alloy_triangular_desc tr;
    alloy_norm_desc nd;
} opspec;

enum st_kind { ST_DIAG, ST_ZERO_COL };
/* Edits of the staged contents through a view: ST_DIAG makes every matrix of the view
 * diagonally dominant (off-diagonal u*scale, diagonal +-(1+|u|)); ST_ZERO_COL zeroes
 * column `col` of batch entry `entry` (a singular matrix). */
typedef struct structspec {
    int kind;
    vdesc v;
    double scale;
    int64_t entry, col;
} structspec;

enum family {
    FAM_COPY,
    FAM_MATMUL,
    FAM_LU_FACTOR,
    FAM_LU_SOLVE,
    FAM_TRSM,
    FAM_NORM,
    FAM_LU_CHAIN,
    FAM_SHARED,
    FAM_COUNT
};
static const char *const family_names[] = {"copy", "matmul",     "lu_factor", "lu_solve",
                                           "trsm", "layer_norm", "lu_chain",  "shared"};

typedef struct spec {
    uint64_t seed;
    int large, family, uses_shared, may_fail;
    int refused, refused_op; /* GPU mode: the reference encode was refused at op refused_op;
                                the spec is kept out of the mix */
    char name[96];
    int nbufs;
    bufspec b[MAXB];
    int nops;
    opspec ops[MAXOPS];
    int nst;
    structspec st[MAXST];
    /* the reference: run alone on the quiet device */
    int ref_ok;              /* 0: excluded (the reference run itself failed) */
    alloy_status ref_status; /* wait status */
    size_t ref_bytes;
    unsigned char *ref; /* every buffer's contents after the run, in buffer order */
} spec;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

_Noreturn static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "torture: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

/* ---------------------------------------------------------------- generator */

typedef struct gen {
    spec *sp;
    test_rng g;
    int large;
} gen;

static uint64_t R(gen *G) { return rng_next(&G->g); }
static int64_t RR(gen *G, int64_t lo, int64_t hi) { return rng_range(&G->g, lo, hi); }

static int add_buf(spec *sp, size_t bytes, alloy_dtype dt, int fill, int32_t lo, int32_t hi)
{
    if (sp->nbufs >= MAXB)
        die("generator: spec %llx needs more than %d buffers", (unsigned long long)sp->seed, MAXB);
    bufspec *b = &sp->b[sp->nbufs];
    b->bytes = bytes;
    b->dtype = dt;
    b->fill = fill;
    b->lo = lo;
    b->hi = hi;
    return sp->nbufs++;
}

/* A main dimension: large specs 256..320; others mostly small, some 0, some medium. */
static int64_t pick_dim(gen *G)
{
    if (G->large)
        return RR(G, 256, 320);
    unsigned r = (unsigned)(R(G) % 100);
    if (r < 4)
        return 0;
    if (r < 35)
        return RR(G, 1, 4);
    if (r < 75)
        return RR(G, 5, 16);
    return RR(G, 17, 96);
}

static alloy_dtype pick_float(gen *G)
{
    static const alloy_dtype t[4] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    return t[R(G) % 4];
}

/* The batch shape of an op's output: none, or 1..2 small dims (sometimes 0). */
static int pick_batch(gen *G, int64_t *bs)
{
    if (G->large) {
        if (R(G) % 6 == 0) {
            bs[0] = 2;
            return 1;
        }
        return 0;
    }
    int br = (int)(R(G) % 3);
    for (int i = 0; i < br; i++)
        bs[i] = R(G) % 25 == 0 ? 0 : RR(G, 1, 3);
    return br;
}

/* An input's batch dims that broadcast to bs: some leading dims dropped, some set to 1. */
static int operand_batch(gen *G, int br, const int64_t *bs, int64_t *out)
{
    int drop = br > 0 && R(G) % 3 == 0 ? (int)RR(G, 1, br) : 0;
    int r = br - drop;
    for (int i = 0; i < r; i++)
        out[i] = R(G) % 4 == 0 ? 1 : bs[drop + i];
    return r;
}

/* A fresh buffer holding a view of the given shape: storage order row-major, the last
 * two dims swapped (column-major) or shuffled; sometimes padded rows, an offset, slack
 * at the end; inputs sometimes broadcast (stride 0) along dims in bmask. */
static vdesc make_view(gen *G, alloy_dtype dt, int rank, const int64_t *shape, int output,
                       unsigned bmask, int fill, int32_t lo, int32_t hi)
{
    vdesc v;
    memset(&v, 0, sizeof v);
    v.dtype = dt;
    v.rank = rank;
    int order[ALLOY_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        v.shape[i] = shape[i];
        order[i] = i;
    }
    unsigned r = (unsigned)(R(G) % 6);
    if (rank >= 2 && r < 2) {
        int t = order[rank - 1];
        order[rank - 1] = order[rank - 2];
        order[rank - 2] = t;
    } else if (rank >= 2 && r == 2) {
        for (int i = rank - 1; i > 0; i--) {
            int j = (int)RR(G, 0, i);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    int64_t pad = rank >= 2 && R(G) % 4 == 0 ? RR(G, 1, 5) : 0;
    int64_t s = 1;
    for (int k = rank - 1; k >= 0; k--) {
        int d = order[k];
        v.strides[d] = s;
        int64_t ext = shape[d] > 0 ? shape[d] : 1;
        s = s * ext + (k == rank - 1 ? pad : 0);
    }
    if (!output)
        for (int d = 0; d < rank; d++)
            if (((bmask >> d) & 1u) && shape[d] > 1 && R(G) % 6 == 0)
                v.strides[d] = 0;
    size_t es = alloy_dtype_size(dt);
    v.offset = R(G) % 4 == 0 ? (size_t)RR(G, 1, 5) * es : 0;
    int empty = 0;
    uint64_t span = 0;
    for (int d = 0; d < rank; d++) {
        if (shape[d] == 0)
            empty = 1;
        else
            span += (uint64_t)(shape[d] - 1) * (uint64_t)v.strides[d];
    }
    size_t bytes = v.offset + (empty ? 0 : (size_t)(span + 1) * es) + (size_t)(R(G) % 3) * es;
    v.buf = add_buf(G->sp, bytes, dt, fill, lo, hi);
    return v;
}

static vdesc no_array(void)
{
    vdesc v;
    memset(&v, 0, sizeof v);
    v.buf = NOARR;
    return v;
}

/* Shared buffers: 0 f32 and 1 f64 random 320x320; 2 f32 and 3 f64 diagonally dominant
 * 320x320; 4 pivots (320 int32, pivot[i] in 1..i+1, valid for every leading N). */
static alloy_dtype shared_dtype(int sid)
{
    static const alloy_dtype t[NSHARED] = {ALLOY_F32, ALLOY_F64, ALLOY_F32, ALLOY_F64, ALLOY_I32};
    return t[sid];
}

/* rows x cols of shared matrix sid from (r0, c0), or its transpose (element (i, j) is
 * S[c0 + j][r0 + i]). */
static vdesc shared_view(gen *G, int sid, int64_t rows, int64_t cols, int trans, int64_t r0,
                         int64_t c0)
{
    vdesc v;
    memset(&v, 0, sizeof v);
    G->sp->uses_shared = 1;
    v.buf = -1 - sid;
    v.dtype = shared_dtype(sid);
    size_t es = alloy_dtype_size(v.dtype);
    v.rank = 2;
    v.shape[0] = rows;
    v.shape[1] = cols;
    if (!trans) {
        v.strides[0] = SHARED_N;
        v.strides[1] = 1;
        v.offset = (size_t)(r0 * SHARED_N + c0) * es;
    } else {
        v.strides[0] = 1;
        v.strides[1] = SHARED_N;
        v.offset = (size_t)(c0 * SHARED_N + r0) * es;
    }
    return v;
}

/* A row segment of shared matrix sid (stride 1) or a column segment (stride 320). */
static vdesc shared_vector(gen *G, int sid, int64_t len)
{
    int64_t at = RR(G, 0, SHARED_N - 1), from = RR(G, 0, SHARED_N - len);
    vdesc v = shared_view(G, sid, 1, len, (int)(R(G) % 3 == 0), at, from);
    v.rank = 1;
    v.shape[0] = len;
    v.strides[0] = v.strides[1];
    return v;
}

/* Prepends batch dims bs (stride 0: every batch entry reads the same shared matrix). */
static void broadcast_batch(vdesc *v, int br, const int64_t *bs)
{
    for (int d = v->rank - 1; d >= 0; d--) {
        v->shape[d + br] = v->shape[d];
        v->strides[d + br] = v->strides[d];
    }
    for (int d = 0; d < br; d++) {
        v->shape[d] = bs[d];
        v->strides[d] = 0;
    }
    v->rank += br;
}

static void add_struct(spec *sp, int kind, const vdesc *v, double scale, int64_t entry, int64_t col)
{
    if (sp->nst >= MAXST)
        die("generator: too many structure edits");
    structspec *s = &sp->st[sp->nst++];
    s->kind = kind;
    s->v = *v;
    s->scale = scale;
    s->entry = entry;
    s->col = col;
}

static opspec *add_op(spec *sp, int kind)
{
    if (sp->nops >= MAXOPS)
        die("generator: too many ops");
    opspec *o = &sp->ops[sp->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    for (int i = 0; i < 6; i++)
        o->v[i] = no_array();
    return o;
}

static const char *dtn(alloy_dtype t)
{
    switch (t) {
    case ALLOY_F32: return "f32";
    case ALLOY_F64: return "f64";
    case ALLOY_F16: return "f16";
    case ALLOY_BF16: return "bf16";
    case ALLOY_I32: return "i32";
    }
    return "?";
}

static int64_t batch_count(int br, const int64_t *bs)
{
    int64_t c = 1;
    for (int i = 0; i < br; i++)
        c *= bs[i];
    return c;
}

static void gen_copy(gen *G)
{
    spec *sp = G->sp;
    int i32 = R(G) % 8 == 0;
    alloy_dtype dd = i32 ? ALLOY_I32 : pick_float(G), sd = i32 ? ALLOY_I32 : pick_float(G);
    int64_t ds[ALLOY_MAX_RANK], ss[ALLOY_MAX_RANK];
    int dr;
    if (G->large) {
        dr = 2;
        ds[0] = pick_dim(G);
        ds[1] = pick_dim(G);
        if (R(G) % 4 == 0) {
            dr = 3;
            ds[2] = ds[1];
            ds[1] = ds[0];
            ds[0] = 2;
        }
    } else {
        dr = (int)(R(G) % 5);
        for (int d = 0; d < dr; d++)
            ds[d] = dr >= 3 ? RR(G, 0, 8) : pick_dim(G);
    }
    int sr = R(G) % 2 ? dr : (int)RR(G, 0, dr);
    for (int i = 0; i < sr; i++)
        ss[i] = R(G) % 4 == 0 ? 1 : ds[dr - sr + i];
    opspec *o = add_op(sp, OP_COPY);
    o->v[0] = make_view(G, sd, sr, ss, 0, 0xffu, R(G) % 3 == 0 ? FILL_SPECIAL : FILL_RAND, 0, 0);
    o->v[1] = make_view(G, dd, dr, ds, 1, 0, i32 ? FILL_I32_ANY : FILL_RAND, 0, 0);
    snprintf(sp->name, sizeof sp->name, "copy %s>%s rank %d>%d", dtn(sd), dtn(dd), sr, dr);
}

static const double alpha_table[] = {1.0, 1.0, 0.5, -2.0, 0.0};
static const double beta_table[] = {0.0, 0.0, 1.0, 0.25};

static void gen_matmul(gen *G)
{
    spec *sp = G->sp;
    int t = (int)(R(G) % 6);
    alloy_dtype in = t < 2    ? ALLOY_F32
                     : t == 2 ? ALLOY_F16
                     : t == 3 ? ALLOY_BF16
                     : t == 4 ? ALLOY_F64
                              : ALLOY_F32;
    alloy_dtype cd = in == ALLOY_F64 ? ALLOY_F64 : (in == ALLOY_F32 || R(G) % 2) ? ALLOY_F32 : in;
    int64_t m = pick_dim(G), n = pick_dim(G), k = pick_dim(G);
    int64_t bs[2], abs_[2], bbs[2], sh[ALLOY_MAX_RANK];
    int br = pick_batch(G, bs);
    int ra = operand_batch(G, br, bs, abs_), rb = operand_batch(G, br, bs, bbs);
    opspec *o = add_op(sp, OP_MATMUL);
    o->mm = alloy_matmul_desc_default();
    o->mm.alpha = alpha_table[R(G) % 5];
    o->mm.beta = beta_table[R(G) % 4];
    o->mm.allow_tf32 = t == 5;
    memcpy(sh, abs_, sizeof(int64_t) * (size_t)ra);
    sh[ra] = m;
    sh[ra + 1] = k;
    o->v[0] = make_view(G, in, ra + 2, sh, 0, (1u << ra) - 1, FILL_RAND, 0, 0);
    memcpy(sh, bbs, sizeof(int64_t) * (size_t)rb);
    sh[rb] = k;
    sh[rb + 1] = n;
    o->v[1] = make_view(G, in, rb + 2, sh, 0, (1u << rb) - 1, FILL_RAND, 0, 0);
    if (R(G) % 3 == 0) {
        alloy_dtype bd = cd == ALLOY_F64 && R(G) % 2 ? ALLOY_F64 : (alloy_dtype)(R(G) % 4);
        if (bd == ALLOY_F64 && cd != ALLOY_F64)
            bd = ALLOY_F32;
        o->v[2] = make_view(G, bd, 1, &n, 0, 1u, FILL_RAND, 0, 0);
    }
    memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
    sh[br] = m;
    sh[br + 1] = n;
    o->v[3] =
        make_view(G, cd, br + 2, sh, 1, 0, o->mm.beta == 0.0 ? FILL_SPECIAL : FILL_RAND, 0, 0);
    snprintf(sp->name, sizeof sp->name, "matmul %s>%s b%lld %lldx%lldx%lld a%g b%g%s", dtn(in),
             dtn(cd), (long long)batch_count(br, bs), (long long)m, (long long)n, (long long)k,
             o->mm.alpha, o->mm.beta, o->v[2].buf != NOARR ? " bias" : "");
}

static void gen_lu_factor(gen *G)
{
    spec *sp = G->sp;
    alloy_dtype dt = R(G) % 2 ? ALLOY_F32 : ALLOY_F64;
    int64_t m = pick_dim(G), n = R(G) % 5 < 3 ? m : pick_dim(G), mn = m < n ? m : n;
    int64_t bs[2], sh[ALLOY_MAX_RANK];
    int br = pick_batch(G, bs);
    opspec *o = add_op(sp, OP_LU_FACTOR);
    memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
    sh[br] = m;
    sh[br + 1] = n;
    o->v[0] = make_view(G, dt, br + 2, sh, 1, 0, FILL_RAND, 0, 0);
    sh[br] = mn;
    o->v[1] = make_view(G, ALLOY_I32, br + 1, sh, 1, 0, FILL_I32_ANY, 0, 0);
    o->v[2] = make_view(G, ALLOY_I32, br, sh, 1, 0, FILL_I32_ANY, 0, 0);
    int64_t count = batch_count(br, bs);
    int singular = R(G) % 5 == 0 && count > 0 && n > 0 && m > 0;
    if (singular)
        add_struct(sp, ST_ZERO_COL, &o->v[0], 0, RR(G, 0, count - 1), RR(G, 0, n - 1));
    snprintf(sp->name, sizeof sp->name, "lu_factor %s b%lld %lldx%lld%s", dtn(dt), (long long)count,
             (long long)m, (long long)n, singular ? " singular" : "");
}

static void gen_lu_solve(gen *G)
{
    spec *sp = G->sp;
    alloy_dtype dt = R(G) % 2 ? ALLOY_F32 : ALLOY_F64;
    int64_t nn = pick_dim(G), nrhs = G->large ? RR(G, 1, 64) : pick_dim(G);
    int64_t bs[2], lbs[2], pbs[2], sh[ALLOY_MAX_RANK];
    int br = pick_batch(G, bs);
    int rl = operand_batch(G, br, bs, lbs), rp = operand_batch(G, br, bs, pbs);
    opspec *o = add_op(sp, OP_LU_SOLVE);
    o->ls = alloy_lu_solve_desc_default();
    o->ls.transpose = (int)(R(G) % 2);
    memcpy(sh, lbs, sizeof(int64_t) * (size_t)rl);
    sh[rl] = nn;
    sh[rl + 1] = nn;
    o->v[0] = make_view(G, dt, rl + 2, sh, 0, (1u << rl) - 1, FILL_RAND, 0, 0);
    add_struct(sp, ST_DIAG, &o->v[0], 1.0 / (double)(nn > 0 ? nn : 1), 0, 0);
    memcpy(sh, pbs, sizeof(int64_t) * (size_t)rp);
    sh[rp] = nn;
    int bad = R(G) % 12 == 0;
    int32_t hi = nn > 0 ? (int32_t)nn : 1;
    o->v[1] = make_view(G, ALLOY_I32, rp + 1, sh, 0, (1u << rp) - 1, FILL_I32_RANGE, bad ? 0 : 1,
                        bad ? hi + 1 : hi);
    sp->may_fail = bad;
    memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
    sh[br] = nn;
    sh[br + 1] = nrhs;
    o->v[2] = make_view(G, dt, br + 2, sh, 1, 0, FILL_RAND, 0, 0);
    snprintf(sp->name, sizeof sp->name, "lu_solve %s b%lld n%lld nrhs%lld%s%s", dtn(dt),
             (long long)batch_count(br, bs), (long long)nn, (long long)nrhs,
             o->ls.transpose ? " T" : "", bad ? " maybe-bad-pivots" : "");
}

static void gen_trsm(gen *G)
{
    spec *sp = G->sp;
    alloy_dtype dt = R(G) % 2 ? ALLOY_F32 : ALLOY_F64;
    int64_t m = pick_dim(G), n = pick_dim(G);
    int64_t bs[2], abs_[2], sh[ALLOY_MAX_RANK];
    int br = pick_batch(G, bs);
    int ra = operand_batch(G, br, bs, abs_);
    opspec *o = add_op(sp, OP_TRSM);
    o->tr = alloy_triangular_desc_default();
    o->tr.side = R(G) % 2 ? ALLOY_LEFT : ALLOY_RIGHT;
    o->tr.uplo = R(G) % 2 ? ALLOY_UPPER : ALLOY_LOWER;
    o->tr.transpose = (int)(R(G) % 2);
    o->tr.unit_diagonal = (int)(R(G) % 2);
    static const double at[] = {1.0, 1.0, -0.5, 2.0, 0.0};
    o->tr.alpha = at[R(G) % 5];
    int64_t k = o->tr.side == ALLOY_LEFT ? m : n;
    memcpy(sh, abs_, sizeof(int64_t) * (size_t)ra);
    sh[ra] = k;
    sh[ra + 1] = k;
    o->v[0] = make_view(G, dt, ra + 2, sh, 0, (1u << ra) - 1, FILL_RAND, 0, 0);
    add_struct(sp, ST_DIAG, &o->v[0], 1.0 / (double)(k > 0 ? k : 1), 0, 0);
    memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
    sh[br] = m;
    sh[br + 1] = n;
    o->v[1] = make_view(G, dt, br + 2, sh, 1, 0, FILL_RAND, 0, 0);
    snprintf(sp->name, sizeof sp->name, "trsm %s b%lld %lldx%lld %s %s%s%s a%g", dtn(dt),
             (long long)batch_count(br, bs), (long long)m, (long long)n,
             o->tr.side == ALLOY_LEFT ? "L" : "R", o->tr.uplo == ALLOY_UPPER ? "U" : "Lo",
             o->tr.transpose ? " T" : "", o->tr.unit_diagonal ? " unit" : "", o->tr.alpha);
}

static const double eps_table[] = {1e-5, 1e-6, 0.1, 0.0};

static void gen_norm_rows(gen *G, int *rr, int64_t *rows)
{
    *rr = G->large ? 1 : (int)(R(G) % 3);
    for (int i = 0; i < *rr; i++)
        rows[i] = G->large ? pick_dim(G) : *rr == 1 ? pick_dim(G) : RR(G, 0, 6);
}

static void gen_norm(gen *G)
{
    spec *sp = G->sp;
    alloy_dtype xd = pick_float(G), yd = R(G) % 2 ? xd : pick_float(G);
    int64_t rows[2], sh[ALLOY_MAX_RANK];
    int rr;
    gen_norm_rows(G, &rr, rows);
    int64_t dd = G->large ? RR(G, 256, 512) : pick_dim(G);
    int inplace = R(G) % 5 == 0;
    opspec *o = add_op(sp, OP_NORM);
    o->nd = alloy_norm_desc_default();
    o->nd.rms = R(G) % 3 == 0;
    o->nd.eps = eps_table[R(G) % 4];
    memcpy(sh, rows, sizeof(int64_t) * (size_t)rr);
    sh[rr] = dd;
    if (inplace) {
        o->v[0] = make_view(G, xd, rr + 1, sh, 1, 0, FILL_RAND, 0, 0);
        o->v[3] = o->v[0];
        yd = xd;
    } else {
        o->v[0] = make_view(G, xd, rr + 1, sh, 0, (1u << rr) - 1, FILL_RAND, 0, 0);
        o->v[3] = make_view(G, yd, rr + 1, sh, 1, 0, FILL_RAND, 0, 0);
    }
    if (R(G) % 2)
        o->v[1] = make_view(G, pick_float(G), 1, &dd, 0, 1u, FILL_RAND, 0, 0);
    if (R(G) % 2)
        o->v[2] = make_view(G, pick_float(G), 1, &dd, 0, 1u, FILL_RAND, 0, 0);
    if (!o->nd.rms && R(G) % 2)
        o->v[4] = make_view(G, R(G) % 2 ? ALLOY_F32 : ALLOY_F64, rr, rows, 1, 0, FILL_RAND, 0, 0);
    if (R(G) % 2)
        o->v[5] = make_view(G, R(G) % 2 ? ALLOY_F32 : ALLOY_F64, rr, rows, 1, 0, FILL_RAND, 0, 0);
    snprintf(sp->name, sizeof sp->name, "%s %s>%s rows%lld d%lld%s",
             o->nd.rms ? "rms_norm" : "layer_norm", dtn(xd), dtn(yd),
             (long long)batch_count(rr, rows), (long long)dd, inplace ? " in-place" : "");
}

static void gen_lu_chain(gen *G)
{
    spec *sp = G->sp;
    alloy_dtype dt = R(G) % 2 ? ALLOY_F32 : ALLOY_F64;
    int64_t nn = pick_dim(G), nrhs = G->large ? RR(G, 1, 64) : pick_dim(G);
    int64_t bs[2], sh[ALLOY_MAX_RANK];
    int br = pick_batch(G, bs);
    opspec *f = add_op(sp, OP_LU_FACTOR);
    memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
    sh[br] = nn;
    sh[br + 1] = nn;
    f->v[0] = make_view(G, dt, br + 2, sh, 1, 0, FILL_RAND, 0, 0);
    f->v[1] = make_view(G, ALLOY_I32, br + 1, sh, 1, 0, FILL_I32_ANY, 0, 0);
    f->v[2] = make_view(G, ALLOY_I32, br, sh, 1, 0, FILL_I32_ANY, 0, 0);
    opspec *s = add_op(sp, OP_LU_SOLVE);
    s->ls = alloy_lu_solve_desc_default();
    s->ls.transpose = (int)(R(G) % 2);
    s->v[0] = f->v[0];
    s->v[1] = f->v[1];
    sh[br + 1] = nrhs;
    s->v[2] = make_view(G, dt, br + 2, sh, 1, 0, FILL_RAND, 0, 0);
    snprintf(sp->name, sizeof sp->name, "lu_factor+lu_solve %s b%lld n%lld nrhs%lld%s", dtn(dt),
             (long long)batch_count(br, bs), (long long)nn, (long long)nrhs,
             s->ls.transpose ? " T" : "");
}

/* Operations whose inputs are the shared buffers every thread reads at once. */
static void gen_shared(gen *G)
{
    spec *sp = G->sp;
    int sub = (int)(R(G) % 5);
    int64_t bs[2], sh[ALLOY_MAX_RANK];
    int br = pick_batch(G, bs);
    int f64 = (int)(R(G) % 2);
    alloy_dtype dt = f64 ? ALLOY_F64 : ALLOY_F32;
    int trans = (int)(R(G) % 3 == 0);
    /* main dims stay within the 320x320 shared matrices */
    int64_t m = pick_dim(G), n = pick_dim(G), k = pick_dim(G);
    switch (sub) {
    case 0: { /* Linear: C = A W (+ bias), W shared and broadcast over the batch */
        opspec *o = add_op(sp, OP_MATMUL);
        o->mm = alloy_matmul_desc_default();
        int64_t r0 = RR(G, 0, SHARED_N - (k > n ? k : n));
        o->v[1] = shared_view(G, f64, k, n, trans, r0, r0);
        memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
        sh[br] = m;
        sh[br + 1] = k;
        o->v[0] = make_view(G, dt, br + 2, sh, 0, (1u << br) - 1, FILL_RAND, 0, 0);
        if (R(G) % 2)
            o->v[2] = shared_vector(G, 0, n);
        sh[br + 1] = n;
        o->v[3] = make_view(G, dt, br + 2, sh, 1, 0, FILL_SPECIAL, 0, 0);
        snprintf(sp->name, sizeof sp->name, "shared matmul %s b%lld %lldx%lldx%lld%s", dtn(dt),
                 (long long)batch_count(br, bs), (long long)m, (long long)n, (long long)k,
                 trans ? " W^T" : "");
        break;
    }
    case 1: { /* triangular solve with a shared factor */
        opspec *o = add_op(sp, OP_TRSM);
        o->tr = alloy_triangular_desc_default();
        o->tr.side = R(G) % 2 ? ALLOY_LEFT : ALLOY_RIGHT;
        o->tr.uplo = R(G) % 2 ? ALLOY_UPPER : ALLOY_LOWER;
        o->tr.transpose = (int)(R(G) % 2);
        o->tr.unit_diagonal = (int)(R(G) % 2);
        int64_t kk = o->tr.side == ALLOY_LEFT ? m : n;
        int64_t r0 = RR(G, 0, SHARED_N - kk);
        o->v[0] = shared_view(G, 2 + f64, kk, kk, trans, r0, r0);
        if (br && R(G) % 2)
            broadcast_batch(&o->v[0], br, bs);
        memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
        sh[br] = m;
        sh[br + 1] = n;
        o->v[1] = make_view(G, dt, br + 2, sh, 1, 0, FILL_RAND, 0, 0);
        snprintf(sp->name, sizeof sp->name, "shared trsm %s b%lld %lldx%lld", dtn(dt),
                 (long long)batch_count(br, bs), (long long)m, (long long)n);
        break;
    }
    case 2: { /* lu_solve with shared factors and pivots */
        opspec *o = add_op(sp, OP_LU_SOLVE);
        o->ls = alloy_lu_solve_desc_default();
        o->ls.transpose = (int)(R(G) % 2);
        o->v[0] = shared_view(G, 2 + f64, m, m, trans, 0, 0);
        o->v[1] = shared_vector(G, 4, m);
        o->v[1].strides[0] = 1;
        o->v[1].offset = 0;
        memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
        sh[br] = m;
        sh[br + 1] = G->large ? RR(G, 1, 64) : n;
        o->v[2] = make_view(G, dt, br + 2, sh, 1, 0, FILL_RAND, 0, 0);
        snprintf(sp->name, sizeof sp->name, "shared lu_solve %s b%lld n%lld nrhs%lld", dtn(dt),
                 (long long)batch_count(br, bs), (long long)m, (long long)sh[br + 1]);
        break;
    }
    case 3: { /* layer norm with shared gamma and beta */
        opspec *o = add_op(sp, OP_NORM);
        o->nd = alloy_norm_desc_default();
        o->nd.rms = R(G) % 3 == 0;
        int64_t rows[2];
        int rr;
        gen_norm_rows(G, &rr, rows);
        alloy_dtype xd = pick_float(G);
        memcpy(sh, rows, sizeof(int64_t) * (size_t)rr);
        sh[rr] = n;
        o->v[0] = make_view(G, xd, rr + 1, sh, 0, 0, FILL_RAND, 0, 0);
        o->v[1] = shared_vector(G, f64, n);
        if (R(G) % 2)
            o->v[2] = shared_vector(G, 0, n);
        o->v[3] = make_view(G, pick_float(G), rr + 1, sh, 1, 0, FILL_RAND, 0, 0);
        if (R(G) % 2)
            o->v[5] = make_view(G, ALLOY_F32, rr, rows, 1, 0, FILL_RAND, 0, 0);
        snprintf(sp->name, sizeof sp->name, "shared layer_norm %s rows%lld d%lld", dtn(xd),
                 (long long)batch_count(rr, rows), (long long)n);
        break;
    }
    default: { /* copy out of the shared weights, converting, broadcast over a batch */
        opspec *o = add_op(sp, OP_COPY);
        int64_t r0 = RR(G, 0, SHARED_N - (m > n ? m : n));
        o->v[0] = shared_view(G, f64, m, n, trans, r0, r0);
        memcpy(sh, bs, sizeof(int64_t) * (size_t)br);
        sh[br] = m;
        sh[br + 1] = n;
        o->v[1] = make_view(G, pick_float(G), br + 2, sh, 1, 0, FILL_RAND, 0, 0);
        snprintf(sp->name, sizeof sp->name, "shared copy %s b%lld %lldx%lld", dtn(dt),
                 (long long)batch_count(br, bs), (long long)m, (long long)n);
        break;
    }
    }
    sp->family = FAM_SHARED;
}

/* A spec is a pure function of (seed, large). */
static void spec_generate(spec *sp, uint64_t seed, int large)
{
    memset(sp, 0, sizeof *sp);
    sp->seed = seed;
    sp->large = large;
    gen G;
    G.sp = sp;
    G.g.s = mix64(seed) | 1;
    G.large = large;
    unsigned r = (unsigned)(R(&G) % 100);
    sp->family = r < 13   ? FAM_COPY
                 : r < 30 ? FAM_MATMUL
                 : r < 42 ? FAM_LU_FACTOR
                 : r < 54 ? FAM_LU_SOLVE
                 : r < 68 ? FAM_TRSM
                 : r < 80 ? FAM_NORM
                 : r < 87 ? FAM_LU_CHAIN
                          : FAM_SHARED;
    switch (sp->family) {
    case FAM_COPY: gen_copy(&G); break;
    case FAM_MATMUL: gen_matmul(&G); break;
    case FAM_LU_FACTOR: gen_lu_factor(&G); break;
    case FAM_LU_SOLVE: gen_lu_solve(&G); break;
    case FAM_TRSM: gen_trsm(&G); break;
    case FAM_NORM: gen_norm(&G); break;
    case FAM_LU_CHAIN: gen_lu_chain(&G); break;
    default: gen_shared(&G); break;
    }
}

/* The shared buffers as a spec without ops (contents from the master seed). */
static void shared_generate(spec *sp, uint64_t master)
{
    memset(sp, 0, sizeof *sp);
    sp->seed = mix64(master ^ 0x5348415245440000ull);
    for (int s = 0; s < NSHARED; s++) {
        alloy_dtype dt = shared_dtype(s);
        size_t n = s == 4 ? SHARED_N : (size_t)SHARED_N * SHARED_N;
        add_buf(sp, n * alloy_dtype_size(dt), dt, s == 4 ? FILL_PIV_PREFIX : FILL_RAND, 0, 0);
        if (s == 2 || s == 3) {
            vdesc v;
            memset(&v, 0, sizeof v);
            v.buf = s;
            v.dtype = dt;
            v.rank = 2;
            v.shape[0] = v.shape[1] = SHARED_N;
            v.strides[0] = SHARED_N;
            v.strides[1] = 1;
            add_struct(sp, ST_DIAG, &v, 1.0 / SHARED_N, 0, 0);
        }
    }
}

static void describe_view(FILE *f, const char *name, const vdesc *v)
{
    if (v->buf == NOARR)
        return;
    fprintf(f, "    %s: ", name);
    if (v->buf >= 0)
        fprintf(f, "buffer %d", v->buf);
    else
        fprintf(f, "shared %d", -1 - v->buf);
    fprintf(f, " offset %zu %s shape (", v->offset, dtn(v->dtype));
    for (int d = 0; d < v->rank; d++)
        fprintf(f, "%s%lld", d ? ", " : "", (long long)v->shape[d]);
    fprintf(f, ") strides (");
    for (int d = 0; d < v->rank; d++)
        fprintf(f, "%s%lld", d ? ", " : "", (long long)v->strides[d]);
    fprintf(f, ")\n");
}

static void describe(FILE *f, const spec *sp)
{
    static const char *const names[6][6] = {{"src", "dst"},
                                            {"a", "b", "bias", "c"},
                                            {"a", "pivots", "info"},
                                            {"lu", "pivots", "b"},
                                            {"a", "b"},
                                            {"x", "gamma", "beta", "y", "mean", "rstd"}};
    fprintf(f, "  spec %#llx%s: %s (%s)\n", (unsigned long long)sp->seed, sp->large ? " large" : "",
            sp->name, family_names[sp->family]);
    for (int i = 0; i < sp->nbufs; i++)
        fprintf(f, "    buffer %d: %zu bytes of %s\n", i, sp->b[i].bytes, dtn(sp->b[i].dtype));
    for (int i = 0; i < sp->nops; i++) {
        const opspec *o = &sp->ops[i];
        fprintf(f, "   op %d %s", i, op_names[o->kind]);
        if (o->kind == OP_MATMUL)
            fprintf(f, " alpha %g beta %g tf32 %d", o->mm.alpha, o->mm.beta, o->mm.allow_tf32);
        if (o->kind == OP_LU_SOLVE)
            fprintf(f, " transpose %d", o->ls.transpose);
        if (o->kind == OP_TRSM)
            fprintf(f, " side %d uplo %d transpose %d unit %d alpha %g", (int)o->tr.side,
                    (int)o->tr.uplo, o->tr.transpose, o->tr.unit_diagonal, o->tr.alpha);
        if (o->kind == OP_NORM)
            fprintf(f, " eps %g rms %d", o->nd.eps, o->nd.rms);
        fprintf(f, "\n");
        for (int j = 0; j < 6; j++)
            if (names[o->kind][j])
                describe_view(f, names[o->kind][j], &o->v[j]);
    }
}

/* ---------------------------------------------------------------- staged contents */

static void put_f(unsigned char *p, alloy_dtype dt, double v)
{
    if (dt == ALLOY_F64) {
        memcpy(p, &v, 8);
    } else {
        float f = (float)v;
        memcpy(p, &f, 4);
    }
}

static void rand_elem(unsigned char *p, alloy_dtype dt, test_rng *r, int special)
{
    uint64_t x = rng_next(r);
    if (special && x % 16 == 0) {
        /* NaN, infinities, -0, huge (overflows f16/bf16), subnormal, max */
        static const double sv[] = {NAN, INFINITY, -INFINITY, -0.0, 1e30, 1e-42, 65504.0, 7e4};
        double v = sv[(x >> 8) % 8];
        switch (dt) {
        case ALLOY_F32: {
            float f = (float)v;
            memcpy(p, &f, 4);
            return;
        }
        case ALLOY_F64: memcpy(p, &v, 8); return;
        case ALLOY_F16: {
            static const uint16_t h[] = {0x7e00, 0x7c00, 0xfc00, 0x8000,
                                         0x7bff, 0x0001, 0x7bff, 0x03ff};
            memcpy(p, &h[(x >> 8) % 8], 2);
            return;
        }
        case ALLOY_BF16: {
            static const uint16_t h[] = {0x7fc0, 0x7f80, 0xff80, 0x8000,
                                         0x7f7f, 0x0001, 0x4780, 0x0040};
            memcpy(p, &h[(x >> 8) % 8], 2);
            return;
        }
        case ALLOY_I32: break;
        }
    }
    double u = (double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0;
    switch (dt) {
    case ALLOY_F32:
    case ALLOY_F64: put_f(p, dt, u); return;
    case ALLOY_F16: {
        /* sign, exponent 2^-6..2^1, random mantissa */
        uint16_t h = (uint16_t)(((x >> 20) & 1) << 15 | (uint16_t)(9 + (x >> 21) % 8) << 10 |
                                (uint16_t)((x >> 32) & 0x3ff));
        memcpy(p, &h, 2);
        return;
    }
    case ALLOY_BF16: {
        float f = (float)u;
        uint32_t b;
        memcpy(&b, &f, 4);
        uint16_t h = (uint16_t)(b >> 16);
        memcpy(p, &h, 2);
        return;
    }
    case ALLOY_I32: {
        int32_t i = (int32_t)(uint32_t)x;
        memcpy(p, &i, 4);
        return;
    }
    }
}

static void apply_struct(const structspec *st, unsigned char *p, size_t bytes, test_rng *r)
{
    const vdesc *v = &st->v;
    size_t es = alloy_dtype_size(v->dtype);
    int rank = v->rank;
    int64_t count = 1;
    for (int d = 0; d < rank; d++)
        count *= v->shape[d];
    if (count == 0 || rank < 2)
        return;
    int64_t mn = v->shape[rank - 2] * v->shape[rank - 1];
    for (int64_t e = 0; e < count; e++) {
        int64_t rem = e, idx[ALLOY_MAX_RANK] = {0};
        size_t off = v->offset;
        for (int d = rank - 1; d >= 0; d--) {
            idx[d] = rem % v->shape[d];
            rem /= v->shape[d];
            off += (size_t)(idx[d] * v->strides[d]) * es;
        }
        int64_t i = idx[rank - 2], j = idx[rank - 1];
        double u = rng_uniform(r), val;
        if (st->kind == ST_DIAG) {
            val = i == j ? (u < 0 ? -1.0 : 1.0) * (1.0 + fabs(u)) : u * st->scale;
        } else {
            if (e / mn != st->entry || j != st->col)
                continue;
            val = 0.0;
        }
        if (off + es <= bytes)
            put_f(p + off, v->dtype, val);
    }
}

/* The initial contents of buffer bi of sp (malloc'd). */
static unsigned char *stage_build(const spec *sp, int bi)
{
    const bufspec *b = &sp->b[bi];
    unsigned char *p = xmalloc(b->bytes);
    test_rng r = {mix64(sp->seed ^ (0x1000193ull * (uint64_t)(bi + 1))) | 1};
    size_t es = alloy_dtype_size(b->dtype), n = b->bytes / es;
    for (size_t i = 0; i < n; i++) {
        unsigned char *e = p + i * es;
        int32_t v;
        switch (b->fill) {
        case FILL_RAND: rand_elem(e, b->dtype, &r, 0); break;
        case FILL_SPECIAL: rand_elem(e, b->dtype, &r, 1); break;
        case FILL_I32_RANGE:
            v = (int32_t)rng_range(&r, b->lo, b->hi);
            memcpy(e, &v, 4);
            break;
        case FILL_PIV_PREFIX:
            v = (int32_t)rng_range(&r, 1, (int64_t)i + 1);
            memcpy(e, &v, 4);
            break;
        default: rand_elem(e, ALLOY_I32, &r, 0); break;
        }
    }
    for (size_t i = n * es; i < b->bytes; i++)
        p[i] = (unsigned char)rng_next(&r);
    for (int s = 0; s < sp->nst; s++)
        if (sp->st[s].v.buf == bi) {
            test_rng rs = {mix64(sp->seed ^ (0xabcdull * (uint64_t)(s + 1))) | 1};
            apply_struct(&sp->st[s], p, b->bytes, &rs);
        }
    return p;
}

/* ====================================================================== the run */

enum mode { M_WAIT, M_POLL, M_MULTI, M_HANDOFF_WAIT, M_ORPHAN, M_HANDOFF_COMMIT, M_COUNT };
static const char *const mode_names[] = {
    "wait", "poll", "multi-wait", "handoff-wait", "orphan+wait_idle", "handoff-commit"};
enum qkind { Q_PRIVATE, Q_SHARED, Q_ONESHOT, Q_COUNT };
static const char *const qkind_names[] = {"private", "shared", "one-shot"};

typedef struct options {
    int threads;
    long long ops;
    double seconds;
    uint64_t seed;
    int pool;
    int workers, ref_workers;
    int burst_rounds;
    int life_lo, life_hi;
    double progress;
    int have_replay, replay_large;
    uint64_t replay;
    int huge;    /* 1: the huge-batch phase too; 2: only it */
    int corrupt; /* self-check: flip a reference byte; the run must then report mismatches */
    int cuda;    /* --backend cuda: the torture on CUDA device 0 */
    int strict;  /* --strict: an op the CUDA device refuses as unsupported is a failure */
} options;

typedef struct inst {
    const spec *sp;
    alloy_buffer *b[MAXB];
    unsigned char *mem[MAXB]; /* wrapped memory */
    alloy_buffer *const *shared;
    int refused; /* GPU mode: a spec whose encode must be refused; never checked */
} inst;

typedef struct job job;

/* NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): grouped for reading */
typedef struct run {
    options o;
    alloy_device *dev, *refdev;
    alloy_queue *refq;
    spec shared_sp;
    alloy_buffer *shared[NSHARED], *ref_shared[NSHARED];
    spec *pool;
    int npool;
    int *normal, nnormal, *large, nlarge, *sharedspecs, nshared, *plain, nplain;
    alloy_queue **sq;
    int nsq;
    double t0;
    _Atomic int stop;
    _Atomic long long ops, large_ops, jobs, mismatches, failures, threads_started, devices;
    _Atomic long long modes[M_COUNT], qkinds[Q_COUNT], grouped, wrapped, queues_made;
    _Atomic long long messages;
    /* GPU mode: encodes answered ALLOY_ERR_UNSUPPORTED (references, and mix encodes) */
    _Atomic long long unsupported, unsup_mix;
    int *unsup, nunsup;      /* pool specs whose ops the CUDA device does not run yet */
    pthread_mutex_t mb_lock; /* the mailbox of command buffers handed between threads */
    job *mb_head;
    int mb_len;
    pthread_mutex_t zq_lock; /* queues retired while their command buffers live */
    alloy_queue **zq;
    int nzq, zq_cap;
    pthread_mutex_t print_lock;
} run;

struct job {
    alloy_queue *q;
    int qkind;
    alloy_cmdbuf *cb;
    int ninst;
    inst in[MAXGROUP + 1]; /* + one spec whose encode must be refused (GPU mode) */
    alloy_status want;
    int nops, large_ops;
    int mode;
    int committed;
    /* mailbox */
    job *next;
    int slots;           /* waiters still to come and take it (committed), or 1 (to commit) */
    _Atomic int pending; /* waiters that have not finished waiting */
    _Atomic int got;     /* the status the first waiter saw, or -1 */
    unsigned long thread;
};

typedef struct worker {
    run *R;
    int slot;
    uint64_t serial;
    test_rng g;
    alloy_queue *pq;
    int pq_age;
    long picks;
    int lifetime;
    pthread_t th;
    _Atomic int finished;
    int burst; /* burst mode: shared specs only, private queue, wait */
} worker;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A failure: any status that differs from what the contract promises. */
static void failure(run *R, const char *fmt, ...)
{
    atomic_fetch_add(&R->failures, 1);
    if (atomic_fetch_add(&R->messages, 1) > 60)
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&R->print_lock);
    fprintf(stderr, "FAILURE: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    pthread_mutex_unlock(&R->print_lock);
    va_end(ap);
}

static unsigned long long spec_seed(const spec *sp)
{
    return sp ? (unsigned long long)sp->seed : 0;
}
static const char *spec_name(const spec *sp) { return sp ? sp->name : ""; }

/* A call that must succeed; sp (or NULL) names the spec in the message. */
#define EXPECT_OK(R, expr, sp)                                                                     \
    do {                                                                                           \
        alloy_status s_ = (expr);                                                                  \
        if (s_ != ALLOY_OK)                                                                        \
            failure((R), "%s returned %s (last error: %s) [spec %#llx %s]", #expr,                 \
                    alloy_status_string(s_), alloy_last_error(), spec_seed(sp), spec_name(sp));    \
    } while (0)

static alloy_buffer *inst_buffer(const inst *in, int buf)
{
    if (buf >= 0)
        return in->b[buf];
    return in->shared ? in->shared[-1 - buf] : NULL;
}

static alloy_array make_array(const inst *in, const vdesc *v)
{
    return alloy_array_strided(inst_buffer(in, v->buf), v->offset, v->dtype, v->rank, v->shape,
                               v->strides);
}

/* GPU mode: caller memory to wrap, page-aligned and a whole number of pages, so that no
 * two wrapped buffers share a page (the CUDA driver pins whole pages, and one wrap's
 * unpinning must not unpin another's). Takes over and frees st. */
static unsigned char *page_copy(unsigned char *st, size_t bytes)
{
    size_t n = ((bytes ? bytes : 1) + 4095) & ~(size_t)4095;
    unsigned char *p = aligned_alloc(4096, n);
    if (!p)
        die("out of memory (%zu bytes)", n);
    memcpy(p, st, bytes);
    free(st);
    return p;
}

/* Creates the spec's buffers on dev with their initial contents. wrap_rng: when not NULL,
 * some buffers wrap host memory and some are host-visible. */
static int inst_create(run *R, alloy_device *dev, alloy_buffer *const *shared, const spec *sp,
                       inst *in, test_rng *wrap_rng)
{
    memset(in, 0, sizeof *in);
    in->sp = sp;
    in->shared = shared;
    for (int i = 0; i < sp->nbufs; i++) {
        unsigned char *st = stage_build(sp, i);
        uint64_t r = wrap_rng ? rng_next(wrap_rng) : 0;
        alloy_status s;
        if (r % 4 == 1) {
            if (R->o.cuda)
                st = page_copy(st, sp->b[i].bytes);
            in->mem[i] = st;
            s = alloy_buffer_wrap_host(dev, st, sp->b[i].bytes, &in->b[i]);
            atomic_fetch_add(&R->wrapped, 1);
        } else {
            s = alloy_buffer_create(dev, sp->b[i].bytes,
                                    r % 4 == 2 ? ALLOY_MEMORY_HOST : ALLOY_MEMORY_DEVICE,
                                    &in->b[i]);
            if (s == ALLOY_OK)
                s = alloy_buffer_write(in->b[i], 0, st, sp->b[i].bytes);
            free(st);
        }
        if (s != ALLOY_OK) {
            failure(R, "creating buffer %d of spec %#llx: %s (%s)", i, (unsigned long long)sp->seed,
                    alloy_status_string(s), alloy_last_error());
            return 0;
        }
    }
    return 1;
}

static void inst_destroy(run *R, inst *in)
{
    for (int i = 0; i < MAXB; i++) {
        if (in->b[i])
            EXPECT_OK(R, alloy_buffer_destroy(in->b[i]), in->sp);
        free(in->mem[i]);
        in->b[i] = NULL;
        in->mem[i] = NULL;
    }
}

/* Encodes the spec's ops into cb: the first failing status (and *failed_op), or OK. */
static alloy_status inst_encode(const inst *in, alloy_cmdbuf *cb, int *failed_op)
{
    const spec *sp = in->sp;
    for (int i = 0; i < sp->nops; i++) {
        const opspec *o = &sp->ops[i];
        alloy_array a[6];
        const alloy_array *p[6];
        for (int j = 0; j < 6; j++) {
            if (o->v[j].buf == NOARR) {
                p[j] = NULL;
            } else {
                a[j] = make_array(in, &o->v[j]);
                p[j] = &a[j];
            }
        }
        alloy_status s = ALLOY_OK;
        switch (o->kind) {
        case OP_COPY: s = alloy_encode_copy(cb, p[0], p[1]); break;
        case OP_MATMUL: s = alloy_encode_matmul(cb, &o->mm, p[0], p[1], p[2], p[3]); break;
        case OP_LU_FACTOR: s = alloy_encode_lu_factor(cb, p[0], p[1], p[2]); break;
        case OP_LU_SOLVE: s = alloy_encode_lu_solve(cb, &o->ls, p[0], p[1], p[2]); break;
        case OP_TRSM: s = alloy_encode_triangular_solve(cb, &o->tr, p[0], p[1]); break;
        default: s = alloy_encode_layer_norm(cb, &o->nd, p[0], p[1], p[2], p[3], p[4], p[5]); break;
        }
        if (s != ALLOY_OK) {
            if (failed_op)
                *failed_op = i;
            return s;
        }
    }
    return ALLOY_OK;
}

/* Reads back every buffer of the instance and compares it with the reference. */
static int inst_check(run *R, const inst *in, const char *where)
{
    const spec *sp = in->sp;
    size_t off = 0;
    int bad = 0;
    for (int i = 0; i < sp->nbufs; i++) {
        size_t n = sp->b[i].bytes;
        unsigned char *got = xmalloc(n);
        alloy_status s = alloy_buffer_read(in->b[i], 0, got, n);
        if (s != ALLOY_OK) {
            failure(R, "reading buffer %d: %s", i, alloy_status_string(s));
        } else if (memcmp(got, sp->ref + off, n) != 0) {
            size_t at = 0;
            while (got[at] == sp->ref[off + at])
                at++;
            bad = 1;
            if (atomic_fetch_add(&R->messages, 1) <= 60) {
                pthread_mutex_lock(&R->print_lock);
                fprintf(stderr,
                        "MISMATCH: spec %#llx (%s) buffer %d byte %zu of %zu (%s): got %02x, "
                        "reference %02x\n",
                        (unsigned long long)sp->seed, sp->name, i, at, n, where, got[at],
                        sp->ref[off + at]);
                describe(stderr, sp);
                fprintf(stderr, "  replay: torture%s --seed %#llx --replay %#llx%s\n",
                        R->o.cuda ? " --backend cuda" : "", (unsigned long long)R->o.seed,
                        (unsigned long long)sp->seed, sp->large ? " --large" : "");
                fflush(stderr);
                pthread_mutex_unlock(&R->print_lock);
            }
        }
        free(got);
        off += n;
    }
    return bad;
}

/* GPU mode: the ops the CUDA backend is still gaining (lu_factor, lu_solve,
 * triangular_solve); an encode of one of them may answer ALLOY_ERR_UNSUPPORTED. */
static int gpu_pending_op(int kind)
{
    return kind == OP_LU_FACTOR || kind == OP_LU_SOLVE || kind == OP_TRSM;
}

/* GPU mode: the reference encode of sp answered s at op fop (called on one thread, while
 * the pool is built). The spec is kept out of the mix. An op still pending on the CUDA
 * backend answering ALLOY_ERR_UNSUPPORTED is counted as unsupported (a failure with
 * --strict); any other refusal is a failure. */
static void gpu_refused(run *R, spec *sp, alloy_status s, int fop)
{
    sp->refused = 1;
    sp->refused_op = fop;
    sp->ref_ok = 0;
    int kind = fop >= 0 && fop < sp->nops ? sp->ops[fop].kind : -1;
    if (s == ALLOY_ERR_UNSUPPORTED && kind >= 0 && gpu_pending_op(kind) && !R->o.strict) {
        if (atomic_fetch_add(&R->unsupported, 1) == 0)
            fprintf(stderr,
                    "torture: unsupported on the CUDA device (counted, not a failure; "
                    "--strict fails it): %s\n",
                    alloy_last_error());
        if (R->unsup) /* NULL in a replay */
            R->unsup[R->nunsup++] = (int)(sp - R->pool);
        return;
    }
    failure(R, "spec %#llx (%s): op %d (%s) refused at encode on the CUDA device: %s (%s)%s",
            (unsigned long long)sp->seed, sp->name, fop, kind >= 0 ? op_names[kind] : "?",
            alloy_status_string(s), alloy_last_error(),
            s == ALLOY_ERR_UNSUPPORTED && kind >= 0 && gpu_pending_op(kind) ? " [--strict]" : "");
}

/* Runs sp alone on the quiet reference device and keeps every buffer's final bytes. */
static void spec_reference(run *R, spec *sp)
{
    inst in;
    sp->ref_ok = 0;
    if (!inst_create(R, R->refdev, R->ref_shared, sp, &in, NULL))
        die("cannot create the reference buffers of spec %#llx", (unsigned long long)sp->seed);
    alloy_cmdbuf *cb = NULL;
    if (alloy_cmdbuf_create(R->refq, &cb) != ALLOY_OK)
        die("alloy_cmdbuf_create on the reference device: %s", alloy_last_error());
    int fop = -1;
    alloy_status s = inst_encode(&in, cb, &fop);
    if (s != ALLOY_OK && R->o.cuda) {
        gpu_refused(R, sp, s, fop);
        sp->ref_status = s;
        if (alloy_cmdbuf_destroy(cb) != ALLOY_OK)
            die("destroying a reference command buffer: %s", alloy_last_error());
        inst_destroy(R, &in);
        return;
    }
    if (s != ALLOY_OK) {
        describe(stderr, sp);
        die("generator made an invalid spec %#llx: op %d: %s: %s", (unsigned long long)sp->seed,
            fop, alloy_status_string(s), alloy_last_error());
    }
    if (alloy_cmdbuf_commit(cb) != ALLOY_OK)
        die("commit on the reference device: %s", alloy_last_error());
    sp->ref_status = alloy_cmdbuf_wait(cb);
    if (sp->ref_status != ALLOY_OK &&
        !(sp->may_fail && sp->ref_status == ALLOY_ERR_INVALID_ARGUMENT)) {
        failure(R, "spec %#llx (%s) fails when run alone: %s: %s", (unsigned long long)sp->seed,
                sp->name, alloy_status_string(sp->ref_status), alloy_cmdbuf_error(cb));
    } else {
        sp->ref_ok = 1;
    }
    sp->ref_bytes = 0;
    for (int i = 0; i < sp->nbufs; i++)
        sp->ref_bytes += sp->b[i].bytes;
    sp->ref = xmalloc(sp->ref_bytes);
    size_t off = 0;
    for (int i = 0; i < sp->nbufs; i++) {
        if (alloy_buffer_read(in.b[i], 0, sp->ref + off, sp->b[i].bytes) != ALLOY_OK)
            die("reading a reference buffer: %s", alloy_last_error());
        off += sp->b[i].bytes;
    }
    if (alloy_cmdbuf_destroy(cb) != ALLOY_OK)
        die("destroying a reference command buffer: %s", alloy_last_error());
    inst_destroy(R, &in);
}

/* ---------------------------------------------------------------- queues */

static void zombie_add(run *R, alloy_queue *q)
{
    pthread_mutex_lock(&R->zq_lock);
    if (R->nzq == R->zq_cap) {
        R->zq_cap = R->zq_cap ? 2 * R->zq_cap : 16;
        R->zq = realloc(R->zq, sizeof(alloy_queue *) * (size_t)R->zq_cap);
        if (!R->zq)
            die("out of memory");
    }
    R->zq[R->nzq++] = q;
    pthread_mutex_unlock(&R->zq_lock);
}

/* Destroys retired queues whose command buffers are gone; final: every one must go. */
static void zombie_reap(run *R, int final)
{
    pthread_mutex_lock(&R->zq_lock);
    int w = 0;
    for (int i = 0; i < R->nzq; i++) {
        alloy_status s = alloy_queue_destroy(R->zq[i]);
        if (s == ALLOY_OK)
            continue;
        if (s != ALLOY_ERR_STATE || final)
            failure(R, "alloy_queue_destroy of a retired queue: %s (%s)", alloy_status_string(s),
                    alloy_last_error());
        R->zq[w++] = R->zq[i];
    }
    R->nzq = w;
    pthread_mutex_unlock(&R->zq_lock);
}

/* A queue is destroyed now, or retired when command buffers still live on it (which must
 * be answered ALLOY_ERR_STATE, changing nothing). */
static void queue_retire(run *R, alloy_queue *q)
{
    alloy_status s = alloy_queue_destroy(q);
    if (s == ALLOY_ERR_STATE)
        zombie_add(R, q);
    else if (s != ALLOY_OK)
        failure(R, "alloy_queue_destroy: %s (%s)", alloy_status_string(s), alloy_last_error());
}

/* ---------------------------------------------------------------- jobs */

static const spec *pick_spec(worker *w, int ok_only)
{
    run *R = w->R;
    if (w->burst)
        return &R->pool[R->sharedspecs[rng_next(&w->g) % (uint64_t)R->nshared]];
    int large = (w->picks++ % 8) == 7;
    if (large && !R->nlarge) /* GPU mode: every large spec was refused at encode */
        large = 0;
    if (!large && !R->nnormal)
        return NULL;
    for (int t = 0; t < 16; t++) {
        int idx = large ? R->large[rng_next(&w->g) % (uint64_t)R->nlarge]
                        : R->normal[rng_next(&w->g) % (uint64_t)R->nnormal];
        const spec *sp = &R->pool[idx];
        if (!sp->ref_ok)
            continue;
        if (ok_only && sp->ref_status != ALLOY_OK)
            continue;
        return sp;
    }
    return NULL;
}

static void job_free(job *j) { free(j); }

/* Checks and tears down a finished job. has_status: `got` is its wait status. */
static void job_finish(run *R, job *j, alloy_status got, int has_status)
{
    char where[96];
    snprintf(where, sizeof where, "%s queue, %s, %d specs in the command buffer",
             qkind_names[j->qkind], mode_names[j->mode], j->ninst);
    if (has_status && got != j->want) {
        failure(R, "wait returned %s, the reference %s [%s; first spec %#llx %s] error text: %s",
                alloy_status_string(got), alloy_status_string(j->want), where,
                (unsigned long long)j->in[0].sp->seed, j->in[0].sp->name,
                j->cb ? alloy_cmdbuf_error(j->cb) : "");
    } else if (has_status && got != ALLOY_OK) {
        const char *e = alloy_cmdbuf_error(j->cb);
        if (!strstr(e, "op ") || !strstr(e, "lu_solve"))
            failure(R, "alloy_cmdbuf_error does not name the failing op: \"%s\"", e);
    }
    if (j->cb)
        EXPECT_OK(R, alloy_cmdbuf_destroy(j->cb), j->in[0].sp);
    int bad = 0;
    for (int i = 0; i < j->ninst; i++) {
        if (!j->in[i].refused)
            bad += inst_check(R, &j->in[i], where);
        inst_destroy(R, &j->in[i]);
    }
    if (j->qkind == Q_ONESHOT)
        EXPECT_OK(R, alloy_queue_destroy(j->q), j->in[0].sp);
    atomic_fetch_add(&R->mismatches, bad);
    atomic_fetch_add(&R->ops, j->nops);
    atomic_fetch_add(&R->large_ops, j->large_ops);
    atomic_fetch_add(&R->jobs, 1);
    atomic_fetch_add(&R->modes[j->mode], 1);
    atomic_fetch_add(&R->qkinds[j->qkind], 1);
    if (j->ninst > 1)
        atomic_fetch_add(&R->grouped, 1);
    job_free(j);
}

/* One of the job's waiters: waits, and the last to finish waiting checks and frees it. */
static void job_waiter(run *R, job *j)
{
    alloy_status s = alloy_cmdbuf_wait(j->cb);
    int expected = -1;
    if (!atomic_compare_exchange_strong(&j->got, &expected, (int)s) && expected != (int)s)
        failure(R, "two waiters on one command buffer saw %s and %s",
                alloy_status_string((alloy_status)expected), alloy_status_string(s));
    if (atomic_fetch_sub(&j->pending, 1) == 1)
        job_finish(R, j, (alloy_status)atomic_load(&j->got), 1);
}

/* Makes a job on queue q (or on a new one-shot queue): 1..3 specs encoded into one
 * command buffer. NULL when nothing could be made. */
static job *job_build(worker *w, alloy_queue *q, int qkind, const spec *force)
{
    run *R = w->R;
    job *j = calloc(1, sizeof *j);
    if (!j)
        die("out of memory");
    j->qkind = qkind;
    j->thread = (unsigned long)w->serial;
    atomic_init(&j->got, -1);
    if (qkind == Q_ONESHOT) {
        alloy_status s = alloy_queue_create(R->dev, &q);
        if (s != ALLOY_OK) {
            failure(R, "alloy_queue_create: %s", alloy_status_string(s));
            free(j);
            return NULL;
        }
        atomic_fetch_add(&R->queues_made, 1);
    }
    j->q = q;
    int want_n = !force && rng_next(&w->g) % 4 == 0 ? (int)rng_range(&w->g, 2, MAXGROUP) : 1;
    for (int i = 0; i < want_n; i++) {
        const spec *sp = force ? force : pick_spec(w, want_n > 1);
        if (!sp)
            break;
        if (!inst_create(R, R->dev, R->shared, sp, &j->in[j->ninst], &w->g)) {
            inst_destroy(R, &j->in[j->ninst]);
            break;
        }
        j->nops += sp->nops;
        if (sp->large)
            j->large_ops += sp->nops;
        if (sp->ref_status != ALLOY_OK)
            j->want = sp->ref_status;
        j->ninst++;
    }
    /* GPU mode: now and then one more spec, one the CUDA device does not run yet, at a
     * random place in the command buffer: its encode must be refused again, recording
     * nothing, and the other specs must come out as if it had never been tried. */
    if (R->o.cuda && R->nunsup && !force && j->ninst && rng_next(&w->g) % 8 == 0) {
        const spec *sp = &R->pool[R->unsup[rng_next(&w->g) % (uint64_t)R->nunsup]];
        if (inst_create(R, R->dev, R->shared, sp, &j->in[j->ninst], &w->g)) {
            j->in[j->ninst].refused = 1;
            int at = (int)rng_range(&w->g, 0, j->ninst);
            inst t = j->in[at];
            j->in[at] = j->in[j->ninst];
            j->in[j->ninst] = t;
            j->ninst++;
        } else {
            inst_destroy(R, &j->in[j->ninst]);
        }
    }
    alloy_status s = j->ninst ? alloy_cmdbuf_create(q, &j->cb) : ALLOY_ERR_INVALID_ARGUMENT;
    if (s == ALLOY_OK) {
        for (int i = 0; i < j->ninst && s == ALLOY_OK; i++) {
            int fop = -1;
            s = inst_encode(&j->in[i], j->cb, &fop);
            if (j->in[i].refused) {
                if (s == ALLOY_ERR_UNSUPPORTED && fop == j->in[i].sp->refused_op) {
                    atomic_fetch_add(&R->unsupported, 1);
                    atomic_fetch_add(&R->unsup_mix, 1);
                    s = ALLOY_OK;
                } else {
                    failure(R,
                            "spec %#llx (%s) was unsupported when encoded alone; in the mix "
                            "its encode answered %s at op %d (%s)",
                            (unsigned long long)j->in[i].sp->seed, j->in[i].sp->name,
                            alloy_status_string(s), fop, alloy_last_error());
                    if (s == ALLOY_OK)
                        s = ALLOY_ERR_STATE; /* a spec that should not be there: drop the job */
                }
            } else if (s != ALLOY_OK) {
                failure(R, "encoding op %d of spec %#llx (%s): %s (%s)", fop,
                        (unsigned long long)j->in[i].sp->seed, j->in[i].sp->name,
                        alloy_status_string(s), alloy_last_error());
            }
        }
    } else if (j->ninst) {
        failure(R, "alloy_cmdbuf_create: %s (%s)", alloy_status_string(s), alloy_last_error());
    }
    if (s != ALLOY_OK) {
        if (j->cb)
            EXPECT_OK(R, alloy_cmdbuf_destroy(j->cb), NULL);
        for (int i = 0; i < j->ninst; i++)
            inst_destroy(R, &j->in[i]);
        if (qkind == Q_ONESHOT)
            EXPECT_OK(R, alloy_queue_destroy(q), NULL);
        free(j);
        return NULL;
    }
    return j;
}

static void mailbox_post(run *R, job *j, int slots)
{
    j->slots = slots;
    pthread_mutex_lock(&R->mb_lock);
    j->next = R->mb_head;
    R->mb_head = j;
    R->mb_len++;
    pthread_mutex_unlock(&R->mb_lock);
}

static int pick_mode(worker *w, int qkind)
{
    unsigned r = (unsigned)(rng_next(&w->g) % 100);
    if (w->burst)
        return M_WAIT;
    if (r < 35)
        return M_WAIT;
    if (r < 50)
        return M_POLL;
    if (r < 65)
        return M_MULTI;
    if (r < 80)
        return M_HANDOFF_WAIT;
    return qkind == Q_SHARED ? M_WAIT : M_ORPHAN;
}

/* After commit: completes (or hands off) the job. May only orphan on queues the caller
 * owns (its private queue, or the job's one-shot queue). */
static void job_complete(worker *w, job *j, int mode)
{
    run *R = w->R;
    j->mode = mode;
    switch (mode) {
    case M_WAIT: {
        alloy_status s = alloy_cmdbuf_wait(j->cb);
        job_finish(R, j, s, 1);
        return;
    }
    case M_POLL: {
        int done = 0;
        for (;;) {
            alloy_status s = alloy_cmdbuf_poll(j->cb, &done);
            if (s != ALLOY_OK) {
                failure(R, "alloy_cmdbuf_poll: %s", alloy_status_string(s));
                break;
            }
            if (done)
                break;
            sched_yield();
        }
        alloy_status s = alloy_cmdbuf_wait(j->cb);
        job_finish(R, j, s, 1);
        return;
    }
    case M_MULTI: {
        int k = (int)rng_range(&w->g, 2, 4);
        atomic_store(&j->pending, k);
        mailbox_post(R, j, k - 1);
        job_waiter(R, j);
        return;
    }
    case M_HANDOFF_WAIT:
        atomic_store(&j->pending, 1);
        mailbox_post(R, j, 1);
        return;
    case M_ORPHAN: {
        alloy_queue *q = j->q;
        EXPECT_OK(R, alloy_cmdbuf_destroy(j->cb), j->in[0].sp);
        j->cb = NULL;
        /* Fire and forget: the status is gone with the command buffer; the queue's
         * wait_idle reports only failures that finish during it, so it is not checked. */
        (void)alloy_queue_wait_idle(q);
        job_finish(R, j, ALLOY_OK, 0);
        return;
    }
    default: failure(R, "bad mode"); return;
    }
}

/* Takes one job from the mailbox: commits it (handed over encoded) or waits on it. */
static int mailbox_take(worker *w)
{
    run *R = w->R;
    pthread_mutex_lock(&R->mb_lock);
    job *j = R->mb_head;
    if (!j) {
        pthread_mutex_unlock(&R->mb_lock);
        return 0;
    }
    int to_commit = !j->committed;
    if (--j->slots == 0) {
        R->mb_head = j->next;
        R->mb_len--;
    }
    pthread_mutex_unlock(&R->mb_lock);
    if (to_commit) {
        alloy_status s = alloy_cmdbuf_commit(j->cb);
        if (s != ALLOY_OK) {
            failure(R, "alloy_cmdbuf_commit of a handed-over command buffer: %s (%s)",
                    alloy_status_string(s), alloy_last_error());
            j->mode = M_HANDOFF_COMMIT;
            job_finish(R, j, j->want, 0);
            return 1;
        }
        j->committed = 1;
        int mode = pick_mode(w, j->qkind == Q_ONESHOT ? Q_ONESHOT : Q_SHARED);
        if (mode == M_WAIT)
            mode = M_HANDOFF_COMMIT; /* counted as the handed-over commit */
        if (mode == M_HANDOFF_COMMIT) {
            j->mode = mode;
            job_finish(R, j, alloy_cmdbuf_wait(j->cb), 1);
        } else {
            job_complete(w, j, mode);
        }
        return 1;
    }
    job_waiter(R, j);
    return 1;
}

/* Now and then: a private device with 1..4 workers runs one spec and is closed. */
static void private_device_run(worker *w)
{
    run *R = w->R;
    const spec *sp = NULL;
    for (int t = 0; t < 16 && !sp; t++) {
        const spec *c = &R->pool[R->plain[rng_next(&w->g) % (uint64_t)R->nplain]];
        if (c->ref_ok)
            sp = c;
    }
    if (!sp)
        return;
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_workers = (int)rng_range(&w->g, 1, 4);
    d.cpu_kernel = test_kernel_from_env();
    char tag[32], where[64];
    snprintf(tag, sizeof tag, "%d workers", d.cpu_workers);
    snprintf(where, sizeof where, "private device with %d workers", d.cpu_workers);
    if (R->o.cuda) { /* GPU mode: a fresh handle of the same GPU (workers do not apply) */
        d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CUDA;
        snprintf(tag, sizeof tag, "a fresh GPU handle");
        snprintf(where, sizeof where, "private device: a fresh handle of the GPU");
    }
    alloy_device *dev = NULL;
    alloy_queue *q = NULL;
    alloy_cmdbuf *cb = NULL;
    alloy_status s = alloy_device_open(&d, &dev);
    if (s != ALLOY_OK) {
        failure(R, "alloy_device_open (%s): %s", tag, alloy_status_string(s));
        return;
    }
    atomic_fetch_add(&R->devices, 1);
    inst in;
    if (inst_create(R, dev, NULL, sp, &in, &w->g) && alloy_queue_create(dev, &q) == ALLOY_OK &&
        alloy_cmdbuf_create(q, &cb) == ALLOY_OK) {
        int fop = -1;
        s = inst_encode(&in, cb, &fop);
        if (s == ALLOY_OK)
            s = alloy_cmdbuf_commit(cb);
        if (s != ALLOY_OK) {
            failure(R, "private device: encode/commit: %s (%s)", alloy_status_string(s),
                    alloy_last_error());
        } else {
            s = alloy_cmdbuf_wait(cb);
            if (s != sp->ref_status)
                failure(R, "private device (%s): wait %s, reference %s [spec %#llx]", tag,
                        alloy_status_string(s), alloy_status_string(sp->ref_status),
                        (unsigned long long)sp->seed);
            atomic_fetch_add(&R->mismatches, inst_check(R, &in, where));
            atomic_fetch_add(&R->ops, sp->nops);
            if (sp->large)
                atomic_fetch_add(&R->large_ops, sp->nops);
        }
    } else {
        failure(R, "private device: setup failed: %s", alloy_last_error());
    }
    if (cb)
        EXPECT_OK(R, alloy_cmdbuf_destroy(cb), sp);
    inst_destroy(R, &in);
    if (q)
        EXPECT_OK(R, alloy_queue_destroy(q), sp);
    EXPECT_OK(R, alloy_device_close(dev), sp);
}

static void new_private_queue(worker *w)
{
    alloy_status s = alloy_queue_create(w->R->dev, &w->pq);
    if (s != ALLOY_OK)
        die("alloy_queue_create: %s", alloy_status_string(s));
    atomic_fetch_add(&w->R->queues_made, 1);
    w->pq_age = 0;
}

static int should_stop(run *R) { return atomic_load(&R->stop); }

static void *worker_main(void *arg)
{
    worker *w = arg;
    run *R = w->R;
    new_private_queue(w);
    for (int it = 0; it < w->lifetime && (w->burst || !should_stop(R)); it++) {
        if (!w->burst) {
            int backlog = 0;
            pthread_mutex_lock(&R->mb_lock);
            backlog = R->mb_len;
            pthread_mutex_unlock(&R->mb_lock);
            if (rng_next(&w->g) % 4 == 0 || backlog > 2 * R->o.threads)
                mailbox_take(w);
            if (rng_next(&w->g) % 100 == 0) {
                private_device_run(w);
                continue;
            }
            if (rng_next(&w->g) % 16 == 0)
                zombie_reap(R, 0);
        }
        job *js[3] = {NULL, NULL, NULL};
        int k = w->burst ? 1 : (int)rng_range(&w->g, 1, 3);
        for (int i = 0; i < k; i++) {
            unsigned r = (unsigned)(rng_next(&w->g) % 10);
            int qk = w->burst || r < 5 ? Q_PRIVATE : r < 9 ? Q_SHARED : Q_ONESHOT;
            alloy_queue *q = qk == Q_PRIVATE  ? w->pq
                             : qk == Q_SHARED ? R->sq[rng_next(&w->g) % (uint64_t)R->nsq]
                                              : NULL;
            const spec *force = w->burst ? pick_spec(w, 0) : NULL;
            job *j = job_build(w, q, qk, force);
            if (!j)
                continue;
            if (!w->burst && rng_next(&w->g) % 8 == 0) {
                j->committed = 0;
                atomic_store(&j->pending, 0);
                mailbox_post(R, j, 1); /* someone else commits it */
                continue;
            }
            js[i] = j;
        }
        for (int i = 0; i < k; i++) {
            if (!js[i])
                continue;
            alloy_status s = alloy_cmdbuf_commit(js[i]->cb);
            if (s != ALLOY_OK) {
                failure(R, "alloy_cmdbuf_commit: %s (%s)", alloy_status_string(s),
                        alloy_last_error());
                EXPECT_OK(R, alloy_cmdbuf_destroy(js[i]->cb), NULL);
                js[i]->cb = NULL;
                job_finish(R, js[i], ALLOY_OK, 0);
                js[i] = NULL;
                continue;
            }
            js[i]->committed = 1;
        }
        /* complete in a random order */
        for (int left = k; left > 0; left--) {
            int pick = (int)rng_range(&w->g, 0, left - 1);
            job *j = js[pick];
            js[pick] = js[left - 1];
            js[left - 1] = NULL;
            if (j)
                job_complete(w, j, pick_mode(w, j->qkind));
        }
        if (!w->burst && ++w->pq_age > 24 && rng_next(&w->g) % 8 == 0) {
            queue_retire(R, w->pq);
            new_private_queue(w);
        }
    }
    queue_retire(R, w->pq);
    w->pq = NULL;
    atomic_store(&w->finished, 1);
    return NULL;
}

static void worker_start(run *R, worker *w, int slot, uint64_t serial, int burst, int lifetime)
{
    memset(w, 0, sizeof *w);
    w->R = R;
    w->slot = slot;
    w->serial = serial;
    w->g.s = mix64(R->o.seed ^ mix64(serial)) | 1;
    w->burst = burst;
    w->lifetime = lifetime;
    atomic_init(&w->finished, 0);
    atomic_fetch_add(&R->threads_started, 1);
    if (pthread_create(&w->th, NULL, worker_main, w) != 0)
        die("pthread_create failed");
}

/* ---------------------------------------------------------------- setup */

/* GPU mode: opens CUDA device 0; without one, says SKIP and exits 0. */
static alloy_device *open_gpu(const char *what)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CUDA;
    alloy_device *dev = NULL;
    alloy_status s = alloy_device_open(&d, &dev);
    if (s == ALLOY_ERR_NO_DEVICE) {
        printf("SKIP: no CUDA device: %s\n", alloy_last_error());
        fflush(stdout);
        exit(0);
    }
    if (s != ALLOY_OK)
        die("alloy_device_open (CUDA%s): %s: %s", what, alloy_status_string(s), alloy_last_error());
    return dev;
}

static void open_devices(run *R)
{
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = ALLOY_BACKEND_CPU;
    d.cpu_kernel = test_kernel_from_env();
    d.cpu_workers = R->o.workers;
    if (R->o.cuda) { /* two handles of the same GPU: the one under load, the quiet one */
        R->dev = open_gpu("");
        R->refdev = open_gpu(", reference");
    } else {
        if (alloy_device_open(&d, &R->dev) != ALLOY_OK)
            die("alloy_device_open: %s", alloy_last_error());
        d.cpu_workers = R->o.ref_workers;
        if (alloy_device_open(&d, &R->refdev) != ALLOY_OK)
            die("alloy_device_open (reference): %s", alloy_last_error());
    }
    if (alloy_queue_create(R->refdev, &R->refq) != ALLOY_OK)
        die("alloy_queue_create: %s", alloy_last_error());
    shared_generate(&R->shared_sp, R->o.seed);
    for (int s = 0; s < NSHARED; s++) {
        unsigned char *st = stage_build(&R->shared_sp, s);
        size_t n = R->shared_sp.b[s].bytes;
        if (alloy_buffer_create(R->dev, n, ALLOY_MEMORY_DEVICE, &R->shared[s]) != ALLOY_OK ||
            alloy_buffer_write(R->shared[s], 0, st, n) != ALLOY_OK ||
            alloy_buffer_create(R->refdev, n, ALLOY_MEMORY_DEVICE, &R->ref_shared[s]) != ALLOY_OK ||
            alloy_buffer_write(R->ref_shared[s], 0, st, n) != ALLOY_OK)
            die("shared buffers: %s", alloy_last_error());
        free(st);
    }
}

static void close_devices(run *R)
{
    for (int s = 0; s < NSHARED; s++) {
        if (R->shared[s]) {
            unsigned char *st = stage_build(&R->shared_sp, s);
            size_t n = R->shared_sp.b[s].bytes;
            unsigned char *got = xmalloc(n);
            if (alloy_buffer_read(R->shared[s], 0, got, n) != ALLOY_OK || memcmp(got, st, n) != 0) {
                atomic_fetch_add(&R->mismatches, 1);
                fprintf(stderr, "MISMATCH: shared buffer %d changed (it is only ever read)\n", s);
            }
            free(got);
            free(st);
        }
        EXPECT_OK(R, alloy_buffer_destroy(R->shared[s]), NULL);
        EXPECT_OK(R, alloy_buffer_destroy(R->ref_shared[s]), NULL);
    }
    EXPECT_OK(R, alloy_queue_destroy(R->refq), NULL);
    EXPECT_OK(R, alloy_device_close(R->refdev), NULL);
    EXPECT_OK(R, alloy_device_close(R->dev), NULL);
}

static void build_pool(run *R)
{
    int n = R->o.pool;
    R->pool = calloc((size_t)n, sizeof *R->pool);
    R->normal = calloc((size_t)n, sizeof(int));
    R->large = calloc((size_t)n, sizeof(int));
    R->sharedspecs = calloc((size_t)n, sizeof(int));
    R->plain = calloc((size_t)n, sizeof(int));
    R->unsup = calloc((size_t)n, sizeof(int));
    if (!R->pool || !R->normal || !R->large || !R->sharedspecs || !R->plain || !R->unsup)
        die("out of memory");
    int nlarge = n / 8 > 0 ? n / 8 : 1;
    double t = now();
    size_t bytes = 0;
    int counts[FAM_COUNT] = {0}, refused[FAM_COUNT] = {0}, fails = 0;
    for (int i = 0; i < n; i++) {
        spec *sp = &R->pool[i];
        int large = i < nlarge;
        spec_generate(sp, mix64(R->o.seed + 0x100000001b3ull * (uint64_t)(i + 1)), large);
        spec_reference(R, sp);
        bytes += sp->ref_bytes;
        counts[sp->family]++;
        if (sp->refused) { /* GPU mode: refused at encode; kept out of the mix */
            refused[sp->family]++;
            continue;
        }
        fails += sp->ref_status != ALLOY_OK;
        if (large)
            R->large[R->nlarge++] = i;
        else
            R->normal[R->nnormal++] = i;
        if (sp->uses_shared)
            R->sharedspecs[R->nshared++] = i;
        else if (!large)
            R->plain[R->nplain++] = i;
    }
    if (R->o.corrupt)
        for (int i = 0; i < n; i++)
            if (R->pool[i].ref_bytes) {
                R->pool[i].ref[R->pool[i].ref_bytes / 2] ^= 0x40;
                fprintf(stderr, "torture: --corrupt: flipped a reference byte of spec %#llx\n",
                        (unsigned long long)R->pool[i].seed);
                break;
            }
    if (!R->nshared || !R->nplain)
        die("the pool of %d specs has no shared or no plain spec: use a larger pool", n);
    R->npool = n;
    if (R->o.cuda)
        fprintf(stderr,
                "torture: %d specs (%d large), references run alone on a quiet second handle "
                "of the GPU in %.1f s, %.1f MB; families:",
                n, nlarge, now() - t, (double)bytes / 1e6);
    else
        fprintf(stderr,
                "torture: %d specs (%d large), references run alone on a quiet device with %d "
                "workers in %.1f s, %.1f MB; families:",
                n, nlarge, alloy_device_workers(R->refdev), now() - t, (double)bytes / 1e6);
    for (int f = 0; f < FAM_COUNT; f++)
        fprintf(stderr, " %s %d", family_names[f], counts[f]);
    fprintf(stderr, "; %d specs expect a run-time failure\n", fails);
    if (R->o.cuda) {
        int nref = 0;
        for (int f = 0; f < FAM_COUNT; f++)
            nref += refused[f];
        fprintf(stderr,
                "torture: %d specs refused at encode by the CUDA device and kept out of "
                "the mix (%d of them unsupported%s):",
                nref, R->nunsup, R->o.strict ? "; --strict: failures" : ", counted");
        for (int f = 0; f < FAM_COUNT; f++)
            if (refused[f])
                fprintf(stderr, " %s %d", family_names[f], refused[f]);
        fprintf(stderr, "\n");
    }
}

static void free_pool(run *R)
{
    for (int i = 0; i < R->npool; i++)
        free(R->pool[i].ref);
    free(R->pool);
    free(R->normal);
    free(R->large);
    free(R->sharedspecs);
    free(R->plain);
    free(R->unsup);
}

/* Drains the mailbox on the calling thread (after the workers are gone). */
static void drain(run *R, worker *self)
{
    while (mailbox_take(self))
        ;
    (void)R;
}

/* Phase 0: the last command buffer of a queue goes while another call destroys the
 * queue. The contract: alloy_queue_destroy answers ALLOY_ERR_STATE while a command buffer
 * of the queue lives, and once it succeeds nothing of the library touches the queue.
 *   (a) one application thread commits a command buffer, destroys it at once (fire and
 *       forget: a worker completes and frees it) and calls alloy_queue_destroy until it
 *       stops answering ALLOY_ERR_STATE;
 *   (b) thread 1 destroys a finished command buffer while thread 2 calls
 *       alloy_queue_destroy until it succeeds.
 * Under TSan, (b) reports a data race (pthread_mutex_destroy in alloy_queue_destroy
 * against pthread_mutex_unlock in alloy_cmdbuf_destroy) when the library lets the queue go
 * before it is done with the queue's lock. */
typedef struct race_arg {
    run *R;
    alloy_queue *q;
    _Atomic int go;
} race_arg;

static void *queue_destroyer(void *p)
{
    race_arg *a = p;
    while (!atomic_load(&a->go))
        sched_yield();
    alloy_status s;
    long spins = 0;
    while ((s = alloy_queue_destroy(a->q)) == ALLOY_ERR_STATE)
        if (++spins % 64 == 0)
            sched_yield();
    if (s != ALLOY_OK)
        failure(a->R, "queue race: alloy_queue_destroy: %s", alloy_status_string(s));
    return NULL;
}

static void queue_race_phase(run *R, int rounds)
{
    long orphans = 0;
    for (int i = 0; i < rounds; i++) {
        alloy_queue *q = NULL;
        alloy_cmdbuf *cb = NULL;
        if (alloy_queue_create(R->dev, &q) != ALLOY_OK || alloy_cmdbuf_create(q, &cb) != ALLOY_OK)
            die("queue race: %s", alloy_last_error());
        EXPECT_OK(R, alloy_cmdbuf_commit(cb), NULL);
        if (i % 2 == 0) { /* (a) */
            int done = 0;
            EXPECT_OK(R, alloy_cmdbuf_poll(cb, &done), NULL);
            orphans += !done;
            EXPECT_OK(R, alloy_cmdbuf_destroy(cb), NULL);
            race_arg a = {R, q, 1};
            queue_destroyer(&a);
        } else { /* (b) */
            EXPECT_OK(R, alloy_cmdbuf_wait(cb), NULL);
            race_arg a = {R, q, 0};
            pthread_t t;
            if (pthread_create(&t, NULL, queue_destroyer, &a) != 0)
                die("pthread_create failed");
            atomic_store(&a.go, 1);
            EXPECT_OK(R, alloy_cmdbuf_destroy(cb), NULL);
            pthread_join(t, NULL);
        }
    }
    fprintf(stderr,
            "torture: last command buffer vs queue destroy: %d rounds (%ld fire and "
            "forget still running when destroyed)\n",
            rounds, orphans);
}

/* The huge-batch phase (--huge, and part of --long): batches of 2^24 + 1 matrices of
 * 1 x 1, more batch entries than the CPU backend's 24-bit task counter holds. The
 * contract: sizes work or are rejected with a status, never wrap. Each op must either be
 * refused at encode with a status or give every entry its result:
 *   lu_factor        A = 2 (entry-wise), pivots -7, info -7 -> A 2, pivots 1, info 0
 *   triangular_solve A = 2 broadcast (stride 0), B = 1       -> B 0.5
 *   lu_solve         LU = 2 and pivots = 1 broadcast, B = 1   -> B 0.5 */
static void huge_batch_phase(run *R)
{
    const int64_t n = (INT64_C(1) << 24) + 1;
    for (int which = 0; which < 3; which++) {
        static const char *const names[3] = {"lu_factor", "triangular_solve", "lu_solve"};
        float *a = NULL, *b = NULL;
        int32_t *piv = NULL, *info = NULL;
        alloy_buffer *ba = NULL, *bb = NULL, *bp = NULL, *bi = NULL;
        int64_t na = which == 0 ? n : 1, np = which == 1 ? 0 : which == 0 ? n : 1;
        a = xmalloc((size_t)na * 4);
        for (int64_t i = 0; i < na; i++)
            a[i] = 2.0f;
        if (which > 0) {
            b = xmalloc((size_t)n * 4);
            for (int64_t i = 0; i < n; i++)
                b[i] = 1.0f;
        }
        if (np) {
            piv = xmalloc((size_t)np * 4);
            for (int64_t i = 0; i < np; i++)
                piv[i] = which == 0 ? -7 : 1;
        }
        if (which == 0) {
            info = xmalloc((size_t)n * 4);
            for (int64_t i = 0; i < n; i++)
                info[i] = -7;
        }
        alloy_queue *q = NULL;
        alloy_cmdbuf *cb = NULL;
        if (alloy_buffer_wrap_host(R->dev, a, (size_t)na * 4, &ba) != ALLOY_OK ||
            (b && alloy_buffer_wrap_host(R->dev, b, (size_t)n * 4, &bb) != ALLOY_OK) ||
            (piv && alloy_buffer_wrap_host(R->dev, piv, (size_t)np * 4, &bp) != ALLOY_OK) ||
            (info && alloy_buffer_wrap_host(R->dev, info, (size_t)n * 4, &bi) != ALLOY_OK) ||
            alloy_queue_create(R->dev, &q) != ALLOY_OK || alloy_cmdbuf_create(q, &cb) != ALLOY_OK)
            die("huge batch: %s", alloy_last_error());
        int64_t sh3[3] = {n, 1, 1}, st3[3] = {1, 1, 1}, bst3[3] = {0, 1, 1};
        int64_t sh2[2] = {n, 1}, st2[2] = {1, 1}, bst2[2] = {0, 1}, sh1[1] = {n}, st1[1] = {1};
        alloy_status s;
        if (which == 0) {
            alloy_array A = alloy_array_strided(ba, 0, ALLOY_F32, 3, sh3, st3);
            alloy_array P = alloy_array_strided(bp, 0, ALLOY_I32, 2, sh2, st2);
            alloy_array I = alloy_array_strided(bi, 0, ALLOY_I32, 1, sh1, st1);
            s = alloy_encode_lu_factor(cb, &A, &P, &I);
        } else if (which == 1) {
            alloy_triangular_desc t = alloy_triangular_desc_default();
            alloy_array A = alloy_array_strided(ba, 0, ALLOY_F32, 3, sh3, bst3);
            alloy_array B = alloy_array_strided(bb, 0, ALLOY_F32, 3, sh3, st3);
            s = alloy_encode_triangular_solve(cb, &t, &A, &B);
        } else {
            alloy_lu_solve_desc l = alloy_lu_solve_desc_default();
            alloy_array A = alloy_array_strided(ba, 0, ALLOY_F32, 3, sh3, bst3);
            alloy_array P = alloy_array_strided(bp, 0, ALLOY_I32, 2, sh2, bst2);
            alloy_array B = alloy_array_strided(bb, 0, ALLOY_F32, 3, sh3, st3);
            s = alloy_encode_lu_solve(cb, &l, &A, &P, &B);
        }
        if (s != ALLOY_OK) {
            fprintf(stderr, "torture: huge batch: %s of %lld entries refused at encode: %s (%s)\n",
                    names[which], (long long)n, alloy_status_string(s), alloy_last_error());
        } else {
            EXPECT_OK(R, alloy_cmdbuf_commit(cb), NULL);
            s = alloy_cmdbuf_wait(cb);
            int64_t bad = 0, first = -1;
            if (s == ALLOY_OK) {
                for (int64_t i = 0; i < n; i++) {
                    int ok =
                        which == 0 ? a[i] == 2.0f && piv[i] == 1 && info[i] == 0 : b[i] == 0.5f;
                    if (!ok && bad++ == 0)
                        first = i;
                }
            } else {
                /* refused at run time: nothing may have changed */
                for (int64_t i = 0; i < n; i++) {
                    int ok =
                        which == 0 ? a[i] == 2.0f && piv[i] == -7 && info[i] == -7 : b[i] == 1.0f;
                    if (!ok && bad++ == 0)
                        first = i;
                }
            }
            atomic_fetch_add(&R->ops, 1);
            if (bad) {
                atomic_fetch_add(&R->mismatches, 1);
                fprintf(stderr,
                        "MISMATCH: huge batch: %s over %lld 1x1 matrices: wait %s, but %lld "
                        "entries are wrong (first: entry %lld)\n",
                        names[which], (long long)n, alloy_status_string(s), (long long)bad,
                        (long long)first);
            } else {
                fprintf(stderr,
                        "torture: huge batch: %s over %lld entries: %s, every entry right\n",
                        names[which], (long long)n, alloy_status_string(s));
            }
        }
        EXPECT_OK(R, alloy_cmdbuf_destroy(cb), NULL);
        EXPECT_OK(R, alloy_queue_destroy(q), NULL);
        alloy_buffer *all[4] = {ba, bb, bp, bi};
        for (int i = 0; i < 4; i++)
            EXPECT_OK(R, alloy_buffer_destroy(all[i]), NULL);
        free(a);
        free(b);
        free(piv);
        free(info);
    }
}

/* Phase 1: max(T, 16) threads start together, each encoding ops that read the shared
 * buffers on its own queue. */
static void burst_phase(run *R)
{
    int n = R->o.threads > 16 ? R->o.threads : 16;
    worker *ws = calloc((size_t)n, sizeof *ws);
    if (!ws)
        die("out of memory");
    for (int i = 0; i < n; i++)
        worker_start(R, &ws[i], i, 1000000 + (uint64_t)i, 1, R->o.burst_rounds);
    for (int i = 0; i < n; i++)
        pthread_join(ws[i].th, NULL);
    free(ws);
    fprintf(stderr,
            "torture: shared-weights burst: %d threads x %d ops reading the same buffers, "
            "%lld mismatches, %lld failures so far\n",
            n, R->o.burst_rounds, (long long)atomic_load(&R->mismatches),
            (long long)atomic_load(&R->failures));
}

/* Phase 2: the mix, with thread churn. */
static void mix_phase(run *R)
{
    int T = R->o.threads;
    worker *ws = calloc((size_t)T, sizeof *ws);
    int *alive = calloc((size_t)T, sizeof(int));
    if (!ws || !alive)
        die("out of memory");
    uint64_t serial = 1;
    test_rng lr = {mix64(R->o.seed ^ 0x11f3) | 1};
    for (int i = 0; i < T; i++) {
        worker_start(R, &ws[i], i, serial++, 0, (int)rng_range(&lr, R->o.life_lo, R->o.life_hi));
        alive[i] = 1;
    }
    double last = now();
    for (;;) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double t = now();
        long long ops = atomic_load(&R->ops);
        if ((R->o.ops > 0 && ops >= R->o.ops) || (R->o.seconds > 0 && t - R->t0 >= R->o.seconds))
            atomic_store(&R->stop, 1);
        int stop = atomic_load(&R->stop), any = 0;
        for (int i = 0; i < T; i++) {
            if (!alive[i])
                continue;
            if (atomic_load(&ws[i].finished)) {
                pthread_join(ws[i].th, NULL);
                alive[i] = 0;
                if (!stop) {
                    worker_start(R, &ws[i], i, serial++, 0,
                                 (int)rng_range(&lr, R->o.life_lo, R->o.life_hi));
                    alive[i] = 1;
                }
            }
            any |= alive[i];
        }
        if (R->o.progress > 0 && t - last >= R->o.progress) {
            last = t;
            long long lo = atomic_load(&R->large_ops);
            fprintf(stderr,
                    "torture: %.0f s: ops=%lld (%.0f/s, %.1f%% large) jobs=%lld threads "
                    "started=%lld mismatches=%lld failures=%lld\n",
                    t - R->t0, ops, (double)ops / (t - R->t0),
                    ops ? 100.0 * (double)lo / (double)ops : 0.0, (long long)atomic_load(&R->jobs),
                    (long long)atomic_load(&R->threads_started),
                    (long long)atomic_load(&R->mismatches), (long long)atomic_load(&R->failures));
        }
        if (stop && !any)
            break;
    }
    free(ws);
    free(alive);
}

/* ---------------------------------------------------------------- replay */

static int replay(run *R)
{
    spec *sp = calloc(1, sizeof *sp);
    spec_generate(sp, R->o.replay, R->o.replay_large);
    spec_reference(R, sp);
    describe(stderr, sp);
    if (sp->refused) { /* GPU mode */
        fprintf(stderr, "refused at encode on the CUDA device (op %d): %s\n", sp->refused_op,
                alloy_status_string(sp->ref_status));
        int bad = R->o.strict || atomic_load(&R->failures) > 0;
        free(sp);
        return bad;
    }
    if (R->o.cuda)
        fprintf(stderr, "reference (quiet handle of the GPU): %s\n",
                alloy_status_string(sp->ref_status));
    else
        fprintf(stderr, "reference (quiet device, %d workers): %s\n",
                alloy_device_workers(R->refdev), alloy_status_string(sp->ref_status));
    R->pool = sp;
    R->npool = 1;
    int bad = 0;
    /* CPU: 1..8 workers; GPU: three fresh handles of the same GPU */
    for (int wk = 1; wk <= (R->o.cuda ? 3 : 8); wk++) {
        alloy_device_desc d = alloy_device_desc_default();
        d.backend = ALLOY_BACKEND_CPU;
        d.cpu_workers = wk;
        d.cpu_kernel = test_kernel_from_env();
        alloy_device *dev;
        if (R->o.cuda)
            dev = open_gpu("");
        else if (alloy_device_open(&d, &dev) != ALLOY_OK)
            die("alloy_device_open: %s", alloy_last_error());
        alloy_buffer *sh[NSHARED];
        for (int s = 0; s < NSHARED; s++) {
            unsigned char *st = stage_build(&R->shared_sp, s);
            if (alloy_buffer_create(dev, R->shared_sp.b[s].bytes, ALLOY_MEMORY_DEVICE, &sh[s]) ||
                alloy_buffer_write(sh[s], 0, st, R->shared_sp.b[s].bytes))
                die("shared buffers");
            free(st);
        }
        alloy_queue *q = NULL;
        alloy_cmdbuf *cb = NULL;
        inst in;
        if (!inst_create(R, dev, sh, sp, &in, NULL) || alloy_queue_create(dev, &q) ||
            alloy_cmdbuf_create(q, &cb) || inst_encode(&in, cb, NULL) || alloy_cmdbuf_commit(cb))
            die("replay setup: %s", alloy_last_error());
        alloy_status s = alloy_cmdbuf_wait(cb);
        char where[64];
        snprintf(where, sizeof where, R->o.cuda ? "replay, GPU handle %d" : "replay, %d workers",
                 wk);
        int b = inst_check(R, &in, where) || s != sp->ref_status;
        fprintf(stderr, R->o.cuda ? "GPU handle %d: %s, %s\n" : "%d workers: %s, %s\n", wk,
                alloy_status_string(s), b ? "MISMATCH" : "same bits");
        bad += b;
        alloy_cmdbuf_destroy(cb);
        inst_destroy(R, &in);
        alloy_queue_destroy(q);
        for (int i = 0; i < NSHARED; i++)
            alloy_buffer_destroy(sh[i]);
        alloy_device_close(dev);
    }
    free(sp->ref);
    free(sp);
    R->pool = NULL;
    return bad;
}

/* ---------------------------------------------------------------- main */

_Noreturn static void usage(void)
{
    fprintf(stderr,
            "usage: torture [--backend cpu|cuda] [--strict] [-t THREADS] [-n OPS] [-s SECONDS]\n"
            "               [--seed S] [-p POOL] [-w WORKERS] [-r REF_WORKERS] [--long] [--huge]\n"
            "               [--progress SECONDS] [--burst ROUNDS]\n"
            "       torture [--backend cuda] --seed S --replay SPEC_SEED [--large]\n"
            "  --backend cuda  the torture on CUDA device 0 (SKIP and exit 0 without one);\n"
            "                  -w and -r do not apply. An op the CUDA backend does not run yet\n"
            "                  (lu_factor, lu_solve, triangular_solve refused as unsupported)\n"
            "                  is counted as unsupported=N, not as a failure ...\n"
            "  --strict        ... unless --strict: then it is a failure\n");
    exit(2);
}

static long long parse_int(const char *v)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 0);
    if (errno || !end || *end || end == v)
        usage();
    return x;
}

static uint64_t parse_u64(const char *v)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 0);
    if (errno || !end || *end || end == v)
        usage();
    return (uint64_t)x;
}

static double parse_real(const char *v)
{
    char *end = NULL;
    double x = strtod(v, &end);
    if (!end || *end || end == v)
        usage();
    return x;
}

int main(int argc, char **argv)
{
    run *R = calloc(1, sizeof *R);
    if (!R)
        die("out of memory");
    options *o = &R->o;
    /* The defaults are the short form ctest runs; --long is the long run. */
    o->threads = 16;
    o->ops = 1200;
    o->seconds = 0;
    o->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    o->pool = 96;
    o->workers = 0;
    o->ref_workers = 1;
    o->burst_rounds = 2;
    o->life_lo = 3;
    o->life_hi = 20;
    o->progress = -1;
    const char *env_seed = getenv("ALLOY_TEST_SEED");
    if (env_seed && *env_seed)
        o->seed = parse_u64(env_seed);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : ""; /* "" fails to parse: usage */
        if (!strcmp(a, "--long")) {
            o->ops = 1000000;
            o->seconds = 3600;
            o->pool = 1024;
            o->burst_rounds = 16;
            o->life_lo = 20;
            o->life_hi = 200;
            o->huge = 1;
        } else if (!strcmp(a, "--huge")) {
            o->huge = 2;
        } else if (!strcmp(a, "--backend")) {
            if (!strcmp(v, "cuda"))
                o->cuda = 1;
            else if (!strcmp(v, "cpu"))
                o->cuda = 0;
            else
                usage();
            i++;
        } else if (!strcmp(a, "--strict")) {
            o->strict = 1;
        } else if (!strcmp(a, "--corrupt")) {
            o->corrupt = 1;
        } else if (!strcmp(a, "--large")) {
            o->replay_large = 1;
        } else if (!strcmp(a, "-t")) {
            o->threads = (int)parse_int(v), i++;
        } else if (!strcmp(a, "-n")) {
            o->ops = parse_int(v), i++;
        } else if (!strcmp(a, "-s")) {
            o->seconds = parse_real(v), i++;
        } else if (!strcmp(a, "--seed")) {
            o->seed = parse_u64(v), i++;
        } else if (!strcmp(a, "-p")) {
            o->pool = (int)parse_int(v), i++;
        } else if (!strcmp(a, "-w")) {
            o->workers = (int)parse_int(v), i++;
        } else if (!strcmp(a, "-r")) {
            o->ref_workers = (int)parse_int(v), i++;
        } else if (!strcmp(a, "--progress")) {
            o->progress = parse_real(v), i++;
        } else if (!strcmp(a, "--burst")) {
            o->burst_rounds = (int)parse_int(v), i++;
        } else if (!strcmp(a, "--replay")) {
            o->replay = parse_u64(v), o->have_replay = 1, i++;
        } else {
            usage();
        }
    }
    if (o->threads < 1 || o->threads > 1024 || o->pool < 16 || o->ref_workers < 1)
        usage();
    if (o->progress < 0)
        o->progress = (o->seconds > 30 || o->ops > 50000) ? 10 : 0;
    pthread_mutex_init(&R->mb_lock, NULL);
    pthread_mutex_init(&R->zq_lock, NULL);
    pthread_mutex_init(&R->print_lock, NULL);
    R->t0 = now();
    fprintf(stderr,
            "torture: seed %#llx (replay the whole run's specs with --seed %#llx or "
            "ALLOY_TEST_SEED)\n",
            (unsigned long long)o->seed, (unsigned long long)o->seed);
    open_devices(R);
    if (o->have_replay) {
        int bad = replay(R);
        close_devices(R);
        free(R);
        return bad ? 1 : 0;
    }
    fprintf(stderr, "torture: device \"%s\", reference device \"%s\"%s\n",
            alloy_device_name(R->dev), alloy_device_name(R->refdev),
            !o->cuda    ? ""
            : o->strict ? " (--strict: unsupported ops fail)"
                        : " (unsupported ops are counted, not failed)");
    if (o->huge == 2) {
        huge_batch_phase(R);
        close_devices(R);
        long long mism = atomic_load(&R->mismatches), fails = atomic_load(&R->failures);
        printf("torture: ops=%lld threads=1 mismatches=%lld failures=%lld (huge batches only)%s\n",
               (long long)atomic_load(&R->ops), mism, fails, o->cuda ? " backend=cuda" : "");
        free(R);
        return mism || fails ? 1 : 0;
    }
    build_pool(R);
    R->nsq = o->threads / 4 > 2 ? o->threads / 4 : 2;
    R->sq = calloc((size_t)R->nsq, sizeof(alloy_queue *));
    for (int i = 0; i < R->nsq; i++)
        if (!R->sq || alloy_queue_create(R->dev, &R->sq[i]) != ALLOY_OK)
            die("alloy_queue_create: %s", alloy_last_error());
    R->t0 = now();
    queue_race_phase(R, 200);
    if (o->huge)
        huge_batch_phase(R);
    burst_phase(R);
    mix_phase(R);
    worker self;
    memset(&self, 0, sizeof self);
    self.R = R;
    self.g.s = mix64(o->seed ^ 0xd4a1) | 1;
    drain(R, &self);
    zombie_reap(R, 1);
    free(R->zq);
    for (int i = 0; i < R->nsq; i++)
        EXPECT_OK(R, alloy_queue_destroy(R->sq[i]), NULL);
    free(R->sq);
    double secs = now() - R->t0;
    long long ops = atomic_load(&R->ops), lo = atomic_load(&R->large_ops);
    fprintf(stderr, "torture: jobs by completion:");
    for (int m = 0; m < M_COUNT; m++)
        fprintf(stderr, " %s %lld", mode_names[m], (long long)atomic_load(&R->modes[m]));
    fprintf(stderr, "; by queue:");
    for (int q = 0; q < Q_COUNT; q++)
        fprintf(stderr, " %s %lld", qkind_names[q], (long long)atomic_load(&R->qkinds[q]));
    fprintf(stderr,
            "; %lld command buffers held 2-3 specs; %lld wrapped buffers; %lld queues and "
            "%lld private devices made\n",
            (long long)atomic_load(&R->grouped), (long long)atomic_load(&R->wrapped),
            (long long)atomic_load(&R->queues_made), (long long)atomic_load(&R->devices));
    if (o->cuda)
        fprintf(stderr,
                "torture: unsupported on the CUDA device: %d specs of the pool, and %lld "
                "encodes in the mix refused as they were alone\n",
                R->nunsup, (long long)atomic_load(&R->unsup_mix));
    close_devices(R);
    free_pool(R);
    long long mism = atomic_load(&R->mismatches), fails = atomic_load(&R->failures);
    char extra[96] = "";
    if (o->cuda)
        snprintf(extra, sizeof extra, " unsupported=%lld backend=cuda%s",
                 (long long)atomic_load(&R->unsupported), o->strict ? " strict" : "");
    printf("torture: ops=%lld threads=%d mismatches=%lld failures=%lld large=%.1f%% "
           "threads_started=%lld "
           "seconds=%.1f seed=%#llx%s\n",
           ops, o->threads, mism, fails, ops ? 100.0 * (double)lo / (double)ops : 0.0,
           (long long)atomic_load(&R->threads_started), secs, (unsigned long long)o->seed, extra);
    fflush(stdout);
    fprintf(stderr, "torture: ops=%lld threads=%d mismatches=%lld failures=%lld%s\n", ops,
            o->threads, mism, fails, extra);
    int rc = mism || fails ? 1 : 0;
    free(R);
    return rc;
}
