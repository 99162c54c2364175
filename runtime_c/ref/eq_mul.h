/* The body of MUL for int8 and (wide) int16 elements, over broadcast strides. */
#ifndef EQ_MUL_H
#define EQ_MUL_H

#include "eq_elementwise.h"

static inline eq_status_t eq_mul(const eq_mul_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out,
                                 const int wide)
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
                    const int32_t prod = (eq_load(in0, a, wide) + p->in0_offset) * (eq_load(in1, b, wide) + p->in1_offset);
                    const int32_t scaled = p->requant == EQ_REQUANT_MULTIPLIER ? eq_mbqm(prod, p->out_mult, (int)p->out_shift)
                                                            : eq_tflite_rounding_shift(prod, p->out_shift);
                    const int32_t raw = scaled + p->output_offset;
                    eq_store(out, o++, eq_clamp(raw, p->act_min, p->act_max), wide);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_MUL_H */
