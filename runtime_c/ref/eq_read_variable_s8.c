/* READ_VARIABLE with a conversion: a float variable that edgeq keeps in int8 is read at another scale. */
#include "eq_recurrent.h"

eq_status_t eq_read_variable_s8(const eq_read_variable_s8_params_t *p, int8_t *out, const int8_t *state)
{
    if (p == NULL || out == NULL || state == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        out[i] = p->table[(int32_t)state[i] + 128];
    }
    return EQ_OK;
}
