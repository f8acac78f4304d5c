/* alloy-bench: the instrument behind alloy's claim that N threads get N times the work
 * done. Internal header shared by the bench's files; nothing here is alloy API.
 *
 * A row is one (op, shape, dtype, sync, weights) combination. For each row the bench
 * verifies every mode once, then measures throughput in fixed time windows for every
 * (thread count, mode), interleaved, and reports medians. Modes: alloy lockfree, alloy
 * behind one global mutex, and the vendor (OpenBLAS / cuBLAS), which runs in a child
 * process (vendor.c) so that a vendor abort is reported instead of ending the run. */
#ifndef ALLOY_BENCH_H
#define ALLOY_BENCH_H

#include "alloy.h"

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- rows */

typedef enum bench_op {
    OP_MATMUL,
    OP_LAYER_NORM,
    OP_LU_FACTOR,
    OP_LU_SOLVE,
    OP_TRIANGULAR_SOLVE,
    OP_COPY,
    OP_COUNT
} bench_op;

typedef enum bench_mode {
    MODE_LOCKFREE,     /* alloy as designed: every thread its own queue, no lock */
    MODE_MUTEX,        /* alloy with one global mutex around encode+commit+wait */
    MODE_VENDOR,       /* OpenBLAS/LAPACK on the CPU, cuBLAS/cuSOLVER on CUDA */
    MODE_VENDOR_MUTEX, /* the vendor behind one global mutex (optional) */
    MODE_COUNT
} bench_mode;

typedef enum bench_sync {
    SYNC_EACH, /* commit and wait after every op */
    SYNC_END   /* keep up to `depth` ops in flight; wait when full and at the window's end */
} bench_sync;

typedef struct row_spec {
    bench_op op;
    alloy_dtype dtype;
    int64_t batch;  /* matrices per op; 1 = no batch dimension */
    int64_t dim[3]; /* matmul M,N,K; layer_norm R,D; lu_factor N; lu_solve N,NRHS;
                     * triangular_solve M,N (B is MxN, A is MxM lower, left side); copy N */
    bench_sync sync;
    int shared;     /* every thread uses the same weight buffers */
    int depth;      /* SYNC_END: ops in flight per thread */
    uint64_t seed;
} row_spec;

const char *op_name(bench_op op);
int op_from_name(const char *s, bench_op *out);
const char *mode_name(bench_mode m);
int mode_from_name(const char *s, bench_mode *out);
const char *dtype_name(alloy_dtype t);
int dtype_from_name(const char *s, alloy_dtype *out);
int op_dims(bench_op op);                         /* numbers in a shape */
int op_has_weights(bench_op op);                  /* a shared-weights row makes sense */
int op_supports_dtype(bench_op op, alloy_dtype t);
const char *op_default_shapes(bench_op op);       /* "64x1024x1024,..." */

/* "[B@]AxBxC": 0 on success, else err says why. */
int spec_parse_shape(row_spec *s, const char *text, char *err, size_t len);
void spec_shape_string(const row_spec *s, char *buf, size_t len);
void spec_title(const row_spec *s, char *buf, size_t len); /* "matmul 64x1024x1024 f32 ..." */
double spec_flops(const row_spec *s); /* per op; 0 where GB/s is the measure */
double spec_bytes(const row_spec *s); /* per op, read + written; 0 where GFLOPS is */
/* The line the vendor protocol carries, and back. */
void spec_to_line(const row_spec *s, char *buf, size_t len);
int spec_from_line(row_spec *s, const char *line);

/* ---------------------------------------------------------------- problems */

typedef enum operand_role {
    ROLE_INPUT,  /* read; private to each thread */
    ROLE_WEIGHT, /* read; one buffer for all threads in a shared-weights row */
    ROLE_OUTPUT, /* written */
    ROLE_INOUT   /* in place: restored from its master copy before every op */
} operand_role;

#define MAX_OPERANDS 4

typedef struct operand {
    const char *name;
    operand_role role;
    alloy_dtype dtype;
    int rank;         /* includes the batch dimension when batch > 1 */
    int64_t shape[3];
    size_t bytes;
    void *host;       /* master contents, row-major; NULL for pure outputs */
} operand;

/* The master inputs of a row, made from its seed: every process that builds the same row
 * spec gets the same bytes. */
typedef struct problem {
    row_spec spec;
    int n;
    operand opd[MAX_OPERANDS];
} problem;

int problem_init(problem *p, const row_spec *s, char *err, size_t len);
void problem_free(problem *p);
/* A copy of a matrix operand with the last two dims transposed (column-major storage of
 * the same matrices), for the Fortran-order vendors; NULL when out of memory. */
void *operand_colmajor(const operand *o);
/* The Fortran-order vendors get these ops' matrices column-major (lu_factor, the solves). */
int op_vendor_colmajor(bench_op op);

/* An output as a mode produced it: its bytes, dtype, and whether its matrices are stored
 * column-major (the Fortran vendors). */
typedef struct out_view {
    const void *data;
    size_t bytes;
    alloy_dtype dtype;
    int colmajor;
} out_view;

typedef struct verdict {
    int ok;
    double worst; /* largest |error| / tolerance seen (ok when <= 1) */
    char text[240];
} verdict;

/* Checks outputs (views indexed like p->opd; only OUTPUT and INOUT are read) against a
 * float64 reference: sampled entries and randomized (Freivalds) checks for matmul,
 * residuals for the solvers and LU, every element for layer_norm and copy. */
void problem_verify(const problem *p, const out_view *outs, verdict *v);

/* Host scalar conversions (round to nearest even). */
double host_load(const void *base, alloy_dtype t, size_t i);
void host_store(void *base, alloy_dtype t, size_t i, double v);

/* ---------------------------------------------------------------- timed windows */

enum { BENCH_OK = 0, BENCH_NA = 1, BENCH_FAIL = 2 }; /* n/a: the op or dtype is not supported */

/* One mode's implementation. ctx is built per row by the mode; state per thread. */
typedef struct impl_vtable {
    int (*window_begin)(void *ctx, int threads, char *err, size_t len); /* shared weights */
    void (*window_end)(void *ctx);
    /* Sets *state even on failure (teardown gets it). */
    int (*thread_setup)(void *ctx, int tid, void **state, char *err, size_t len);
    int (*op)(void *state, char *err, size_t len);    /* one op, waited or in flight */
    int (*drain)(void *state, char *err, size_t len); /* waits for everything in flight */
    /* Views of this thread's outputs (valid until teardown), indexed like p->opd. */
    int (*fetch)(void *state, out_view *views, char *err, size_t len);
    void (*thread_teardown)(void *state);
} impl_vtable;

/* Called on each thread after its last op, with its outputs. Returns BENCH_*. */
typedef int (*post_fn)(void *arg, int tid, const out_view *views, char *err, size_t len);

typedef struct window_result {
    int status; /* BENCH_* */
    uint64_t ops;
    double seconds;
    char err[300];
} window_result;

/* Runs `threads` threads; all start together; each runs ops until `seconds` have passed
 * (single_op: exactly one op) and then waits for its work. seconds = start to the last
 * thread's end. */
void run_window(const impl_vtable *v, void *ctx, int threads, double seconds, int single_op,
                post_fn post, void *post_arg, window_result *r);
double now_seconds(void);

/* Outputs kept from a verification, to compare later results with. */
typedef struct expected_out {
    out_view v[MAX_OPERANDS];
} expected_out;
void expected_free(expected_out *e);

/* Runs one op on each of `threads` threads at once and checks thread 0's outputs against
 * the float64 reference; the others must equal thread 0's bitwise (exact: alloy's
 * promise) or pass the reference check too (the vendors). Keeps thread 0's outputs.
 * Returns BENCH_* for the run; vd says whether the results are right. */
int verify_threads(const impl_vtable *v, void *ctx, const problem *p, int threads, int exact,
                   expected_out *keep, verdict *vd, char *err, size_t len);

/* After a timed window: each thread's last result must equal the verified one (bitwise
 * when exact, else within the reference check). */
typedef struct postcheck {
    const problem *p;
    const expected_out *want;
    int exact;
} postcheck;
int postcheck_fn(void *arg, int tid, const out_view *views, char *err, size_t len);
/* 1 when two sets of outputs are bitwise equal. */
int outputs_equal(const problem *p, const out_view *a, const out_view *b);

/* ---------------------------------------------------------------- alloy modes */

void *alloy_mode_create(alloy_device *dev, const problem *p, int mutex_mode);
void alloy_mode_destroy(void *ctx);
extern const impl_vtable alloy_mode_vtable;

/* ---------------------------------------------------------------- vendors */

typedef struct vendor_options {
    int cuda;              /* 0: OpenBLAS on the CPU; 1: cuBLAS/cuSOLVER */
    int ordinal;           /* CUDA device */
    const char *blas;      /* path or soname of OpenBLAS */
    const char *cuda_dirs; /* extra directories to search for cuBLAS/cuSOLVER, ':'-separated */
} vendor_options;

typedef struct vendor_backend {
    /* Loads the libraries into *lib; desc says what was loaded, err why nothing could be. */
    int (*init)(const vendor_options *o, void **lib, char *desc, size_t dlen, char *err,
                size_t elen);
    /* BENCH_OK with the routine's name in impl, or BENCH_NA with the reason in impl. */
    int (*supports)(void *lib, const problem *p, char *impl, size_t len);
    void *(*ctx_create)(void *lib, const problem *p, int mutex_mode);
    void (*ctx_destroy)(void *ctx);
    const impl_vtable *vt;
} vendor_backend;

extern const vendor_backend vendor_cpu_backend;
extern const vendor_backend vendor_cuda_backend;

/* The child side: `alloy-bench --vendor-server FD_IN FD_OUT ...` (vendor.c). */
int vendor_server_main(int argc, char **argv);

/* The parent side: a child that answers one request at a time; if it dies, the request
 * reports why (signal, its last stderr lines) and the next request starts a new one. */
typedef struct vendor_proc vendor_proc;
/* coretype: OPENBLAS_CORETYPE for the child, or NULL to leave the environment's. */
vendor_proc *vendor_proc_new(const char *self_exe, const vendor_options *o, const char *coretype);
/* Starts the child if none runs; 0 when it answered HELLO. */
int vendor_proc_start(vendor_proc *vp, char *reply, size_t len);
void vendor_proc_free(vendor_proc *vp);
/* Sends `cmd` for the row (loading it in the child first when needed). The reply's first
 * word is OK/READY/DONE/NA/FAIL, or DIED when the child did not answer. */
int vendor_request(vendor_proc *vp, const row_spec *row, const char *cmd, double timeout_s,
                   char *reply, size_t len);
/* What the child said about its libraries ("" until it started), or why none loaded. */
const char *vendor_proc_description(const vendor_proc *vp);
int vendor_proc_unavailable(const vendor_proc *vp);

#endif
