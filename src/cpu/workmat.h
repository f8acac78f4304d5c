/* The matrix a blocked solver updates (B of a solve, A of a factorization): in place
 * when the caller's layout is row-major in the compute type, otherwise a row-major copy
 * in an op workspace, filled by a copy-in phase and written back by a copy-out phase.
 * All batch entries share one plan; entry b of the op's batch finds its matrix through
 * batch operand `operand`. */
#ifndef ALLOY_CPU_WORKMAT_H
#define ALLOY_CPU_WORKMAT_H

#include "cpu.h"

typedef struct alloy__workmat {
    alloy__mat user;     /* the caller's matrix (entry 0); its dtype is the compute type */
    const alloy__batch *batch;
    int operand;
    int64_t m, n;
    size_t esize;
    void *work; /* NULL: in place; else the queue's workspace */
    int64_t ldw;
    int64_t rows_per_task; /* copy phases */
    uint64_t copy_tasks;
    double scale; /* applied on copy in (triangular solve's alpha); 1 otherwise */
} alloy__workmat;

/* Plans at encode time; `scale` is multiplied in by copy-in (in place: by the caller). */
void alloy__workmat_plan(alloy__workmat *w, const alloy__mat *user, const alloy__batch *batch,
                         int operand, int64_t m, int64_t n, double scale);
/* 1 when a workspace (and so the copy phases) is needed. */
int alloy__workmat_copies(const alloy__workmat *w);
/* Run time: takes the queue's workspace if a copy is needed. */
alloy_status alloy__workmat_begin(alloy__cpu_device *cd, alloy__cpu_queue *cq, alloy__workmat *w,
                                  char *err, size_t cap);
/* Bytes of workspace the copy takes (0 in place). After begin, an op that needs more
 * workspace asks alloy__cpu_workspace for this much plus its own and, if the workspace
 * moved, points `work` at its start (nothing is written before the first phase). */
size_t alloy__workmat_bytes(const alloy__workmat *w);
/* Entry b's matrix: base pointer and leading dimension. */
void *alloy__workmat_entry(const alloy__workmat *w, int64_t b, int64_t *ld);
/* Copy phases: task t of copy_tasks (row chunks of every entry). */
void alloy__workmat_copy_in(const alloy__workmat *w, uint64_t task);
void alloy__workmat_copy_out(const alloy__workmat *w, uint64_t task);

#endif
