/* The pooling loop shared by average and max pooling: windows clipped to the input, as TFLM's
 * reference_integer_ops; int8 or (wide) int16 elements. */
#ifndef EQ_POOL_WINDOW_H
#define EQ_POOL_WINDOW_H

#include "eq_pooling.h"

static inline eq_status_t eq_pool(const eq_pool_s8_params_t *p, const int8_t *in, int8_t *out, int average, int wide)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t ys = EQ_MAX(0, y0), ye = EQ_MIN(p->input_h, y0 + p->filter_h);
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t xs = EQ_MAX(0, x0), xe = EQ_MIN(p->input_w, x0 + p->filter_w);
                const int32_t count = (ye - ys) * (xe - xs);
                if (count <= 0) {
                    return EQ_ERR_ARG;
                }
                for (int32_t c = 0; c < p->channels; c++) {
                    int32_t acc = average ? 0 : (wide ? INT16_MIN : INT8_MIN);
                    for (int32_t y = ys; y < ye; y++) {
                        for (int32_t x = xs; x < xe; x++) {
                            const int32_t v = eq_load(in, (((size_t)b * p->input_h + y) * p->input_w + x) * p->channels + c, wide);
                            acc = average ? acc + v : EQ_MAX(acc, v);
                        }
                    }
                    if (average) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    eq_store(out, (((size_t)b * p->output_h + oy) * p->output_w + ox) * p->channels + c,
                             eq_clamp(acc, p->act_min, p->act_max), wide);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_POOL_WINDOW_H */
