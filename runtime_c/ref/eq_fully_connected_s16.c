/* Reference 16x8 fully connected layer (TFLM's int16 FullyConnected: int64 accumulator and bias). */
#include "eq_conv.h"

eq_status_t eq_fully_connected_s16(const eq_fully_connected_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t b = 0; b < p->batches; b++) {
        const size_t x = (size_t)b * p->input_depth;
        for (int32_t o = 0; o < p->output_depth; o++) {
            const int8_t *w = p->weights + (size_t)o * p->input_depth;
            int64_t acc = 0;
            for (int32_t i = 0; i < p->input_depth; i++) {
                acc += (int64_t)((int32_t)w[i] + p->weights_offset) * (eq_load(in, x + (size_t)i, 1) + p->input_offset);
            }
            if (p->bias != NULL) {
                acc += p->bias[o];
            }
            const int32_t y = eq_mbqm64(acc, p->out_mult[o], (int)p->out_shift[o]) + p->output_offset;
            eq_store(out, (size_t)b * p->output_depth + o, eq_clamp(y, p->act_min, p->act_max), 1);
        }
    }
    return EQ_OK;
}
