/* Reference 16x8 TRANSPOSE_CONV: eq_transpose_conv_s8's gather with int16 inputs, int64 accumulators and bias,
 * and TFLite's 64-bit rescaling (TFLM's int16 TransposeConv). */
#include "eq_conv.h"

eq_status_t eq_transpose_conv_s16(const eq_transpose_conv_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->stride_h < 1 || p->stride_w < 1) {
        return EQ_ERR_ARG;
    }
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                for (int32_t oc = 0; oc < p->output_c; oc++) {
                    const int8_t *w = p->weights + (size_t)oc * p->filter_h * p->filter_w * p->input_c;
                    int64_t acc = 0;
                    for (int32_t ky = 0; ky < p->filter_h; ky++) {
                        const int32_t ty = oy + p->pad_h - ky; /* = iy * stride_h */
                        if (ty < 0 || ty % p->stride_h != 0 || ty / p->stride_h >= p->input_h) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < p->filter_w; kx++) {
                            const int32_t tx = ox + p->pad_w - kx;
                            if (tx < 0 || tx % p->stride_w != 0 || tx / p->stride_w >= p->input_w) {
                                continue;
                            }
                            const size_t x = (((size_t)b * p->input_h + ty / p->stride_h) * p->input_w
                                              + tx / p->stride_w) * p->input_c;
                            const int8_t *wk = w + ((size_t)ky * p->filter_w + kx) * p->input_c;
                            for (int32_t c = 0; c < p->input_c; c++) {
                                acc += (int64_t)wk[c] * (eq_load(in, x + (size_t)c, 1) + p->input_offset);
                            }
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
