/* Reference int8 PRELU (TFLite's BroadcastPrelu4DSlow) over broadcast strides. */
#include "eq_elementwise.h"

eq_status_t eq_prelu_s8(const eq_prelu_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->alpha == NULL) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    for (int32_t i0 = 0; i0 < p->d0; i0++) {
        for (int32_t i1 = 0; i1 < p->d1; i1++) {
            for (int32_t i2 = 0; i2 < p->d2; i2++) {
                for (int32_t i3 = 0; i3 < p->d3; i3++) {
                    const int32_t x = p->in0_offset + in[(size_t)i0 * p->in0_s0 + (size_t)i1 * p->in0_s1
                                                         + (size_t)i2 * p->in0_s2 + (size_t)i3 * p->in0_s3];
                    int32_t y;
                    if (x >= 0) {
                        y = eq_mbqm(x, p->out_mult1, (int)p->out_shift1);
                    } else {
                        const int32_t a = p->in1_offset + p->alpha[(size_t)i0 * p->in1_s0 + (size_t)i1 * p->in1_s1
                                                                   + (size_t)i2 * p->in1_s2 + (size_t)i3 * p->in1_s3];
                        y = eq_mbqm(x * a, p->out_mult2, (int)p->out_shift2);
                    }
                    out[o++] = (int8_t)eq_clamp(y + p->output_offset, INT8_MIN, INT8_MAX);
                }
            }
        }
    }
    return EQ_OK;
}
