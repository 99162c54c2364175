/* The matrix product under convolutions and fully connected layers: each output row is the dot products
 * of one int8 input row (a pixel's channels, or an im2col window) with every output channel's weights.
 * SXTB16 splits a word of four int8 into the even and the odd pair, for weights and inputs alike, so
 * SMLAD multiplies matching pairs with no reordering: 8 MACs per weight word over two rows. */
#ifndef EQ_DSP_GEMM_H
#define EQ_DSP_GEMM_H

#include "eq_dsp_common.h"

/* Channels whose weights are all zero (dead channels, frequent in pruned or regularised MobileNets) give one
 * constant whatever the input: the build leaves them out of weights and tables, and each output row starts as a
 * copy of fill, which holds their constants, before the computed channels are written over it. */
typedef struct {
    const int8_t *weights;  /* [channels][depth]: the computed channels only */
    const int32_t *bias;    /* [channels]: bias + input_offset * the channel's weight sum */
    const int32_t *mult;    /* [channels], multiplier mode only */
    const int32_t *shift;   /* [channels] */
    const uint16_t *live;   /* [channels]: each computed channel's place in the output row; NULL: in order */
    const int8_t *fill;     /* [out_channels]: the output row's dead channels; NULL: none */
    int32_t depth, channels, out_channels, output_offset, act_min, act_max;
} eq_dsp_gemm_t;

/* Where computed channel c goes in an output row. */
static EQ_ALWAYS_INLINE int32_t eq_dsp_out(const eq_dsp_gemm_t *g, int32_t c)
{
    return g->live ? g->live[c] : c;
}

static EQ_ALWAYS_INLINE void eq_dsp_fill(const eq_dsp_gemm_t *g, int8_t *y)
{
    if (g->fill) {
        memcpy(y, g->fill, (size_t)g->out_channels);
    }
}

static EQ_ALWAYS_INLINE int32_t eq_dsp_dot4(uint32_t x, const int8_t *w, int32_t acc)
{
    const uint32_t wv = eq_load4(w);
    acc = eq_smlad(eq_sxtb16(x), eq_sxtb16(wv), acc);
    return eq_smlad(eq_sxtb16_ror8(x), eq_sxtb16_ror8(wv), acc);
}

/* A row's int8 values sign-extended once into SXTB16 order (even pair, odd pair per word of four), so the
 * product's inner loop splits only weights; the last depth % 4 values stay in the int8 row. */
static EQ_ALWAYS_INLINE void eq_dsp_unpack(const int8_t *x, int32_t depth, uint32_t *u)
{
    for (int32_t k = 0; k + 4 <= depth; k += 4, u += 2) {
        const uint32_t v = eq_load4(x + k);
        u[0] = eq_sxtb16(v);
        u[1] = eq_sxtb16_ror8(v);
    }
}

/* Two input rows x0, x1 (unpacked into u: the words of x0, then those of x1) -> two output rows y0, y1.
 * Two channels per pass: four accumulators, eight MACs per weight word loaded. */
static EQ_ALWAYS_INLINE void eq_dsp_gemm_2rows(const eq_dsp_gemm_t *g, const int8_t *x0, const int8_t *x1,
                                               const uint32_t *u, int8_t *y0, int8_t *y1, const int mode)
{
    const int32_t depth = g->depth, pairs = g->channels / 2, body = depth & ~3;
    const uint32_t *u1 = u + body / 2;
    const int8_t *wa = g->weights;
    eq_dsp_fill(g, y0);
    eq_dsp_fill(g, y1);
    for (int32_t q = 0; q < pairs; q++, wa += 2 * depth) {
        const int32_t c = 2 * q;
        const int8_t *wb = wa + depth;
        int32_t a0 = g->bias[c], b0 = g->bias[c + 1], a1 = a0, b1 = b0;
        const uint32_t *pu = u, *pv = u1;
        const int8_t *w = wa;
        for (const int8_t *end = wa + body; w < end; w += 4, pu += 2, pv += 2) {
            const uint32_t u02 = pu[0], u13 = pu[1], v02 = pv[0], v13 = pv[1];
            uint32_t wv = eq_load4(w);
            uint32_t w02 = eq_sxtb16(wv), w13 = eq_sxtb16_ror8(wv);
            a0 = eq_smlad(u13, w13, eq_smlad(u02, w02, a0));
            a1 = eq_smlad(v13, w13, eq_smlad(v02, w02, a1));
            wv = eq_load4(w + depth);
            w02 = eq_sxtb16(wv);
            w13 = eq_sxtb16_ror8(wv);
            b0 = eq_smlad(u13, w13, eq_smlad(u02, w02, b0));
            b1 = eq_smlad(v13, w13, eq_smlad(v02, w02, b1));
        }
        for (int32_t k = body; k < depth; k++) {
            a0 += x0[k] * wa[k];
            a1 += x1[k] * wa[k];
            b0 += x0[k] * wb[k];
            b1 += x1[k] * wb[k];
        }
        const int32_t o = eq_dsp_out(g, c), o1 = eq_dsp_out(g, c + 1);
        y0[o] = eq_dsp_requantize(a0, g->mult, g->shift, c, g->output_offset, g->act_min, g->act_max, mode);
        y1[o] = eq_dsp_requantize(a1, g->mult, g->shift, c, g->output_offset, g->act_min, g->act_max, mode);
        y0[o1] = eq_dsp_requantize(b0, g->mult, g->shift, c + 1, g->output_offset, g->act_min, g->act_max, mode);
        y1[o1] = eq_dsp_requantize(b1, g->mult, g->shift, c + 1, g->output_offset, g->act_min, g->act_max, mode);
    }
    if (g->channels % 2) {
        const int32_t c = g->channels - 1;
        int32_t a0 = g->bias[c], a1 = a0;
        for (int32_t k = 0; k < body; k += 4) {
            const uint32_t w = eq_load4(wa + k), w02 = eq_sxtb16(w), w13 = eq_sxtb16_ror8(w);
            a0 = eq_smlad(u[k / 2 + 1], w13, eq_smlad(u[k / 2], w02, a0));
            a1 = eq_smlad(u1[k / 2 + 1], w13, eq_smlad(u1[k / 2], w02, a1));
        }
        for (int32_t k = body; k < depth; k++) {
            a0 += x0[k] * wa[k];
            a1 += x1[k] * wa[k];
        }
        y0[eq_dsp_out(g, c)] = eq_dsp_requantize(a0, g->mult, g->shift, c, g->output_offset, g->act_min, g->act_max, mode);
        y1[eq_dsp_out(g, c)] = eq_dsp_requantize(a1, g->mult, g->shift, c, g->output_offset, g->act_min, g->act_max, mode);
    }
}

/* Two rows straight from int8 (no scratch): unpacked into u, then the product. */
static EQ_ALWAYS_INLINE void eq_dsp_gemm_2rows_s8(const eq_dsp_gemm_t *g, const int8_t *x0, const int8_t *x1,
                                                  uint32_t *u, int8_t *y0, int8_t *y1, const int mode)
{
    eq_dsp_unpack(x0, g->depth, u);
    eq_dsp_unpack(x1, g->depth, u + (g->depth & ~3) / 2);
    eq_dsp_gemm_2rows(g, x0, x1, u, y0, y1, mode);
}

/* Scratch bytes for two unpacked rows. */
#define EQ_DSP_GEMM_SCRATCH(depth) (4 * ((depth) & ~3))

/* One input row: four channels per pass, so each input word is split once for four weight words. */
static EQ_ALWAYS_INLINE void eq_dsp_gemm_1row(const eq_dsp_gemm_t *g, const int8_t *x, int8_t *y, const int mode)
{
    const int32_t depth = g->depth, quads = g->channels / 4;
    const int8_t *w = g->weights;
    eq_dsp_fill(g, y);
    for (int32_t q = 0; q < quads; q++, w += 4 * depth) {
        const int32_t c = 4 * q;
        int32_t a = g->bias[c], b = g->bias[c + 1], d = g->bias[c + 2], e = g->bias[c + 3];
        int32_t k = 0;
        for (; k + 4 <= depth; k += 4) {
            const uint32_t u = eq_load4(x + k);
            a = eq_dsp_dot4(u, w + k, a);
            b = eq_dsp_dot4(u, w + depth + k, b);
            d = eq_dsp_dot4(u, w + 2 * depth + k, d);
            e = eq_dsp_dot4(u, w + 3 * depth + k, e);
        }
        for (; k < depth; k++) {
            a += x[k] * w[k];
            b += x[k] * w[depth + k];
            d += x[k] * w[2 * depth + k];
            e += x[k] * w[3 * depth + k];
        }
        y[eq_dsp_out(g, c)] = eq_dsp_requantize(a, g->mult, g->shift, c, g->output_offset, g->act_min, g->act_max, mode);
        y[eq_dsp_out(g, c + 1)] = eq_dsp_requantize(b, g->mult, g->shift, c + 1, g->output_offset, g->act_min, g->act_max, mode);
        y[eq_dsp_out(g, c + 2)] = eq_dsp_requantize(d, g->mult, g->shift, c + 2, g->output_offset, g->act_min, g->act_max, mode);
        y[eq_dsp_out(g, c + 3)] = eq_dsp_requantize(e, g->mult, g->shift, c + 3, g->output_offset, g->act_min, g->act_max, mode);
    }
    for (int32_t c = 4 * quads; c < g->channels; c++, w += depth) {
        int32_t a = g->bias[c];
        int32_t k = 0;
        for (; k + 4 <= depth; k += 4) {
            a = eq_dsp_dot4(eq_load4(x + k), w + k, a);
        }
        for (; k < depth; k++) {
            a += x[k] * w[k];
        }
        y[eq_dsp_out(g, c)] = eq_dsp_requantize(a, g->mult, g->shift, c, g->output_offset, g->act_min, g->act_max, mode);
    }
}

#endif /* EQ_DSP_GEMM_H */
