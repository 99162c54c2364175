/* Reference int8 fully connected layer (TFLM's FullyConnected, per tensor or per channel). */
#include "eq_conv.h"
#include "eq_requantize.h"

static EQ_ALWAYS_INLINE eq_status_t fully_connected_loops(const eq_fully_connected_s8_params_t *p, const int8_t *in,
                                                      int8_t *out, const int mode)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * p->input_depth;
        for (int32_t o = 0; o < p->output_depth; o++) {
            const int8_t *w = p->weights + (size_t)o * p->input_depth;
            int32_t acc = 0;
            for (int32_t i = 0; i < p->input_depth; i++) {
                acc += ((int32_t)w[i] + p->weights_offset) * ((int32_t)x[i] + p->input_offset);
            }
            if (p->bias != NULL) {
                acc += p->bias[o];
            }
            out[(size_t)b * p->output_depth + o] =
                eq_requantize(acc, p->out_mult, p->out_shift, o, p->output_offset, p->act_min, p->act_max, mode);
        }
    }
    return EQ_OK;
}

eq_status_t eq_fully_connected_s8(const eq_fully_connected_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return p != NULL && p->requant == EQ_REQUANT_SHIFT ? fully_connected_loops(p, in, out, EQ_SHIFT_AS_FC)
                                            : fully_connected_loops(p, in, out, EQ_MULTIPLIER);
}
