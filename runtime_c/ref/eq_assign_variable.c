/* ASSIGN_VARIABLE: the input tensor's bytes into the variable, kept until the next assignment or reset. */
#include "eq_recurrent.h"

eq_status_t eq_assign_variable(const eq_assign_variable_params_t *p, const int8_t *in, void *state)
{
    if (p == NULL || in == NULL || state == NULL) {
        return EQ_ERR_ARG;
    }
    memcpy(state, in, (size_t)p->bytes);
    return EQ_OK;
}
