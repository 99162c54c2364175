/* Reference int8 REDUCE_MAX: the largest raw value over the reduced axes. */
#include "eq_reduce.h"

eq_status_t eq_reduce_max_s8(const eq_reduce_max_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    const int32_t d[4] = {p->d0, p->d1, p->d2, p->d3};
    const int32_t r[4] = {p->reduce0, p->reduce1, p->reduce2, p->reduce3};
    int32_t od[4], i[4], j[4];
    for (int k = 0; k < 4; k++) {
        od[k] = r[k] ? 1 : d[k];
    }
    size_t o = 0;
    for (i[0] = 0; i[0] < od[0]; i[0]++) {
        for (i[1] = 0; i[1] < od[1]; i[1]++) {
            for (i[2] = 0; i[2] < od[2]; i[2]++) {
                for (i[3] = 0; i[3] < od[3]; i[3]++) {
                    int8_t best = INT8_MIN;
                    for (j[0] = r[0] ? 0 : i[0]; j[0] < (r[0] ? d[0] : i[0] + 1); j[0]++) {
                        for (j[1] = r[1] ? 0 : i[1]; j[1] < (r[1] ? d[1] : i[1] + 1); j[1]++) {
                            for (j[2] = r[2] ? 0 : i[2]; j[2] < (r[2] ? d[2] : i[2] + 1); j[2]++) {
                                for (j[3] = r[3] ? 0 : i[3]; j[3] < (r[3] ? d[3] : i[3] + 1); j[3]++) {
                                    const int8_t v = in[(((size_t)j[0] * d[1] + j[1]) * d[2] + j[2]) * d[3] + j[3]];
                                    best = EQ_MAX(best, v);
                                }
                            }
                        }
                    }
                    out[o++] = best;
                }
            }
        }
    }
    return EQ_OK;
}
