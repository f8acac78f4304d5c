/* The CUDA vendor: cuBLAS and cuSOLVER, one handle and one non-blocking stream per
 * application thread, loaded at run time with dlopen (nothing CUDA is needed to build).
 * Memory and streams come from the driver API (libcuda.so.1) in the device's primary
 * context, which the libraries' runtime then uses too. The libraries are searched in
 * --cuda-libdir / ALLOY_BENCH_CUDA_LIBDIRS, $CUDA_HOME/lib64, /usr/local/cuda/lib64, the
 * python nvidia-* wheel directories, then the loader's path. Missing library or GPU: the
 * vendor reports n/a with the reason. Runs only in the vendor child process. */
#include "bench.h"

#include <dlfcn.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef unsigned long long CUdeviceptr;

/* Values from cuda.h, library_types.h, cublas_api.h (stable across CUDA 11-13). */
enum { CU_STREAM_NON_BLOCKING = 1, CU_EVENT_DISABLE_TIMING = 2 };
enum { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_64F = 70, CUBLAS_GEMM_DEFAULT = -1 };
enum { CUBLAS_OP_N = 0, CUBLAS_SIDE_LEFT = 0, CUBLAS_FILL_MODE_LOWER = 0, CUBLAS_DIAG_NON_UNIT = 0 };

typedef struct cuda_api {
    void *libcuda, *libcublas, *libcusolver;
    CUcontext ctx;
    CUdevice dev;
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDeviceGetCount)(int *);
    CUresult (*cuDeviceGet)(CUdevice *, int);
    CUresult (*cuDeviceGetName)(char *, int, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*cuCtxSetCurrent)(CUcontext);
    CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
    CUresult (*cuMemFree)(CUdeviceptr);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*cuStreamCreate)(CUstream *, unsigned);
    CUresult (*cuStreamSynchronize)(CUstream);
    CUresult (*cuStreamDestroy)(CUstream);
    CUresult (*cuEventCreate)(CUevent *, unsigned);
    CUresult (*cuEventRecord)(CUevent, CUstream);
    CUresult (*cuEventSynchronize)(CUevent);
    CUresult (*cuEventDestroy)(CUevent);
    CUresult (*cuGetErrorString)(CUresult, const char **);
    int (*cublasCreate)(void **);
    int (*cublasDestroy)(void *);
    int (*cublasSetStream)(void *, CUstream);
    int (*cublasGetProperty)(int, int *);
    int (*cublasGemmEx)(void *, int, int, int, int, int, const void *, const void *, int, int,
                        const void *, int, int, const void *, void *, int, int, int, int);
    int (*cublasGemmStridedBatchedEx)(void *, int, int, int, int, int, const void *, const void *,
                                      int, int, long long, const void *, int, int, long long,
                                      const void *, void *, int, int, long long, int, int, int);
    int (*cublasStrsm)(void *, int, int, int, int, int, int, const float *, const float *, int,
                       float *, int);
    int (*cublasDtrsm)(void *, int, int, int, int, int, int, const double *, const double *, int,
                       double *, int);
    int (*cusolverDnCreate)(void **);
    int (*cusolverDnDestroy)(void *);
    int (*cusolverDnSetStream)(void *, CUstream);
    int (*Sgetrf_bufferSize)(void *, int, int, float *, int, int *);
    int (*Dgetrf_bufferSize)(void *, int, int, double *, int, int *);
    int (*Sgetrf)(void *, int, int, float *, int, float *, int *, int *);
    int (*Dgetrf)(void *, int, int, double *, int, double *, int *, int *);
    int (*Sgetrs)(void *, int, int, int, const float *, int, const int *, float *, int, int *);
    int (*Dgetrs)(void *, int, int, int, const double *, int, const int *, double *, int, int *);
    char cusolver_missing[200];
} cuda_api;

#define LOAD(h, field, name)                                                                       \
    do {                                                                                           \
        void *p_ = dlsym(h, name);                                                                 \
        memcpy(&api->field, &p_, sizeof p_);                                                       \
    } while (0)

/* ---------------------------------------------------------------- finding the libraries */

typedef struct dirlist {
    char *dir[96];
    int n;
} dirlist;

static void add_dir(dirlist *d, const char *s, size_t len)
{
    if (len == 0 || d->n == 96)
        return;
    char *c = malloc(len + 1);
    if (!c)
        return;
    memcpy(c, s, len);
    c[len] = 0;
    d->dir[d->n++] = c;
}

static void add_list(dirlist *d, const char *list)
{
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        add_dir(d, p, len);
        p = e ? e + 1 : NULL;
    }
}

static void add_glob(dirlist *d, const char *prefix_env, const char *pattern)
{
    char pat[512];
    const char *pre = "";
    if (prefix_env && !(pre = getenv(prefix_env)))
        return;
    snprintf(pat, sizeof pat, "%s%s", pre, pattern);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            add_dir(d, g.gl_pathv[i], strlen(g.gl_pathv[i]));
    globfree(&g);
}

static void build_dirs(dirlist *d, const char *extra)
{
    add_list(d, extra);
    add_list(d, getenv("ALLOY_BENCH_CUDA_LIBDIRS"));
    add_glob(d, "CUDA_HOME", "/lib64");
    add_list(d, "/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib");
    static const char *const py[] = {"/lib/python3*/site-packages/nvidia/*/lib",
                                     "/lib/python3*/dist-packages/nvidia/*/lib"};
    static const char *const roots[] = {"VIRTUAL_ENV", "CONDA_PREFIX", NULL};
    for (size_t r = 0; r < sizeof roots / sizeof roots[0]; r++)
        for (size_t i = 0; i < 2; i++) {
            if (roots[r])
                add_glob(d, roots[r], py[i]);
            else {
                char pat[256];
                snprintf(pat, sizeof pat, "/usr/local%s", py[i]);
                add_glob(d, NULL, pat);
                snprintf(pat, sizeof pat, "/usr%s", py[i]);
                add_glob(d, NULL, pat);
                snprintf(pat, sizeof pat, "/opt/conda%s", py[i]);
                add_glob(d, NULL, pat);
            }
        }
    add_glob(d, "HOME", "/.local/lib/python3*/site-packages/nvidia/*/lib");
    add_glob(d, "HOME", "/.pyenv/versions/*/lib/python3*/site-packages/nvidia/*/lib");
    add_glob(d, NULL, "/usr/lib/python3/dist-packages/nvidia/*/lib");
}

/* Opens base (e.g. "libcublas") from the first directory that has it, any of the
 * sonames CUDA 11-13 use; then from the loader's own path. */
static void *open_lib(const dirlist *d, const char *base, int global, char *where, size_t wlen)
{
    static const char *const ver[] = {".so", ".so.13", ".so.12", ".so.11"};
    int flags = RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL);
    char path[1024];
    for (int i = 0; i <= d->n; i++)
        for (size_t v = 0; v < sizeof ver / sizeof ver[0]; v++) {
            if (i < d->n)
                snprintf(path, sizeof path, "%s/%s%s", d->dir[i], base, ver[v]);
            else
                snprintf(path, sizeof path, "%s%s", base, ver[v]);
            void *h = dlopen(path, flags);
            if (h) {
                snprintf(where, wlen, "%s", path);
                return h;
            }
        }
    return NULL;
}

static const char *cu_err(const cuda_api *api, CUresult r)
{
    const char *s = NULL;
    if (api->cuGetErrorString)
        api->cuGetErrorString(r, &s);
    return s ? s : "unknown CUDA error";
}

static int cuda_init(const vendor_options *o, void **lib, char *desc, size_t dlen, char *err,
                     size_t elen)
{
    cuda_api *api = calloc(1, sizeof *api);
    dirlist d = {{0}, 0};
    int rc = BENCH_NA;
    if (!api) {
        snprintf(err, elen, "out of memory");
        return BENCH_FAIL;
    }
    if (!(api->libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL))) {
        snprintf(err, elen, "no CUDA driver (libcuda.so.1: %s)", dlerror());
        goto out;
    }
    void *h = api->libcuda;
    LOAD(h, cuInit, "cuInit");
    LOAD(h, cuDeviceGetCount, "cuDeviceGetCount");
    LOAD(h, cuDeviceGet, "cuDeviceGet");
    LOAD(h, cuDeviceGetName, "cuDeviceGetName");
    LOAD(h, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    LOAD(h, cuCtxSetCurrent, "cuCtxSetCurrent");
    LOAD(h, cuMemAlloc, "cuMemAlloc_v2");
    LOAD(h, cuMemFree, "cuMemFree_v2");
    LOAD(h, cuMemcpyHtoD, "cuMemcpyHtoD_v2");
    LOAD(h, cuMemcpyDtoH, "cuMemcpyDtoH_v2");
    LOAD(h, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    LOAD(h, cuStreamCreate, "cuStreamCreate");
    LOAD(h, cuStreamSynchronize, "cuStreamSynchronize");
    LOAD(h, cuStreamDestroy, "cuStreamDestroy_v2");
    LOAD(h, cuEventCreate, "cuEventCreate");
    LOAD(h, cuEventRecord, "cuEventRecord");
    LOAD(h, cuEventSynchronize, "cuEventSynchronize");
    LOAD(h, cuEventDestroy, "cuEventDestroy_v2");
    LOAD(h, cuGetErrorString, "cuGetErrorString");
    if (!api->cuInit || !api->cuDeviceGet || !api->cuDevicePrimaryCtxRetain || !api->cuMemAlloc ||
        !api->cuStreamCreate || !api->cuEventCreate || !api->cuMemcpyDtoDAsync) {
        snprintf(err, elen, "libcuda.so.1 lacks a driver entry point this bench needs");
        goto out;
    }
    CUresult r;
    int count = 0;
    if ((r = api->cuInit(0)) != 0 || (r = api->cuDeviceGetCount(&count)) != 0) {
        snprintf(err, elen, "no usable GPU: cuInit: %s", cu_err(api, r));
        goto out;
    }
    if (o->ordinal >= count) {
        snprintf(err, elen, "no GPU %d (%d found)", o->ordinal, count);
        goto out;
    }
    char name[128] = "?";
    if ((r = api->cuDeviceGet(&api->dev, o->ordinal)) != 0 ||
        (r = api->cuDevicePrimaryCtxRetain(&api->ctx, api->dev)) != 0 ||
        (r = api->cuCtxSetCurrent(api->ctx)) != 0) {
        snprintf(err, elen, "cannot open GPU %d: %s", o->ordinal, cu_err(api, r));
        goto out;
    }
    api->cuDeviceGetName(name, sizeof name, api->dev);

    build_dirs(&d, o->cuda_dirs);
    char lt[1024] = "", cb[1024] = "", cs[1024] = "", tmp[1024];
    open_lib(&d, "libcublasLt", 1, lt, sizeof lt); /* libcublas needs it: load it first */
    if (!(api->libcublas = open_lib(&d, "libcublas", 1, cb, sizeof cb))) {
        snprintf(err, elen, "libcublas not found (searched %d directories, then the loader's path; "
                 "give --cuda-libdir DIR)", d.n);
        goto out;
    }
    h = api->libcublas;
    LOAD(h, cublasCreate, "cublasCreate_v2");
    LOAD(h, cublasDestroy, "cublasDestroy_v2");
    LOAD(h, cublasSetStream, "cublasSetStream_v2");
    LOAD(h, cublasGetProperty, "cublasGetProperty");
    LOAD(h, cublasGemmEx, "cublasGemmEx");
    LOAD(h, cublasGemmStridedBatchedEx, "cublasGemmStridedBatchedEx");
    LOAD(h, cublasStrsm, "cublasStrsm_v2");
    LOAD(h, cublasDtrsm, "cublasDtrsm_v2");
    if (!api->cublasCreate || !api->cublasSetStream || !api->cublasGemmEx) {
        snprintf(err, elen, "%s lacks cublasCreate_v2/cublasSetStream_v2/cublasGemmEx", cb);
        goto out;
    }
    /* cuSOLVER (LU rows only) needs nvJitLink and cuSPARSE on CUDA 12+. */
    open_lib(&d, "libnvJitLink", 1, tmp, sizeof tmp);
    open_lib(&d, "libcusparse", 1, tmp, sizeof tmp);
    if ((api->libcusolver = open_lib(&d, "libcusolver", 0, cs, sizeof cs))) {
        h = api->libcusolver;
        LOAD(h, cusolverDnCreate, "cusolverDnCreate");
        LOAD(h, cusolverDnDestroy, "cusolverDnDestroy");
        LOAD(h, cusolverDnSetStream, "cusolverDnSetStream");
        LOAD(h, Sgetrf_bufferSize, "cusolverDnSgetrf_bufferSize");
        LOAD(h, Dgetrf_bufferSize, "cusolverDnDgetrf_bufferSize");
        LOAD(h, Sgetrf, "cusolverDnSgetrf");
        LOAD(h, Dgetrf, "cusolverDnDgetrf");
        LOAD(h, Sgetrs, "cusolverDnSgetrs");
        LOAD(h, Dgetrs, "cusolverDnDgetrs");
        if (!api->cusolverDnCreate || !api->cusolverDnSetStream || !api->Sgetrf || !api->Sgetrs)
            snprintf(api->cusolver_missing, sizeof api->cusolver_missing,
                     "%.150s lacks cusolverDnSgetrf/Sgetrs", cs);
    } else {
        snprintf(api->cusolver_missing, sizeof api->cusolver_missing, "libcusolver not found");
    }
    int major = 0, minor = 0, patch = 0;
    if (api->cublasGetProperty) {
        api->cublasGetProperty(0, &major);
        api->cublasGetProperty(1, &minor);
        api->cublasGetProperty(2, &patch);
    }
    snprintf(desc, dlen, "%s; cuBLAS %d.%d.%d from %s; cuSOLVER %s; one handle and stream per thread",
             name, major, minor, patch, cb, *cs ? cs : "not found");
    *lib = api;
    rc = BENCH_OK;
out:
    for (int i = 0; i < d.n; i++)
        free(d.dir[i]);
    if (rc != BENCH_OK)
        free(api); /* libraries stay loaded: the process ends soon */
    return rc;
}

static int cuda_supports(void *lib, const problem *p, char *impl, size_t len)
{
    cuda_api *api = lib;
    int d = p->spec.dtype == ALLOY_F64;
    switch (p->spec.op) {
    case OP_MATMUL:
        if (p->spec.batch > 1 && !api->cublasGemmStridedBatchedEx)
            break;
        snprintf(impl, len, "cuBLAS %s (compute %s)",
                 p->spec.batch > 1 ? "cublasGemmStridedBatchedEx" : "cublasGemmEx", d ? "64F" : "32F");
        return BENCH_OK;
    case OP_LAYER_NORM:
        snprintf(impl, len, "no CUDA vendor library has layer norm (PyTorch's own kernel: see ANCHORS)");
        return BENCH_NA;
    case OP_LU_FACTOR:
    case OP_LU_SOLVE:
        if (api->cusolver_missing[0] || (d && (!api->Dgetrf || !api->Dgetrs))) {
            snprintf(impl, len, "%s", api->cusolver_missing[0] ? api->cusolver_missing : "no D routines");
            return BENCH_NA;
        }
        snprintf(impl, len, "cuSOLVER cusolverDn%c%s", d ? 'D' : 'S',
                 p->spec.op == OP_LU_FACTOR ? "getrf" : "getrs");
        return BENCH_OK;
    case OP_TRIANGULAR_SOLVE:
        if (d ? !api->cublasDtrsm : !api->cublasStrsm)
            break;
        snprintf(impl, len, "cuBLAS cublas%ctrsm_v2", d ? 'D' : 'S');
        return BENCH_OK;
    case OP_COPY: snprintf(impl, len, "cuMemcpyDtoDAsync"); return BENCH_OK;
    default: break;
    }
    snprintf(impl, len, "the library lacks the routine");
    return BENCH_NA;
}

/* ---------------------------------------------------------------- contexts */

typedef struct cuda_ctx {
    cuda_api *api;
    const problem *p;
    int mutex_mode;
    pthread_mutex_t global;
    int colmajor;
    void *layout[MAX_OPERANDS];
    CUdeviceptr shared[MAX_OPERANDS];
} cuda_ctx;

static const void *master(const cuda_ctx *c, int i)
{
    return c->layout[i] ? c->layout[i] : c->p->opd[i].host;
}

static void cuda_ctx_destroy(void *ctx)
{
    cuda_ctx *c = ctx;
    if (!c)
        return;
    for (int i = 0; i < MAX_OPERANDS; i++)
        free(c->layout[i]);
    pthread_mutex_destroy(&c->global);
    free(c);
}

static void *cuda_ctx_create(void *lib, const problem *p, int mutex_mode)
{
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->api = lib;
    c->p = p;
    c->mutex_mode = mutex_mode;
    pthread_mutex_init(&c->global, NULL);
    c->colmajor = op_vendor_colmajor(p->spec.op);
    for (int i = 0; i < p->n && c->colmajor; i++)
        if (p->opd[i].host && p->opd[i].rank >= 2 && p->opd[i].dtype != ALLOY_I32 &&
            !(c->layout[i] = operand_colmajor(&p->opd[i]))) {
            cuda_ctx_destroy(c);
            return NULL;
        }
    return c;
}

static int cu_fail(const cuda_api *api, CUresult r, const char *what, char *err, size_t len)
{
    snprintf(err, len, "%s: %s", what, cu_err(api, r));
    return BENCH_FAIL;
}

static int upload(cuda_ctx *c, int i, CUdeviceptr *out, char *err, size_t len)
{
    const operand *o = &c->p->opd[i];
    CUresult r = c->api->cuMemAlloc(out, o->bytes);
    if (r)
        return cu_fail(c->api, r, "cuMemAlloc", err, len);
    if (o->host && (r = c->api->cuMemcpyHtoD(*out, master(c, i), o->bytes)))
        return cu_fail(c->api, r, "cuMemcpyHtoD", err, len);
    return BENCH_OK;
}

static int g_window_begin(void *ctx, int threads, char *err, size_t len)
{
    cuda_ctx *c = ctx;
    (void)threads;
    c->api->cuCtxSetCurrent(c->api->ctx);
    if (!c->p->spec.shared)
        return BENCH_OK;
    for (int i = 0; i < c->p->n; i++)
        if (c->p->opd[i].role == ROLE_WEIGHT) {
            int s = upload(c, i, &c->shared[i], err, len);
            if (s != BENCH_OK)
                return s;
        }
    return BENCH_OK;
}

static void g_window_end(void *ctx)
{
    cuda_ctx *c = ctx;
    for (int i = 0; i < MAX_OPERANDS; i++)
        if (c->shared[i]) {
            c->api->cuMemFree(c->shared[i]);
            c->shared[i] = 0;
        }
}

typedef struct cuda_thread {
    cuda_ctx *c;
    CUstream stream;
    void *blas, *solver;
    CUdeviceptr buf[MAX_OPERANDS], pristine[MAX_OPERANDS];
    int owned[MAX_OPERANDS];
    CUdeviceptr info, work; /* cuSOLVER scratch (lu_factor's pivots and info are operands) */
    CUevent *events;              /* SYNC_END: one per op in flight */
    int depth, head, count;
    void *host[MAX_OPERANDS];
} cuda_thread;

static int g_thread_setup(void *ctx, int tid, void **state, char *err, size_t len)
{
    cuda_ctx *c = ctx;
    cuda_api *api = c->api;
    const problem *p = c->p;
    const row_spec *s = &p->spec;
    (void)tid;
    cuda_thread *t = calloc(1, sizeof *t);
    *state = t;
    if (!t) {
        snprintf(err, len, "out of host memory");
        return BENCH_FAIL;
    }
    t->c = c;
    CUresult r;
    if ((r = api->cuCtxSetCurrent(api->ctx)) ||
        (r = api->cuStreamCreate(&t->stream, CU_STREAM_NON_BLOCKING)))
        return cu_fail(api, r, "cuStreamCreate", err, len);
    int st;
    if ((st = api->cublasCreate(&t->blas)) || (st = api->cublasSetStream(t->blas, t->stream))) {
        snprintf(err, len, "cublasCreate/SetStream: status %d", st);
        return BENCH_FAIL;
    }
    if (s->op == OP_LU_FACTOR || s->op == OP_LU_SOLVE) {
        if ((st = api->cusolverDnCreate(&t->solver)) ||
            (st = api->cusolverDnSetStream(t->solver, t->stream))) {
            snprintf(err, len, "cusolverDnCreate/SetStream: status %d", st);
            return BENCH_FAIL;
        }
    }
    for (int i = 0; i < p->n; i++) {
        const operand *o = &p->opd[i];
        if (o->role == ROLE_WEIGHT && s->shared) {
            t->buf[i] = c->shared[i];
            continue;
        }
        t->owned[i] = 1;
        int u = upload(c, i, &t->buf[i], err, len);
        if (u == BENCH_OK && o->role == ROLE_INOUT)
            u = upload(c, i, &t->pristine[i], err, len);
        if (u != BENCH_OK)
            return u;
    }
    if (s->op == OP_LU_FACTOR) {
        int n = (int)s->dim[0], lwork = 0;
        int d = s->dtype == ALLOY_F64;
        st = d ? api->Dgetrf_bufferSize(t->solver, n, n, (double *)(uintptr_t)t->buf[0], n, &lwork)
               : api->Sgetrf_bufferSize(t->solver, n, n, (float *)(uintptr_t)t->buf[0], n, &lwork);
        if (st) {
            snprintf(err, len, "getrf_bufferSize: status %d", st);
            return BENCH_FAIL;
        }
        if ((r = api->cuMemAlloc(&t->work, (size_t)lwork * alloy_dtype_size(s->dtype) + 16)))
            return cu_fail(api, r, "cuMemAlloc", err, len);
    }
    if (s->op == OP_LU_SOLVE && (r = api->cuMemAlloc(&t->info, 16)))
        return cu_fail(api, r, "cuMemAlloc", err, len);
    t->depth = s->sync == SYNC_END && !c->mutex_mode ? s->depth : 1;
    if (t->depth > 1) {
        if (!(t->events = calloc((size_t)t->depth, sizeof *t->events))) {
            snprintf(err, len, "out of host memory");
            return BENCH_FAIL;
        }
        for (int i = 0; i < t->depth; i++)
            if ((r = api->cuEventCreate(&t->events[i], CU_EVENT_DISABLE_TIMING)))
                return cu_fail(api, r, "cuEventCreate", err, len);
    }
    return BENCH_OK;
}

static int cuda_type(alloy_dtype t)
{
    switch (t) {
    case ALLOY_F64: return CUDA_R_64F;
    case ALLOY_F16: return CUDA_R_16F;
    case ALLOY_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

static int launch(cuda_thread *t, char *err, size_t len)
{
    cuda_ctx *c = t->c;
    cuda_api *api = c->api;
    const problem *p = c->p;
    const row_spec *s = &p->spec;
    int d = s->dtype == ALLOY_F64, st = 0;
    size_t e = alloy_dtype_size(s->dtype);
    CUresult r;
    for (int i = 0; i < p->n; i++)
        if (p->opd[i].role == ROLE_INOUT &&
            (r = api->cuMemcpyDtoDAsync(t->buf[i], t->pristine[i], p->opd[i].bytes, t->stream)))
            return cu_fail(api, r, "cuMemcpyDtoDAsync", err, len);
    switch (s->op) {
    case OP_MATMUL: {
        /* Row-major C = A B is column-major C^T = B^T A^T. */
        int M = (int)s->dim[0], N = (int)s->dim[1], K = (int)s->dim[2], ty = cuda_type(s->dtype);
        double one = 1, zero = 0;
        float onef = 1, zerof = 0;
        const void *al = d ? (const void *)&one : (const void *)&onef;
        const void *be = d ? (const void *)&zero : (const void *)&zerof;
        int comp = d ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
        void *A = (void *)(uintptr_t)t->buf[0], *B = (void *)(uintptr_t)t->buf[1],
             *C = (void *)(uintptr_t)t->buf[2];
        if (s->batch > 1)
            st = api->cublasGemmStridedBatchedEx(t->blas, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, al, B, ty,
                                                 N, (long long)K * N, A, ty, K, (long long)M * K, be,
                                                 C, ty, N, (long long)M * N, (int)s->batch, comp,
                                                 CUBLAS_GEMM_DEFAULT);
        else
            st = api->cublasGemmEx(t->blas, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, al, B, ty, N, A, ty,
                                   K, be, C, ty, N, comp, CUBLAS_GEMM_DEFAULT);
        break;
    }
    case OP_LU_FACTOR: {
        int n = (int)s->dim[0];
        for (int64_t m = 0; m < s->batch && !st; m++) {
            CUdeviceptr a = t->buf[0] + (CUdeviceptr)(m * n * n) * e;
            int *ipiv = (int *)(uintptr_t)(t->buf[1] + (CUdeviceptr)(m * n) * 4);
            int *info = (int *)(uintptr_t)(t->buf[2] + (CUdeviceptr)m * 4);
            st = d ? api->Dgetrf(t->solver, n, n, (double *)(uintptr_t)a, n,
                                 (double *)(uintptr_t)t->work, ipiv, info)
                   : api->Sgetrf(t->solver, n, n, (float *)(uintptr_t)a, n,
                                 (float *)(uintptr_t)t->work, ipiv, info);
        }
        break;
    }
    case OP_LU_SOLVE: {
        int n = (int)s->dim[0], nrhs = (int)s->dim[1];
        for (int64_t m = 0; m < s->batch && !st; m++) {
            CUdeviceptr lu = t->buf[0] + (CUdeviceptr)(m * n * n) * e;
            CUdeviceptr b = t->buf[2] + (CUdeviceptr)(m * n * nrhs) * e;
            const int *ipiv = (const int *)(uintptr_t)(t->buf[1] + (CUdeviceptr)(m * n) * 4);
            int *info = (int *)(uintptr_t)t->info;
            st = d ? api->Dgetrs(t->solver, CUBLAS_OP_N, n, nrhs, (const double *)(uintptr_t)lu, n,
                                 ipiv, (double *)(uintptr_t)b, n, info)
                   : api->Sgetrs(t->solver, CUBLAS_OP_N, n, nrhs, (const float *)(uintptr_t)lu, n,
                                 ipiv, (float *)(uintptr_t)b, n, info);
        }
        break;
    }
    case OP_TRIANGULAR_SOLVE: {
        int M = (int)s->dim[0], N = (int)s->dim[1];
        double one = 1;
        float onef = 1;
        for (int64_t m = 0; m < s->batch && !st; m++) {
            CUdeviceptr a = t->buf[0] + (CUdeviceptr)(m * M * M) * e;
            CUdeviceptr b = t->buf[1] + (CUdeviceptr)(m * M * N) * e;
            st = d ? api->cublasDtrsm(t->blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                      CUBLAS_DIAG_NON_UNIT, M, N, &one, (const double *)(uintptr_t)a,
                                      M, (double *)(uintptr_t)b, M)
                   : api->cublasStrsm(t->blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                      CUBLAS_DIAG_NON_UNIT, M, N, &onef, (const float *)(uintptr_t)a,
                                      M, (float *)(uintptr_t)b, M);
        }
        break;
    }
    case OP_COPY:
        if ((r = api->cuMemcpyDtoDAsync(t->buf[1], t->buf[0], p->opd[0].bytes, t->stream)))
            return cu_fail(api, r, "cuMemcpyDtoDAsync", err, len);
        break;
    default: snprintf(err, len, "unsupported op"); return BENCH_NA;
    }
    if (st) {
        snprintf(err, len, "%s returned status %d", op_name(s->op), st);
        return BENCH_FAIL;
    }
    return BENCH_OK;
}

static int g_op_unlocked(cuda_thread *t, char *err, size_t len)
{
    cuda_api *api = t->c->api;
    int rc = launch(t, err, len);
    if (rc != BENCH_OK)
        return rc;
    CUresult r;
    if (t->depth <= 1) {
        if ((r = api->cuStreamSynchronize(t->stream)))
            return cu_fail(api, r, "cuStreamSynchronize", err, len);
        return BENCH_OK;
    }
    if (t->count == t->depth) {
        if ((r = api->cuEventSynchronize(t->events[t->head])))
            return cu_fail(api, r, "cuEventSynchronize", err, len);
        t->head = (t->head + 1) % t->depth;
        t->count--;
    }
    if ((r = api->cuEventRecord(t->events[(t->head + t->count) % t->depth], t->stream)))
        return cu_fail(api, r, "cuEventRecord", err, len);
    t->count++;
    return BENCH_OK;
}

static int g_op(void *state, char *err, size_t len)
{
    cuda_thread *t = state;
    if (!t->c->mutex_mode)
        return g_op_unlocked(t, err, len);
    pthread_mutex_lock(&t->c->global);
    int r = g_op_unlocked(t, err, len);
    pthread_mutex_unlock(&t->c->global);
    return r;
}

static int g_drain(void *state, char *err, size_t len)
{
    cuda_thread *t = state;
    t->count = 0;
    t->head = 0;
    CUresult r = t->stream ? t->c->api->cuStreamSynchronize(t->stream) : 0;
    return r ? cu_fail(t->c->api, r, "cuStreamSynchronize", err, len) : BENCH_OK;
}

static int g_fetch(void *state, out_view *views, char *err, size_t len)
{
    cuda_thread *t = state;
    cuda_ctx *c = t->c;
    const problem *p = c->p;
    for (int i = 0; i < p->n; i++) {
        const operand *o = &p->opd[i];
        if (o->role != ROLE_OUTPUT && o->role != ROLE_INOUT)
            continue;
        if (!t->host[i] && !(t->host[i] = malloc(o->bytes))) {
            snprintf(err, len, "out of host memory");
            return BENCH_FAIL;
        }
        CUresult r = c->api->cuMemcpyDtoH(t->host[i], t->buf[i], o->bytes);
        if (r)
            return cu_fail(c->api, r, "cuMemcpyDtoH", err, len);
        views[i] = (out_view){t->host[i], o->bytes, o->dtype, c->colmajor && o->rank >= 2};
    }
    return BENCH_OK;
}

static void g_thread_teardown(void *state)
{
    cuda_thread *t = state;
    cuda_api *api = t->c->api;
    if (t->stream)
        api->cuStreamSynchronize(t->stream);
    for (int i = 0; i < MAX_OPERANDS; i++) {
        if (t->owned[i] && t->buf[i])
            api->cuMemFree(t->buf[i]);
        if (t->pristine[i])
            api->cuMemFree(t->pristine[i]);
        free(t->host[i]);
    }
    if (t->info)
        api->cuMemFree(t->info);
    if (t->work)
        api->cuMemFree(t->work);
    for (int i = 0; t->events && i < t->depth; i++)
        if (t->events[i])
            api->cuEventDestroy(t->events[i]);
    free(t->events);
    if (t->solver)
        api->cusolverDnDestroy(t->solver);
    if (t->blas)
        api->cublasDestroy(t->blas);
    if (t->stream)
        api->cuStreamDestroy(t->stream);
    free(t);
}

static const impl_vtable cuda_vt = {g_window_begin, g_window_end, g_thread_setup, g_op,
                                    g_drain,        g_fetch,      g_thread_teardown};

const vendor_backend vendor_cuda_backend = {cuda_init, cuda_supports, cuda_ctx_create,
                                            cuda_ctx_destroy, &cuda_vt};
