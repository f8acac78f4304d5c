/* The GEMM driver: packing and the loops around the microkernel, for one task tile.
 * f32 and f64 share the code through gemm_tile.inc. */
#include "gemm.h"

#include "../convert.h"

#include <string.h>

static const alloy__gemm_blocking *blocking(const alloy__cpu_kernels *kt, int f64)
{
    return f64 ? &kt->f64 : &kt->f32;
}

static size_t round64(size_t x) { return (x + 63) & ~(size_t)63; }

void alloy__gemm_max_tile(const alloy__cpu_kernels *kt, int f64, int64_t *mt, int64_t *nt)
{
    *mt = blocking(kt, f64)->mt;
    *nt = blocking(kt, f64)->nc;
}

size_t alloy__gemm_scratch(const alloy__cpu_kernels *kt, int f64)
{
    const alloy__gemm_blocking *bk = blocking(kt, f64);
    size_t es = f64 ? 8 : 4;
    size_t tile = round64((size_t)bk->mc * (size_t)bk->kc * es) +
                  round64((size_t)bk->kc * (size_t)bk->nc * es) +
                  round64((size_t)bk->mc * (size_t)bk->nc * es);
    size_t skinny = (4 * ALLOY__SKINNY_KB + 4 * ALLOY__SKINNY_COLS) * es;
    return tile > skinny ? tile : skinny;
}

/* B spanning at most this many bytes is read in place (see alloy__gemm_b_direct). */
#define DIRECT_B_MAX (INT64_C(256) << 10)

int alloy__gemm_b_direct(const alloy__cpu_kernels *kt, int f64, const alloy__mat *b, int64_t k)
{
    /* Small, one K block deep: packing it (and copying the edge tiles) costs more than the
     * products save (100^3: -13% time). Not for deeper ones (1024 x 16 x 1024: +14%, the
     * packed path prefetches the next K block), nor rows a multiple of 4 KB apart (they
     * would share a few L1 sets). */
    const int64_t es = f64 ? 8 : 4;
    const int has = f64 ? kt->ukr_direct_f64 != NULL : kt->ukr_direct_f32 != NULL;
    return has && b->dtype == (f64 ? ALLOY_F64 : ALLOY_F32) && b->cs == 1 &&
           k <= blocking(kt, f64)->kc && k * b->rs * es <= DIRECT_B_MAX && (b->rs * es) % 4096 != 0;
}

int alloy__gemm_a_in_place(int f64, const alloy__mat *a)
{
    return a->dtype == (f64 ? ALLOY_F64 : ALLOY_F32) && a->cs == 1;
}

int alloy__gemm_thin(const alloy__cpu_kernels *kt, int f64, const alloy__gemm_args *g, int64_t nt)
{
    const int has = f64 ? kt->thin_f64 != NULL : kt->thin_f32 != NULL;
    return has && nt >= 1 && nt <= blocking(kt, f64)->thin && g->alpha != 0.0 && g->k > 0 &&
           alloy__gemm_a_in_place(f64, &g->a) && g->b.dtype == (f64 ? ALLOY_F64 : ALLOY_F32);
}

int alloy__gemm_panel(const alloy__cpu_kernels *kt, int f64, const alloy__gemm_args *g)
{
    const alloy_dtype t = f64 ? ALLOY_F64 : ALLOY_F32;
    const int has = f64 ? kt->ukr_panel_f64 != NULL : kt->ukr_panel_f32 != NULL;
    return has && blocking(kt, f64)->pw > 0 && g->k > 0 && g->alpha == 1.0 && g->beta == 0.0 &&
           !g->bias.addr && g->c.dtype == t && g->c.cs == 1 && alloy__gemm_a_in_place(f64, &g->a) &&
           g->n >= ALLOY__GEMM_PANEL_MIN_COLS;
}

int alloy__gemm_skinny_ok(const alloy__gemm_args *g, int f64)
{
    return g->m >= 1 && g->m <= 4 && g->alpha != 0.0 && g->k > 0 && g->b.cs == 1 &&
           g->b.dtype == (f64 ? ALLOY_F64 : ALLOY_F32);
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

size_t alloy__gemm_packed_size(const alloy__cpu_kernels *kt, int f64, int64_t k, int64_t n)
{
    return (size_t)k * (size_t)round_up(n, blocking(kt, f64)->nr) * (f64 ? 8u : 4u);
}

size_t alloy__gemm_packed_a_size(const alloy__cpu_kernels *kt, int f64, int64_t m, int64_t k)
{
    const alloy__gemm_blocking *bk = blocking(kt, f64);
    return (size_t)ceil_div(k, bk->kc) * (size_t)bk->kc * (size_t)round_up(m, bk->mr) *
           (f64 ? 8u : 4u);
}

alloy__gemm_tiling alloy__gemm_plan(const alloy__cpu_kernels *kt, int f64, int64_t m, int64_t n,
                                    int64_t want, int panel)
{
    const alloy__gemm_blocking *bk = blocking(kt, f64);
    const int64_t nc = panel && bk->pw > bk->nc ? bk->pw : bk->nc;
    alloy__gemm_tiling t;
    t.mt = m < bk->mt ? round_up(m > 0 ? m : 1, bk->mr) : bk->mt;
    t.nt = n < nc ? round_up(n > 0 ? n : 1, bk->nr) : nc;
    /* Narrow the tiles until there are enough: first the height above MC (rows swept
     * under one B block), then the columns, then the rest of the height: below MC a
     * tile's height is how many times each B sliver is reused from L1, so it is the last
     * thing to give up. */
    for (;;) {
        int64_t tiles = ceil_div(m, t.mt) * ceil_div(n, t.nt);
        if (tiles >= want)
            break;
        const int narrow = t.mt <= bk->mc && t.nt > 4 * bk->nr;
        if (narrow)
            t.nt = round_up(t.nt / 2, bk->nr);
        else if (t.mt > bk->mc || t.mt > 2 * bk->mr)
            t.mt = round_up(t.mt / 2, bk->mr);
        else
            break;
    }
    t.tiles_m = m > 0 ? ceil_div(m, t.mt) : 0;
    t.tiles_n = n > 0 ? ceil_div(n, t.nt) : 0;
    return t;
}

#define T float
#define SUFFIX f32
#define IS_F64 0
#include "gemm_tile.inc"
#undef T
#undef SUFFIX
#undef IS_F64

#define T double
#define SUFFIX f64
#define IS_F64 1
#include "gemm_tile.inc"
#undef T
#undef SUFFIX
#undef IS_F64
