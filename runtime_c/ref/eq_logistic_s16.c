/* Reference 16x8 LOGISTIC: TFLite's reference_integer_ops::Logistic for int16. */
#include "eq_activations.h"

eq_status_t eq_logistic_s16(const eq_logistic_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (!eq_sigmoid_params_ok(p, in, out)) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        const int32_t v = eq_sigmoid_input(p, in, i);
        uint32_t r = eq_sigmoid_interp(p->table, v, 9, 0x7FFFu << 10);
        /* sigmoid(-x) = 1 - sigmoid(x), rounded back to 1/32768 */
        r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1;
        eq_store(out, (size_t)i, (int32_t)(r >> 10), 1);
    }
    return EQ_OK;
}
