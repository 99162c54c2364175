/* Reference int8 table lookup (activations precomputed into 256 entries). */
#include "eq_activations.h"

eq_status_t eq_lut_s8(const eq_lut_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        out[i] = p->table[(int32_t)in[i] + 128];
    }
    return EQ_OK;
}
