/* Reference element-wise kernels: TFLite's int8 ADD (inputs raised by left_shift, rescaled, summed,
 * rescaled) and MUL, over broadcast strides. */
#include <string.h>

#include "eq_elementwise.h"

eq_status_t eq_add_s8(const eq_add_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    if (p == NULL || in0 == NULL || in1 == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    for (int32_t i0 = 0; i0 < p->d0; i0++) {
        for (int32_t i1 = 0; i1 < p->d1; i1++) {
            for (int32_t i2 = 0; i2 < p->d2; i2++) {
                for (int32_t i3 = 0; i3 < p->d3; i3++) {
                    const size_t a = (size_t)i0 * p->in0_s0 + (size_t)i1 * p->in0_s1 + (size_t)i2 * p->in0_s2
                                     + (size_t)i3 * p->in0_s3;
                    const size_t b = (size_t)i0 * p->in1_s0 + (size_t)i1 * p->in1_s1 + (size_t)i2 * p->in1_s2
                                     + (size_t)i3 * p->in1_s3;
                    if (p->out_mult == 0) { /* power-of-two graph: align by left shifts, one rounding shift */
                        const int64_t sum = ((int64_t)in0[a] + p->in0_offset) * (1LL << p->in0_shift)
                                            + ((int64_t)in1[b] + p->in1_offset) * (1LL << p->in1_shift);
                        out[o++] = (int8_t)eq_clamp(eq_rounding_shift(sum, p->out_shift) + p->output_offset,
                                                    p->act_min, p->act_max);
                        continue;
                    }
                    const int32_t va = eq_wrap32(((int64_t)in0[a] + p->in0_offset) * (1LL << p->left_shift));
                    const int32_t vb = eq_wrap32(((int64_t)in1[b] + p->in1_offset) * (1LL << p->left_shift));
                    const int32_t sa = eq_mbqm_smaller_than_one(va, p->in0_mult, (int)p->in0_shift);
                    const int32_t sb = eq_mbqm_smaller_than_one(vb, p->in1_mult, (int)p->in1_shift);
                    const int32_t raw = eq_mbqm_smaller_than_one(eq_wrap32((int64_t)sa + sb), p->out_mult,
                                                                 (int)p->out_shift) + p->output_offset;
                    out[o++] = (int8_t)eq_clamp(raw, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}

eq_status_t eq_mul_s8(const eq_mul_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    if (p == NULL || in0 == NULL || in1 == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    for (int32_t i0 = 0; i0 < p->d0; i0++) {
        for (int32_t i1 = 0; i1 < p->d1; i1++) {
            for (int32_t i2 = 0; i2 < p->d2; i2++) {
                for (int32_t i3 = 0; i3 < p->d3; i3++) {
                    const size_t a = (size_t)i0 * p->in0_s0 + (size_t)i1 * p->in0_s1 + (size_t)i2 * p->in0_s2
                                     + (size_t)i3 * p->in0_s3;
                    const size_t b = (size_t)i0 * p->in1_s0 + (size_t)i1 * p->in1_s1 + (size_t)i2 * p->in1_s2
                                     + (size_t)i3 * p->in1_s3;
                    const int32_t prod = ((int32_t)in0[a] + p->in0_offset) * ((int32_t)in1[b] + p->in1_offset);
                    const int32_t scaled = p->out_mult != 0 ? eq_mbqm(prod, p->out_mult, (int)p->out_shift)
                                                            : eq_tflite_rounding_shift(prod, p->out_shift);
                    const int32_t raw = scaled + p->output_offset;
                    out[o++] = (int8_t)eq_clamp(raw, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}

eq_status_t eq_pad_s8(const eq_pad_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    const size_t total = (size_t)p->out_d0 * p->out_d1 * p->out_d2 * p->out_d3;
    memset(out, (int)(int8_t)p->pad_value, total);
    for (int32_t i0 = 0; i0 < p->in_d0; i0++) {
        for (int32_t i1 = 0; i1 < p->in_d1; i1++) {
            for (int32_t i2 = 0; i2 < p->in_d2; i2++) {
                const int8_t *src = in + (((size_t)i0 * p->in_d1 + i1) * p->in_d2 + i2) * p->in_d3;
                int8_t *dst = out + ((((size_t)(i0 + p->pad_before0) * p->out_d1 + (i1 + p->pad_before1)) * p->out_d2
                                      + (i2 + p->pad_before2)) * p->out_d3 + p->pad_before3);
                memcpy(dst, src, (size_t)p->in_d3);
            }
        }
    }
    return EQ_OK;
}

eq_status_t eq_concat_s8(const eq_concat_s8_params_t *p, const int8_t *const *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t o = 0; o < p->outer; o++) {
        for (int32_t k = 0; k < p->n_inputs; k++) {
            const size_t n = (size_t)p->copy_sizes[k];
            memcpy(out, in[k] + (size_t)o * n, n);
            out += n;
        }
    }
    return EQ_OK;
}
