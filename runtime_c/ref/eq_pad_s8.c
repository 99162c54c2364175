/* Reference PAD of int8 (or 16x8 int16) tensors. */
#include <string.h>
#include "eq_elementwise.h"

eq_status_t eq_pad_s8(const eq_pad_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    const size_t elem = (size_t)p->elem_bytes;
    const size_t total = (size_t)p->out_d0 * p->out_d1 * p->out_d2 * p->out_d3 * elem;
    memset(out, (int)(int8_t)p->pad_value, total);
    for (int32_t i0 = 0; i0 < p->in_d0; i0++) {
        for (int32_t i1 = 0; i1 < p->in_d1; i1++) {
            for (int32_t i2 = 0; i2 < p->in_d2; i2++) {
                const int8_t *src = in + (((size_t)i0 * p->in_d1 + i1) * p->in_d2 + i2) * p->in_d3 * elem;
                int8_t *dst = out + ((((size_t)(i0 + p->pad_before0) * p->out_d1 + (i1 + p->pad_before1)) * p->out_d2
                                      + (i2 + p->pad_before2)) * p->out_d3 + p->pad_before3) * elem;
                memcpy(dst, src, (size_t)p->in_d3 * elem);
            }
        }
    }
    return EQ_OK;
}
