/* Reference 16x8 TANH: TFLite's reference_integer_ops::Tanh for int16, tanh(x) = 2 sigmoid(2x) - 1. */
#include "eq_activations.h"

eq_status_t eq_tanh_s16(const eq_tanh_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->input_left_shift < 0 || p->input_left_shift > 31 ||
        p->input_multiplier < 0 || p->input_multiplier > INT16_MAX) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        const int32_t v = eq_sigmoid_input(eq_load(in, (size_t)i, 1), p->input_multiplier, p->input_left_shift);
        int32_t r = (int32_t)eq_sigmoid_interp(p->table, v, 8, 0xFFFFu << 8);
        r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
        eq_store(out, (size_t)i, r >> 8, 1);
    }
    return EQ_OK;
}
