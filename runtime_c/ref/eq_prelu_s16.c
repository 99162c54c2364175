/* Reference int16 PRELU (16x8 models; TFLite's BroadcastPrelu4DSlow with an int8 alpha) over broadcast strides. */
#include "eq_elementwise.h"

eq_status_t eq_prelu_s16(const eq_prelu_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->alpha == NULL) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    for (int32_t i0 = 0; i0 < p->d0; i0++) {
        for (int32_t i1 = 0; i1 < p->d1; i1++) {
            for (int32_t i2 = 0; i2 < p->d2; i2++) {
                for (int32_t i3 = 0; i3 < p->d3; i3++) {
                    const size_t i = (size_t)i0 * p->in0_s0 + (size_t)i1 * p->in0_s1 + (size_t)i2 * p->in0_s2
                                     + (size_t)i3 * p->in0_s3;
                    const int32_t x = p->in0_offset + eq_load(in, i, 1);
                    const size_t j = (size_t)i0 * p->in1_s0 + (size_t)i1 * p->in1_s1 + (size_t)i2 * p->in1_s2
                                     + (size_t)i3 * p->in1_s3;
                    /* |x * a| <= 2^15 * 2^8: no int32 overflow */
                    const int32_t y = x >= 0 ? eq_mbqm(x, p->out_mult1, (int)p->out_shift1)
                                             : eq_mbqm(x * (p->in1_offset + p->alpha[j]), p->out_mult2,
                                                       (int)p->out_shift2);
                    eq_store(out, o++, eq_clamp(y + p->output_offset, INT16_MIN, INT16_MAX), 1);
                }
            }
        }
    }
    return EQ_OK;
}
