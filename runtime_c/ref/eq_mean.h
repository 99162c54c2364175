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
    const int32_t zero[4] = {0, 0, 0, 0};
    int32_t od[4], i[4] = {0, 0, 0, 0}, lo[4], hi[4], j[4];
    if (!eq_reduce_dims(d, r, od)) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    do { /* each output element, in row-major order: the sum of its reduced axes */
        eq_reduce_window(d, r, i, lo, hi);
        memcpy(j, lo, sizeof j);
        int32_t sum = 0;
        do {
            sum = eq_wrap32((int64_t)sum + eq_load(in, eq_offset4(d, j), wide));
        } while (eq_next_index(j, lo, hi));
        const int32_t centred = eq_wrap32((int64_t)sum - (int64_t)p->input_zp * p->count);
        const int32_t acc = eq_mbqm(centred, p->out_mult, (int)p->out_shift) + p->output_zp;
        eq_store(out, o++, wide ? eq_clamp(acc, INT16_MIN, INT16_MAX) : eq_clamp(acc, INT8_MIN, INT8_MAX), wide);
    } while (eq_next_index(i, zero, od));
    return EQ_OK;
}

#endif /* EQ_MEAN_H */
