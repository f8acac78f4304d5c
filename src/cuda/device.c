/* CUDA devices: the driver, the primary context, the kernel module loaded once at open
 * (like Metal pipelines built at startup), and the lost-device state. */
#include "cuda_backend.h"

#include <stdio.h>
#include <string.h>

static const char *const float_names[ALLOY__CU_FLOATS] = {"f32", "f64", "f16", "bf16"};
static const char *const tc_layouts[4] = {"kk", "kn", "mk", "mn"};
static const char *const tc_variants[ALLOY__CU_TC_VARIANTS] = {"vec_L", "vec_S", "gen_S"};
static const char *const norm_modes[ALLOY__CU_NORM_MODES] = {"warp", "block", "big"};

/* ---------------------------------------------------------------- context and errors */

alloy_status alloy__cu_check_lost(alloy__cu_device *cu, const char *fn)
{
    int lost = atomic_load_explicit(&cu->lost, memory_order_acquire);
    if (!lost)
        return ALLOY_OK;
    return alloy__fail(ALLOY_ERR_DEVICE,
                       "%s: device lost: %s; close the device (and the process's other CUDA "
                       "work on it is broken too)",
                       fn, lost == 2 ? cu->lost_reason : "an earlier kernel failed");
}

alloy_status alloy__cu_enter(alloy__cu_device *cu, const char *fn)
{
    alloy_status s = alloy__cu_check_lost(cu, fn);
    if (s != ALLOY_OK)
        return s;
    CUresult r = cu->drv.CtxPushCurrent(cu->ctx);
    if (r != CUDA_SUCCESS)
        return alloy__cu_fail(cu, r, fn, "cuCtxPushCurrent");
    return ALLOY_OK;
}

void alloy__cu_leave(alloy__cu_device *cu)
{
    CUcontext popped;
    (void)cu->drv.CtxPopCurrent(&popped);
}

alloy_status alloy__cu_error(alloy__cu_device *cu, CUresult r, const char *what, char *buf,
                             size_t cap)
{
    char text[128];
    alloy__cu_error_text(&cu->drv, r, text, sizeof text);
    snprintf(buf, cap, "%s failed: %s", what, text);
    if (alloy__cu_error_is_sticky(r)) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&cu->lost, &expected, 1)) {
            snprintf(cu->lost_reason, sizeof cu->lost_reason, "%s", buf);
            atomic_store_explicit(&cu->lost, 2, memory_order_release);
        }
        return ALLOY_ERR_DEVICE;
    }
    if (r == CUDA_ERROR_OUT_OF_MEMORY)
        return ALLOY_ERR_OUT_OF_MEMORY;
    return ALLOY_ERR_DEVICE;
}

alloy_status alloy__cu_fail(alloy__cu_device *cu, CUresult r, const char *fn, const char *what)
{
    char buf[ALLOY__ERROR_TEXT];
    alloy_status s = alloy__cu_error(cu, r, what, buf, sizeof buf);
    return alloy__fail(s, "%s: %s%s", fn, buf,
                       s == ALLOY_ERR_DEVICE && alloy__cu_error_is_sticky(r) ? " (device lost)"
                                                                             : "");
}

/* ---------------------------------------------------------------- kernels */

static alloy_status get_kernel(alloy__cu_device *cu, CUfunction *out, const char *name)
{
    CUresult r = cu->drv.ModuleGetFunction(out, cu->module, name);
    if (r != CUDA_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "cuModuleGetFunction(%s)", name);
        return alloy__cu_fail(cu, r, "alloy_device_open", what);
    }
    return ALLOY_OK;
}

static alloy_status load_kernels(alloy__cu_device *cu)
{
    static const char fn[] = "alloy_device_open";
    char name[64];
    alloy_status s;
    CUresult r = cu->drv.ModuleLoadData(&cu->module, alloy__cu_fatbin());
    if (r != CUDA_SUCCESS)
        return alloy__cu_fail(cu, r, fn,
                              "cuModuleLoadData of alloy's kernels (sm_80/sm_89/sm_90a SASS, "
                              "compute_80 PTX)");
    for (int sd = 0; sd < ALLOY__CU_FLOATS; sd++)
        for (int dd = 0; dd < ALLOY__CU_FLOATS; dd++) {
            snprintf(name, sizeof name, "alloy_copy_1d_%s_%s", float_names[sd], float_names[dd]);
            if ((s = get_kernel(cu, &cu->copy_1d[sd][dd], name)) != ALLOY_OK)
                return s;
            snprintf(name, sizeof name, "alloy_copy_nd_%s_%s", float_names[sd], float_names[dd]);
            if ((s = get_kernel(cu, &cu->copy_nd[sd][dd], name)) != ALLOY_OK)
                return s;
        }
    if ((s = get_kernel(cu, &cu->copy_1d[ALLOY_I32][ALLOY_I32], "alloy_copy_1d_i32_i32")) !=
            ALLOY_OK ||
        (s = get_kernel(cu, &cu->copy_nd[ALLOY_I32][ALLOY_I32], "alloy_copy_nd_i32_i32")) !=
            ALLOY_OK)
        return s;
    for (int bf = 0; bf < 2; bf++)
        for (int l = 0; l < 4; l++)
            for (int v = 0; v < ALLOY__CU_TC_VARIANTS; v++) {
                snprintf(name, sizeof name, "alloy_mm_%s_%s_%s", bf ? "bf16" : "f16", tc_layouts[l],
                         tc_variants[v]);
                if ((s = get_kernel(cu, &cu->mm_tc[bf][l][v], name)) != ALLOY_OK)
                    return s;
            }
    if ((s = get_kernel(cu, &cu->mm_f32, "alloy_mm_f32")) != ALLOY_OK ||
        (s = get_kernel(cu, &cu->mm_f32_s, "alloy_mm_f32_s")) != ALLOY_OK ||
        (s = get_kernel(cu, &cu->mm_f64, "alloy_mm_f64")) != ALLOY_OK ||
        (s = get_kernel(cu, &cu->mm_tf32, "alloy_mm_tf32")) != ALLOY_OK)
        return s;
    for (int x = 0; x < ALLOY__CU_FLOATS; x++)
        for (int m = 0; m < ALLOY__CU_NORM_MODES; m++)
            for (int v = 0; v < 2; v++) {
                snprintf(name, sizeof name, "alloy_norm_%s_%s_%s", norm_modes[m], float_names[x],
                         v ? "vec" : "gen");
                if ((s = get_kernel(cu, &cu->norm[x][m][v], name)) != ALLOY_OK)
                    return s;
            }
    static const char *const fl[2] = {"f32", "f64"};
    for (int t = 0; t < 2; t++) {
        snprintf(name, sizeof name, "alloy_lu_panel_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->lu_panel[t], name)) != ALLOY_OK)
            return s;
        snprintf(name, sizeof name, "alloy_lu_warp_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->lu_warp[t], name)) != ALLOY_OK)
            return s;
        snprintf(name, sizeof name, "alloy_lu_cpanel_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->lu_cpanel[t], name)) != ALLOY_OK)
            return s;
        snprintf(name, sizeof name, "alloy_laswp_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->laswp[t], name)) != ALLOY_OK)
            return s;
        snprintf(name, sizeof name, "alloy_laswp_perm_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->laswp_perm[t], name)) != ALLOY_OK)
            return s;
        snprintf(name, sizeof name, "alloy_trsm_diag_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->trsm_diag[t], name)) != ALLOY_OK)
            return s;
        snprintf(name, sizeof name, "alloy_trsm_zero_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->trsm_zero[t], name)) != ALLOY_OK)
            return s;
        snprintf(name, sizeof name, "alloy_trsm_subst_%s", fl[t]);
        if ((s = get_kernel(cu, &cu->trsm_subst[t], name)) != ALLOY_OK)
            return s;
    }
    if ((s = get_kernel(cu, &cu->lu_info_zero, "alloy_lu_info_zero")) != ALLOY_OK ||
        (s = get_kernel(cu, &cu->pivcheck, "alloy_pivcheck")) != ALLOY_OK)
        return s;
    /* Tensor-core tiles beyond 48 KiB of shared memory must be allowed per kernel. */
    int optin = 0;
    r = cu->drv.DeviceGetAttribute(&optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                                   cu->device);
    const int large = ALLOY_CU_TC_L_SMEM;
    const int small = ALLOY_CU_TC_S_SMEM;
    cu->tc_large = r == CUDA_SUCCESS && optin >= large;
    for (int bf = 0; bf < 2; bf++)
        for (int l = 0; l < 4; l++)
            for (int v = 0; v < ALLOY__CU_TC_VARIANTS; v++) {
                int bytes = v == ALLOY__CU_TC_VEC_L ? large : small;
                if (v == ALLOY__CU_TC_VEC_L && !cu->tc_large)
                    continue;
                r = cu->drv.FuncSetAttribute(
                    cu->mm_tc[bf][l][v], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
                if (r != CUDA_SUCCESS)
                    return alloy__cu_fail(cu, r, fn, "cuFuncSetAttribute(dynamic shared memory)");
            }
    /* LU panels keep as many rows x columns in shared memory as the GPU allows, less the
     * kernels' own static shared memory (reduction scratch, pivot rows: under 3 KiB). */
    cu->lu_smem = optin > 49152 ? optin - 3072 : 48 * 1024 - 3072;
    cu->clusters = cu->cc_major >= 9;
    for (int t = 0; t < 2; t++) {
        r = cu->drv.FuncSetAttribute(cu->lu_panel[t],
                                     CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, cu->lu_smem);
        if (r == CUDA_SUCCESS)
            r = cu->drv.FuncSetAttribute(
                cu->laswp_perm[t], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, cu->lu_smem);
        if (r == CUDA_SUCCESS && cu->clusters)
            r = cu->drv.FuncSetAttribute(
                cu->lu_cpanel[t], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, cu->lu_smem);
        if (r != CUDA_SUCCESS)
            return alloy__cu_fail(cu, r, fn, "cuFuncSetAttribute(dynamic shared memory)");
    }
    return ALLOY_OK;
}

/* ---------------------------------------------------------------- open and close */

static alloy_status attr(alloy__cu_device *cu, CUdevice_attribute a, int *v, const char *what)
{
    CUresult r = cu->drv.DeviceGetAttribute(v, a, cu->device);
    return r == CUDA_SUCCESS ? ALLOY_OK : alloy__cu_fail(cu, r, "alloy_device_open", what);
}

alloy_status alloy__cu_device_open(alloy_device *dev, const alloy_device_desc *desc)
{
    static const char fn[] = "alloy_device_open";
    alloy__cu_device *cu = alloy__alloc(dev, sizeof *cu, 64);
    if (!cu)
        return alloy__fail(ALLOY_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    memset(cu, 0, sizeof *cu);
    atomic_init(&cu->lost, 0);
    cu->ordinal = desc->ordinal;
    alloy_status s = alloy__cu_driver_open(&cu->drv);
    if (s != ALLOY_OK) {
        alloy__free(dev, cu, sizeof *cu);
        return s;
    }
    int count = 0;
    CUresult r = cu->drv.DeviceGetCount(&count);
    if (r != CUDA_SUCCESS || desc->ordinal >= count) {
        s = alloy__fail(ALLOY_ERR_NO_DEVICE, "%s: no CUDA device with ordinal %d (%d found)", fn,
                        desc->ordinal, r == CUDA_SUCCESS ? count : 0);
        goto fail_driver;
    }
    if ((r = cu->drv.DeviceGet(&cu->device, desc->ordinal)) != CUDA_SUCCESS) {
        s = alloy__cu_fail(cu, r, fn, "cuDeviceGet");
        goto fail_driver;
    }
    int uva = 0;
    if ((s = attr(cu, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &cu->cc_major,
                  "cuDeviceGetAttribute(compute capability)")) != ALLOY_OK ||
        (s = attr(cu, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &cu->cc_minor,
                  "cuDeviceGetAttribute(compute capability)")) != ALLOY_OK ||
        (s = attr(cu, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &cu->sm_count,
                  "cuDeviceGetAttribute(multiprocessor count)")) != ALLOY_OK ||
        (s = attr(cu, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, &uva,
                  "cuDeviceGetAttribute(unified addressing)")) != ALLOY_OK)
        goto fail_driver;
    if (cu->cc_major < 8) {
        s = alloy__fail(ALLOY_ERR_NO_DEVICE,
                        "%s: CUDA device %d has compute capability %d.%d; alloy's kernels need "
                        "8.0 (Ampere) or newer",
                        fn, desc->ordinal, cu->cc_major, cu->cc_minor);
        goto fail_driver;
    }
    if (!uva) {
        s = alloy__fail(ALLOY_ERR_NO_DEVICE,
                        "%s: CUDA device %d lacks unified addressing, which alloy needs", fn,
                        desc->ordinal);
        goto fail_driver;
    }
    char gpu[64] = "";
    if (cu->drv.DeviceGetName(gpu, (int)sizeof gpu, cu->device) != CUDA_SUCCESS)
        snprintf(gpu, sizeof gpu, "GPU");
    if ((r = cu->drv.DevicePrimaryCtxRetain(&cu->ctx, cu->device)) != CUDA_SUCCESS) {
        s = alloy__cu_fail(cu, r, fn, "cuDevicePrimaryCtxRetain");
        goto fail_driver;
    }
    if ((s = alloy__cu_enter(cu, fn)) != ALLOY_OK)
        goto fail_ctx;
    s = load_kernels(cu);
    alloy__cu_leave(cu);
    if (s != ALLOY_OK)
        goto fail_module;
    dev->impl = cu;
    dev->workers = cu->sm_count;
    snprintf(dev->name, sizeof dev->name, "cuda:%d (%.48s, sm_%d%d, %d SMs)", desc->ordinal, gpu,
             cu->cc_major, cu->cc_minor, cu->sm_count);
    return ALLOY_OK;

fail_module:
    if (cu->module && alloy__cu_enter(cu, fn) == ALLOY_OK) {
        cu->drv.ModuleUnload(cu->module);
        alloy__cu_leave(cu);
    }
fail_ctx:
    cu->drv.DevicePrimaryCtxRelease(cu->device);
fail_driver:
    alloy__cu_driver_close(&cu->drv);
    alloy__free(dev, cu, sizeof *cu);
    return s;
}

void alloy__cu_device_close(alloy_device *dev)
{
    alloy__cu_device *cu = alloy__cu(dev);
    /* Even a lost device gets its module unloaded and its context reference dropped. */
    if (cu->drv.CtxPushCurrent(cu->ctx) == CUDA_SUCCESS) {
        cu->drv.ModuleUnload(cu->module);
        alloy__cu_leave(cu);
    }
    cu->drv.DevicePrimaryCtxRelease(cu->device);
    alloy__cu_driver_close(&cu->drv);
    alloy__free(dev, cu, sizeof *cu);
    dev->impl = NULL;
}
