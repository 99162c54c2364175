/* Reference 16x8 depthwise convolution (TFLM's int16 DepthwiseConvPerChannel: int64 accumulator and bias). */
#include "eq_conv.h"

eq_status_t eq_depthwise_conv_s16(const eq_depthwise_conv_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->output_c != p->input_c * p->depth_multiplier) {
        return EQ_ERR_ARG;
    }
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (int32_t oc = 0; oc < p->output_c; oc++) {
                    const int32_t ic = oc / p->depth_multiplier;
                    int64_t acc = 0;
                    for (int32_t ky = 0; ky < p->filter_h; ky++) {
                        const int32_t iy = y0 + ky * p->dilation_h;
                        if (iy < 0 || iy >= p->input_h) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < p->filter_w; kx++) {
                            const int32_t ix = x0 + kx * p->dilation_w;
                            if (ix < 0 || ix >= p->input_w) {
                                continue;
                            }
                            const int32_t xv = eq_load(in, (((size_t)b * p->input_h + iy) * p->input_w + ix) * p->input_c
                                                               + (size_t)ic, 1);
                            const int32_t wv = p->weights[((size_t)ky * p->filter_w + kx) * p->output_c + oc];
                            acc += (int64_t)wv * (xv + p->input_offset);
                        }
                    }
                    if (p->bias != NULL) {
                        acc += p->bias[oc];
                    }
                    const int32_t y = eq_mbqm64(acc, p->out_mult[oc], (int)p->out_shift[oc]) + p->output_offset;
                    eq_store(out, (((size_t)b * p->output_h + oy) * p->output_w + ox) * p->output_c + oc,
                             eq_clamp(y, p->act_min, p->act_max), 1);
                }
            }
        }
    }
    return EQ_OK;
}
