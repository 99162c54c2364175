/* Convolutions and fully connected layers as matrix products on scalar RV32: blocks of up to four output pixels
 * by four output channels, sixteen 32-bit accumulators in registers. Per depth step a block loads four input
 * values and four weights (one byte load each, at constant offsets from two pointers) for sixteen mul + add.
 * Weights are repacked at build time as [channel block][depth][4] (the last block padded with zero channels),
 * so one pointer walks a block's weights. A block's pixels sit `stride` bytes apart: the input itself for a
 * 1x1 convolution with stride 1 (stride = channels) or a fully connected layer, else their receptive fields
 * copied side by side into scratch (stride = depth). */
#ifndef EQ_RV32_CONV_H
#define EQ_RV32_CONV_H

#include "eq_rv32_common.h"

#define EQ_RV32_BLOCK 4

/* two depth steps per pass: half the loop's own instructions */
#if defined(__clang__)
#define EQ_RV32_UNROLL2 _Pragma("clang loop unroll_count(2)")
#else
#define EQ_RV32_UNROLL2
#endif

typedef struct {
    const int8_t *weights;  /* [ceil(channels / 4)][depth][4] */
    const int32_t *bias;    /* [channels rounded up to 4]: bias + input_offset * the channel's weight sum */
    const int32_t *rq;      /* [channels rounded up to 4][EQ_RV32_RQ]: see eq_rv32_common.h */
    int32_t depth, channels, output_offset, act_min, act_max;
} eq_rv32_gemm_t;

typedef struct {
    eq_rv32_gemm_t gemm;  /* depth = filter_h * filter_w * input_c */
    int32_t input_h, input_w, input_c, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t pad_value;    /* the input's zero point */
} eq_rv32_conv_t;

/* `rows` pixels (1 to 4; x + i * stride) -> y + i * ystride, every channel. */
static EQ_ALWAYS_INLINE void eq_rv32_gemm(const eq_rv32_gemm_t *g, const int8_t *x, int32_t stride, int8_t *y,
                                          int32_t ystride, const int rows, const int mode)
{
    const int32_t depth = g->depth, channels = g->channels;
    const int8_t *w = g->weights;
    for (int32_t c = 0; c < channels; c += EQ_RV32_BLOCK, w += EQ_RV32_BLOCK * depth) {
        int32_t acc[EQ_RV32_BLOCK][EQ_RV32_BLOCK];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < EQ_RV32_BLOCK; j++) {
                acc[i][j] = g->bias[c + j];
            }
        }
        const int8_t *xk = x, *wk = w;
        EQ_RV32_UNROLL2
        for (int32_t k = 0; k < depth; k++, xk++, wk += EQ_RV32_BLOCK) {
            const int32_t w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3];
            for (int i = 0; i < rows; i++) {
                const int32_t xi = xk[i * stride];
                acc[i][0] += xi * w0;
                acc[i][1] += xi * w1;
                acc[i][2] += xi * w2;
                acc[i][3] += xi * w3;
            }
        }
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < EQ_RV32_BLOCK && c + j < channels; j++) {
                y[i * ystride + c + j] = eq_rv32_requant(acc[i][j], g->rq + EQ_RV32_RQ * (c + j), g->output_offset,
                                                         g->act_min, g->act_max, mode);
            }
        }
    }
}

/* Output pixel r's receptive field, [filter_h][filter_w][input_c], into col; padding reads the zero point. */
static EQ_ALWAYS_INLINE void eq_rv32_im2col(const eq_rv32_conv_t *p, const int8_t *in, int32_t r, int8_t *col)
{
    const int32_t oy = r / p->output_w, ox = r % p->output_w, c = p->input_c;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int inside_x = x0 >= 0 && x0 + (p->filter_w - 1) * p->dilation_w < p->input_w;
    for (int32_t ky = 0; ky < p->filter_h; ky++, col += p->filter_w * c) {
        const int32_t iy = y0 + ky * p->dilation_h;
        if (iy < 0 || iy >= p->input_h) {
            memset(col, (int8_t)p->pad_value, (size_t)(p->filter_w * c));
        } else if (inside_x && p->dilation_w == 1) {
            memcpy(col, in + ((size_t)iy * p->input_w + x0) * c, (size_t)(p->filter_w * c));
        } else {
            for (int32_t kx = 0; kx < p->filter_w; kx++) {
                const int32_t ix = x0 + kx * p->dilation_w;
                if (ix < 0 || ix >= p->input_w) {
                    memset(col + kx * c, (int8_t)p->pad_value, (size_t)c);
                } else {
                    memcpy(col + kx * c, in + ((size_t)iy * p->input_w + ix) * c, (size_t)c);
                }
            }
        }
    }
}

/* Any convolution without groups, one image; scratch holds 4 * depth bytes (none for `direct`: a 1x1
 * convolution with stride 1 and no padding, whose pixels the kernel reads in place). */
static EQ_ALWAYS_INLINE eq_status_t eq_rv32_conv_s8(const eq_rv32_conv_t *p, const int8_t *in, int8_t *out,
                                                    int8_t *scratch, const int direct, const int mode)
{
    const int32_t pixels = p->output_h * p->output_w, channels = p->gemm.channels, depth = p->gemm.depth;
    int32_t r = 0;
    if (direct) {
        for (; r + EQ_RV32_BLOCK <= pixels; r += EQ_RV32_BLOCK) {
            eq_rv32_gemm(&p->gemm, in + (size_t)r * depth, depth, out + (size_t)r * channels, channels,
                         EQ_RV32_BLOCK, mode);
        }
        for (; r < pixels; r++) {
            eq_rv32_gemm(&p->gemm, in + (size_t)r * depth, depth, out + (size_t)r * channels, channels, 1, mode);
        }
        return EQ_OK;
    }
    for (; r + EQ_RV32_BLOCK <= pixels; r += EQ_RV32_BLOCK) {
        for (int32_t i = 0; i < EQ_RV32_BLOCK; i++) {
            eq_rv32_im2col(p, in, r + i, scratch + (size_t)i * depth);
        }
        eq_rv32_gemm(&p->gemm, scratch, depth, out + (size_t)r * channels, channels, EQ_RV32_BLOCK, mode);
    }
    for (; r < pixels; r++) {
        eq_rv32_im2col(p, in, r, scratch);
        eq_rv32_gemm(&p->gemm, scratch, depth, out + (size_t)r * channels, channels, 1, mode);
    }
    return EQ_OK;
}

/* Fully connected: the batches are the pixels, read in place. */
static EQ_ALWAYS_INLINE eq_status_t eq_rv32_fully_connected_s8(const eq_rv32_gemm_t *g, int32_t batches,
                                                               const int8_t *in, int8_t *out, const int mode)
{
    int32_t b = 0;
    for (; b + EQ_RV32_BLOCK <= batches; b += EQ_RV32_BLOCK) {
        eq_rv32_gemm(g, in + (size_t)b * g->depth, g->depth, out + (size_t)b * g->channels, g->channels,
                     EQ_RV32_BLOCK, mode);
    }
    for (; b < batches; b++) {
        eq_rv32_gemm(g, in + (size_t)b * g->depth, g->depth, out + (size_t)b * g->channels, g->channels, 1, mode);
    }
    return EQ_OK;
}

#endif /* EQ_RV32_CONV_H */
