/* Reference pooling: windows clipped to the input, as TFLM's reference_integer_ops. */
#include "eq_pooling.h"

static eq_status_t eq_pool(const eq_pool_s8_params_t *p, const int8_t *in, int8_t *out, int average)
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
                    int32_t acc = average ? 0 : INT8_MIN;
                    for (int32_t y = ys; y < ye; y++) {
                        for (int32_t x = xs; x < xe; x++) {
                            const int32_t v = in[(((size_t)b * p->input_h + y) * p->input_w + x) * p->channels + c];
                            acc = average ? acc + v : EQ_MAX(acc, v);
                        }
                    }
                    if (average) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    out[(((size_t)b * p->output_h + oy) * p->output_w + ox) * p->channels + c] =
                        (int8_t)eq_clamp(acc, p->act_min, p->act_max);
                }
            }
        }
    }
    return EQ_OK;
}

eq_status_t eq_avg_pool_s8(const eq_avg_pool_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return eq_pool(p, in, out, 1);
}

eq_status_t eq_max_pool_s8(const eq_max_pool_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return eq_pool(p, in, out, 0);
}

eq_status_t eq_mean_s8(const eq_mean_s8_params_t *p, const int8_t *in, int8_t *out)
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
                                        in[(((size_t)j[0] * d[1] + j[1]) * d[2] + j[2]) * d[3] + j[3]];
                                    sum = eq_wrap32((int64_t)sum + v);
                                }
                            }
                        }
                    }
                    const int32_t centred = eq_wrap32((int64_t)sum - (int64_t)p->input_zp * p->count);
                    const int32_t acc = eq_mbqm(centred, p->out_mult, (int)p->out_shift) + p->output_zp;
                    out[o++] = (int8_t)eq_clamp(acc, INT8_MIN, INT8_MAX);
                }
            }
        }
    }
    return EQ_OK;
}
