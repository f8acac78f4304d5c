/* Column blocks for the solve phase of trsm and lu_solve: the right-hand sides of every
 * batch entry cut into blocks of one width, one task each. */
#ifndef ALLOY_CPU_SOLVE_PLAN_H
#define ALLOY_CPU_SOLVE_PLAN_H

#include "cpu.h"

#include <stdint.h>

typedef struct alloy__col_blocks {
    int64_t width, per_entry;
} alloy__col_blocks;

/* Blocks of at most 512 columns, narrowed (not below 32 columns, nor below half of
 * ALLOY__CPU_THREAD_FMAS multiply-adds) until there are two tasks for each worker that the
 * solve's work is worth (alloy__cpu_workers_for; col_fmas: the multiply-adds of one
 * column of one entry). The width changes no bits (each column's chains are its own); a
 * narrow block repacks all of A for its few columns and runs narrower products, so one
 * worker takes the widest, and a 256 x 256 f32 solve on 2 workers ran 20% faster in 4
 * blocks than in 8 (docs/perf-notes.md). */
static inline alloy__col_blocks alloy__col_blocks_plan(int64_t n, int64_t entries, int workers,
                                                       double col_fmas)
{
    workers = alloy__cpu_workers_for(workers, col_fmas * (double)n * (double)entries);
    const int64_t want = 2 * (int64_t)workers;
    alloy__col_blocks c;
    c.width = n < 512 ? (n > 0 ? n : 1) : 512;
    while (workers > 1 && c.width > 32 && entries * ((n + c.width - 1) / c.width) < want) {
        const int64_t half = (c.width + 1) / 2;
        if (2 * col_fmas * (double)half < (double)ALLOY__CPU_THREAD_FMAS)
            break;
        c.width = half;
    }
    c.per_entry = n > 0 ? (n + c.width - 1) / c.width : 0;
    return c;
}

#endif
