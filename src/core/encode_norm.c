/* alloy_encode_layer_norm: checks and the normalized row-wise record. */
#include "encode.h"

#include <math.h>
#include <string.h>

ALLOY_API alloy_norm_desc alloy_norm_desc_default(void)
{
    alloy_norm_desc d;
    memset(&d, 0, sizeof d);
    d.eps = 1e-5;
    d.rms = 0;
    return d;
}

static alloy_status check_param(const char *fn, const char *name, const alloy_device *dev,
                                const alloy_array *a, int64_t d, alloy__view *v)
{
    alloy_status s = alloy__view_check(fn, name, dev, a, ALLOY__INPUT, v);
    if (s != ALLOY_OK)
        return s;
    if (v->rank != 1 || v->shape[0] != d)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: %s must have shape (%lld), the last dimension of x", fn, name,
                           (long long)d);
    if (!alloy__is_float(v->dtype))
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: %s must be a float array, not %s", fn,
                           name, alloy__dtype_name(v->dtype));
    return ALLOY_OK;
}

static alloy_status check_stat(const char *fn, const char *name, const alloy_device *dev,
                               const alloy_array *a, const alloy__view *x, alloy__view *v)
{
    alloy_status s = alloy__view_check(fn, name, dev, a, ALLOY__OUTPUT, v);
    if (s != ALLOY_OK)
        return s;
    if (v->dtype != ALLOY_F32 && v->dtype != ALLOY_F64)
        return alloy__fail(ALLOY_ERR_UNSUPPORTED, "%s: %s must be f32 or f64, not %s", fn, name,
                           alloy__dtype_name(v->dtype));
    if (v->rank != x->rank - 1)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: %s must have x's shape without its last dimension (rank %d, not "
                           "%d)",
                           fn, name, x->rank - 1, v->rank);
    for (int i = 0; i < v->rank; i++)
        if (v->shape[i] != x->shape[i])
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: %s.shape[%d] is %lld but x.shape[%d] is %lld", fn, name, i,
                               (long long)v->shape[i], i, (long long)x->shape[i]);
    return ALLOY_OK;
}

static alloy_status check_norm(const char *fn, alloy_cmdbuf *cb, const alloy_norm_desc *d,
                               const alloy_array *x, const alloy_array *gamma,
                               const alloy_array *beta, const alloy_array *y,
                               const alloy_array *mean, const alloy_array *rstd, alloy__op *op)
{
    alloy_device *dev = cb->q->dev;
    if (!d)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: descriptor is NULL (use alloy_norm_desc_default())", fn);
    if (!(d->eps >= 0.0) || isinf(d->eps))
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: eps must be finite and >= 0 (got %g)",
                           fn, d->eps);
    if (d->rms && mean)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: RMS norm subtracts no mean: pass mean = NULL", fn);
    alloy__view vx, vy, vg, vb, vm, vr;
    alloy_status s;
    if ((s = alloy__view_check(fn, "x", dev, x, ALLOY__INPUT, &vx)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "y", dev, y, ALLOY__OUTPUT, &vy)) != ALLOY_OK)
        return s;
    if (vx.rank < 1)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: x needs rank >= 1", fn);
    if (!alloy__is_float(vx.dtype) || !alloy__is_float(vy.dtype))
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: x and y must be float arrays", fn);
    if (vy.rank != vx.rank)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT, "%s: y must have x's shape", fn);
    for (int i = 0; i < vx.rank; i++)
        if (vy.shape[i] != vx.shape[i])
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: y.shape[%d] is %lld but x.shape[%d] is %lld", fn, i,
                               (long long)vy.shape[i], i, (long long)vx.shape[i]);
    int64_t dim = vx.shape[vx.rank - 1];
    if (gamma && (s = check_param(fn, "gamma", dev, gamma, dim, &vg)) != ALLOY_OK)
        return s;
    if (beta && (s = check_param(fn, "beta", dev, beta, dim, &vb)) != ALLOY_OK)
        return s;
    if (mean && (s = check_stat(fn, "mean", dev, mean, &vx, &vm)) != ALLOY_OK)
        return s;
    if (rstd && (s = check_stat(fn, "rstd", dev, rstd, &vx, &vr)) != ALLOY_OK)
        return s;
    /* y may be x exactly (in place); otherwise every output is disjoint from all else. */
    if (!alloy__view_same(&vy, &vx) && (s = alloy__check_disjoint(fn, "y", &vy, "x", &vx)))
        return s;
    if (gamma && (s = alloy__check_disjoint(fn, "y", &vy, "gamma", &vg)))
        return s;
    if (beta && (s = alloy__check_disjoint(fn, "y", &vy, "beta", &vb)))
        return s;
    const alloy__view *others[4] = {&vx, &vy, gamma ? &vg : NULL, beta ? &vb : NULL};
    static const char *const other_names[4] = {"x", "y", "gamma", "beta"};
    const alloy__view *stats[2] = {mean ? &vm : NULL, rstd ? &vr : NULL};
    static const char *const stat_names[2] = {"mean", "rstd"};
    for (int i = 0; i < 2; i++) {
        if (!stats[i])
            continue;
        for (int j = 0; j < 4; j++)
            if (others[j] &&
                (s = alloy__check_disjoint(fn, stat_names[i], stats[i], other_names[j], others[j])))
                return s;
    }
    if (mean && rstd && (s = alloy__check_disjoint(fn, "mean", &vm, "rstd", &vr)))
        return s;

    memset(op, 0, sizeof *op);
    op->kind = ALLOY__OP_LAYER_NORM;
    alloy__norm_op *n = &op->u.norm;
    const alloy__view *views[4] = {&vx, &vy, mean ? &vm : NULL, rstd ? &vr : NULL};
    static const char *const names[4] = {"x", "y", "mean", "rstd"};
    static const int core[4] = {1, 1, 0, 0};
    static const int exact[4] = {1, 1, 1, 1};
    if ((s = alloy__batch_build(fn, &n->batch, 4, views, names, core, exact, 1)) != ALLOY_OK)
        return s;
    n->d = dim;
    n->x = alloy__view_vector(&vx);
    n->y = alloy__view_vector(&vy);
    if (gamma)
        n->gamma = alloy__view_vector(&vg);
    if (beta)
        n->beta = alloy__view_vector(&vb);
    if (mean) {
        n->mean = vm.addr;
        n->mean_dtype = vm.dtype;
    }
    if (rstd) {
        n->rstd = vr.addr;
        n->rstd_dtype = vr.dtype;
    }
    n->eps = d->eps;
    n->rms = d->rms != 0;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_encode_layer_norm(alloy_cmdbuf *cb, const alloy_norm_desc *d,
                                               const alloy_array *x, const alloy_array *gamma,
                                               const alloy_array *beta, const alloy_array *y,
                                               const alloy_array *mean, const alloy_array *rstd)
{
    static const char fn[] = "alloy_encode_layer_norm";
    alloy_status s = alloy__encode_begin(fn, cb);
    if (s != ALLOY_OK)
        return s;
    alloy__op op;
    s = check_norm(fn, cb, d, x, gamma, beta, y, mean, rstd, &op);
    if (s == ALLOY_OK) {
        alloy_buffer *bufs[6] = {x->buffer,
                                 y->buffer,
                                 gamma ? gamma->buffer : NULL,
                                 beta ? beta->buffer : NULL,
                                 mean ? mean->buffer : NULL,
                                 rstd ? rstd->buffer : NULL};
        s = alloy__encode_record(fn, cb, &op, bufs, 6);
    }
    alloy__encode_end(cb);
    return s;
}
