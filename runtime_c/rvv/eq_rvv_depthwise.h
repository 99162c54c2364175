/* Depthwise convolution (depth multiplier 1) on RVV, vectorised over channels, which NHWC keeps contiguous:
 * per filter tap one input and one weight vector (int8 at LMUL 2), a widening multiply and a widening add into
 * 32-bit accumulators. The input offset is folded into the bias for every tap; a tap that falls in the padding
 * takes its share back (acc -= offset * w), so border pixels skip their outside taps. */
#ifndef EQ_RVV_DEPTHWISE_H
#define EQ_RVV_DEPTHWISE_H

#include "eq_rvv_common.h"

typedef struct {
    const int8_t *weights;  /* [filter_h][filter_w][channels] */
    const int32_t *bias;    /* [channels]: bias + input_offset * the channel's weight sum */
    const int32_t *rq;      /* [4][channels]: see eq_rvv_common.h */
    const int16_t *shift;   /* [channels]: right shifts */
    int32_t input_h, input_w, channels, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
} eq_rvv_dw_t;

static EQ_ALWAYS_INLINE vint32m8_t eq_rvv_dw_tap(vint32m8_t acc, const int8_t *x, const int8_t *w, size_t vl)
{
    return __riscv_vwadd_wv_i32m8(acc, __riscv_vwmul_vv_i16m4(__riscv_vle8_v_i8m2(x, vl),
                                                              __riscv_vle8_v_i8m2(w, vl), vl), vl);
}

static EQ_ALWAYS_INLINE eq_status_t eq_rvv_depthwise_conv_s8(const eq_rvv_dw_t *p, const int8_t *in, int8_t *out,
                                                             const int flags)
{
    const int32_t C = p->channels, fh = p->filter_h, fw = p->filter_w;
    const size_t row = (size_t)p->input_w * C;
    for (int32_t oy = 0; oy < p->output_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        const int32_t ky0 = EQ_MAX(0, -y0), ky1 = EQ_MIN(fh, p->input_h - y0);
        for (int32_t ox = 0; ox < p->output_w; ox++, out += C) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            const int32_t kx0 = EQ_MAX(0, -x0), kx1 = EQ_MIN(fw, p->input_w - x0);
            const int interior = ky0 == 0 && ky1 == fh && kx0 == 0 && kx1 == fw;
            const ptrdiff_t origin = (ptrdiff_t)y0 * (ptrdiff_t)row + (ptrdiff_t)x0 * C; /* < 0 at borders */
            for (int32_t c = 0; c < C;) {
                const size_t vl = __riscv_vsetvl_e32m8((size_t)(C - c));
                vint32m8_t acc = __riscv_vle32_v_i32m8(p->bias + c, vl);
                if (interior) {  /* constant bounds: unrolled for the layer's filter size */
                    for (int32_t ky = 0; ky < fh; ky++) {
                        for (int32_t kx = 0; kx < fw; kx++) {
                            acc = eq_rvv_dw_tap(acc, in + (origin + ky * (ptrdiff_t)row + (ptrdiff_t)kx * C + c),
                                                p->weights + (size_t)(ky * fw + kx) * C + c, vl);
                        }
                    }
                } else {
                    for (int32_t ky = 0; ky < fh; ky++) {
                        for (int32_t kx = 0; kx < fw; kx++) {
                            const int8_t *w = p->weights + (size_t)(ky * fw + kx) * C + c;
                            if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
                                acc = eq_rvv_dw_tap(acc, in + (origin + ky * (ptrdiff_t)row + (ptrdiff_t)kx * C + c), w,
                                                    vl);
                            } else {
                                acc = __riscv_vwmacc_vx_i32m8(acc, (int16_t)-p->input_offset,
                                                              __riscv_vsext_vf2_i16m4(__riscv_vle8_v_i8m2(w, vl), vl),
                                                              vl);
                            }
                        }
                    }
                }
                eq_rvv_requant_store_m8(acc, p->rq, p->shift, C, c, vl, p->output_offset, p->act_min, p->act_max,
                                        out + c, flags);
                c += (int32_t)vl;
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_RVV_DEPTHWISE_H */
