/* alloy-bench: ops x shapes x dtypes x thread counts, in three modes (alloy lockfree,
 * alloy behind a global mutex, the vendor), interleaved in one run so their ratios are
 * fair on a noisy machine. Prints a table per row, writes JSON (--json) and Markdown
 * (--md); every result is verified. `alloy-bench --help` lists the options;
 * docs/benchmarks.md shows results and the commands that made them. */
#include "bench.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TCOUNTS 16
#define MAX_REPEATS 64
#define MAX_ROWS 512

typedef enum cell_status { CELL_NONE, CELL_OK, CELL_NA, CELL_FAIL, CELL_ABORT } cell_status;

typedef struct cell {
    cell_status st;
    int nreps;
    double reps[MAX_REPEATS]; /* ops/s */
    double median;
    char note[400];
} cell;

typedef struct row_result {
    row_spec spec;
    cell_status st[MODE_COUNT]; /* the mode's verification: OK, NA, FAIL, ABORT */
    char impl[MODE_COUNT][320];
    char note[MODE_COUNT][480];
    double worst[MODE_COUNT];
    cell cells[MODE_COUNT][MAX_TCOUNTS];
} row_result;

typedef struct options {
    const char *device;
    int ordinal, cpu_workers;
    int op_selected[OP_COUNT];
    const char *shapes[OP_COUNT];
    alloy_dtype dtypes[4];
    int ndtypes;
    int threads[MAX_TCOUNTS], nthreads;
    int modes[MODE_COUNT], nmodes;
    bench_sync syncs[2];
    int nsyncs;
    int weights; /* 0: default (private; matmul also shared); 1 private; 2 shared; 3 both */
    int repeats, depth, progress, demo;
    double window;
    uint64_t seed;
    const char *json, *md, *blas, *cuda_dirs, *coretype;
} options;

typedef struct bench {
    options o;
    alloy_device *dev;
    char dev_name[256], dev_err[512];
    int cuda;
    vendor_proc *vp;
    char coretype_note[200];
    row_result *rows;
    int nrows;
    int failures, verified, windows_checked;
    char cmdline[4096], self[1024], cpu_model[256];
    int cores, avx512;
    double start;
    long windows_done, windows_total;
    double last_progress;
    int progress_shown, tty;
} bench;

/* ---------------------------------------------------------------- machine */

static int machine_has_flag(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    int found = 0;
    size_t n = strlen(flag);
    while (f && !found && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5))
            for (char *p = strstr(line, flag); p && !found; p = strstr(p + 1, flag))
                found = p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n');
    if (f)
        fclose(f);
    return found;
}

static void machine_cpu_model(char *buf, size_t len)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[1024];
    snprintf(buf, len, "unknown CPU");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + strspn(c + 1, " \t");
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, len, "%s", c);
            }
            break;
        }
    if (f)
        fclose(f);
}

/* ---------------------------------------------------------------- output helpers */

static void fmt_rate(double v, char *buf, size_t len)
{
    if (v >= 1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else if (v >= 100)
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, "%.1f", v);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

static const char *cell_word(cell_status s)
{
    switch (s) {
    case CELL_OK: return "ok";
    case CELL_NA: return "n/a";
    case CELL_FAIL: return "FAIL";
    case CELL_ABORT: return "aborted";
    default: return "-";
    }
}

static void progress(bench *b, const char *what)
{
    if (!b->o.progress)
        return;
    double t = now_seconds();
    if (t - b->start < 3 || t - b->last_progress < (b->tty ? 0.5 : 5))
        return;
    b->last_progress = t;
    double el = t - b->start;
    double left = b->windows_done > 0 ? el / (double)b->windows_done *
                                            (double)(b->windows_total - b->windows_done)
                                      : 0;
    fprintf(stderr, "%s[alloy-bench %ld/%ld windows, %.0f s, ~%.0f s left] %s%s",
            b->tty ? "\r" : "", b->windows_done, b->windows_total, el, left, what,
            b->tty ? "\033[K" : "\n");
    fflush(stderr);
    b->progress_shown = 1;
}

static void progress_clear(bench *b)
{
    if (b->progress_shown && b->tty)
        fprintf(stderr, "\r\033[K");
    b->progress_shown = 0;
}

/* ---------------------------------------------------------------- options */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: alloy-bench [options]\n"
        "  --demo                 the fixed short demo (matmul + layer_norm, lockfree/mutex/vendor)\n"
        "  --device auto|cpu|cuda alloy device (default auto: the GPU when there is one)\n"
        "  --gpu N                CUDA ordinal (default 0)\n"
        "  --cpu-workers N        CPU device workers (default: one per core)\n"
        "  --ops LIST             matmul,layer_norm,lu_factor,lu_solve,triangular_solve,copy\n"
        "                         (default: all, each with its default shapes)\n"
        "  --matmul SHAPES        MxNxK, comma-separated; [B@] prefix for a batch (8@64x64x64)\n"
        "  --layer-norm SHAPES    ROWSxDIM\n"
        "  --lu-factor SHAPES     N\n"
        "  --lu-solve SHAPES      NxNRHS\n"
        "  --triangular-solve SHAPES  MxN (B is MxN; A MxM lower, left side)\n"
        "  --copy SHAPES          N elements\n"
        "                         (each shape flag selects its op; with --ops, ops listed there too)\n"
        "  --dtypes LIST          f32,f64,f16,bf16 (default f32; rows an op lacks are skipped)\n"
        "  --threads LIST         default 1,2,4,8,16 (CPU device: powers of 2 up to 2x cores)\n"
        "  --modes LIST           lockfree,mutex,vendor[,vendor-mutex] (default the first three)\n"
        "  --sync LIST            each,end (default both): wait after every op, or keep\n"
        "                         --depth ops in flight per thread and wait at the end\n"
        "  --weights LIST         private,shared (default: private; matmul both)\n"
        "  --repeats N            timed windows per cell; the median is reported (default 5)\n"
        "  --window S             seconds per window (default 0.5)\n"
        "  --depth N              ops in flight per thread with --sync end (default 32)\n"
        "  --seed N               inputs' seed (default 1)\n"
        "  --json FILE            all results, every repeat\n"
        "  --md FILE              the tables as Markdown\n"
        "  --blas PATH            OpenBLAS for the CPU vendor (default: $ALLOY_BENCH_BLAS or\n"
        "                         libopenblas.so.0); numpy's libscipy_openblas works\n"
        "  --cuda-libdir DIRS     where to look for cuBLAS/cuSOLVER first (':'-separated;\n"
        "                         also $ALLOY_BENCH_CUDA_LIBDIRS)\n"
        "  --vendor-coretype auto|none|NAME  OPENBLAS_CORETYPE for the vendor process; auto:\n"
        "                         SkylakeX on AVX-512 CPUs when the variable is unset\n"
        "  --no-progress          no progress lines on stderr\n");
}

static int split(const char *s, char out[][64], int max)
{
    int n = 0;
    while (s && *s && n < max) {
        size_t k = strcspn(s, ",");
        snprintf(out[n++], 64, "%.*s", (int)k, s);
        s += k;
        if (*s == ',')
            s++;
    }
    return n;
}

/* "--layer-norm" -> OP_LAYER_NORM */
static int op_from_flag(const char *flag, bench_op *op)
{
    char name[64];
    if (strncmp(flag, "--", 2) != 0)
        return -1;
    snprintf(name, sizeof name, "%s", flag + 2);
    for (char *c = name; *c; c++)
        if (*c == '-')
            *c = '_';
    return op_from_name(name, op);
}

static int parse_options(bench *b, int argc, char **argv)
{
    options *o = &b->o;
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->repeats = 5;
    o->window = 0.5;
    o->depth = 32;
    o->seed = 1;
    o->progress = 1;
    o->coretype = "auto";
    o->blas = getenv("ALLOY_BENCH_BLAS");
    int any_op = 0;
    char items[64][64];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char flag[64];
        const char *eq = strchr(a, '=');
        if (eq && !strncmp(a, "--", 2)) {
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(flag, sizeof flag, "%s", a);
        }
        static const char *const noval[] = {"--demo", "--no-progress", "--help", "-h"};
        int needs = 1;
        for (size_t k = 0; k < sizeof noval / sizeof noval[0]; k++)
            if (!strcmp(flag, noval[k]))
                needs = 0;
        if (needs && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "alloy-bench: %s needs a value\n", flag);
                return -1;
            }
            val = argv[++i];
        }
        bench_op op;
        if (!strcmp(flag, "--help") || !strcmp(flag, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(flag, "--demo")) {
            o->demo = 1;
        } else if (!strcmp(flag, "--no-progress")) {
            o->progress = 0;
        } else if (!strcmp(flag, "--device")) {
            o->device = val;
        } else if (!strcmp(flag, "--gpu")) {
            o->ordinal = atoi(val);
        } else if (!strcmp(flag, "--cpu-workers")) {
            o->cpu_workers = atoi(val);
        } else if (!strcmp(flag, "--ops")) {
            int n = split(val, items, 64);
            for (int k = 0; k < n; k++) {
                if (op_from_name(items[k], &op)) {
                    fprintf(stderr, "alloy-bench: unknown op '%s'\n", items[k]);
                    return -1;
                }
                o->op_selected[op] = 1;
            }
            any_op = 1;
        } else if (op_from_flag(flag, &op) == 0) {
            o->op_selected[op] = 1;
            o->shapes[op] = val;
            any_op = 1;
        } else if (!strcmp(flag, "--dtypes")) {
            o->ndtypes = split(val, items, 4);
            for (int k = 0; k < o->ndtypes; k++)
                if (dtype_from_name(items[k], &o->dtypes[k])) {
                    fprintf(stderr, "alloy-bench: unknown dtype '%s'\n", items[k]);
                    return -1;
                }
        } else if (!strcmp(flag, "--threads")) {
            o->nthreads = split(val, items, MAX_TCOUNTS);
            for (int k = 0; k < o->nthreads; k++)
                if ((o->threads[k] = atoi(items[k])) < 1 || o->threads[k] > 1024) {
                    fprintf(stderr, "alloy-bench: bad thread count '%s'\n", items[k]);
                    return -1;
                }
        } else if (!strcmp(flag, "--modes")) {
            o->nmodes = split(val, items, MODE_COUNT);
            for (int k = 0; k < o->nmodes; k++) {
                bench_mode m;
                if (mode_from_name(items[k], &m)) {
                    fprintf(stderr, "alloy-bench: unknown mode '%s'\n", items[k]);
                    return -1;
                }
                o->modes[k] = m;
            }
        } else if (!strcmp(flag, "--sync")) {
            o->nsyncs = split(val, items, 2);
            for (int k = 0; k < o->nsyncs; k++) {
                if (strcmp(items[k], "each") && strcmp(items[k], "end")) {
                    fprintf(stderr, "alloy-bench: --sync takes each,end\n");
                    return -1;
                }
                o->syncs[k] = strcmp(items[k], "each") ? SYNC_END : SYNC_EACH;
            }
        } else if (!strcmp(flag, "--weights")) {
            int n = split(val, items, 2);
            for (int k = 0; k < n; k++) {
                if (strcmp(items[k], "private") && strcmp(items[k], "shared")) {
                    fprintf(stderr, "alloy-bench: --weights takes private,shared\n");
                    return -1;
                }
                o->weights |= strcmp(items[k], "private") ? 2 : 1;
            }
        } else if (!strcmp(flag, "--repeats")) {
            o->repeats = atoi(val);
        } else if (!strcmp(flag, "--window")) {
            o->window = atof(val);
        } else if (!strcmp(flag, "--depth")) {
            o->depth = atoi(val);
        } else if (!strcmp(flag, "--seed")) {
            o->seed = strtoull(val, NULL, 10);
        } else if (!strcmp(flag, "--json")) {
            o->json = val;
        } else if (!strcmp(flag, "--md")) {
            o->md = val;
        } else if (!strcmp(flag, "--blas")) {
            o->blas = val;
        } else if (!strcmp(flag, "--cuda-libdir")) {
            o->cuda_dirs = val;
        } else if (!strcmp(flag, "--vendor-coretype")) {
            o->coretype = val;
        } else {
            fprintf(stderr, "alloy-bench: unknown option '%s' (--help lists them)\n", a);
            return -1;
        }
    }
    if (o->repeats < 1 || o->repeats > MAX_REPEATS || o->window <= 0 || o->depth < 1) {
        fprintf(stderr, "alloy-bench: --repeats 1..%d, --window > 0, --depth >= 1\n", MAX_REPEATS);
        return -1;
    }
    if (!any_op)
        for (int k = 0; k < OP_COUNT; k++)
            o->op_selected[k] = 1;
    if (!o->ndtypes) {
        o->dtypes[0] = ALLOY_F32;
        o->ndtypes = 1;
    }
    if (!o->nmodes) {
        o->modes[0] = MODE_LOCKFREE;
        o->modes[1] = MODE_MUTEX;
        o->modes[2] = MODE_VENDOR;
        o->nmodes = 3;
    }
    if (!o->nsyncs) {
        o->syncs[0] = SYNC_EACH;
        o->syncs[1] = SYNC_END;
        o->nsyncs = 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- the demo */

static void demo_setup(bench *b)
{
    options *o = &b->o;
    memset(o->op_selected, 0, sizeof o->op_selected);
    memset(o->shapes, 0, sizeof o->shapes);
    o->op_selected[OP_MATMUL] = o->op_selected[OP_LAYER_NORM] = 1;
    o->shapes[OP_MATMUL] = "64x1024x1024"; /* the inference shape: 64 tokens, a 1024^2 layer */
    o->shapes[OP_LAYER_NORM] = "4096x1024";
    o->dtypes[0] = ALLOY_F32;
    o->ndtypes = 1;
    o->modes[0] = MODE_LOCKFREE;
    o->modes[1] = MODE_MUTEX;
    o->modes[2] = MODE_VENDOR;
    o->nmodes = 3;
    o->syncs[0] = SYNC_EACH;
    o->nsyncs = 1;
    o->weights = 2; /* inference: every thread multiplies by the same weights */
    o->repeats = 5;
    o->window = b->cuda ? 0.1 : 0.2;
    o->nthreads = 0;
    int gpu[] = {1, 2, 4, 8, 16}, cpu[] = {1, 2, 4};
    const int *t = b->cuda ? gpu : cpu;
    int n = b->cuda ? 5 : 3;
    for (int i = 0; i < n; i++)
        o->threads[o->nthreads++] = t[i];
}

/* ---------------------------------------------------------------- planning */

static int plan_rows(bench *b)
{
    const options *o = &b->o;
    char items[64][64], err[200];
    for (int op = 0; op < OP_COUNT; op++) {
        if (!o->op_selected[op])
            continue;
        const char *shapes = o->shapes[op] ? o->shapes[op] : op_default_shapes((bench_op)op);
        int ns = split(shapes, items, 64);
        for (int si = 0; si < ns; si++)
            for (int di = 0; di < o->ndtypes; di++) {
                if (!op_supports_dtype((bench_op)op, o->dtypes[di])) {
                    fprintf(stderr, "alloy-bench: skipping %s %s: not a dtype %s takes\n",
                            op_name((bench_op)op), dtype_name(o->dtypes[di]), op_name((bench_op)op));
                    continue;
                }
                int wmask = o->weights ? o->weights : op == OP_MATMUL ? 3 : 1;
                if (!op_has_weights((bench_op)op))
                    wmask = 1;
                for (int w = 0; w < 2; w++) {
                    if (!(wmask & (1 << w)))
                        continue;
                    for (int sy = 0; sy < o->nsyncs; sy++) {
                        if (b->nrows == MAX_ROWS) {
                            fprintf(stderr, "alloy-bench: more than %d rows\n", MAX_ROWS);
                            return -1;
                        }
                        row_result *r = &b->rows[b->nrows];
                        memset(r, 0, sizeof *r);
                        r->spec.op = (bench_op)op;
                        r->spec.dtype = o->dtypes[di];
                        r->spec.sync = o->syncs[sy];
                        r->spec.shared = w == 1;
                        r->spec.depth = o->depth;
                        r->spec.seed = o->seed;
                        if (spec_parse_shape(&r->spec, items[si], err, sizeof err)) {
                            fprintf(stderr, "alloy-bench: %s\n", err);
                            return -1;
                        }
                        b->nrows++;
                    }
                }
            }
    }
    b->windows_total = (long)b->nrows * o->repeats * o->nthreads * o->nmodes;
    return 0;
}

/* ---------------------------------------------------------------- running a row */

static int is_vendor(bench_mode m) { return m == MODE_VENDOR || m == MODE_VENDOR_MUTEX; }

static void set_mode(row_result *r, bench_mode m, cell_status st, const char *note)
{
    r->st[m] = st;
    snprintf(r->note[m], sizeof r->note[m], "%.470s", note);
}

/* The reply's first word. */
static int reply_is(const char *reply, const char *word)
{
    size_t n = strlen(word);
    return !strncmp(reply, word, n) && (reply[n] == ' ' || reply[n] == 0);
}
static const char *reply_text(const char *reply)
{
    const char *s = strchr(reply, ' ');
    return s ? s + 1 : "";
}

static void verify_vendor(bench *b, row_result *r, int tmax, const char *title)
{
    char reply[1600], cmd[64], what[300];
    snprintf(what, sizeof what, "verifying %s (vendor)", title);
    progress(b, what);
    int want[2] = {0, 0};
    for (int i = 0; i < b->o.nmodes; i++)
        if (is_vendor((bench_mode)b->o.modes[i]))
            want[b->o.modes[i] == MODE_VENDOR_MUTEX] = 1;
    if (!want[0] && !want[1])
        return;
    cell_status st = CELL_OK;
    char note[480], impl[320] = "";
    vendor_request(b->vp, &r->spec, "ROW", 600, reply, sizeof reply);
    if (reply_is(reply, "READY")) {
        snprintf(impl, sizeof impl, "%s", reply_text(reply));
        snprintf(cmd, sizeof cmd, "VERIFY %d", tmax);
        vendor_request(b->vp, &r->spec, cmd, 1200, reply, sizeof reply);
        if (reply_is(reply, "DIED") && tmax > 1) {
            /* It may only die with many threads: check it on one, and time what works. */
            char first[800];
            snprintf(first, sizeof first, "%s", reply_text(reply));
            vendor_request(b->vp, &r->spec, "VERIFY 1", 1200, reply, sizeof reply);
            if (reply_is(reply, "OK")) {
                snprintf(note, sizeof note, "verified on 1 thread (worst err/tol %.12s); on %d threads: %.380s",
                         reply_text(reply), tmax, first);
                goto done;
            }
        }
    }
    if (reply_is(reply, "OK")) {
        r->worst[MODE_VENDOR] = r->worst[MODE_VENDOR_MUTEX] = atof(reply_text(reply));
        snprintf(note, sizeof note, "verified on %d thread%s (worst err/tol %.3g)", tmax,
                 tmax > 1 ? "s" : "", r->worst[MODE_VENDOR]);
    } else {
        st = reply_is(reply, "NA") ? CELL_NA : reply_is(reply, "DIED") ? CELL_ABORT : CELL_FAIL;
        snprintf(note, sizeof note, "%s%s", st == CELL_ABORT ? "vendor process died: " : "",
                 reply_text(reply));
        if (st == CELL_FAIL)
            b->failures++;
    }
done:
    for (int m = MODE_VENDOR; m <= MODE_VENDOR_MUTEX; m++) {
        snprintf(r->impl[m], sizeof r->impl[m], "%.290s%s", impl,
                 m == MODE_VENDOR_MUTEX && *impl ? ", behind one global mutex" : "");
        set_mode(r, (bench_mode)m, st, note);
    }
    if (st == CELL_OK)
        b->verified++;
}

static void run_row(bench *b, row_result *r)
{
    const options *o = &b->o;
    problem p;
    char err[600], title[200];
    spec_title(&r->spec, title, sizeof title);
    int tmax = 1;
    for (int i = 0; i < o->nthreads; i++)
        if (o->threads[i] > tmax)
            tmax = o->threads[i];
    if (problem_init(&p, &r->spec, err, sizeof err) != 0) {
        for (int m = 0; m < MODE_COUNT; m++)
            set_mode(r, (bench_mode)m, CELL_FAIL, err);
        b->failures++;
        return;
    }
    void *actx[2] = {NULL, NULL};
    expected_out keep[2];
    memset(keep, 0, sizeof keep);
    postcheck pc[2] = {{&p, &keep[0], 1}, {&p, &keep[1], 1}};

    /* Verify each mode once, on the largest thread count: right answers, and (alloy) the
     * same bits on every thread. */
    for (int i = 0; i < o->nmodes; i++) {
        bench_mode m = (bench_mode)o->modes[i];
        if (is_vendor(m))
            continue;
        snprintf(r->impl[m], sizeof r->impl[m], "alloy%s%s%s", b->dev ? " " : "",
                 b->dev ? b->dev_name : "",
                 m == MODE_MUTEX ? ", one global mutex around encode+commit+wait" : "");
        if (!b->dev) {
            set_mode(r, m, CELL_NA, b->dev_err);
            continue;
        }
        char what[300];
        snprintf(what, sizeof what, "verifying %s (%s)", title, mode_name(m));
        progress(b, what);
        actx[m] = alloy_mode_create(b->dev, &p, m == MODE_MUTEX);
        verdict vd;
        int s = actx[m] ? verify_threads(&alloy_mode_vtable, actx[m], &p, tmax, 1, &keep[m], &vd,
                                         err, sizeof err)
                        : (snprintf(err, sizeof err, "out of host memory"), BENCH_FAIL);
        if (s != BENCH_OK) {
            set_mode(r, m, s == BENCH_NA ? CELL_NA : CELL_FAIL, err);
        } else if (!vd.ok) {
            set_mode(r, m, CELL_FAIL, vd.text);
        } else if (m == MODE_MUTEX && r->st[MODE_LOCKFREE] == CELL_OK &&
                   !outputs_equal(&p, keep[MODE_MUTEX].v, keep[MODE_LOCKFREE].v)) {
            set_mode(r, m, CELL_FAIL, "result differs bitwise from the lockfree mode's");
        } else {
            r->worst[m] = vd.worst;
            snprintf(what, sizeof what,
                     "verified on %d thread%s (worst err/tol %.3g)%s", tmax, tmax > 1 ? "s" : "",
                     vd.worst, tmax > 1 ? ", bitwise identical on all" : "");
            set_mode(r, m, CELL_OK, what);
            b->verified++;
        }
        if (r->st[m] == CELL_FAIL)
            b->failures++;
    }
    verify_vendor(b, r, tmax, title);

    /* Timed windows: repeat x threads x modes, the mode order rotating each repeat. */
    for (int rep = 0; rep < o->repeats; rep++)
        for (int ti = 0; ti < o->nthreads; ti++)
            for (int k = 0; k < o->nmodes; k++) {
                bench_mode m = (bench_mode)o->modes[(k + rep) % o->nmodes];
                cell *c = &r->cells[m][ti];
                int T = o->threads[ti];
                b->windows_done++;
                if (r->st[m] != CELL_OK || c->st == CELL_FAIL || c->st == CELL_ABORT ||
                    c->st == CELL_NA) {
                    if (c->st == CELL_NONE)
                        c->st = r->st[m] == CELL_OK ? CELL_NONE : r->st[m];
                    continue;
                }
                char what[300];
                snprintf(what, sizeof what, "%s: %s, %d thread%s, repeat %d/%d", title,
                         mode_name(m), T, T > 1 ? "s" : "", rep + 1, o->repeats);
                progress(b, what);
                double ops = 0, secs = 0;
                int st = CELL_OK;
                if (!is_vendor(m)) {
                    window_result w;
                    run_window(&alloy_mode_vtable, actx[m], T, o->window, 0, postcheck_fn, &pc[m],
                               &w);
                    ops = (double)w.ops;
                    secs = w.seconds;
                    if (w.status != BENCH_OK) {
                        st = w.status == BENCH_NA ? CELL_NA : CELL_FAIL;
                        snprintf(c->note, sizeof c->note, "%s", w.err);
                    }
                } else {
                    char cmd[96], reply[1600];
                    snprintf(cmd, sizeof cmd, "RUN %d %.6f %d", T, o->window, m == MODE_VENDOR_MUTEX);
                    vendor_request(b->vp, &r->spec, cmd, 300 + 20 * o->window, reply, sizeof reply);
                    unsigned long long n = 0;
                    if (reply_is(reply, "DONE") && sscanf(reply_text(reply), "%llu %lf", &n, &secs) == 2) {
                        ops = (double)n;
                    } else {
                        st = reply_is(reply, "NA")     ? CELL_NA
                             : reply_is(reply, "DIED") ? CELL_ABORT
                                                       : CELL_FAIL;
                        snprintf(c->note, sizeof c->note, "%s", reply_text(reply));
                    }
                }
                if (st != CELL_OK) {
                    c->st = (cell_status)st;
                    if (st == CELL_FAIL)
                        b->failures++;
                    continue;
                }
                c->st = CELL_OK;
                c->reps[c->nreps++] = secs > 0 ? ops / secs : 0;
                b->windows_checked++;
            }

    for (int m = 0; m < MODE_COUNT; m++)
        for (int ti = 0; ti < o->nthreads; ti++) {
            cell *c = &r->cells[m][ti];
            if (c->st != CELL_OK || c->nreps == 0)
                continue;
            double s[MAX_REPEATS];
            memcpy(s, c->reps, sizeof(double) * (size_t)c->nreps);
            for (int i = 1; i < c->nreps; i++)
                for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
                    double t = s[j];
                    s[j] = s[j - 1];
                    s[j - 1] = t;
                }
            c->median = c->nreps % 2 ? s[c->nreps / 2] : 0.5 * (s[c->nreps / 2 - 1] + s[c->nreps / 2]);
        }
    for (int m = 0; m < 2; m++) {
        expected_free(&keep[m]);
        alloy_mode_destroy(actx[m]);
    }
    problem_free(&p);
}

/* ---------------------------------------------------------------- reports */

static double efficiency(const bench *b, const row_result *r, int m, int ti)
{
    const cell *base = &r->cells[m][0], *c = &r->cells[m][ti];
    if (base->st != CELL_OK || c->st != CELL_OK || base->median <= 0)
        return NAN;
    return (c->median / base->median) / ((double)b->o.threads[ti] / (double)b->o.threads[0]);
}

static double work_per_op(const row_spec *s, const char **unit)
{
    double f = spec_flops(s);
    *unit = f > 0 ? "GFLOPS" : "GB/s";
    return f > 0 ? f : spec_bytes(s);
}

static int mode_selected(const bench *b, bench_mode m)
{
    for (int i = 0; i < b->o.nmodes; i++)
        if (b->o.modes[i] == (int)m)
            return 1;
    return 0;
}

static void print_row(const bench *b, const row_result *r, FILE *f, int md)
{
    const options *o = &b->o;
    char title[200], buf[64];
    const char *unit;
    double work = work_per_op(&r->spec, &unit);
    spec_title(&r->spec, title, sizeof title);
    if (md)
        fprintf(f, "\n#### %s\n\n", title);
    else
        fprintf(f, "\n== %s (%.4g %s per op)\n", title, work / 1e9, unit[1] == 'F' ? "GFLOP" : "GB");
    for (int i = 0; i < o->nmodes; i++) {
        int m = o->modes[i];
        fprintf(f, md ? "- %s: %s: %s%s\n" : "   %-12s %s: %s%s\n", mode_name((bench_mode)m),
                *r->impl[m] ? r->impl[m] : "-", r->st[m] == CELL_FAIL ? "FAIL: " : "", r->note[m]);
    }
    if (md)
        fprintf(f, "\n| threads |");
    else
        fprintf(f, "   threads |");
    for (int i = 0; i < o->nmodes; i++) {
        const char *mn = mode_name((bench_mode)o->modes[i]);
        if (md)
            fprintf(f, " %s ops/s | %s | eff |", mn, unit);
        else
            fprintf(f, " %14s ops/s %7s  eff |", mn, unit);
    }
    int ratio_mutex = mode_selected(b, MODE_LOCKFREE) && mode_selected(b, MODE_MUTEX);
    int ratio_vendor = mode_selected(b, MODE_LOCKFREE) && mode_selected(b, MODE_VENDOR);
    if (ratio_mutex)
        fprintf(f, md ? " lockfree/mutex |" : " lockfree/mutex");
    if (ratio_vendor)
        fprintf(f, md ? " lockfree/vendor |" : " lockfree/vendor");
    fprintf(f, "\n");
    if (md) {
        fprintf(f, "|---:|");
        for (int i = 0; i < o->nmodes; i++)
            fprintf(f, "---:|---:|---:|");
        fprintf(f, "%s%s\n", ratio_mutex ? "---:|" : "", ratio_vendor ? "---:|" : "");
    }
    for (int ti = 0; ti < o->nthreads; ti++) {
        fprintf(f, md ? "| %d |" : "   %7d |", o->threads[ti]);
        for (int i = 0; i < o->nmodes; i++) {
            int m = o->modes[i];
            const cell *c = &r->cells[m][ti];
            if (c->st == CELL_OK && c->nreps > 0) {
                fmt_rate(c->median, buf, sizeof buf);
                double e = efficiency(b, r, m, ti);
                if (md)
                    fprintf(f, " %s | %.1f | %.2f |", buf, c->median * work / 1e9, e);
                else
                    fprintf(f, " %20s %7.1f %4.2f |", buf, c->median * work / 1e9, e);
            } else {
                const char *w = cell_word(c->st == CELL_NONE ? r->st[m] : c->st);
                fprintf(f, md ? " %s | | |" : " %20s %7s %4s |", w, "", "");
            }
        }
        for (int k = 0; k < 2; k++) {
            if (!(k ? ratio_vendor : ratio_mutex))
                continue;
            const cell *l = &r->cells[MODE_LOCKFREE][ti], *x = &r->cells[k ? MODE_VENDOR : MODE_MUTEX][ti];
            if (l->st == CELL_OK && x->st == CELL_OK && x->median > 0)
                fprintf(f, md ? " %.2fx |" : " %13.2fx", l->median / x->median);
            else
                fprintf(f, md ? " - |" : " %14s", "-");
        }
        fprintf(f, "\n");
    }
    /* notes of cells that did not run */
    for (int i = 0; i < o->nmodes; i++)
        for (int ti = 0; ti < o->nthreads; ti++) {
            const cell *c = &r->cells[o->modes[i]][ti];
            if (*c->note && c->st != CELL_OK)
                fprintf(f, md ? "\n%s on %d threads: %s: %s\n" : "   %s on %d threads: %s: %s\n",
                        mode_name((bench_mode)o->modes[i]), o->threads[ti], cell_word(c->st), c->note);
        }
}

static void header(const bench *b, FILE *f, int md)
{
    char date[64];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    const char *p = md ? "- " : "";
    fprintf(f, "alloy-bench, alloy %s, %s\n", alloy_version(), date);
    if (md)
        fprintf(f, "\n");
    fprintf(f, "%scommand: %s%s%s\n", p, md ? "`" : "", b->cmdline, md ? "`" : "");
    fprintf(f, "%smachine: %s, %d cores online%s\n", p, b->cpu_model, b->cores,
            b->avx512 ? ", AVX-512F" : "");
    fprintf(f, "%salloy device: %s\n", p, b->dev ? b->dev_name : b->dev_err);
    fprintf(f, "%svendor: %s%s%s\n", p, vendor_proc_description(b->vp), *b->coretype_note ? "; " : "",
            b->coretype_note);
    fprintf(f, "%smedian of %d windows of %.2f s per cell; modes interleaved; sync end keeps %d ops "
               "in flight per thread; eff = throughput(T) / (T x throughput(%d))\n",
            p, b->o.repeats, b->o.window, b->o.depth, b->o.threads[0]);
}

static void write_json(const bench *b, FILE *f)
{
    const options *o = &b->o;
    char date[64];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    fprintf(f, "{\n  \"meta\": {\"tool\": \"alloy-bench\", \"alloy_version\": ");
    json_str(f, alloy_version());
    fprintf(f, ", \"date\": \"%s\", \"command\": ", date);
    json_str(f, b->cmdline);
    fprintf(f, ",\n    \"machine\": {\"cpu\": ");
    json_str(f, b->cpu_model);
    fprintf(f, ", \"cores\": %d, \"avx512f\": %s},\n    \"device\": {\"requested\": ", b->cores,
            b->avx512 ? "true" : "false");
    json_str(f, o->device);
    fprintf(f, ", \"backend\": \"%s\", \"name\": ", b->cuda ? "cuda" : "cpu");
    json_str(f, b->dev ? b->dev_name : "");
    fprintf(f, ", \"error\": ");
    json_str(f, b->dev ? "" : b->dev_err);
    fprintf(f, "},\n    \"vendor\": ");
    json_str(f, vendor_proc_description(b->vp));
    fprintf(f, ", \"vendor_env\": ");
    json_str(f, b->coretype_note);
    fprintf(f, ",\n    \"repeats\": %d, \"window_s\": %g, \"depth\": %d, \"threads\": [", o->repeats,
            o->window, o->depth);
    for (int i = 0; i < o->nthreads; i++)
        fprintf(f, "%s%d", i ? ", " : "", o->threads[i]);
    fprintf(f, "], \"failures\": %d},\n  \"rows\": [", b->failures);
    int first = 1;
    for (int ri = 0; ri < b->nrows; ri++) {
        const row_result *r = &b->rows[ri];
        char shape[64];
        spec_shape_string(&r->spec, shape, sizeof shape);
        const char *unit;
        double work = work_per_op(&r->spec, &unit);
        for (int i = 0; i < o->nmodes; i++) {
            int m = o->modes[i];
            for (int ti = 0; ti < o->nthreads; ti++) {
                const cell *c = &r->cells[m][ti];
                int ok = c->st == CELL_OK && c->nreps > 0;
                fprintf(f, "%s\n    {\"op\": \"%s\", \"shape\": \"%s\", \"batch\": %" PRId64
                           ", \"dims\": [%" PRId64 ", %" PRId64 ", %" PRId64 "], \"dtype\": \"%s\", "
                           "\"sync\": \"%s\", \"weights\": \"%s\", \"depth\": %d, \"mode\": \"%s\", "
                           "\"threads\": %d,\n     \"impl\": ",
                        first ? "" : ",", op_name(r->spec.op), shape, r->spec.batch, r->spec.dim[0],
                        r->spec.dim[1], r->spec.dim[2], dtype_name(r->spec.dtype),
                        r->spec.sync == SYNC_EACH ? "each" : "end",
                        r->spec.shared ? "shared" : "private", r->spec.depth,
                        mode_name((bench_mode)m), o->threads[ti]);
                first = 0;
                json_str(f, r->impl[m]);
                fprintf(f, ", \"verified\": \"%s\", \"verify_worst\": ", cell_word(r->st[m]));
                json_num(f, r->st[m] == CELL_OK ? r->worst[m] : NAN);
                fprintf(f, ", \"verify_note\": ");
                json_str(f, r->note[m]);
                fprintf(f, ",\n     \"status\": \"%s\", \"note\": ",
                        cell_word(c->st == CELL_NONE ? r->st[m] : c->st));
                json_str(f, c->note);
                fprintf(f, ", \"flops_per_op\": ");
                json_num(f, spec_flops(&r->spec));
                fprintf(f, ", \"bytes_per_op\": ");
                json_num(f, spec_bytes(&r->spec));
                fprintf(f, ", \"ops_per_s\": ");
                json_num(f, ok ? c->median : NAN);
                fprintf(f, ", \"gflops\": ");
                json_num(f, ok && unit[1] == 'F' ? c->median * work / 1e9 : NAN);
                fprintf(f, ", \"gbps\": ");
                json_num(f, ok && unit[1] == 'B' ? c->median * work / 1e9 : NAN);
                fprintf(f, ", \"efficiency\": ");
                json_num(f, efficiency(b, r, m, ti));
                fprintf(f, ", \"repeats_ops_per_s\": [");
                for (int k = 0; k < c->nreps; k++) {
                    fprintf(f, "%s", k ? ", " : "");
                    json_num(f, c->reps[k]);
                }
                fprintf(f, "]}");
            }
        }
    }
    fprintf(f, "\n  ]\n}\n");
}

/* ---------------------------------------------------------------- main */

static void open_device(bench *b)
{
    const options *o = &b->o;
    alloy_device_desc d = alloy_device_desc_default();
    d.backend = !strcmp(o->device, "cpu")    ? ALLOY_BACKEND_CPU
                : !strcmp(o->device, "cuda") ? ALLOY_BACKEND_CUDA
                                             : ALLOY_BACKEND_AUTO;
    d.ordinal = o->ordinal;
    d.cpu_workers = o->cpu_workers;
    alloy_status s = alloy_device_open(&d, &b->dev);
    if (s != ALLOY_OK) {
        b->dev = NULL;
        snprintf(b->dev_err, sizeof b->dev_err, "alloy could not open the %s device: %s: %s",
                 o->device, alloy_status_string(s), alloy_last_error());
        b->cuda = d.backend == ALLOY_BACKEND_CUDA;
        return;
    }
    snprintf(b->dev_name, sizeof b->dev_name, "%s", alloy_device_name(b->dev));
    b->cuda = alloy_device_backend(b->dev) == ALLOY_BACKEND_CUDA;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--vendor-server"))
        return vendor_server_main(argc, argv);
    static bench bs;
    bench *b = &bs;
    if (parse_options(b, argc, argv) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN); /* a dead vendor child shows up as a failed write */
    b->start = now_seconds();
    b->tty = isatty(2);
    size_t k = 0;
    for (int i = 0; i < argc && k < sizeof b->cmdline; i++)
        k += (size_t)snprintf(b->cmdline + k, sizeof b->cmdline - k, i ? " %s" : "%s",
                              i ? argv[i] : "alloy-bench");
    ssize_t n = readlink("/proc/self/exe", b->self, sizeof b->self - 1);
    if (n > 0)
        b->self[n] = 0;
    else
        snprintf(b->self, sizeof b->self, "%s", argv[0]);
    machine_cpu_model(b->cpu_model, sizeof b->cpu_model);
    b->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    b->avx512 = machine_has_flag("avx512f");

    open_device(b);
    options *o = &b->o;
    if (o->demo)
        demo_setup(b);
    if (!o->nthreads) {
        if (b->cuda) {
            int t[] = {1, 2, 4, 8, 16};
            for (int i = 0; i < 5; i++)
                o->threads[o->nthreads++] = t[i];
        } else {
            int most = 2 * (b->cores > 0 ? b->cores : 1);
            for (int t = 1; t <= most && o->nthreads < MAX_TCOUNTS - 1; t *= 2)
                o->threads[o->nthreads++] = t;
            if (o->threads[o->nthreads - 1] != most)
                o->threads[o->nthreads++] = most;
        }
    }
    b->rows = calloc(MAX_ROWS, sizeof *b->rows);
    if (!b->rows || plan_rows(b) != 0)
        return 2;

    /* The vendor child: OpenBLAS's core type on AVX-512 machines (benchmarks only). */
    const char *coretype = NULL;
    if (!b->cuda && strcmp(o->coretype, "none")) {
        if (strcmp(o->coretype, "auto"))
            coretype = o->coretype;
        else if (b->avx512 && !getenv("OPENBLAS_CORETYPE"))
            coretype = "SkylakeX";
    }
    if (coretype)
        snprintf(b->coretype_note, sizeof b->coretype_note,
                 "vendor process runs with OPENBLAS_CORETYPE=%s%s", coretype,
                 strcmp(o->coretype, "auto") ? "" : " (AVX-512 CPU and the variable unset: Debian's "
                                                    "OpenBLAS takes these CPUs for Prescott; "
                                                    "--vendor-coretype none leaves it unset)");
    vendor_options vo = {b->cuda, o->ordinal, o->blas, o->cuda_dirs};
    b->vp = vendor_proc_new(b->self, &vo, coretype);
    if (!b->vp)
        return 2;
    int want_vendor = 0;
    for (int i = 0; i < o->nmodes; i++)
        want_vendor |= is_vendor((bench_mode)o->modes[i]);
    if (want_vendor) {
        char reply[1600];
        vendor_proc_start(b->vp, reply, sizeof reply);
    }
    header(b, stdout, 0);
    if (*b->coretype_note)
        fprintf(stderr, "alloy-bench: %s\n", b->coretype_note);
    fflush(stdout);

    for (int i = 0; i < b->nrows; i++) {
        run_row(b, &b->rows[i]);
        progress_clear(b);
        print_row(b, &b->rows[i], stdout, 0);
        fflush(stdout);
    }

    if (o->md) {
        FILE *f = fopen(o->md, "w");
        if (!f) {
            fprintf(stderr, "alloy-bench: cannot write %s\n", o->md);
            b->failures++;
        } else {
            header(b, f, 1);
            for (int i = 0; i < b->nrows; i++)
                print_row(b, &b->rows[i], f, 1);
            fclose(f);
        }
    }
    if (o->json) {
        FILE *f = fopen(o->json, "w");
        if (!f) {
            fprintf(stderr, "alloy-bench: cannot write %s\n", o->json);
            b->failures++;
        } else {
            write_json(b, f);
            fclose(f);
        }
    }

    double el = now_seconds() - b->start;
    if (o->demo) {
        char threads[64];
        size_t tk = 0;
        for (int i = 0; i < o->nthreads; i++)
            tk += (size_t)snprintf(threads + tk, sizeof threads - tk, i ? ",%d" : "%d", o->threads[i]);
        printf("\ndemo: matmul 64x1024x1024 f32 (shared weights) and layer_norm 4096x1024 f32 on %s, "
               "threads %s, modes lockfree/mutex/vendor, %.0f s: ",
               b->dev ? b->dev_name : "no alloy device", threads, el);
    } else {
        printf("\nalloy-bench: %d rows in %.0f s: ", b->nrows, el);
    }
    if (b->failures)
        printf("%d FAILURE%s (see FAIL above)\n", b->failures, b->failures > 1 ? "S" : "");
    else if (b->verified == 0)
        printf("nothing was measured: every mode was n/a here (the reasons are above)\n");
    else
        printf("every result matched its reference (%d mode verifications, %d timed windows "
               "re-checked)\n",
               b->verified, b->windows_checked);
    vendor_proc_free(b->vp);
    alloy_device_close(b->dev);
    free(b->rows);
    return b->failures ? 1 : 0;
}
