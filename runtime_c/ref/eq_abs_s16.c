/* Reference 16x8 ABS: TFLM's AbsEvalQuantized for int16 (zero points 0). */
#include "eq_activations.h"

eq_status_t eq_abs_s16(const eq_abs_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        const int32_t x = eq_load(in, (size_t)i, 1);
        const int32_t v = x < 0 ? -x : x;
        const int32_t y = p->rescale ? eq_mbqm(v, p->out_mult, (int)p->out_shift) : v;
        eq_store(out, (size_t)i, eq_clamp(y, INT16_MIN, INT16_MAX), 1);
    }
    return EQ_OK;
}
