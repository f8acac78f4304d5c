/* Rows, their master inputs and the float64 checks every mode's results must pass. */
#include "bench.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

static const char *const op_names[OP_COUNT] = {"matmul", "layer_norm", "lu_factor",
                                               "lu_solve", "triangular_solve", "copy"};
static const char *const mode_names[MODE_COUNT] = {"lockfree", "mutex", "vendor",
                                                   "vendor-mutex"};

const char *op_name(bench_op op) { return op < OP_COUNT ? op_names[op] : "?"; }
const char *mode_name(bench_mode m) { return m < MODE_COUNT ? mode_names[m] : "?"; }

int op_from_name(const char *s, bench_op *out)
{
    for (int i = 0; i < OP_COUNT; i++)
        if (!strcmp(s, op_names[i])) {
            *out = (bench_op)i;
            return 0;
        }
    if (!strcmp(s, "trsm")) {
        *out = OP_TRIANGULAR_SOLVE;
        return 0;
    }
    return -1;
}

int mode_from_name(const char *s, bench_mode *out)
{
    for (int i = 0; i < MODE_COUNT; i++)
        if (!strcmp(s, mode_names[i])) {
            *out = (bench_mode)i;
            return 0;
        }
    return -1;
}

const char *dtype_name(alloy_dtype t)
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

int dtype_from_name(const char *s, alloy_dtype *out)
{
    static const alloy_dtype all[] = {ALLOY_F32, ALLOY_F64, ALLOY_F16, ALLOY_BF16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, dtype_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -1;
}

int op_dims(bench_op op)
{
    switch (op) {
    case OP_MATMUL: return 3;
    case OP_LAYER_NORM:
    case OP_LU_SOLVE:
    case OP_TRIANGULAR_SOLVE: return 2;
    default: return 1;
    }
}

int op_has_weights(bench_op op) { return op != OP_LU_FACTOR && op != OP_COPY; }

int op_supports_dtype(bench_op op, alloy_dtype t)
{
    if (op == OP_LU_FACTOR || op == OP_LU_SOLVE || op == OP_TRIANGULAR_SOLVE)
        return t == ALLOY_F32 || t == ALLOY_F64;
    return t != ALLOY_I32;
}

const char *op_default_shapes(bench_op op)
{
    switch (op) {
    case OP_MATMUL: return "64x1024x1024,1024x1024x1024";
    case OP_LAYER_NORM: return "4096x1024";
    case OP_LU_FACTOR: return "512,1024";
    case OP_LU_SOLVE: return "1024x256";
    case OP_TRIANGULAR_SOLVE: return "1024x256";
    case OP_COPY: return "1048576,16777216";
    default: return "";
    }
}

/* ---------------------------------------------------------------- shapes */

int spec_parse_shape(row_spec *s, const char *text, char *err, size_t len)
{
    const char *p = text;
    int64_t v[4];
    int n = 0;
    s->batch = 1;
    const char *at = strchr(text, '@');
    if (at) {
        char *end;
        long long b = strtoll(text, &end, 10);
        if (end != at || b < 1) {
            snprintf(err, len, "bad batch in shape '%s'", text);
            return -1;
        }
        s->batch = b;
        p = at + 1;
    }
    while (*p) {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p || x < 1 || n == 4) {
            snprintf(err, len, "bad shape '%s'", text);
            return -1;
        }
        v[n++] = x;
        p = end;
        if (*p == 'x')
            p++;
        else if (*p) {
            snprintf(err, len, "bad shape '%s'", text);
            return -1;
        }
    }
    int want = op_dims(s->op);
    if (s->op == OP_LU_FACTOR && n == 2 && v[0] == v[1])
        n = 1; /* "NxN" */
    if (n != want) {
        snprintf(err, len, "%s takes %d numbers (%s), not '%s'", op_name(s->op), want,
                 s->op == OP_MATMUL            ? "MxNxK"
                 : s->op == OP_LAYER_NORM      ? "ROWSxDIM"
                 : s->op == OP_LU_SOLVE        ? "NxNRHS"
                 : s->op == OP_TRIANGULAR_SOLVE ? "MxN"
                                               : "N",
                 text);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        s->dim[i] = i < n ? v[i] : 0;
    return 0;
}

void spec_shape_string(const row_spec *s, char *buf, size_t len)
{
    int n = op_dims(s->op);
    size_t k = 0;
    if (s->batch > 1)
        k += (size_t)snprintf(buf + k, len - k, "%" PRId64 "@", s->batch);
    for (int i = 0; i < n && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? "x%" PRId64 : "%" PRId64, s->dim[i]);
}

void spec_title(const row_spec *s, char *buf, size_t len)
{
    char shape[64];
    spec_shape_string(s, shape, sizeof shape);
    snprintf(buf, len, "%s %s %s, sync %s%s", op_name(s->op), shape, dtype_name(s->dtype),
             s->sync == SYNC_EACH ? "each" : "end",
             !op_has_weights(s->op) ? "" : s->shared ? ", shared weights" : ", private weights");
}

double spec_flops(const row_spec *s)
{
    double b = (double)s->batch, a = (double)s->dim[0], c = (double)s->dim[1],
           d = (double)s->dim[2];
    switch (s->op) {
    case OP_MATMUL: return b * 2.0 * a * c * d;
    case OP_LU_FACTOR: return b * 2.0 / 3.0 * a * a * a;
    case OP_LU_SOLVE: return b * 2.0 * a * a * c;
    case OP_TRIANGULAR_SOLVE: return b * a * a * c;
    default: return 0;
    }
}

double spec_bytes(const row_spec *s)
{
    double e = (double)alloy_dtype_size(s->dtype);
    switch (s->op) {
    case OP_COPY: return 2.0 * (double)s->dim[0] * e;
    case OP_LAYER_NORM:
        return (double)s->batch * 2.0 * (double)s->dim[0] * (double)s->dim[1] * e +
               2.0 * (double)s->dim[1] * e;
    default: return 0;
    }
}

void spec_to_line(const row_spec *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %s %d %d %" PRIu64,
             op_name(s->op), dtype_name(s->dtype), s->batch, s->dim[0], s->dim[1], s->dim[2],
             s->sync == SYNC_EACH ? "each" : "end", s->shared, s->depth, s->seed);
}

int spec_from_line(row_spec *s, const char *line)
{
    char op[32], dt[16], sy[8];
    long long b, d0, d1, d2;
    unsigned long long seed;
    if (sscanf(line, "%31s %15s %lld %lld %lld %lld %7s %d %d %llu", op, dt, &b, &d0, &d1, &d2,
               sy, &s->shared, &s->depth, &seed) != 10)
        return -1;
    if (op_from_name(op, &s->op) || dtype_from_name(dt, &s->dtype))
        return -1;
    s->batch = b;
    s->dim[0] = d0;
    s->dim[1] = d1;
    s->dim[2] = d2;
    s->sync = strcmp(sy, "each") ? SYNC_END : SYNC_EACH;
    s->seed = seed;
    return 0;
}

/* ---------------------------------------------------------------- scalars */

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    if (ax >= 0x477ff000u) /* rounds to 65536 or more */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal half, in units of 2^-24 */
        float v;
        memcpy(&v, &ax, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(v * 16777216.0f));
    }
    uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax >> 13) & 0x3ffu);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    x = e == 31 ? sign | 0x7f800000u | (m << 13) : sign | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

double host_load(const void *base, alloy_dtype t, size_t i)
{
    switch (t) {
    case ALLOY_F32: return ((const float *)base)[i];
    case ALLOY_F64: return ((const double *)base)[i];
    case ALLOY_F16: return f16_to_f32(((const uint16_t *)base)[i]);
    case ALLOY_BF16: {
        uint32_t x = (uint32_t)((const uint16_t *)base)[i] << 16;
        float f;
        memcpy(&f, &x, 4);
        return f;
    }
    case ALLOY_I32: return ((const int32_t *)base)[i];
    }
    return 0;
}

void host_store(void *base, alloy_dtype t, size_t i, double v)
{
    switch (t) {
    case ALLOY_F32: ((float *)base)[i] = (float)v; break;
    case ALLOY_F64: ((double *)base)[i] = v; break;
    case ALLOY_F16: ((uint16_t *)base)[i] = f32_to_f16((float)v); break;
    case ALLOY_BF16: ((uint16_t *)base)[i] = f32_to_bf16((float)v); break;
    case ALLOY_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    }
}

/* unit roundoff of a dtype's storage */
static double unit_roundoff(alloy_dtype t)
{
    switch (t) {
    case ALLOY_F64: return ldexp(1.0, -53);
    case ALLOY_F16: return ldexp(1.0, -11);
    case ALLOY_BF16: return ldexp(1.0, -8);
    default: return ldexp(1.0, -24);
    }
}

/* ---------------------------------------------------------------- random inputs */

typedef struct rng {
    uint64_t s;
} rng;
static uint64_t rng_next(rng *r)
{
    uint64_t x = r->s ? r->s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return x;
}
static double rng_uniform(rng *r) /* [-1, 1) */
{
    return (double)(rng_next(r) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static operand *add_operand(problem *p, const char *name, operand_role role, alloy_dtype t,
                            int batched, int rank, int64_t d0, int64_t d1)
{
    operand *o = &p->opd[p->n++];
    memset(o, 0, sizeof *o);
    o->name = name;
    o->role = role;
    o->dtype = t;
    int64_t dims[2] = {d0, d1};
    size_t count = 1;
    if (batched && p->spec.batch > 1) {
        o->shape[o->rank++] = p->spec.batch;
        count *= (size_t)p->spec.batch;
    }
    for (int i = 0; i < rank; i++) {
        o->shape[o->rank++] = dims[i];
        count *= (size_t)dims[i];
    }
    o->bytes = count * alloy_dtype_size(t);
    return o;
}

static size_t operand_count(const operand *o) { return o->bytes / alloy_dtype_size(o->dtype); }

static int fill(operand *o, int kind, rng *r, int64_t n)
{
    o->host = malloc(o->bytes ? o->bytes : 1);
    if (!o->host)
        return -1;
    size_t count = operand_count(o);
    int64_t cols = o->shape[o->rank - 1], rows = o->rank >= 2 ? o->shape[o->rank - 2] : 1;
    for (size_t i = 0; i < count; i++) {
        int64_t c = (int64_t)(i % (size_t)cols), rw = (int64_t)((i / (size_t)cols) % (size_t)rows);
        double v = rng_uniform(r);
        switch (kind) {
        case 1: /* gamma */ v = 1.0 + 0.5 * v; break;
        case 2: /* beta */ v = 0.5 * v; break;
        case 3: /* packed LU factors: well conditioned L (unit) and U */
            if (rw == c)
                v = (v < 0 ? -1.0 : 1.0) * (1.0 + fabs(v));
            else
                v /= (double)n;
            break;
        case 4: /* lower triangular A; the upper triangle, never read, is NaN */
            if (c > rw)
                v = NAN;
            else if (c == rw)
                v = (v < 0 ? -1.0 : 1.0) * (1.0 + fabs(v));
            else
                v /= (double)n;
            break;
        case 5: /* pivots (1-based, LAPACK) */
            v = (double)(c + 1 + (int64_t)(rng_next(r) % (uint64_t)(n - c)));
            break;
        default: break;
        }
        host_store(o->host, o->dtype, i, v);
    }
    return 0;
}

int problem_init(problem *p, const row_spec *s, char *err, size_t len)
{
    memset(p, 0, sizeof *p);
    p->spec = *s;
    alloy_dtype t = s->dtype;
    int64_t a = s->dim[0], b = s->dim[1], c = s->dim[2];
    rng r = {s->seed * 0x2545f4914f6cdd1dull + (uint64_t)s->op * 7919u + 1u};
    int rc = 0;
    switch (s->op) {
    case OP_MATMUL:
        rc |= fill(add_operand(p, "a", ROLE_INPUT, t, 1, 2, a, c), 0, &r, 0);
        rc |= fill(add_operand(p, "b", ROLE_WEIGHT, t, 1, 2, c, b), 0, &r, 0);
        add_operand(p, "c", ROLE_OUTPUT, t, 1, 2, a, b);
        break;
    case OP_LAYER_NORM: {
        operand *x = add_operand(p, "x", ROLE_INPUT, t, 1, 2, a, b);
        rc |= fill(x, 0, &r, 0);
        if (!rc) /* a different mean per row: the mean matters */
            for (size_t i = 0; i < operand_count(x); i += (size_t)b) {
                double off = 2.0 * rng_uniform(&r);
                for (int64_t j = 0; j < b; j++)
                    host_store(x->host, t, i + (size_t)j, host_load(x->host, t, i + (size_t)j) + off);
            }
        rc |= fill(add_operand(p, "gamma", ROLE_WEIGHT, t, 0, 1, b, 0), 1, &r, 0);
        rc |= fill(add_operand(p, "beta", ROLE_WEIGHT, t, 0, 1, b, 0), 2, &r, 0);
        add_operand(p, "y", ROLE_OUTPUT, t, 1, 2, a, b);
        break;
    }
    case OP_LU_FACTOR:
        rc |= fill(add_operand(p, "a", ROLE_INOUT, t, 1, 2, a, a), 0, &r, 0);
        add_operand(p, "pivots", ROLE_OUTPUT, ALLOY_I32, 1, 1, a, 0);
        add_operand(p, "info", ROLE_OUTPUT, ALLOY_I32, 1, 0, 0, 0);
        break;
    case OP_LU_SOLVE:
        rc |= fill(add_operand(p, "lu", ROLE_WEIGHT, t, 1, 2, a, a), 3, &r, a);
        rc |= fill(add_operand(p, "pivots", ROLE_WEIGHT, ALLOY_I32, 1, 1, a, 0), 5, &r, a);
        rc |= fill(add_operand(p, "b", ROLE_INOUT, t, 1, 2, a, b), 0, &r, 0);
        break;
    case OP_TRIANGULAR_SOLVE:
        rc |= fill(add_operand(p, "a", ROLE_WEIGHT, t, 1, 2, a, a), 4, &r, a);
        rc |= fill(add_operand(p, "b", ROLE_INOUT, t, 1, 2, a, b), 0, &r, 0);
        break;
    case OP_COPY:
        rc |= fill(add_operand(p, "src", ROLE_INPUT, t, 0, 1, a, 0), 0, &r, 0);
        add_operand(p, "dst", ROLE_OUTPUT, t, 0, 1, a, 0);
        break;
    default: rc = -1;
    }
    if (rc) {
        problem_free(p);
        snprintf(err, len, "out of host memory for the inputs");
        return -1;
    }
    return 0;
}

void problem_free(problem *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->opd[i].host);
    p->n = 0;
}

int op_vendor_colmajor(bench_op op)
{
    return op == OP_LU_FACTOR || op == OP_LU_SOLVE || op == OP_TRIANGULAR_SOLVE;
}

void *operand_colmajor(const operand *o)
{
    if (o->rank < 2 || !o->host)
        return NULL;
    int64_t rows = o->shape[o->rank - 2], cols = o->shape[o->rank - 1];
    size_t e = alloy_dtype_size(o->dtype), mat = (size_t)(rows * cols);
    size_t nmat = o->bytes / (mat * e);
    unsigned char *out = malloc(o->bytes ? o->bytes : 1);
    const unsigned char *in = o->host;
    if (!out)
        return NULL;
    for (size_t m = 0; m < nmat; m++)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                memcpy(out + (m * mat + (size_t)(j * rows + i)) * e,
                       in + (m * mat + (size_t)(i * cols + j)) * e, e);
    return out;
}

/* ---------------------------------------------------------------- checks */

/* Element (m, i, j) of a rows x cols matrix stored row- or column-major. */
static double at(const void *d, alloy_dtype t, int cm, size_t m, int64_t rows, int64_t cols,
                 int64_t i, int64_t j)
{
    size_t base = m * (size_t)(rows * cols);
    return host_load(d, t, base + (size_t)(cm ? j * rows + i : i * cols + j));
}

/* Records one compared quantity; returns 0 when it is outside its tolerance. */
static int judge(verdict *v, double got, double want, double tol, const char *what, size_t m,
                 int64_t i)
{
    double err = fabs(got - want), ratio = err / (tol > 0 ? tol : 1e-300);
    if (ratio > v->worst || isnan(got))
        v->worst = isnan(got) ? INFINITY : ratio;
    if (!(err <= tol) && v->ok) {
        v->ok = 0;
        snprintf(v->text, sizeof v->text,
                 "%s: matrix %zu, index %" PRId64 ": got %.9g, want %.9g (tolerance %.3g)", what, m,
                 i, got, want, tol);
    }
    return v->ok;
}

/* Freivalds-style check of a product of triangular factors against a reference. The
 * caller fills ay (A y), w (the factors times y) and aw (|factors| times |y|). */
static void apply_pivots_reverse(const void *piv, size_t m, int64_t n, double *w, double *aw)
{
    for (int64_t i = n - 1; i >= 0; i--) {
        int64_t p = (int64_t)host_load(piv, ALLOY_I32, m * (size_t)n + (size_t)i) - 1;
        if (p < 0 || p >= n || p == i)
            continue;
        double t = w[i];
        w[i] = w[p];
        w[p] = t;
        t = aw[i];
        aw[i] = aw[p];
        aw[p] = t;
    }
}

static void verify_matmul(const problem *p, const out_view *o, verdict *v)
{
    const row_spec *s = &p->spec;
    int64_t M = s->dim[0], N = s->dim[1], K = s->dim[2];
    const operand *A = &p->opd[0], *B = &p->opd[1];
    const out_view *C = &o[2];
    double uacc = s->dtype == ALLOY_F64 ? ldexp(1.0, -53) : ldexp(1.0, -24);
    double gk = 2.0 * (double)K * uacc, uout = unit_roundoff(C->dtype);
    rng r = {s->seed ^ 0x51ed270b27u};
    /* sampled entries, exactly */
    int64_t total = s->batch * M * N, samples = total < 512 ? total : 512;
    for (int64_t t = 0; t < samples && v->ok; t++) {
        int64_t idx = samples == total ? t : (int64_t)(rng_next(&r) % (uint64_t)total);
        size_t m = (size_t)(idx / (M * N));
        int64_t i = (idx / N) % M, j = idx % N;
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < K; k++) {
            double x = at(A->host, A->dtype, 0, m, M, K, i, k) * at(B->host, B->dtype, 0, m, K, N, k, j);
            ref += x;
            mag += fabs(x);
        }
        double got = at(C->data, C->dtype, C->colmajor, m, M, N, i, j);
        judge(v, got, ref, gk * mag + 2.0 * uout * fabs(ref) + 1e-30, "entry", m, i * N + j);
    }
    /* C y against A (B y), every row of every matrix */
    double *y = malloc(sizeof(double) * (size_t)N), *by = malloc(sizeof(double) * (size_t)K),
           *aby = malloc(sizeof(double) * (size_t)K);
    if (!y || !by || !aby)
        goto done;
    for (int rep = 0; rep < 2 && v->ok; rep++) {
        for (int64_t j = 0; j < N; j++)
            y[j] = rng_uniform(&r);
        for (size_t m = 0; m < (size_t)s->batch && v->ok; m++) {
            for (int64_t k = 0; k < K; k++) {
                double t = 0, ta = 0;
                for (int64_t j = 0; j < N; j++) {
                    double b = at(B->host, B->dtype, 0, m, K, N, k, j);
                    t += b * y[j];
                    ta += fabs(b * y[j]);
                }
                by[k] = t;
                aby[k] = ta;
            }
            for (int64_t i = 0; i < M && v->ok; i++) {
                double want = 0, bound = 0, cy = 0, acy = 0;
                for (int64_t k = 0; k < K; k++) {
                    double a = at(A->host, A->dtype, 0, m, M, K, i, k);
                    want += a * by[k];
                    bound += fabs(a) * aby[k];
                }
                for (int64_t j = 0; j < N; j++) {
                    double c = at(C->data, C->dtype, C->colmajor, m, M, N, i, j);
                    cy += c * y[j];
                    acy += fabs(c * y[j]);
                }
                judge(v, cy, want, gk * bound + 2.0 * uout * acy + 1e-30, "row check (C y vs A B y)",
                      m, i);
            }
        }
    }
done:
    free(y);
    free(by);
    free(aby);
}

static void verify_layer_norm(const problem *p, const out_view *o, verdict *v)
{
    const row_spec *s = &p->spec;
    int64_t R = s->dim[0] * s->batch, D = s->dim[1];
    const operand *X = &p->opd[0], *G = &p->opd[1], *Bt = &p->opd[2];
    const out_view *Y = &o[3];
    double umath = s->dtype == ALLOY_F64 ? ldexp(1.0, -53) : ldexp(1.0, -24);
    double uout = unit_roundoff(Y->dtype), eps = 1e-5;
    for (int64_t rw = 0; rw < R && v->ok; rw++) {
        size_t base = (size_t)(rw * D);
        double mean = 0, var = 0;
        for (int64_t j = 0; j < D; j++)
            mean += host_load(X->host, X->dtype, base + (size_t)j);
        mean /= (double)D;
        for (int64_t j = 0; j < D; j++) {
            double d = host_load(X->host, X->dtype, base + (size_t)j) - mean;
            var += d * d;
        }
        double rstd = 1.0 / sqrt(var / (double)D + eps);
        for (int64_t j = 0; j < D && v->ok; j++) {
            double x = host_load(X->host, X->dtype, base + (size_t)j);
            double g = host_load(G->host, G->dtype, (size_t)j), b = host_load(Bt->host, Bt->dtype, (size_t)j);
            double ref = (x - mean) * rstd * g + b;
            double scale = (fabs(x - mean) + fabs(mean)) * rstd * fabs(g) + fabs(b);
            double tol = 2.0 * uout * fabs(ref) + 2.0 * (double)(D + 16) * umath * scale + 1e-30;
            judge(v, host_load(Y->data, Y->dtype, base + (size_t)j), ref, tol, "element", 0,
                  rw * D + j);
        }
    }
}

static void verify_lu_factor(const problem *p, const out_view *o, verdict *v)
{
    const row_spec *s = &p->spec;
    int64_t n = s->dim[0];
    const operand *A = &p->opd[0];
    const out_view *LU = &o[0], *P = &o[1], *I = &o[2];
    double u = s->dtype == ALLOY_F64 ? ldexp(1.0, -53) : ldexp(1.0, -24);
    double *y = malloc(sizeof(double) * (size_t)n), *w = malloc(sizeof(double) * (size_t)n),
           *aw = malloc(sizeof(double) * (size_t)n), *t = malloc(sizeof(double) * (size_t)n),
           *at_ = malloc(sizeof(double) * (size_t)n);
    rng r = {s->seed ^ 0x7a3c1e5du};
    if (!y || !w || !aw || !t || !at_)
        goto done;
    for (size_t m = 0; m < (size_t)s->batch && v->ok; m++) {
        int info = (int)host_load(I->data, ALLOY_I32, m);
        if (info != 0) {
            v->ok = 0;
            snprintf(v->text, sizeof v->text, "matrix %zu: info = %d for a random (regular) matrix", m,
                     info);
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t pv = (int64_t)host_load(P->data, ALLOY_I32, m * (size_t)n + (size_t)i);
            if (pv < i + 1 || pv > n) {
                v->ok = 0;
                snprintf(v->text, sizeof v->text, "matrix %zu: pivots[%" PRId64 "] = %" PRId64
                         " is outside [%" PRId64 ", %" PRId64 "]", m, i, pv, i + 1, n);
                goto done;
            }
        }
        for (int rep = 0; rep < 2 && v->ok; rep++) {
            for (int64_t j = 0; j < n; j++)
                y[j] = rng_uniform(&r);
            for (int64_t i = 0; i < n; i++) { /* t = U y */
                double acc = 0, aacc = 0;
                for (int64_t j = i; j < n; j++) {
                    double x = at(LU->data, LU->dtype, LU->colmajor, m, n, n, i, j) * y[j];
                    acc += x;
                    aacc += fabs(x);
                }
                t[i] = acc;
                at_[i] = aacc;
            }
            for (int64_t i = 0; i < n; i++) { /* w = L t, L unit lower */
                double acc = t[i], aacc = at_[i];
                for (int64_t j = 0; j < i; j++) {
                    double l = at(LU->data, LU->dtype, LU->colmajor, m, n, n, i, j);
                    acc += l * t[j];
                    aacc += fabs(l) * at_[j];
                }
                w[i] = acc;
                aw[i] = aacc;
            }
            apply_pivots_reverse(P->data, m, n, w, aw);
            for (int64_t i = 0; i < n && v->ok; i++) {
                double want = 0, aa = 0;
                for (int64_t j = 0; j < n; j++) {
                    double x = at(A->host, A->dtype, 0, m, n, n, i, j) * y[j];
                    want += x;
                    aa += fabs(x);
                }
                judge(v, w[i], want, 4.0 * (double)n * u * (aw[i] + aa) + 1e-30,
                      "residual (P L U y vs A y)", m, i);
            }
        }
    }
done:
    free(y);
    free(w);
    free(aw);
    free(t);
    free(at_);
}

/* lu_solve and triangular_solve: the solution X must satisfy (P L U) X = B, or A X = B. */
static void verify_solve(const problem *p, const out_view *o, verdict *v)
{
    const row_spec *s = &p->spec;
    int lu = s->op == OP_LU_SOLVE;
    int64_t n = s->dim[0], nrhs = s->dim[1];
    const operand *F = &p->opd[0], *B = &p->opd[lu ? 2 : 1];
    const out_view *X = &o[lu ? 2 : 1];
    double u = s->dtype == ALLOY_F64 ? ldexp(1.0, -53) : ldexp(1.0, -24);
    double *y = malloc(sizeof(double) * (size_t)nrhs), *xy = malloc(sizeof(double) * (size_t)n),
           *axy = malloc(sizeof(double) * (size_t)n), *t = malloc(sizeof(double) * (size_t)n),
           *at_ = malloc(sizeof(double) * (size_t)n), *w = malloc(sizeof(double) * (size_t)n),
           *aw = malloc(sizeof(double) * (size_t)n);
    rng r = {s->seed ^ 0x3c6ef372u};
    if (!y || !xy || !axy || !t || !at_ || !w || !aw)
        goto done;
    for (size_t m = 0; m < (size_t)s->batch && v->ok; m++) {
        for (int rep = 0; rep < 2 && v->ok; rep++) {
            for (int64_t j = 0; j < nrhs; j++)
                y[j] = rng_uniform(&r);
            for (int64_t i = 0; i < n; i++) {
                double acc = 0, aacc = 0;
                for (int64_t j = 0; j < nrhs; j++) {
                    double x = at(X->data, X->dtype, X->colmajor, m, n, nrhs, i, j) * y[j];
                    acc += x;
                    aacc += fabs(x);
                }
                xy[i] = acc;
                axy[i] = aacc;
            }
            if (lu) {
                for (int64_t i = 0; i < n; i++) { /* t = U xy */
                    double acc = 0, aacc = 0;
                    for (int64_t j = i; j < n; j++) {
                        double f = at(F->host, F->dtype, 0, m, n, n, i, j);
                        acc += f * xy[j];
                        aacc += fabs(f) * axy[j];
                    }
                    t[i] = acc;
                    at_[i] = aacc;
                }
            } else {
                memcpy(t, xy, sizeof(double) * (size_t)n);
                memcpy(at_, axy, sizeof(double) * (size_t)n);
            }
            for (int64_t i = 0; i < n; i++) { /* w = L t (unit lower for LU) */
                double acc = lu ? t[i] : 0, aacc = lu ? at_[i] : 0;
                for (int64_t j = 0; j < (lu ? i : i + 1); j++) {
                    double f = at(F->host, F->dtype, 0, m, n, n, i, j);
                    acc += f * t[j];
                    aacc += fabs(f) * at_[j];
                }
                w[i] = acc;
                aw[i] = aacc;
            }
            if (lu)
                apply_pivots_reverse(p->opd[1].host, m, n, w, aw);
            for (int64_t i = 0; i < n && v->ok; i++) {
                double want = 0, aw2 = 0;
                for (int64_t j = 0; j < nrhs; j++) {
                    double b = at(B->host, B->dtype, 0, m, n, nrhs, i, j) * y[j];
                    want += b;
                    aw2 += fabs(b);
                }
                judge(v, w[i], want, 4.0 * (double)n * u * aw[i] + 4.0 * u * aw2 + 1e-30,
                      lu ? "residual (P L U X y vs B y)" : "residual (A X y vs B y)", m, i);
            }
        }
    }
done:
    free(y);
    free(xy);
    free(axy);
    free(t);
    free(at_);
    free(w);
    free(aw);
}

static void verify_copy(const problem *p, const out_view *o, verdict *v)
{
    const operand *src = &p->opd[0];
    const out_view *dst = &o[1];
    if (dst->dtype == src->dtype && dst->bytes == src->bytes &&
        !memcmp(dst->data, src->host, src->bytes))
        return;
    size_t n = src->bytes / alloy_dtype_size(src->dtype);
    for (size_t i = 0; i < n; i++)
        if (!judge(v, host_load(dst->data, dst->dtype, i), host_load(src->host, src->dtype, i), 0,
                   "element", 0, (int64_t)i))
            return;
}

void problem_verify(const problem *p, const out_view *outs, verdict *v)
{
    v->ok = 1;
    v->worst = 0;
    v->text[0] = 0;
    switch (p->spec.op) {
    case OP_MATMUL: verify_matmul(p, outs, v); break;
    case OP_LAYER_NORM: verify_layer_norm(p, outs, v); break;
    case OP_LU_FACTOR: verify_lu_factor(p, outs, v); break;
    case OP_LU_SOLVE:
    case OP_TRIANGULAR_SOLVE: verify_solve(p, outs, v); break;
    case OP_COPY: verify_copy(p, outs, v); break;
    default: v->ok = 0; snprintf(v->text, sizeof v->text, "no check for this op");
    }
}
