/* Column blocks for the solve phase of trsm and lu_solve: the right-hand sides of every
 * batch entry cut into blocks of one width, one task each. */
#ifndef ALLOY_CPU_SOLVE_PLAN_H
#define ALLOY_CPU_SOLVE_PLAN_H

#include <stdint.h>

typedef struct alloy__col_blocks {
    int64_t width, per_entry;
} alloy__col_blocks;

/* Blocks of at most 512 columns, narrowed (not below 32) until there are 4 tasks per
 * worker. The width changes no bits (each column's chains are its own); a narrow block
 * repacks all of A for its few columns, so one worker takes the widest. */
static inline alloy__col_blocks alloy__col_blocks_plan(int64_t n, int64_t entries, int workers)
{
    const int64_t want = 4 * (int64_t)(workers > 0 ? workers : 1);
    alloy__col_blocks c;
    c.width = n < 512 ? (n > 0 ? n : 1) : 512;
    while (workers > 1 && c.width > 32 && entries * ((n + c.width - 1) / c.width) < want)
        c.width = (c.width + 1) / 2;
    c.per_entry = n > 0 ? (n + c.width - 1) / c.width : 0;
    return c;
}

#endif
