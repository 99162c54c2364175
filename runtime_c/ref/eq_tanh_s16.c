/* Reference 16x8 TANH: TFLite's reference_integer_ops::Tanh for int16. */
#include "eq_activations.h"

eq_status_t eq_tanh_s16(const eq_tanh_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (!eq_sigmoid_params_ok(p, in, out)) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        eq_store(out, (size_t)i, eq_tanh16(p->table, eq_sigmoid_input(p, in, i)), 1);
    }
    return EQ_OK;
}
