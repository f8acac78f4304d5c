/* alloy_encode_matmul: checks and the normalized batched product. */
#include "encode.h"

#include <string.h>

ALLOY_API alloy_matmul_desc alloy_matmul_desc_default(void)
{
    alloy_matmul_desc d;
    memset(&d, 0, sizeof d);
    d.alpha = 1.0;
    d.beta = 0.0;
    d.allow_tf32 = 0;
    return d;
}

static alloy_status check_dtypes(const char *fn, alloy_dtype a, alloy_dtype b, alloy_dtype c)
{
    if (!alloy__is_float(a) || !alloy__is_float(b) || !alloy__is_float(c))
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: a, b and c must be float arrays (got %s, %s, %s)", fn,
                           alloy__dtype_name(a), alloy__dtype_name(b), alloy__dtype_name(c));
    if (a != b)
        return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                           "%s: a is %s but b is %s; a and b must share a dtype (convert one "
                           "with alloy_encode_copy)",
                           fn, alloy__dtype_name(a), alloy__dtype_name(b));
    if (a == ALLOY_F64 ? c != ALLOY_F64 : (c != ALLOY_F32 && c != a))
        return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                           "%s: c is %s; with %s inputs c must be %s", fn, alloy__dtype_name(c),
                           alloy__dtype_name(a),
                           a == ALLOY_F64 ? "f64" : (a == ALLOY_F32 ? "f32" : "f32 or the input dtype"));
    return ALLOY_OK;
}

static alloy_status check_matmul(const char *fn, alloy_cmdbuf *cb, const alloy_matmul_desc *d,
                                 const alloy_array *a, const alloy_array *b,
                                 const alloy_array *bias, const alloy_array *c, alloy__op *op)
{
    alloy_device *dev = cb->q->dev;
    if (!d)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: descriptor is NULL (use alloy_matmul_desc_default())", fn);
    alloy__view va, vb, vc, vbias;
    alloy_status s;
    if ((s = alloy__view_check(fn, "a", dev, a, ALLOY__INPUT, &va)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "b", dev, b, ALLOY__INPUT, &vb)) != ALLOY_OK ||
        (s = alloy__view_check(fn, "c", dev, c, ALLOY__OUTPUT, &vc)) != ALLOY_OK)
        return s;
    if (bias && (s = alloy__view_check(fn, "bias", dev, bias, ALLOY__INPUT, &vbias)) != ALLOY_OK)
        return s;
    if (va.rank < 2 || vb.rank < 2 || vc.rank < 2)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: a, b and c need rank >= 2 (got %d, %d, %d)", fn, va.rank, vb.rank,
                           vc.rank);
    if ((s = check_dtypes(fn, va.dtype, vb.dtype, vc.dtype)) != ALLOY_OK)
        return s;
    int64_t m = va.shape[va.rank - 2], k = va.shape[va.rank - 1];
    int64_t kb = vb.shape[vb.rank - 2], n = vb.shape[vb.rank - 1];
    if (k != kb)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: a is (..., %lld, %lld) and b is (..., %lld, %lld): a's last "
                           "dimension must equal b's second to last",
                           fn, (long long)m, (long long)k, (long long)kb, (long long)n);
    if (vc.shape[vc.rank - 2] != m || vc.shape[vc.rank - 1] != n)
        return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                           "%s: c is (..., %lld, %lld) but a @ b is (..., %lld, %lld)", fn,
                           (long long)vc.shape[vc.rank - 2], (long long)vc.shape[vc.rank - 1],
                           (long long)m, (long long)n);
    if (bias) {
        if (vbias.rank != 1 || vbias.shape[0] != n)
            return alloy__fail(ALLOY_ERR_INVALID_ARGUMENT,
                               "%s: bias must have shape (%lld), the columns of c", fn,
                               (long long)n);
        if (!alloy__is_float(vbias.dtype) || (vbias.dtype == ALLOY_F64 && vc.dtype != ALLOY_F64))
            return alloy__fail(ALLOY_ERR_UNSUPPORTED,
                               "%s: bias is %s; it must be a float dtype, f64 only with f64 c",
                               fn, alloy__dtype_name(vbias.dtype));
    }
    memset(op, 0, sizeof *op);
    op->kind = ALLOY__OP_MATMUL;
    alloy__matmul_op *mm = &op->u.matmul;
    const alloy__view *views[3] = {&va, &vb, &vc};
    static const char *const names[3] = {"a", "b", "c"};
    static const int core[3] = {2, 2, 2};
    static const int exact[3] = {0, 0, 1};
    if ((s = alloy__batch_build(fn, &mm->batch, 3, views, names, core, exact, 2)) != ALLOY_OK)
        return s;
    if ((s = alloy__check_disjoint(fn, "c", &vc, "a", &va)) != ALLOY_OK ||
        (s = alloy__check_disjoint(fn, "c", &vc, "b", &vb)) != ALLOY_OK)
        return s;
    if (bias && (s = alloy__check_disjoint(fn, "c", &vc, "bias", &vbias)) != ALLOY_OK)
        return s;
    mm->m = m;
    mm->n = n;
    mm->k = k;
    mm->a = alloy__view_matrix(&va);
    mm->b = alloy__view_matrix(&vb);
    mm->c = alloy__view_matrix(&vc);
    if (bias) {
        mm->bias.addr = vbias.addr;
        mm->bias.dtype = vbias.dtype;
        mm->bias.stride = vbias.strides[0];
    }
    mm->alpha = d->alpha;
    mm->beta = d->beta;
    mm->allow_tf32 = d->allow_tf32 != 0;
    return ALLOY_OK;
}

ALLOY_API alloy_status alloy_encode_matmul(alloy_cmdbuf *cb, const alloy_matmul_desc *d,
                                           const alloy_array *a, const alloy_array *b,
                                           const alloy_array *bias, const alloy_array *c)
{
    static const char fn[] = "alloy_encode_matmul";
    alloy_status s = alloy__encode_begin(fn, cb);
    if (s != ALLOY_OK)
        return s;
    alloy__op op;
    s = check_matmul(fn, cb, d, a, b, bias, c, &op);
    if (s == ALLOY_OK) {
        alloy_buffer *bufs[4] = {a->buffer, b->buffer, c->buffer, bias ? bias->buffer : NULL};
        s = alloy__encode_record(fn, cb, &op, bufs, 4);
    }
    alloy__encode_end(cb);
    return s;
}
