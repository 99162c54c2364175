/* Depthwise convolution (depth multiplier 1) on Helium, eight channels per step: VLDRB.S16 widens eight int8
 * channels of NHWC to 16-bit lanes, and VMULLB/VMULLT multiply the even and the odd lanes into 32-bit products
 * (MVE has no lane-wise multiply-accumulate: each is added by VADD). Two horizontally adjacent output pixels
 * share each weight vector. Weights are repacked at build time per group of eight channels, tap after tap, so
 * a group's taps load from one pointer with small immediate offsets; the rescale table holds each group's even
 * channels then its odd ones, and VMOVNB/VMOVNT interleave them back into channel order. The input offset is
 * folded into the bias; the padding is the input's zero point, which the fold turns into zero. */
#ifndef EQ_MVE_DEPTHWISE_H
#define EQ_MVE_DEPTHWISE_H

#include "eq_mve_common.h"

typedef struct {
    const int8_t *weights;  /* [channels / 8, rounded up][filter_h * filter_w][8], zero beyond channels */
    const int32_t *rq;      /* [3 or 4][channels rounded up to 8], per group of 8: even channels, then odd */
    int32_t input_h, input_w, channels, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_h, pad_w;
    int32_t pad_value, output_offset, act_min, act_max;
} eq_mve_dw_t;

/* Eight channels (n < 8: the first n, the other lanes zero) widened to int16. */
static EQ_ALWAYS_INLINE int16x8_t eq_mve_load8(const int8_t *x, int32_t n)
{
    return n == 8 ? vldrbq_s16(x) : vldrbq_z_s16(x, vctp16q((uint32_t)n));
}

/* even += x * w on the even lanes, odd += on the odd lanes. One statement, so gcc neither computes every
 * product first (and spills them) nor reassociates the sums. */
static EQ_ALWAYS_INLINE void eq_mve_mla8(int32x4_t *even, int32x4_t *odd, int16x8_t x, int16x8_t w)
{
    int32x4_t t;
    __asm__("vmullb.s16 %q[t], %q[x], %q[w]\n\t"
            "vadd.i32 %q[e], %q[e], %q[t]\n\t"
            "vmullt.s16 %q[t], %q[x], %q[w]\n\t"
            "vadd.i32 %q[o], %q[o], %q[t]"
            : [e] "+w"(*even), [o] "+w"(*odd), [t] "=&w"(t)
            : [x] "w"(x), [w] "w"(w));
}

/* The first tap: even = x * w on the even lanes, odd on the odd lanes. */
static EQ_ALWAYS_INLINE void eq_mve_mul8(int32x4_t *even, int32x4_t *odd, int16x8_t x, int16x8_t w)
{
    __asm__("vmullb.s16 %q[e], %q[x], %q[w]\n\t"
            "vmullt.s16 %q[o], %q[x], %q[w]"
            : [e] "=&w"(*even), [o] "=&w"(*odd)
            : [x] "w"(x), [w] "w"(w));
}

/* Keeps a tap's loads next to its products: gcc 12's first scheduling pass otherwise hoists every load of the
 * unrolled taps to the top and spills them (8 vector registers). */
static EQ_ALWAYS_INLINE void eq_mve_barrier(void)
{
    __asm__ volatile("" ::: "memory");
}

/* One pixel's even and odd accumulators of channels c.. -> int8 in channel order. */
static EQ_ALWAYS_INLINE void eq_mve_dw_store(const eq_mve_dw_t *p, int8_t *y, int32x4_t even, int32x4_t odd,
                                             int32_t c, int32_t n, const int mode)
{
    const int32_t stride = (p->channels + 7) & ~7;
    const eq_mve_rq_t qe = eq_mve_rq_load(p->rq, stride, c, mode);
    even = eq_mve_requant(even, &qe, p->output_offset, p->act_min, p->act_max, mode);
    const eq_mve_rq_t qo = eq_mve_rq_load(p->rq, stride, c + 4, mode);
    odd = eq_mve_requant(odd, &qo, p->output_offset, p->act_min, p->act_max, mode);
    const int16x8_t out = vmovntq_s32(vreinterpretq_s16_s32(even), odd);  /* even's narrowed lanes stay in place */
    if (n == 8) {
        vstrbq_s16(y, out);
    } else {
        vstrbq_p_s16(y, out, vctp16q((uint32_t)n));
    }
}

/* Two output pixels, the first's window at x0 in the staged rows (channel c), into y0 and y1. y1 is written
 * first, so an odd last pixel passes y1 == y0 and keeps its own result. */
static EQ_ALWAYS_INLINE void eq_mve_dw_pair(const eq_mve_dw_t *p, const int8_t *x0, int8_t *y0, int8_t *y1,
                                            int32_t row, int32_t c, int32_t n, const int mode)
{
    const int32_t C = p->channels, taps = p->filter_h * p->filter_w;
    const int8_t *x1 = x0 + p->stride_w * C;
    const int8_t *w = p->weights + (size_t)c * taps;
    int32x4_t e0, o0, e1, o1;
    EQ_MVE_UNROLL
    for (int32_t ky = 0; ky < p->filter_h; ky++) {
        EQ_MVE_UNROLL
        for (int32_t kx = 0; kx < p->filter_w; kx++) {
            const int16x8_t wv = vldrbq_s16(w + 8 * (ky * p->filter_w + kx));
            const int32_t at = ky * row + kx * C;
            if (ky == 0 && kx == 0) {
                eq_mve_mul8(&e0, &o0, eq_mve_load8(x0, n), wv);
                eq_mve_mul8(&e1, &o1, eq_mve_load8(x1, n), wv);
            } else {
                eq_mve_mla8(&e0, &o0, eq_mve_load8(x0 + at, n), wv);
                eq_mve_mla8(&e1, &o1, eq_mve_load8(x1 + at, n), wv);
            }
            eq_mve_barrier();
        }
    }
    eq_mve_dw_store(p, y1, e1, o1, c, n, mode);
    eq_mve_dw_store(p, y0, e0, o0, c, n, mode);
}

/* The input row iy as a padded row of EQ_MVE_DW_ROW(p) pixels: the zero point outside the input (up to the
 * windows of an even number of output pixels). */
#define EQ_MVE_DW_ROW(p) (((((p)->output_w + 1) & ~1) - 1) * (p)->stride_w + (p)->filter_w)

static EQ_ALWAYS_INLINE void eq_mve_dw_stage(const eq_mve_dw_t *p, const int8_t *in, int32_t iy, int8_t *dst)
{
    const int32_t C = p->channels, width = EQ_MVE_DW_ROW(p);
    if (iy < 0 || iy >= p->input_h) {
        eq_mve_fill(dst, (int8_t)p->pad_value, width * C);
        return;
    }
    const int32_t copied = EQ_MIN(p->input_w, width - p->pad_w), right = width - p->pad_w - copied;
    eq_mve_fill(dst, (int8_t)p->pad_value, p->pad_w * C);
    eq_mve_copy(dst + p->pad_w * C, in + (size_t)iy * p->input_w * C, copied * C);
    eq_mve_fill(dst + (p->pad_w + copied) * C, (int8_t)p->pad_value, right * C);
}

/* scratch: filter_h padded rows of EQ_MVE_DW_ROW(p) * channels bytes. Each output row first stages the input
 * rows under it with their padding (a few percent of the products' time), so every pixel runs the same
 * unrolled code: no edge cases, one inlined copy per layer. */
static EQ_ALWAYS_INLINE eq_status_t eq_mve_depthwise_conv_s8(const eq_mve_dw_t *p, const int8_t *in, int8_t *out,
                                                             int8_t *scratch, const int mode)
{
    const int32_t C = p->channels, row = EQ_MVE_DW_ROW(p) * C, step = p->stride_w * C;
    for (int32_t oy = 0; oy < p->output_h; oy++) {
        for (int32_t ky = 0; ky < p->filter_h; ky++) {
            eq_mve_dw_stage(p, in, oy * p->stride_h - p->pad_h + ky, scratch + (size_t)ky * row);
        }
        int8_t *y = out + (size_t)oy * p->output_w * C;
        for (int32_t ox = 0; ox < p->output_w; ox += 2) {
            const int8_t *x0 = scratch + (size_t)ox * step;
            int8_t *y0 = y + (size_t)ox * C, *y1 = ox + 1 < p->output_w ? y0 + C : y0;
            int32_t c = 0;
            for (; c + 8 <= C; c += 8) {
                eq_mve_dw_pair(p, x0 + c, y0 + c, y1 + c, row, c, 8, mode);
            }
            if (c < C) {
                eq_mve_dw_pair(p, x0 + c, y0 + c, y1 + c, row, c, C - c, mode);
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_MVE_DEPTHWISE_H */
