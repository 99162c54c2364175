/* Reference int8 MUL over broadcast strides. */
#include "eq_elementwise.h"

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
                    const int32_t scaled = p->requant == EQ_REQUANT_MULTIPLIER ? eq_mbqm(prod, p->out_mult, (int)p->out_shift)
                                                            : eq_tflite_rounding_shift(prod, p->out_shift);
                    const int32_t raw = scaled + p->output_offset;
                    out[o++] = (int8_t)eq_clamp(raw, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}
