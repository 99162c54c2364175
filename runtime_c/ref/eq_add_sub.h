/* The body of int8 ADD, SUB and SQUARED_DIFFERENCE, which TFLite computes alike: both inputs raised by
 * left_shift and rescaled, then summed, subtracted, or subtracted and squared, then rescaled; int8 or (wide) int16
 * elements. */
#ifndef EQ_ADD_SUB_H
#define EQ_ADD_SUB_H

#include "eq_elementwise.h"

static inline eq_status_t eq_add_sub(const eq_add_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out,
                                     const int32_t sign, const int square, const int wide)
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
                    if (p->requant == EQ_REQUANT_SHIFT) { /* power-of-two graph: align by left shifts, one rounding shift */
                        const int64_t sum = ((int64_t)eq_load(in0, a, wide) + p->in0_offset) * (1LL << p->in0_shift)
                                            + sign * ((int64_t)eq_load(in1, b, wide) + p->in1_offset)
                                                  * (1LL << p->in1_shift);
                        eq_store(out, o++, eq_clamp(eq_rounding_shift(sum, p->out_shift) + p->output_offset,
                                                    p->act_min, p->act_max), wide);
                        continue;
                    }
                    const int32_t va = eq_wrap32(((int64_t)eq_load(in0, a, wide) + p->in0_offset) * (1LL << p->left_shift));
                    const int32_t vb = eq_wrap32(((int64_t)eq_load(in1, b, wide) + p->in1_offset) * (1LL << p->left_shift));
                    const int32_t sa = eq_mbqm_smaller_than_one(va, p->in0_mult, (int)p->in0_shift);
                    const int32_t sb = eq_mbqm_smaller_than_one(vb, p->in1_mult, (int)p->in1_shift);
                    int32_t acc = eq_wrap32((int64_t)sa + (int64_t)sign * sb);
                    if (square) {
                        acc = eq_wrap32((int64_t)acc * acc);
                    }
                    const int32_t raw = eq_mbqm(acc, p->out_mult, (int)p->out_shift) + p->output_offset;
                    eq_store(out, o++, eq_clamp(raw, p->act_min, p->act_max), wide);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_ADD_SUB_H */
