/* The body of MEAN and SUM (TFLite's QuantizedMeanOrSum) for int8 and (wide) int16 elements. */
#ifndef EQ_MEAN_H
#define EQ_MEAN_H

#include "eq_pooling.h"

static inline eq_status_t eq_mean(const eq_mean_s8_params_t *p, const int8_t *in, int8_t *out, const int wide)
{
    if (p == NULL || in == NULL || out == NULL || p->count <= 0) {
        return EQ_ERR_ARG;
    }
    const int32_t d[4] = {p->d0, p->d1, p->d2, p->d3};
    const int32_t r[4] = {p->reduce0, p->reduce1, p->reduce2, p->reduce3};
    int32_t od[4], i[4];
    for (int k = 0; k < 4; k++) {
        od[k] = r[k] ? 1 : d[k];
    }
    /* For each output element, sum over the reduced axes (outputs are in row-major order). */
    size_t o = 0;
    for (i[0] = 0; i[0] < od[0]; i[0]++) {
        for (i[1] = 0; i[1] < od[1]; i[1]++) {
            for (i[2] = 0; i[2] < od[2]; i[2]++) {
                for (i[3] = 0; i[3] < od[3]; i[3]++) {
                    int32_t sum = 0;
                    int32_t j[4];
                    for (j[0] = r[0] ? 0 : i[0]; j[0] < (r[0] ? d[0] : i[0] + 1); j[0]++) {
                        for (j[1] = r[1] ? 0 : i[1]; j[1] < (r[1] ? d[1] : i[1] + 1); j[1]++) {
                            for (j[2] = r[2] ? 0 : i[2]; j[2] < (r[2] ? d[2] : i[2] + 1); j[2]++) {
                                for (j[3] = r[3] ? 0 : i[3]; j[3] < (r[3] ? d[3] : i[3] + 1); j[3]++) {
                                    const int32_t v =
                                        eq_load(in, (((size_t)j[0] * d[1] + j[1]) * d[2] + j[2]) * d[3] + j[3], wide);
                                    sum = eq_wrap32((int64_t)sum + v);
                                }
                            }
                        }
                    }
                    const int32_t centred = eq_wrap32((int64_t)sum - (int64_t)p->input_zp * p->count);
                    const int32_t acc = eq_mbqm(centred, p->out_mult, (int)p->out_shift) + p->output_zp;
                    eq_store(out, o++, wide ? eq_clamp(acc, INT16_MIN, INT16_MAX) : eq_clamp(acc, INT8_MIN, INT8_MAX),
                             wide);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_MEAN_H */
