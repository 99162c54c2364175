/* Reference int16 PRELU (16x8 models; TFLite's BroadcastPrelu4DSlow with an int8 alpha) over broadcast strides. */
#include "eq_broadcast.h"
#include "eq_elementwise.h"

eq_status_t eq_prelu_s16(const eq_prelu_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->alpha == NULL) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    EQ_FOR_EACH_BROADCAST(p, i, j, {
        const int32_t x = p->in0_offset + eq_load(in, i, 1);
        /* |x * alpha| <= 2^15 * 2^8: no int32 overflow */
        const int32_t y = x >= 0 ? eq_mbqm(x, p->out_mult1, (int)p->out_shift1)
                                 : eq_mbqm(x * (p->in1_offset + p->alpha[j]), p->out_mult2, (int)p->out_shift2);
        eq_store(out, o++, eq_clamp(y + p->output_offset, INT16_MIN, INT16_MAX), 1);
    })
    return EQ_OK;
}
