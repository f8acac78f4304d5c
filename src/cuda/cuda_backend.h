/* The CUDA backend's private state and the helpers its files share.
 *
 * Every driver call runs inside alloy__cu_enter / alloy__cu_leave, which push the device's
 * primary context and pop it again, so the caller's current context (PyTorch's, say) is
 * the same after every alloy call as before it. */
#ifndef ALLOY_CUDA_BACKEND_H
#define ALLOY_CUDA_BACKEND_H

#include "../core/internal.h"
#include "driver.h"
#include "kernels/params.h"

#include <pthread.h>
#include <stdatomic.h>

enum { ALLOY__CU_FLOATS = 4 }; /* f32, f64, f16, bf16: alloy_dtype 0..3 */
enum { ALLOY__CU_TC_VEC_L, ALLOY__CU_TC_VEC_S, ALLOY__CU_TC_GEN_S, ALLOY__CU_TC_VARIANTS };
enum { ALLOY__CU_NORM_MODES = 3 }; /* warp, block, big (kernels/norm.cuh) */

typedef struct alloy__cu_device {
    alloy__cu_driver drv;
    CUdevice device;
    CUcontext ctx; /* the primary context, retained while the device is open */
    CUmodule module;
    int ordinal, sm_count, cc_major, cc_minor;
    int tc_large; /* the 128 x 256 tensor-core tiles fit this GPU's shared memory */
    /* 0: usable; 1: lost, reason being written; 2: lost, reason readable. */
    _Atomic int lost;
    char lost_reason[ALLOY__ERROR_TEXT];

    /* Kernels, looked up once at open (cuModuleGetFunction). NULL: no such pairing. */
    CUfunction copy_1d[5][5], copy_nd[5][5];       /* [src dtype][dst dtype] */
    CUfunction mm_tc[2][4][ALLOY__CU_TC_VARIANTS]; /* [bf16][A k/m * 2 + B k/n][variant] */
    CUfunction mm_f32, mm_f32_s, mm_f64, mm_tf32;  /* mm_f32_s: 64 x 64 tiles */
    CUfunction norm[ALLOY__CU_FLOATS][ALLOY__CU_NORM_MODES][2]; /* [x dtype][mode][vec] */
    /* Linear algebra, [0] f32 and [1] f64. */
    CUfunction lu_panel[2], laswp[2], trsm_diag[2], trsm_zero[2], lu_info_zero, pivcheck;
    CUfunction laswp_perm[2]; /* lu_solve's interchanges through shared memory (lu_smem) */
    CUfunction trsm_subst[2]; /* a narrow B's sub-triangle by substitution in one launch */
    CUfunction lu_cpanel[2];  /* cluster panels: used on sm_90 and newer only */
    CUfunction lu_warp[2];    /* a warp per matrix of at most 32 x 32 */
    int lu_smem;              /* dynamic shared memory a panel kernel may use (the opt-in limit) */
    int clusters;             /* thread-block clusters (sm_90+) */
} alloy__cu_device;

/* Cached completion events of a queue: made only when none is free (steady state: none). */
#define ALLOY__CU_EVENT_CACHE 64
#define ALLOY__CU_REPORT_SLOTS 512 /* one 4 KiB page of int64 */

typedef struct alloy__cu_queue {
    CUstream stream; /* non-blocking: never waits on the legacy default stream */
    /* A device int32 lu_solve sets when its pivots are bad, so the op's later kernels do
     * nothing; made at the first commit that needs it, used in stream order. */
    CUdeviceptr guard;
    /* lu_solve's reports: a pinned, device-mapped page of slots, one per command buffer
     * in flight that holds an lu_solve (made at the first; taken at commit, given back at
     * completion under events_lock), so steady state allocates no pinned memory. */
    int64_t *slots;
    CUdeviceptr slots_dev;
    int nfree_slots;
    uint16_t free_slots[ALLOY__CU_REPORT_SLOTS];
    /* Held from prepare (launches) to start (the command buffer is in the queue's list),
     * so launches on the stream and the list are in the same order under concurrent
     * commits. */
    pthread_mutex_t submit;
    pthread_mutex_t events_lock;
    int nfree;
    CUevent free_events[ALLOY__CU_EVENT_CACHE];
} alloy__cu_queue;

typedef struct alloy__cu_cmdbuf {
    CUevent event; /* recorded after the command buffer's last launch; NULL: none */
    int retiring;  /* a thread has taken it to finish (under the queue lock) */
    /* Pinned, device-mapped: (op << 40 | batch entry) of the first lu_solve with bad pivots,
     * INT64_MAX when none; only for command buffers holding an lu_solve: the queue's slot
     * `slot`, or (slot -1, every slot in flight) its own allocation. */
    int64_t *report;
    CUdeviceptr report_dev;
    int slot;
} alloy__cu_cmdbuf;

/* What an op's launches need beyond the op: lu_solve's guard word and report, the op's
 * index; `guard` is 0 for the ops before the command buffer's first lu_solve (nothing can
 * have failed yet), the queue's guard word from it on. */
typedef struct alloy__cu_run {
    CUdeviceptr guard, report;
    size_t index;
} alloy__cu_run;

#define ALLOY__CU_REPORT_SHIFT 40

static inline alloy__cu_device *alloy__cu(const alloy_device *dev)
{
    return (alloy__cu_device *)dev->impl;
}

/* Fails with ALLOY_ERR_DEVICE once the device is lost; else pushes the primary context. */
alloy_status alloy__cu_enter(alloy__cu_device *cu, const char *fn);
void alloy__cu_leave(alloy__cu_device *cu);
/* ALLOY_OK, or the lost device's status and text, without touching the driver. */
alloy_status alloy__cu_check_lost(alloy__cu_device *cu, const char *fn);

/* Turns a failed driver call into a status: OUT_OF_MEMORY for allocation failures,
 * DEVICE otherwise, and marks the device lost for sticky errors. Writes "what: error"
 * into buf. */
alloy_status alloy__cu_error(alloy__cu_device *cu, CUresult r, const char *what, char *buf,
                             size_t cap);
/* The same, as the calling thread's last error (alloy__fail) prefixed with fn. */
alloy_status alloy__cu_fail(alloy__cu_device *cu, CUresult r, const char *fn, const char *what);

/* Per-op planning and launching (launch_*.c). check: encode time, may refuse with
 * ALLOY_ERR_UNSUPPORTED. launch: on the queue's stream inside enter/leave; on failure
 * writes the reason into err. */
alloy_status alloy__cu_check_copy(alloy__cu_device *cu, const alloy__op *op);
alloy_status alloy__cu_launch_copy(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                   uint64_t guard, char *err, size_t cap);
alloy_status alloy__cu_check_matmul(alloy__cu_device *cu, const alloy__op *op);
alloy_status alloy__cu_launch_matmul(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                     uint64_t guard, char *err, size_t cap);
alloy_status alloy__cu_check_norm(alloy__cu_device *cu, const alloy__op *op);
alloy_status alloy__cu_launch_norm(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                   uint64_t guard, char *err, size_t cap);

/* Linear algebra (launch_lu.c, launch_lu_solve.c, launch_trsm.c). */
alloy_status alloy__cu_check_linalg(alloy__cu_device *cu, const alloy__op *op);
alloy_status alloy__cu_launch_lu_factor(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                        uint64_t guard, char *err, size_t cap);
alloy_status alloy__cu_launch_lu_solve(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                       const alloy__cu_run *run, char *err, size_t cap);
alloy_status alloy__cu_launch_trsm(alloy__cu_device *cu, CUstream s, const alloy__op *op,
                                   uint64_t guard, char *err, size_t cap);

/* matmul of a record the solvers build themselves; guard as in alloy_cu_matmul_params. */
alloy_status alloy__cu_launch_mm(alloy__cu_device *cu, CUstream s, const alloy__matmul_op *mm,
                                 uint64_t guard, char *err, size_t cap);

/* The solvers' shared pieces (launch_trsm.c). A strided matrix: element (i, j) at
 * addr + (i * rs + j * cs) * element size; strides may be negative (reversed views). */
typedef struct alloy__cu_view {
    uint64_t addr;
    int64_t rs, cs;
} alloy__cu_view;

/* One solver op's launch context: its batch and which of its operands are the triangle
 * (ta) and the right-hand sides (tb). */
typedef struct alloy__cu_solve {
    alloy__cu_device *cu;
    CUstream s;
    int f64;
    const alloy__batch *batch;
    int ta, tb;
    uint64_t guard;
    char *err;
    size_t cap;
} alloy__cu_solve;

/* L X = alpha B in place in B: L rows x rows lower (unit: diagonal taken as 1), B rows x
 * ncols. */
alloy_status alloy__cu_trsm_lower(const alloy__cu_solve *x, alloy__cu_view l, alloy__cu_view b,
                                  int64_t rows, int64_t ncols, int unit, double alpha);
/* C = beta * C - A B with A m x k (operand ta), B k x n and C m x n (operand tb). */
alloy_status alloy__cu_gemm_minus(const alloy__cu_solve *x, alloy__cu_view a, alloy__cu_view b,
                                  alloy__cu_view c, int64_t m, int64_t n, int64_t k, double beta);
/* Row interchanges (the laswp kernels) of matrix a by its pivots: row k, for k in [k0, k1)
 * (descending when reverse), swapped with row pivots[k] - 1 on columns [c0, c1) except
 * [skip0, skip1). batch: strides[0] are a's, strides[1] the pivots'. closed: every pivot
 * is in k0 + 1..k1 (checked), so only rows k0..k1 - 1 move: with k0 = 0 and no skip they
 * are composed into one permutation in shared memory when they fit. The LU's and the LU
 * solve's (launch_lu.c). */
typedef struct alloy__cu_swaps {
    alloy__mat a;
    alloy__vec pivots;
    alloy__batch batch;
    uint64_t guard;
    int64_t c0, c1, skip0, skip1, k0, k1;
    int reverse;
    int closed;
} alloy__cu_swaps;
alloy_status alloy__cu_laswp(alloy__cu_device *cu, CUstream s, int f64, const alloy__cu_swaps *sw,
                             char *err, size_t cap);

/* The grid's y extent for a batch of `count`. */
unsigned alloy__cu_grid_y(int64_t count);

/* cuLaunchKernel of a kernel taking one parameter block by value. */
alloy_status alloy__cu_launch(alloy__cu_device *cu, CUstream s, CUfunction f, uint64_t gx,
                              uint64_t gy, unsigned block, unsigned smem, void *params, char *err,
                              size_t cap);

/* Copies the core's batch record into a kernel's parameter block. */
void alloy__cu_batch(alloy_cu_batch *dst, const alloy__batch *src);

/* Device open/close and memory (device.c, buffer.c), queues (queue.c). */
alloy_status alloy__cu_device_open(alloy_device *dev, const alloy_device_desc *desc);
void alloy__cu_device_close(alloy_device *dev);
alloy_status alloy__cu_buffer_create(alloy_device *dev, alloy_buffer *b, size_t bytes,
                                     alloy_memory where);
alloy_status alloy__cu_buffer_wrap_host(alloy_device *dev, alloy_buffer *b, void *ptr,
                                        size_t bytes);
alloy_status alloy__cu_buffer_wrap_device(alloy_device *dev, alloy_buffer *b, uint64_t ptr,
                                          size_t bytes);
void alloy__cu_buffer_destroy(alloy_device *dev, alloy_buffer *b);
alloy_status alloy__cu_buffer_write(alloy_buffer *b, size_t offset, const void *src, size_t bytes);
alloy_status alloy__cu_buffer_read(alloy_buffer *b, size_t offset, void *dst, size_t bytes);
alloy_status alloy__cu_queue_init(alloy_queue *q);
void alloy__cu_queue_fini(alloy_queue *q);
alloy_status alloy__cu_cmdbuf_init(alloy_cmdbuf *cb);
void alloy__cu_cmdbuf_fini(alloy_cmdbuf *cb);
alloy_status alloy__cu_prepare(alloy_cmdbuf *cb);
void alloy__cu_start(alloy_cmdbuf *cb);
int alloy__cu_help(alloy_queue *q, alloy_cmdbuf *target);
void alloy__cu_progress(alloy_queue *q);

/* The embedded fatbin (fatbin.c). */
const void *alloy__cu_fatbin(void);

#endif
