/*
 * alloy: compute kernels that any number of threads may encode and run at once.
 *
 * The whole public API is in this header and documented where it is declared.
 *
 * Threading contract (docs/threading.md says it at length):
 *  1. liballoy holds no writable global or static data. The one thread-local is the
 *     calling thread's last error text (alloy_last_error).
 *  2. Every function may be called from any thread at any time. The only exclusive
 *     access is encoding into and committing a command buffer: one thread at a time;
 *     a second thread that tries at the same moment gets ALLOY_ERR_BUSY and changes
 *     nothing. A command buffer may move between threads; once committed, any number
 *     of threads may poll or wait on it.
 *  3. Results are bitwise identical for the same inputs and the same build whatever the
 *     number of threads, queues or workers, and however they interleave (on a GPU: for
 *     the same device model). Work is split by shape, never by the number of workers.
 *  4. Nothing aborts, exits or prints. Every failure is a status with text a person can
 *     act on: alloy_status_string, alloy_last_error, alloy_cmdbuf_error.
 *  5. Numerical conditions are data, not errors: a singular matrix sets its info entry
 *     and the command buffer still succeeds.
 *
 * Object model:
 *   alloy_device  one CPU or one GPU                       any thread, concurrently
 *   alloy_buffer  memory of a device, or wrapped memory    any thread
 *   alloy_array   a plain struct: buffer + offset + dtype + shape + strides (a value)
 *   alloy_queue   ordered stream of command buffers        any thread, concurrently
 *   alloy_cmdbuf  encoded operations, committed once       one encoder at a time
 *
 * Destroying an object while another thread is inside a call on that same object is
 * the caller's bug, as with free(). Everything else is the library's job.
 */
#ifndef ALLOY_H
#define ALLOY_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define ALLOY_API
#elif defined(__GNUC__) || defined(__clang__)
#define ALLOY_API __attribute__((visibility("default")))
#else
#define ALLOY_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define ALLOY_VERSION_MAJOR 0
#define ALLOY_VERSION_MINOR 1
#define ALLOY_VERSION_PATCH 0

/* ---------------------------------------------------------------- status codes */

typedef enum alloy_status {
    ALLOY_OK = 0,
    ALLOY_ERR_INVALID_ARGUMENT, /* a bad pointer, shape, stride, dtype or descriptor */
    ALLOY_ERR_UNSUPPORTED,      /* well formed, but not offered (e.g. a dtype pairing) */
    ALLOY_ERR_OUT_OF_MEMORY,    /* an allocation failed; nothing was changed */
    ALLOY_ERR_BUSY,             /* another thread is encoding into this command buffer */
    ALLOY_ERR_STATE,            /* wrong time: still referenced, not committed, after fork */
    ALLOY_ERR_DEVICE,           /* the device failed or was lost */
    ALLOY_ERR_NO_DEVICE         /* no such device or backend on this machine */
} alloy_status;

/* A short constant description of a status ("invalid argument"). Never NULL. */
ALLOY_API const char *alloy_status_string(alloy_status s);

/* The calling thread's last failed call, in words, naming the argument at fault
 * ("alloy_encode_matmul: a.shape[1] (K=5) differs from b.shape[0] (K=6)").
 * "" until a call on this thread fails. Valid until this thread's next failing call. */
ALLOY_API const char *alloy_last_error(void);

/* "MAJOR.MINOR.PATCH" of the library that is linked. */
ALLOY_API const char *alloy_version(void);

/* ---------------------------------------------------------------- dtypes */

typedef enum alloy_dtype {
    ALLOY_F32 = 0, /* IEEE binary32 */
    ALLOY_F64,     /* IEEE binary64 */
    ALLOY_F16,     /* IEEE binary16 */
    ALLOY_BF16,    /* bfloat16: the top 16 bits of a binary32 */
    ALLOY_I32      /* int32, for pivots and info */
} alloy_dtype;

/* Bytes per element; 0 for a value outside the enum. */
ALLOY_API size_t alloy_dtype_size(alloy_dtype t);

/* ---------------------------------------------------------------- devices */

typedef enum alloy_backend {
    ALLOY_BACKEND_AUTO = 0, /* the first CUDA device when one is usable, else the CPU */
    ALLOY_BACKEND_CPU,
    ALLOY_BACKEND_CUDA
} alloy_backend;

/* Which CPU microkernels a CPU device uses. AUTO picks from the CPU's feature flags
 * (never its model name). Forcing one the CPU lacks answers ALLOY_ERR_UNSUPPORTED.
 * Every choice gives the same results for matmul-based ops up to the order-preserving
 * fused multiply-adds each uses; see docs/threading.md. */
typedef enum alloy_cpu_kernel {
    ALLOY_CPU_KERNEL_AUTO = 0,
    ALLOY_CPU_KERNEL_PORTABLE, /* plain C: every machine, arm64 included */
    ALLOY_CPU_KERNEL_AVX2,     /* x86-64 with AVX2 and FMA */
    ALLOY_CPU_KERNEL_AVX512    /* x86-64 with AVX-512F */
} alloy_cpu_kernel;

/* Host memory the library allocates (objects, scratch, CPU buffers) comes from this
 * allocator. alloc returns memory aligned to `align` (a power of two, at most 4096) or
 * NULL; free receives the size given to alloc. Both may be called from any thread at
 * any time. A test may make any allocation fail: every failure becomes
 * ALLOY_ERR_OUT_OF_MEMORY and changes nothing. */
typedef struct alloy_allocator {
    void *ctx;
    void *(*alloc)(void *ctx, size_t bytes, size_t align);
    void (*free)(void *ctx, void *p, size_t bytes);
} alloy_allocator;

typedef struct alloy_device_desc {
    alloy_backend backend;
    int ordinal; /* which GPU; 0 for the CPU */
    /* CPU: worker threads, 0 = one per usable core. Under load, application threads
     * that wait run their own work and the workers stand back: 16 threads on 16 cores,
     * each waiting on its own 64x1024x1024 f32 products, did within 10% as many with 16
     * workers as with 1 (docs/perf-notes.md). An op is cut for no more threads than its
     * work is worth (about 2^21 multiply-adds a thread), so small ones run on one thread
     * however many workers there are. Results are the same bits for any count. */
    int cpu_workers;
    const alloy_allocator *allocator; /* NULL: the system's; copied at open */
    alloy_cpu_kernel cpu_kernel;      /* CPU: which microkernels, AUTO by default */
} alloy_device_desc;

/* backend AUTO, ordinal 0, cpu_workers 0, system allocator, cpu_kernel AUTO. */
ALLOY_API alloy_device_desc alloy_device_desc_default(void);

typedef struct alloy_device alloy_device;

/* Opens a device. desc may be NULL for the defaults. ALLOY_ERR_NO_DEVICE when the
 * backend or ordinal does not exist here. */
ALLOY_API alloy_status alloy_device_open(const alloy_device_desc *desc, alloy_device **out);

/* Closes a device: ALLOY_ERR_STATE (and nothing changes) while any buffer or queue of
 * it is alive. NULL is OK. */
ALLOY_API alloy_status alloy_device_close(alloy_device *dev);

ALLOY_API alloy_backend alloy_device_backend(const alloy_device *dev);
/* A human-readable name, e.g. "cpu (avx512, 16 workers)". Valid while dev is open. */
ALLOY_API const char *alloy_device_name(const alloy_device *dev);
/* CPU: the worker count. GPU: the number of multiprocessors. */
ALLOY_API int alloy_device_workers(const alloy_device *dev);

/* ---------------------------------------------------------------- buffers */

typedef enum alloy_memory {
    ALLOY_MEMORY_DEVICE = 0, /* device memory (on the CPU: ordinary host memory) */
    ALLOY_MEMORY_HOST        /* host-visible memory (pinned on a GPU) */
} alloy_memory;

typedef struct alloy_buffer alloy_buffer;

/* New memory of `bytes` bytes (0 is allowed), aligned to at least 64 bytes. Contents
 * are unspecified until written. */
ALLOY_API alloy_status alloy_buffer_create(alloy_device *dev, size_t bytes, alloy_memory where,
                                           alloy_buffer **out);
/* Uses caller memory in place; the caller keeps it alive and unmoved until the buffer is
 * destroyed. ptr may be NULL only when bytes is 0. */
ALLOY_API alloy_status alloy_buffer_wrap_host(alloy_device *dev, void *ptr, size_t bytes,
                                              alloy_buffer **out);
/* Uses a device pointer of the device's own (e.g. from PyTorch or CuPy) in place. A CPU
 * device answers ALLOY_ERR_UNSUPPORTED. */
ALLOY_API alloy_status alloy_buffer_wrap_device(alloy_device *dev, uint64_t device_ptr,
                                                size_t bytes, alloy_buffer **out);
/* A host pointer to the contents, or NULL when the memory is not host-visible. */
ALLOY_API void *alloy_buffer_contents(alloy_buffer *b);
ALLOY_API size_t alloy_buffer_size(const alloy_buffer *b);
/* Immediate copies between the buffer and host memory. They are not ordered with
 * queued work: wait for the command buffers that use the buffer first. */
ALLOY_API alloy_status alloy_buffer_write(alloy_buffer *b, size_t offset, const void *src,
                                          size_t bytes);
ALLOY_API alloy_status alloy_buffer_read(alloy_buffer *b, size_t offset, void *dst, size_t bytes);
/* ALLOY_ERR_STATE (and nothing changes) while an unfinished command buffer references
 * the buffer. NULL is OK. */
ALLOY_API alloy_status alloy_buffer_destroy(alloy_buffer *b);

/* ---------------------------------------------------------------- arrays */

#define ALLOY_MAX_RANK 8

/* A view of a buffer: element (i0, i1, ...) lies at byte
 * offset + (i0*strides[0] + i1*strides[1] + ...) * dtype size. Strides are in elements.
 * Rules every encode checks: rank 0..8; shape >= 0; strides >= 0; a stride of 0
 * (broadcast) only on inputs, or on output dimensions of extent 1; offset and buffer
 * address aligned to the dtype size; every element inside the buffer. */
typedef struct alloy_array {
    alloy_buffer *buffer;
    size_t offset; /* bytes */
    alloy_dtype dtype;
    int rank;
    int64_t shape[ALLOY_MAX_RANK];
    int64_t strides[ALLOY_MAX_RANK]; /* elements */
} alloy_array;

/* A row-major (C order) view. A rank outside 0..8 or a NULL shape with rank > 0 gives
 * an array of rank -1, which every encode rejects. */
ALLOY_API alloy_array alloy_array_contiguous(alloy_buffer *buffer, size_t offset,
                                             alloy_dtype dtype, int rank, const int64_t *shape);
/* A view with explicit strides (elements). Invalid rank as above. */
ALLOY_API alloy_array alloy_array_strided(alloy_buffer *buffer, size_t offset, alloy_dtype dtype,
                                          int rank, const int64_t *shape, const int64_t *strides);
/* The same view with dimensions d0 and d1 swapped (a transpose without a copy); rank -1
 * when either is out of range. */
ALLOY_API alloy_array alloy_array_swap_dims(alloy_array a, int d0, int d1);
/* The number of elements (the product of the shape; 1 for rank 0, 0 when invalid). */
ALLOY_API int64_t alloy_array_count(const alloy_array *a);

/* ---------------------------------------------------------------- queues, command buffers */

typedef struct alloy_queue alloy_queue;
typedef struct alloy_cmdbuf alloy_cmdbuf;

/* A queue runs its command buffers in commit order, each one's operations as if one after
 * another. Queues run independently of each other. */
ALLOY_API alloy_status alloy_queue_create(alloy_device *dev, alloy_queue **out);
/* Blocks until every command buffer committed to q so far has finished (helping run them
 * on a CPU device). Returns ALLOY_OK, or the first failure status among them. */
ALLOY_API alloy_status alloy_queue_wait_idle(alloy_queue *q);
/* ALLOY_ERR_STATE (and nothing changes) while command buffers of q are alive (created and
 * not destroyed, or committed and not finished). NULL is OK. */
ALLOY_API alloy_status alloy_queue_destroy(alloy_queue *q);

ALLOY_API alloy_status alloy_cmdbuf_create(alloy_queue *q, alloy_cmdbuf **out);
/* Submits the encoded work and returns at once. Once only: a second commit, or an encode
 * after it, answers ALLOY_ERR_STATE. */
ALLOY_API alloy_status alloy_cmdbuf_commit(alloy_cmdbuf *cb);
/* *done = 1 when the command buffer has finished. ALLOY_ERR_STATE before commit. */
ALLOY_API alloy_status alloy_cmdbuf_poll(alloy_cmdbuf *cb, int *done);
/* Blocks until the command buffer has finished and returns its execution status: OK, or
 * the status of the operation that failed (alloy_cmdbuf_error names it; the operations
 * after it were skipped). On a CPU device the waiting thread helps run the work.
 * Any number of threads may wait at once. ALLOY_ERR_STATE before commit. */
ALLOY_API alloy_status alloy_cmdbuf_wait(alloy_cmdbuf *cb);
/* "" or the text of the failure ("op 2 (lu_factor): out of memory ..."). Valid until the
 * command buffer is destroyed. */
ALLOY_API const char *alloy_cmdbuf_error(const alloy_cmdbuf *cb);
/* Destroys a command buffer. An uncommitted one releases its references now. A committed
 * one that has not finished runs to completion and is freed then (fire and forget).
 * NULL is OK. */
ALLOY_API alloy_status alloy_cmdbuf_destroy(alloy_cmdbuf *cb);

/* ---------------------------------------------------------------- operations
 *
 * Every encode validates everything before it records anything: a failed encode records
 * nothing, changes no memory and leaves the command buffer usable. Each holds a
 * reference to every buffer it uses until the command buffer finishes or is destroyed
 * uncommitted. Outputs must not overlap each other or any input (checked on byte ranges)
 * except where an operation says so. Batch dimensions (all but the last one or two) of
 * inputs broadcast against the output's, numpy-style: equal, or 1, or missing. */

/* dst = src, converting among F32, F64, F16 and BF16 (round to nearest even; overflow
 * to infinity; NaN stays NaN). I32 copies only to I32. src broadcasts to dst's shape
 * (numpy rules: trailing dimensions align; each src dim equals dst's or is 1). */
ALLOY_API alloy_status alloy_encode_copy(alloy_cmdbuf *cb, const alloy_array *src,
                                         const alloy_array *dst);

typedef struct alloy_matmul_desc {
    double alpha;   /* default 1 */
    double beta;    /* default 0: C is never read */
    int allow_tf32; /* default 0: F32 inputs multiply in full F32 precision */
} alloy_matmul_desc;
ALLOY_API alloy_matmul_desc alloy_matmul_desc_default(void);

/* C = alpha * (A @ B) + beta * C + bias, with A (..., M, K), B (..., K, N),
 * C (..., M, N), bias (N) or NULL, added after scaling.
 * dtypes: A and B both F32, F16 or BF16 with F32 accumulation and C F32 or the input
 * dtype; or A, B and C all F64. bias is any float dtype (F64 only with F64 C) and is
 * read as the accumulation type. beta == 0 never reads C (NaN in C does not propagate);
 * alpha == 0 never reads A or B. Transposes are views (alloy_array_swap_dims). */
ALLOY_API alloy_status alloy_encode_matmul(alloy_cmdbuf *cb, const alloy_matmul_desc *d,
                                           const alloy_array *a, const alloy_array *b,
                                           const alloy_array *bias, const alloy_array *c);

/* LU with partial pivoting, in place: A (..., M, N) of F32 or F64 becomes L (unit
 * diagonal, below) and U. pivots (..., min(M, N)) I32: row i was swapped with row
 * pivots[i] (1-based, LAPACK's getrf). info (...) I32, one per matrix: 0, or k > 0 when
 * U(k, k) is exactly zero (the factorization still completes; no NaN is made). */
ALLOY_API alloy_status alloy_encode_lu_factor(alloy_cmdbuf *cb, const alloy_array *a,
                                              const alloy_array *pivots, const alloy_array *info);

typedef struct alloy_lu_solve_desc {
    int transpose; /* 0: A X = B; 1: A^T X = B */
} alloy_lu_solve_desc;
ALLOY_API alloy_lu_solve_desc alloy_lu_solve_desc_default(void);

/* Solves with the factors of alloy_encode_lu_factor, in place in B: lu (..., N, N),
 * pivots (..., N), b (..., N, NRHS), all of lu's dtype. lu and pivots broadcast. */
ALLOY_API alloy_status alloy_encode_lu_solve(alloy_cmdbuf *cb, const alloy_lu_solve_desc *d,
                                             const alloy_array *lu, const alloy_array *pivots,
                                             const alloy_array *b);

typedef enum alloy_side { ALLOY_LEFT = 0, ALLOY_RIGHT } alloy_side;
typedef enum alloy_uplo { ALLOY_UPPER = 0, ALLOY_LOWER } alloy_uplo;

typedef struct alloy_triangular_desc {
    alloy_side side;   /* LEFT: op(A) X = alpha B; RIGHT: X op(A) = alpha B */
    alloy_uplo uplo;   /* which triangle of A is read; the other is never read */
    int transpose;     /* op(A) = A^T when set */
    int unit_diagonal; /* the diagonal of A is taken as 1 and never read */
    double alpha;      /* default 1 */
} alloy_triangular_desc;
ALLOY_API alloy_triangular_desc alloy_triangular_desc_default(void);

/* Triangular solve in place in B: a (..., K, K) with K = M (LEFT) or N (RIGHT),
 * b (..., M, N), both F32 or both F64; a broadcasts. A zero on a non-unit diagonal gives
 * IEEE infinities or NaN in X, as trsm does. */
ALLOY_API alloy_status alloy_encode_triangular_solve(alloy_cmdbuf *cb,
                                                     const alloy_triangular_desc *d,
                                                     const alloy_array *a, const alloy_array *b);

typedef struct alloy_norm_desc {
    double eps; /* default 1e-5 */
    int rms;    /* 0: layer norm; 1: RMS norm (no mean is subtracted; mean must be NULL) */
} alloy_norm_desc;
ALLOY_API alloy_norm_desc alloy_norm_desc_default(void);

/* Normalizes over the last dimension D of x (..., D):
 *   layer: y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps) (biased var)
 *   rms:   y = x * rstd * gamma + beta,           rstd = 1 / sqrt(mean(x^2) + eps)
 * x and y (same shape; y may be x itself, exactly) are F32, F64, F16 or BF16; math is
 * F32 (F64 for F64 x). gamma (D) and beta (D): any float dtype, or NULL (1 and 0).
 * mean and rstd (...): F32 or F64, or NULL. */
ALLOY_API alloy_status alloy_encode_layer_norm(alloy_cmdbuf *cb, const alloy_norm_desc *d,
                                               const alloy_array *x, const alloy_array *gamma,
                                               const alloy_array *beta, const alloy_array *y,
                                               const alloy_array *mean, const alloy_array *rstd);

#ifdef __cplusplus
}
#endif

#endif /* ALLOY_H */
