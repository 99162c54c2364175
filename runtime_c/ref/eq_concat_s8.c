/* Reference int8 CONCATENATION. */
#include <string.h>
#include "eq_elementwise.h"

eq_status_t eq_concat_s8(const eq_concat_s8_params_t *p, const int8_t *const *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t o = 0; o < p->outer; o++) {
        for (int32_t k = 0; k < p->n_inputs; k++) {
            const size_t n = (size_t)p->copy_sizes[k];
            memcpy(out, in[k] + (size_t)o * n, n);
            out += n;
        }
    }
    return EQ_OK;
}
