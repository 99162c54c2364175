/* Reference int8 TRANSPOSE_CONV: each output sums the input pixels whose scattered taps reach it (the integers
 * TFLM's scatter adds), then the per-channel requantization of convolutions. */
#include "eq_conv.h"
#include "eq_requantize.h"

static EQ_ALWAYS_INLINE eq_status_t transpose_conv_loops(const eq_transpose_conv_s8_params_t *p, const int8_t *in,
                                                         int8_t *out, const int mode)
{
    if (p == NULL || in == NULL || out == NULL || p->stride_h < 1 || p->stride_w < 1) {
        return EQ_ERR_ARG;
    }
    const eq_transpose_geometry_t g = {p->input_h, p->input_w, p->input_c, p->filter_h, p->filter_w,
                                       p->stride_h, p->stride_w, p->pad_h, p->pad_w, p->input_offset};
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *batch = in + (size_t)b * p->input_h * p->input_w * p->input_c;
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                for (int32_t oc = 0; oc < p->output_c; oc++) {
                    const int8_t *w = p->weights + (size_t)oc * p->filter_h * p->filter_w * p->input_c;
                    /* int8 products sum in int32 in TFLite: exact here for any layer that fits a device */
                    int32_t acc = (int32_t)eq_transpose_conv_sum(&g, batch, 0, w, oy, ox);
                    if (p->bias != NULL) {
                        acc += p->bias[oc];
                    }
                    out[(((size_t)b * p->output_h + oy) * p->output_w + ox) * p->output_c + oc] =
                        eq_requantize(acc, p->out_mult, p->out_shift, oc, p->output_offset, p->act_min, p->act_max,
                                      mode);
                }
            }
        }
    }
    return EQ_OK;
}

eq_status_t eq_transpose_conv_s8(const eq_transpose_conv_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return p != NULL && p->requant == EQ_REQUANT_SHIFT ? transpose_conv_loops(p, in, out, EQ_SHIFT_AS_CONV)
                                                       : transpose_conv_loops(p, in, out, EQ_MULTIPLIER);
}
