/* Column blocks for the solve phase of trsm and lu_solve: the right-hand sides of every
 * batch entry cut into blocks of fixed width (fixed by shape), one task each. */
#ifndef ALLOY_CPU_SOLVE_PLAN_H
#define ALLOY_CPU_SOLVE_PLAN_H

#include <stdint.h>

typedef struct alloy__col_blocks {
    int64_t width, per_entry;
} alloy__col_blocks;

/* Blocks of at most 256 columns, narrowed (not below 32) until the batch has 64 tasks. */
static inline alloy__col_blocks alloy__col_blocks_plan(int64_t n, int64_t entries)
{
    alloy__col_blocks c;
    c.width = n < 256 ? (n > 0 ? n : 1) : 256;
    while (c.width > 32 && entries * ((n + c.width - 1) / c.width) < 64)
        c.width = (c.width + 1) / 2;
    c.per_entry = n > 0 ? (n + c.width - 1) / c.width : 0;
    return c;
}

#endif
