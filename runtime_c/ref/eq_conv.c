/* Reference int8 convolutions: the loops of TFLM's reference_integer_ops, which define the results. */
#include "eq_conv.h"

/* How a kernel rescales its accumulators: TFLite's multiplier and shift per channel, or (power-of-two
 * graphs, no multipliers) one rounding shift, rounded as LiteRT rounds that layer kind: convolutions as
 * MultiplyByQuantizedMultiplier rounds 2^-shift, fully connected layers once, half away from zero.
 * Each kernel's loops are compiled once per mode, with the mode constant, so no output pays for the choice. */
enum { EQ_MULTIPLIER, EQ_SHIFT_AS_CONV, EQ_SHIFT_AS_FC };

static EQ_ALWAYS_INLINE int8_t eq_requantize(int32_t acc, const int32_t *mult, const int32_t *shift, int32_t c,
                                             const int32_t offset, int32_t lo, int32_t hi, const int mode)
{
    const int32_t scaled = mode == EQ_SHIFT_AS_CONV ? eq_tflite_rounding_shift(acc, shift[c])
                           : mode == EQ_SHIFT_AS_FC ? eq_rounding_shift(acc, shift[c])
                                                    : eq_mbqm(acc, mult[c], (int)shift[c]);
    return (int8_t)eq_clamp(scaled + offset, lo, hi);
}

static EQ_ALWAYS_INLINE eq_status_t conv_loops(const eq_conv_s8_params_t *p, const int8_t *in, int8_t *out,
                                           const int mode)
{
    if (p == NULL || in == NULL || out == NULL || p->filter_c <= 0 || p->input_c % p->filter_c != 0) {
        return EQ_ERR_ARG;
    }
    const int32_t groups = p->input_c / p->filter_c;
    if (p->output_c % groups != 0) {
        return EQ_ERR_ARG;
    }
    const int32_t per_group = p->output_c / groups;
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (int32_t oc = 0; oc < p->output_c; oc++) {
                    const int32_t group = oc / per_group;
                    const int8_t *w = p->weights + (size_t)oc * p->filter_h * p->filter_w * p->filter_c;
                    int32_t acc = 0;
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
                            const int8_t *x = in + (((size_t)b * p->input_h + iy) * p->input_w + ix) * p->input_c
                                              + (size_t)group * p->filter_c;
                            const int8_t *wk = w + ((size_t)ky * p->filter_w + kx) * p->filter_c;
                            for (int32_t c = 0; c < p->filter_c; c++) {
                                acc += (int32_t)wk[c] * ((int32_t)x[c] + p->input_offset);
                            }
                        }
                    }
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

static EQ_ALWAYS_INLINE eq_status_t depthwise_conv_loops(const eq_depthwise_conv_s8_params_t *p, const int8_t *in,
                                                     int8_t *out, const int mode)
{
    if (p == NULL || in == NULL || out == NULL || p->output_c != p->input_c * p->depth_multiplier) {
        return EQ_ERR_ARG;
    }
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (int32_t ic = 0; ic < p->input_c; ic++) {
                    for (int32_t m = 0; m < p->depth_multiplier; m++) {
                        const int32_t oc = ic * p->depth_multiplier + m;
                        int32_t acc = 0;
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
                                const int32_t xv = in[(((size_t)b * p->input_h + iy) * p->input_w + ix) * p->input_c + ic];
                                const int32_t wv = p->weights[((size_t)ky * p->filter_w + kx) * p->output_c + oc];
                                acc += wv * (xv + p->input_offset);
                            }
                        }
                        if (p->bias != NULL) {
                            acc += p->bias[oc];
                        }
                        out[(((size_t)b * p->output_h + oy) * p->output_w + ox) * p->output_c + oc] = eq_requantize(
                            acc, p->out_mult, p->out_shift, oc, p->output_offset, p->act_min, p->act_max, mode);
                    }
                }
            }
        }
    }
    return EQ_OK;
}

static EQ_ALWAYS_INLINE eq_status_t fully_connected_loops(const eq_fully_connected_s8_params_t *p, const int8_t *in,
                                                      int8_t *out, const int mode)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * p->input_depth;
        for (int32_t o = 0; o < p->output_depth; o++) {
            const int8_t *w = p->weights + (size_t)o * p->input_depth;
            int32_t acc = 0;
            for (int32_t i = 0; i < p->input_depth; i++) {
                acc += ((int32_t)w[i] + p->weights_offset) * ((int32_t)x[i] + p->input_offset);
            }
            if (p->bias != NULL) {
                acc += p->bias[o];
            }
            out[(size_t)b * p->output_depth + o] =
                eq_requantize(acc, p->out_mult, p->out_shift, o, p->output_offset, p->act_min, p->act_max, mode);
        }
    }
    return EQ_OK;
}

eq_status_t eq_conv_s8(const eq_conv_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return p != NULL && p->out_mult == NULL ? conv_loops(p, in, out, EQ_SHIFT_AS_CONV)
                                            : conv_loops(p, in, out, EQ_MULTIPLIER);
}

eq_status_t eq_depthwise_conv_s8(const eq_depthwise_conv_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return p != NULL && p->out_mult == NULL ? depthwise_conv_loops(p, in, out, EQ_SHIFT_AS_CONV)
                                            : depthwise_conv_loops(p, in, out, EQ_MULTIPLIER);
}

eq_status_t eq_fully_connected_s8(const eq_fully_connected_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return p != NULL && p->out_mult == NULL ? fully_connected_loops(p, in, out, EQ_SHIFT_AS_FC)
                                            : fully_connected_loops(p, in, out, EQ_MULTIPLIER);
}
