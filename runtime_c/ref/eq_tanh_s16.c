/* Reference 16x8 TANH: TFLite's reference_integer_ops::Tanh for int16, tanh(x) = 2 sigmoid(2x) - 1. */
#include "eq_activations.h"

eq_status_t eq_tanh_s16(const eq_tanh_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (!eq_sigmoid_params_ok(p, in, out)) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        const int32_t v = eq_sigmoid_input(p, in, i);
        const int32_t r = (int32_t)eq_sigmoid_interp(p->table, v, 8, 0xFFFFu << 8);
        eq_store(out, (size_t)i, (v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1) >> 8, 1);
    }
    return EQ_OK;
}
