/* The floating-point environment a thread runs tasks under: the default one (round to
 * nearest, no flush to zero, exceptions masked), whatever the application thread that
 * helps in wait has set, and that thread's own environment, sticky flags included, given
 * back afterwards (the threading contract; tests/test_fp_env.c).
 *
 * fegetenv/fesetenv are slow on x86-64 (fnstenv and fldenv are microcoded): about 9% of
 * the samples of a stream of 1x1x1 products committed and waited one at a time. Tasks use
 * SSE only (no x87 arithmetic: alloy has no long double), whose whole state is MXCSR, so
 * when MXCSR and the x87 control word already hold the defaults the switch is skipped and
 * MXCSR alone is saved and restored (its flags with it). */
#ifndef ALLOY_CPU_FP_ENV_H
#define ALLOY_CPU_FP_ENV_H

#include <fenv.h>

#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>
#define ALLOY__FP_MXCSR 1
#endif

typedef struct alloy__fp_saved {
    int full; /* the whole environment was saved and the default one set */
    fenv_t env;
#ifdef ALLOY__FP_MXCSR
    unsigned mxcsr;
#endif
} alloy__fp_saved;

static inline void alloy__fp_enter_default(alloy__fp_saved *s)
{
#ifdef ALLOY__FP_MXCSR
    s->mxcsr = _mm_getcsr();
    unsigned short cw;
    __asm__ __volatile__("fnstcw %0" : "=m"(cw));
    /* MXCSR: all exceptions masked, round to nearest, no FTZ or DAZ (flags, bits 0-5,
     * aside); x87: all masked, round to nearest, extended precision */
    if ((s->mxcsr & ~0x3fu) == 0x1f80u && (cw & 0x0f3fu) == 0x033fu) {
        s->full = 0;
        return;
    }
#endif
    s->full = 1;
    fegetenv(&s->env);
    fesetenv(FE_DFL_ENV);
}

static inline void alloy__fp_restore(const alloy__fp_saved *s)
{
#ifdef ALLOY__FP_MXCSR
    if (!s->full) {
        _mm_setcsr(s->mxcsr);
        return;
    }
#endif
    fesetenv(&s->env);
}

#endif
