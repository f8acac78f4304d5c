/* Status codes, the calling thread's last error, the version. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

/* The one thread-local of the library (the threading contract allows exactly this). */
static _Thread_local char last_error[ALLOY__ERROR_TEXT];

ALLOY_API const char *alloy_status_string(alloy_status s)
{
    switch (s) {
    case ALLOY_OK: return "ok";
    case ALLOY_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ALLOY_ERR_UNSUPPORTED: return "unsupported";
    case ALLOY_ERR_OUT_OF_MEMORY: return "out of memory";
    case ALLOY_ERR_BUSY: return "busy: another thread is encoding into this command buffer";
    case ALLOY_ERR_STATE: return "wrong state for this call";
    case ALLOY_ERR_DEVICE: return "device error (device lost)";
    case ALLOY_ERR_NO_DEVICE: return "no such device";
    }
    return "unknown status";
}

ALLOY_API const char *alloy_last_error(void) { return last_error; }

ALLOY_API const char *alloy_version(void)
{
#define ALLOY_STR2(x) #x
#define ALLOY_STR(x) ALLOY_STR2(x)
    return ALLOY_STR(ALLOY_VERSION_MAJOR) "." ALLOY_STR(ALLOY_VERSION_MINOR) "." ALLOY_STR(
        ALLOY_VERSION_PATCH);
}

ALLOY_API size_t alloy_dtype_size(alloy_dtype t)
{
    switch (t) {
    case ALLOY_F32: return 4;
    case ALLOY_F64: return 8;
    case ALLOY_F16:
    case ALLOY_BF16: return 2;
    case ALLOY_I32: return 4;
    }
    return 0;
}

alloy_status alloy__fail(alloy_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* ap is started above; clang 14's checker misreads x86-64's array-typed va_list. */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

void alloy__format(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): as in alloy__fail
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

const char *alloy__op_name(alloy__op_kind k)
{
    switch (k) {
    case ALLOY__OP_COPY: return "copy";
    case ALLOY__OP_MATMUL: return "matmul";
    case ALLOY__OP_LU_FACTOR: return "lu_factor";
    case ALLOY__OP_LU_SOLVE: return "lu_solve";
    case ALLOY__OP_TRIANGULAR_SOLVE: return "triangular_solve";
    case ALLOY__OP_LAYER_NORM: return "layer_norm";
    case ALLOY__OP_KIND_COUNT: break;
    }
    return "unknown";
}
