/* Depthwise convolution. Four channels per pass where the channels come in fours (depth multiplier 1),
 * else one channel at a time with bounds-checked taps. Taps outside the input read the input's zero point,
 * which the offset folded into the bias turns into zero, as TFLite Micro skips them. */
#ifndef EQ_DSP_DEPTHWISE_H
#define EQ_DSP_DEPTHWISE_H

#include <stddef.h>

#include "eq_dsp_common.h"

typedef struct {
    const int8_t *weights;  /* [channels][filter_h][filter_w] (repacked from [1][h][w][channels]) */
    const int32_t *bias;    /* [channels]: bias + input_offset * the channel's weight sum */
    eq_dsp_rescale_t rq;
    int32_t input_h, input_w, input_c, output_h, output_w, channels, depth_multiplier;
    int32_t filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t pad_value;
} eq_dsp_depthwise_t;

static EQ_ALWAYS_INLINE int32_t eq_dsp_window(const eq_dsp_depthwise_t *p, const int8_t *x, const int8_t *w,
                                              int32_t iy0, int32_t ix0, int32_t acc, const int checked)
{
    const size_t row = (size_t)p->input_w * p->input_c;
    for (int32_t ky = 0; ky < p->filter_h; ky++) {
        const int32_t iy = iy0 + ky * p->dilation_h;
        for (int32_t kx = 0; kx < p->filter_w; kx++) {
            const int32_t ix = ix0 + kx * p->dilation_w;
            const int32_t v = !checked || (iy >= 0 && iy < p->input_h && ix >= 0 && ix < p->input_w)
                                  ? x[(size_t)iy * row + (size_t)ix * p->input_c]
                                  : p->pad_value;
            acc += w[ky * p->filter_w + kx] * v;
        }
    }
    return acc;
}

static EQ_ALWAYS_INLINE eq_status_t eq_dsp_depthwise_s8(const eq_dsp_depthwise_t *p, const int8_t *in, int8_t *out,
                                                        const int mode)
{
    const int32_t span_h = (p->filter_h - 1) * p->dilation_h, span_w = (p->filter_w - 1) * p->dilation_w;
    for (int32_t c = 0; c < p->channels; c++) {
        const int8_t *w = p->weights + (size_t)c * p->filter_h * p->filter_w;
        const int8_t *x = in + c / p->depth_multiplier;
        int8_t *y = out + c;
        const int32_t bias = p->bias[c];
        for (int32_t oy = 0; oy < p->output_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int rows_inside = iy0 >= 0 && iy0 + span_h < p->input_h;
            for (int32_t ox = 0; ox < p->output_w; ox++, y += p->channels) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t acc = rows_inside && ix0 >= 0 && ix0 + span_w < p->input_w
                                        ? eq_dsp_window(p, x, w, iy0, ix0, bias, 0)
                                        : eq_dsp_window(p, x, w, iy0, ix0, bias, 1);
                *y = eq_dsp_requantize(acc, &p->rq, c, mode);
            }
        }
    }
    return EQ_OK;
}

/* Four channels per pass (depth multiplier 1, channels a multiple of 4): one word of input per tap, split
 * by SXTB16 into channels (0, 2) and (1, 3), multiplied by halfword (SMLABB, SMLATT) with weights stored
 * already split: wq holds, per group of four channels and per tap, the words (w0, w2) and (w1, w3). */
/* One pixel whose window starts at in + base and whose filter rows lie row_step bytes apart. */
static EQ_ALWAYS_INLINE void eq_dsp_depthwise4_pixel(const eq_dsp_depthwise_t *p, const uint32_t *wq,
                                                     const int8_t *in, int8_t *out, ptrdiff_t base,
                                                     ptrdiff_t row_step, const int mode)
{
    const int32_t taps = p->filter_h * p->filter_w, c_in = p->input_c;
    const uint32_t *w = wq;
    for (int32_t c = 0; c < p->channels; c += 4, w += 2 * taps) {
        int32_t a0 = p->bias[c], a1 = p->bias[c + 1], a2 = p->bias[c + 2], a3 = p->bias[c + 3];
        EQ_UNROLL
        for (int32_t ky = 0; ky < p->filter_h; ky++) {
            EQ_UNROLL
            for (int32_t kx = 0; kx < p->filter_w; kx++) {
                const uint32_t v = eq_load4(in + base + ky * row_step + (ptrdiff_t)kx * p->dilation_w * c_in + c);
                const uint32_t v02 = eq_sxtb16(v), v13 = eq_sxtb16_ror8(v);
                const int32_t t = ky * p->filter_w + kx;
                a0 = eq_smlabb(v02, w[2 * t], a0);
                a2 = eq_smlatt(v02, w[2 * t], a2);
                a1 = eq_smlabb(v13, w[2 * t + 1], a1);
                a3 = eq_smlatt(v13, w[2 * t + 1], a3);
            }
        }
        EQ_DSP_IN_ORDER();
        out[c] = eq_dsp_requantize(a0, &p->rq, c, mode);
        EQ_DSP_IN_ORDER();
        out[c + 1] = eq_dsp_requantize(a1, &p->rq, c + 1, mode);
        EQ_DSP_IN_ORDER();
        out[c + 2] = eq_dsp_requantize(a2, &p->rq, c + 2, mode);
        EQ_DSP_IN_ORDER();
        out[c + 3] = eq_dsp_requantize(a3, &p->rq, c + 3, mode);
    }
}

/* The input rows a row of outputs reads (filter_h of them) are copied into scratch with their padding,
 * so every pixel runs unchecked and border pixels cost what interior ones do (on kws' 5-wide maps and
 * MobileNets' last 6x6 and 3x3 maps they are most of the work; the copy costs less than the checks even
 * on 48x48). scratch: filter_h * eq_dsp_depthwise_padded_w(p) * input_c bytes. */
static EQ_ALWAYS_INLINE int32_t eq_dsp_depthwise_padded_w(const eq_dsp_depthwise_t *p)
{
    return (p->output_w - 1) * p->stride_w + (p->filter_w - 1) * p->dilation_w + 1;
}

static EQ_ALWAYS_INLINE eq_status_t eq_dsp_depthwise4_s8(const eq_dsp_depthwise_t *p, const uint32_t *wq,
                                                              const int8_t *in, int8_t *out, int8_t *scratch,
                                                              const int mode)
{
    const int32_t c_in = p->input_c, wide = eq_dsp_depthwise_padded_w(p);
    const int32_t copied = EQ_MIN(p->input_w, wide - p->pad_w), right = wide - p->pad_w - copied;
    const size_t step = (size_t)wide * c_in;
    for (int32_t oy = 0; oy < p->output_h; oy++) {
        for (int32_t ky = 0; ky < p->filter_h; ky++) {
            const int32_t iy = oy * p->stride_h - p->pad_h + ky * p->dilation_h;
            int8_t *dst = scratch + ky * step;
            if (iy < 0 || iy >= p->input_h) {
                memset(dst, p->pad_value, step);
                continue;
            }
            memset(dst, p->pad_value, (size_t)p->pad_w * c_in);
            memcpy(dst + (size_t)p->pad_w * c_in, in + (size_t)iy * p->input_w * c_in, (size_t)copied * c_in);
            memset(dst + (size_t)(p->pad_w + copied) * c_in, p->pad_value, (size_t)right * c_in);
        }
        int8_t *row = out + (size_t)oy * p->output_w * p->channels;
        for (int32_t ox = 0; ox < p->output_w; ox++) {
            eq_dsp_depthwise4_pixel(p, wq, scratch, row + (size_t)ox * p->channels,
                                    (ptrdiff_t)ox * p->stride_w * c_in, (ptrdiff_t)step, mode);
        }
    }
    return EQ_OK;
}

#endif /* EQ_DSP_DEPTHWISE_H */
