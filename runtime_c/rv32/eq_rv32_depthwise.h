/* Depthwise convolution (depth multiplier 1) on scalar RV32: for each output pixel, four channels per pass, the
 * filter's taps unrolled (constant filter size) at constant offsets from one input and one weight pointer. The
 * input offset is folded into the bias for every tap; a tap that falls in the padding takes its share back
 * (acc -= offset * w), so border pixels skip their outside taps. */
#ifndef EQ_RV32_DEPTHWISE_H
#define EQ_RV32_DEPTHWISE_H

#include "eq_rv32_common.h"

typedef struct {
    const int8_t *weights;  /* [filter_h][filter_w][channels] */
    const int32_t *bias;    /* [channels]: bias + input_offset * the channel's weight sum */
    const int32_t *rq;      /* [channels][EQ_RV32_RQ]: see eq_rv32_common.h */
    int32_t input_h, input_w, channels, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
} eq_rv32_dw_t;

/* `lanes` channels (1 to 4) from c of one output pixel whose window starts `origin` bytes into the input (< 0 at
 * a top or left border: only taps [ky0, ky1) x [kx0, kx1) are read). */
static EQ_ALWAYS_INLINE void eq_rv32_dw_pixel(const eq_rv32_dw_t *p, const int8_t *in, ptrdiff_t origin, int32_t c,
                                              int8_t *y,
                                              int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1, const int interior,
                                              const int lanes, const int mode)
{
    const int32_t C = p->channels, fw = p->filter_w;
    const ptrdiff_t row = (ptrdiff_t)p->input_w * C;
    int32_t acc[4];
    for (int j = 0; j < lanes; j++) {
        acc[j] = p->bias[c + j];
    }
    for (int32_t ky = 0; ky < p->filter_h; ky++) {
        for (int32_t kx = 0; kx < fw; kx++) {
            const int8_t *w = p->weights + (size_t)(ky * fw + kx) * C + c;
            if (interior || (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1)) {
                const int8_t *xt = in + (origin + ky * row + (ptrdiff_t)kx * C + c);
                for (int j = 0; j < lanes; j++) {
                    acc[j] += (int32_t)xt[j] * w[j];
                }
            } else {
                for (int j = 0; j < lanes; j++) {
                    acc[j] -= p->input_offset * w[j];
                }
            }
        }
    }
    for (int j = 0; j < lanes; j++) {
        y[c + j] = eq_rv32_requant(acc[j], p->rq + EQ_RV32_RQ * (c + j), p->output_offset, p->act_min, p->act_max,
                                   mode);
    }
}

static EQ_ALWAYS_INLINE eq_status_t eq_rv32_depthwise_conv_s8(const eq_rv32_dw_t *p, const int8_t *in,
                                                              int8_t *out, const int mode)
{
    const int32_t C = p->channels, fh = p->filter_h, fw = p->filter_w;
    for (int32_t oy = 0; oy < p->output_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        const int32_t ky0 = EQ_MAX(0, -y0), ky1 = EQ_MIN(fh, p->input_h - y0);
        for (int32_t ox = 0; ox < p->output_w; ox++, out += C) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            const int32_t kx0 = EQ_MAX(0, -x0), kx1 = EQ_MIN(fw, p->input_w - x0);
            const ptrdiff_t origin = ((ptrdiff_t)y0 * p->input_w + x0) * C;
            int32_t c = 0;
            if (ky0 == 0 && ky1 == fh && kx0 == 0 && kx1 == fw) {
                for (; c + 4 <= C; c += 4) {
                    eq_rv32_dw_pixel(p, in, origin, c, out, 0, fh, 0, fw, 1, 4, mode);
                }
                for (; c < C; c++) {
                    eq_rv32_dw_pixel(p, in, origin, c, out, 0, fh, 0, fw, 1, 1, mode);
                }
            } else {
                for (; c + 4 <= C; c += 4) {
                    eq_rv32_dw_pixel(p, in, origin, c, out, ky0, ky1, kx0, kx1, 0, 4, mode);
                }
                for (; c < C; c++) {
                    eq_rv32_dw_pixel(p, in, origin, c, out, ky0, ky1, kx0, kx1, 0, 1, mode);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_RV32_DEPTHWISE_H */
