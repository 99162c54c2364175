/* Reference int8 L2_NORMALIZATION: TFLite's reference_integer_ops::L2Normalization, with its inverse square
 * root (eq_inv_sqrt). */
#include "eq_activations.h"

eq_status_t eq_l2_normalization_s8(const eq_l2_normalization_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t r = 0; r < p->rows; r++) {
        const int8_t *x = in + (size_t)r * p->depth;
        int32_t acc = 0;
        for (int32_t c = 0; c < p->depth; c++) {
            const int32_t v = (int32_t)x[c] - p->input_zp;
            acc = eq_wrap32((int64_t)acc + v * v);
        }
        int32_t multiplier;
        int shift;
        eq_inv_sqrt(acc, &multiplier, &shift);
        for (int32_t c = 0; c < p->depth; c++) {
            const int32_t v = eq_mbqm((int32_t)x[c] - p->input_zp, multiplier, shift + 7);
            out[(size_t)r * p->depth + c] = (int8_t)eq_clamp(v, INT8_MIN, INT8_MAX);
        }
    }
    return EQ_OK;
}
