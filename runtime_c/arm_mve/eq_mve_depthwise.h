/* Depthwise convolution (depth multiplier 1) on Helium, four channels per vector: VLDRB.S32 widens four int8
 * channels of NHWC to 32-bit lanes. Two horizontally adjacent output pixels share
 * each weight vector (MVE has no lane-wise multiply-accumulate: VMUL, VADD), and at stride 1 their overlapping input columns are loaded once. The input offset is
 * folded into the bias; taps in the padding read the input's zero point, which the fold turns into zero.
 * Weights keep TFLite's [filter_h][filter_w][channels] layout. */
#ifndef EQ_MVE_DEPTHWISE_H
#define EQ_MVE_DEPTHWISE_H

#include "eq_mve_common.h"

/* The filter's taps are compile-time constants: unrolled, so loads shared by the two pixels are merged. */
#if defined(__GNUC__) && !defined(__clang__)
#define EQ_MVE_UNROLL _Pragma("GCC unroll 32")
#else
#define EQ_MVE_UNROLL
#endif

typedef struct {
    const int8_t *weights;  /* [filter_h][filter_w][channels] */
    const int32_t *rq;      /* [4][channels rounded up to 4]: see eq_mve_common.h */
    int32_t input_h, input_w, channels, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_h, pad_w;
    int32_t pad_value, output_offset, act_min, act_max;
} eq_mve_dw_t;

/* Four channels (n < 4: the first n, the other lanes zero) widened to int32. */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_load4(const int8_t *x, int32_t n)
{
    return n == 4 ? vldrbq_s32(x) : vldrbq_z_s32(x, vctp32q((uint32_t)n));
}

static EQ_ALWAYS_INLINE void eq_mve_dw_store(const eq_mve_dw_t *p, int8_t *y, int32x4_t acc, const eq_mve_rq_t *q,
                                             int32_t n, const int mode)
{
    const int32x4_t out = eq_mve_requant(acc, q, p->output_offset, p->act_min, p->act_max, mode);
    if (n == 4) {
        vstrbq_s32(y, out);
    } else {
        vstrbq_p_s32(y, out, vctp32q((uint32_t)n));
    }
}

/* acc + x * w per lane (MVE multiplies vectors lane by lane without accumulating) */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_mla(int32x4_t acc, int32x4_t x, int32x4_t w)
{
    return vaddq_s32(acc, vmulq_s32(x, w));
}

/* Two interior output pixels (their windows inside the input) at x (window of the first, channel c). */
static EQ_ALWAYS_INLINE void eq_mve_dw_pair(const eq_mve_dw_t *p, const int8_t *x, int32_t c, int32_t n, int8_t *y,
                                            const int mode)
{
    const int32_t C = p->channels, row = p->input_w * C, next = p->stride_w * C;
    const int8_t *w = p->weights + c;
    const eq_mve_rq_t q = eq_mve_rq_load(p->rq, (C + 3) & ~3, c, mode);
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0;
    EQ_MVE_UNROLL
    for (int32_t ky = 0; ky < p->filter_h; ky++) {
        EQ_MVE_UNROLL
        for (int32_t kx = 0; kx < p->filter_w; kx++) {
            const int32x4_t wv = eq_mve_load4(w + (ky * p->filter_w + kx) * C, n);
            const int8_t *xi = x + ky * row + kx * C;
            a0 = eq_mve_mla(a0, eq_mve_load4(xi, n), wv);
            a1 = eq_mve_mla(a1, eq_mve_load4(xi + next, n), wv);
        }
    }
    eq_mve_dw_store(p, y, a0, &q, n, mode);
    eq_mve_dw_store(p, y + C, a1, &q, n, mode);
}

/* One output pixel whose window may cross the padding: window origin (y0, x0). */
static EQ_ALWAYS_INLINE void eq_mve_dw_edge(const eq_mve_dw_t *p, const int8_t *in, int32_t y0, int32_t x0, int32_t c,
                                            int32_t n, int8_t *y, const int mode)
{
    const int32_t C = p->channels;
    const eq_mve_rq_t q = eq_mve_rq_load(p->rq, (C + 3) & ~3, c, mode);
    const int32x4_t pad = vdupq_n_s32(p->pad_value);
    int32x4_t a = vdupq_n_s32(0);
    for (int32_t ky = 0; ky < p->filter_h; ky++) {
        const int32_t iy = y0 + ky;
        for (int32_t kx = 0; kx < p->filter_w; kx++) {
            const int32_t ix = x0 + kx;
            const int32x4_t wv = eq_mve_load4(p->weights + (ky * p->filter_w + kx) * C + c, n);
            const int inside = iy >= 0 && iy < p->input_h && ix >= 0 && ix < p->input_w;
            a = eq_mve_mla(a, inside ? eq_mve_load4(in + ((size_t)iy * p->input_w + ix) * C + c, n) : pad, wv);
        }
    }
    eq_mve_dw_store(p, y, a, &q, n, mode);
}

static EQ_ALWAYS_INLINE void eq_mve_dw_edge_all(const eq_mve_dw_t *p, const int8_t *in, int32_t y0, int32_t x0,
                                                int8_t *y, const int mode)
{
    const int32_t C = p->channels;
    int32_t c = 0;
    for (; c + 4 <= C; c += 4) {
        eq_mve_dw_edge(p, in, y0, x0, c, 4, y + c, mode);
    }
    if (c < C) {
        eq_mve_dw_edge(p, in, y0, x0, c, C - c, y + c, mode);
    }
}

static EQ_ALWAYS_INLINE eq_status_t eq_mve_depthwise_conv_s8(const eq_mve_dw_t *p, const int8_t *in, int8_t *out,
                                                             const int mode)
{
    const int32_t C = p->channels, sw = p->stride_w;
    /* output columns whose windows lie inside the input horizontally: [ox_lo, ox_hi) */
    const int32_t ox_lo = EQ_MIN((p->pad_w + sw - 1) / sw, p->output_w);
    const int32_t room = p->input_w - p->filter_w + p->pad_w;
    const int32_t ox_hi = room < 0 ? ox_lo : EQ_MAX(ox_lo, EQ_MIN(p->output_w, room / sw + 1));
    for (int32_t oy = 0; oy < p->output_h; oy++) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        int8_t *y = out + (size_t)oy * p->output_w * C;
        if (y0 < 0 || y0 + p->filter_h > p->input_h) {
            for (int32_t ox = 0; ox < p->output_w; ox++) {
                eq_mve_dw_edge_all(p, in, y0, ox * sw - p->pad_w, y + (size_t)ox * C, mode);
            }
            continue;
        }
        int32_t ox = 0;
        for (; ox < ox_lo; ox++) {
            eq_mve_dw_edge_all(p, in, y0, ox * sw - p->pad_w, y + (size_t)ox * C, mode);
        }
        for (; ox + 2 <= ox_hi; ox += 2) {
            const int8_t *x = in + ((size_t)y0 * p->input_w + (size_t)(ox * sw - p->pad_w)) * C;
            int32_t c = 0;
            for (; c + 4 <= C; c += 4) {
                eq_mve_dw_pair(p, x + c, c, 4, y + (size_t)ox * C + c, mode);
            }
            if (c < C) {
                eq_mve_dw_pair(p, x + c, c, C - c, y + (size_t)ox * C + c, mode);
            }
        }
        for (; ox < p->output_w; ox++) {
            eq_mve_dw_edge_all(p, in, y0, ox * sw - p->pad_w, y + (size_t)ox * C, mode);
        }
    }
    return EQ_OK;
}

#endif /* EQ_MVE_DEPTHWISE_H */
