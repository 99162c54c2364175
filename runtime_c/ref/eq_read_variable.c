/* READ_VARIABLE: the variable's bytes into the output tensor. */
#include "eq_recurrent.h"

eq_status_t eq_read_variable(const eq_read_variable_params_t *p, int8_t *out, const void *state)
{
    if (p == NULL || out == NULL || state == NULL) {
        return EQ_ERR_ARG;
    }
    memcpy(out, state, (size_t)p->bytes);
    return EQ_OK;
}
