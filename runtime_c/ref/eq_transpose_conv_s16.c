/* Reference 16x8 TRANSPOSE_CONV: eq_transpose_conv_s8's gather with int16 inputs, int64 accumulators and bias,
 * and TFLite's 64-bit rescaling (TFLM's int16 TransposeConv). */
#include "eq_conv.h"

eq_status_t eq_transpose_conv_s16(const eq_transpose_conv_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->stride_h < 1 || p->stride_w < 1) {
        return EQ_ERR_ARG;
    }
    const eq_transpose_geometry_t g = {p->input_h, p->input_w, p->input_c, p->filter_h, p->filter_w,
                                       p->stride_h, p->stride_w, p->pad_h, p->pad_w, p->input_offset};
    size_t o = 0;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *batch = in + (size_t)b * p->input_h * p->input_w * p->input_c * 2;
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                for (int32_t oc = 0; oc < p->output_c; oc++) {
                    const int8_t *w = p->weights + (size_t)oc * p->filter_h * p->filter_w * p->input_c;
                    int64_t acc = eq_transpose_conv_sum(&g, batch, 1, w, oy, ox);
                    if (p->bias != NULL) {
                        acc += p->bias[oc];
                    }
                    const int32_t y = eq_mbqm64(acc, p->out_mult[oc], (int)p->out_shift[oc]) + p->output_offset;
                    eq_store(out, o++, eq_clamp(y, p->act_min, p->act_max), 1);
                }
            }
        }
    }
    return EQ_OK;
}
