/* Reference ARG_MAX of int8 values: the index of the first largest value, written as int32 or int64. */
#include <string.h>
#include "eq_reduce.h"

eq_status_t eq_arg_max_s8(const eq_arg_max_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->axis_size < 1 || (p->out_bytes != 4 && p->out_bytes != 8)) {
        return EQ_ERR_ARG;
    }
    for (int32_t o = 0; o < p->outer; o++) {
        for (int32_t i = 0; i < p->inner; i++) {
            const int8_t *row = in + (size_t)o * p->axis_size * p->inner + i;
            int32_t best = 0;
            for (int32_t k = 1; k < p->axis_size; k++) {
                if (row[(size_t)k * p->inner] > row[(size_t)best * p->inner]) {
                    best = k;
                }
            }
            const size_t at = ((size_t)o * p->inner + i) * (size_t)p->out_bytes;
            if (p->out_bytes == 4) {
                memcpy(out + at, &best, 4);
            } else {
                const int64_t wide = best;
                memcpy(out + at, &wide, 8);
            }
        }
    }
    return EQ_OK;
}
