/* Convolutions and fully connected layers on the DSP extension, as matrix products (eq_dsp_gemm.h).
 * 1x1 convolutions read their input rows in place; other convolutions copy two im2col windows at a time
 * into scratch, padding with the input's zero point, which the folded offset turns into zero. */
#ifndef EQ_DSP_CONV_H
#define EQ_DSP_CONV_H

#include "eq_dsp_gemm.h"

typedef struct {
    eq_dsp_gemm_t gemm;  /* depth = filter_h * filter_w * input_c */
    int32_t input_h, input_w, input_c, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t pad_value;   /* the input's zero point */
} eq_dsp_conv_t;

static EQ_ALWAYS_INLINE const int8_t *eq_dsp_pixel(const eq_dsp_conv_t *p, const int8_t *in, int32_t r)
{
    const int32_t oy = r / p->output_w, ox = r % p->output_w;
    return in + ((size_t)oy * p->stride_h * p->input_w + (size_t)ox * p->stride_w) * p->input_c;
}

/* 1x1, no padding, no dilation: output pixel r reads input pixel (oy * stride_h, ox * stride_w).
 * scratch: EQ_DSP_GEMM_SCRATCH(input_c) bytes, word-aligned. */
static EQ_ALWAYS_INLINE eq_status_t eq_dsp_conv_1x1_s8(const eq_dsp_conv_t *p, const int8_t *in, int8_t *out,
                                                       void *scratch, const int mode)
{
    const int32_t rows = p->output_h * p->output_w, channels = p->gemm.out_channels;
    int32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        eq_dsp_gemm_2rows(&p->gemm, eq_dsp_pixel(p, in, r), eq_dsp_pixel(p, in, r + 1), (uint32_t *)scratch,
                          out + (size_t)r * channels, out + (size_t)(r + 1) * channels, mode);
    }
    if (r < rows) {
        eq_dsp_gemm_1row(&p->gemm, eq_dsp_pixel(p, in, r), out + (size_t)r * channels, mode);
    }
    return EQ_OK;
}

/* The receptive field of output pixel r as one row of depth values. */
static EQ_ALWAYS_INLINE void eq_dsp_im2col(const eq_dsp_conv_t *p, const int8_t *in, int32_t r, int8_t *col)
{
    const int32_t oy = r / p->output_w, ox = r % p->output_w, c = p->input_c;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const size_t span = (size_t)p->filter_w * c;
    const int inside_x = x0 >= 0 && x0 + (p->filter_w - 1) * p->dilation_w < p->input_w;
    for (int32_t ky = 0; ky < p->filter_h; ky++, col += span) {
        const int32_t iy = y0 + ky * p->dilation_h;
        if (iy < 0 || iy >= p->input_h) {
            memset(col, p->pad_value, span);
        } else if (inside_x && p->dilation_w == 1) {
            memcpy(col, in + ((size_t)iy * p->input_w + x0) * c, span);
        } else {
            for (int32_t kx = 0; kx < p->filter_w; kx++) {
                const int32_t ix = x0 + kx * p->dilation_w;
                if (ix < 0 || ix >= p->input_w) {
                    memset(col + (size_t)kx * c, p->pad_value, (size_t)c);
                } else {
                    memcpy(col + (size_t)kx * c, in + ((size_t)iy * p->input_w + ix) * c, (size_t)c);
                }
            }
        }
    }
}

/* Any convolution without groups. scratch, word-aligned: EQ_DSP_GEMM_SCRATCH(depth) bytes for the unpacked
 * rows, then two windows of depth bytes. */
static EQ_ALWAYS_INLINE eq_status_t eq_dsp_conv_s8(const eq_dsp_conv_t *p, const int8_t *in, int8_t *out,
                                                   void *scratch, const int mode)
{
    const int32_t rows = p->output_h * p->output_w, channels = p->gemm.out_channels;
    uint32_t *u = (uint32_t *)scratch;
    int8_t *col0 = (int8_t *)scratch + EQ_DSP_GEMM_SCRATCH(p->gemm.depth), *col1 = col0 + p->gemm.depth;
    int32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        eq_dsp_im2col(p, in, r, col0);
        eq_dsp_im2col(p, in, r + 1, col1);
        eq_dsp_gemm_2rows(&p->gemm, col0, col1, u, out + (size_t)r * channels, out + (size_t)(r + 1) * channels,
                          mode);
    }
    if (r < rows) {
        eq_dsp_im2col(p, in, r, col0);
        eq_dsp_gemm_1row(&p->gemm, col0, out + (size_t)r * channels, mode);
    }
    return EQ_OK;
}

/* scratch: EQ_DSP_GEMM_SCRATCH(depth) bytes, word-aligned, when batches > 1. */
static EQ_ALWAYS_INLINE eq_status_t eq_dsp_fully_connected_s8(const eq_dsp_gemm_t *g, int32_t batches,
                                                              const int8_t *in, int8_t *out, void *scratch,
                                                              const int mode)
{
    int32_t b = 0;
    for (; b + 2 <= batches; b += 2) {
        eq_dsp_gemm_2rows(g, in + (size_t)b * g->depth, in + (size_t)(b + 1) * g->depth, (uint32_t *)scratch,
                          out + (size_t)b * g->out_channels, out + (size_t)(b + 1) * g->out_channels, mode);
    }
    if (b < batches) {
        eq_dsp_gemm_1row(g, in + (size_t)b * g->depth, out + (size_t)b * g->out_channels, mode);
    }
    return EQ_OK;
}

#endif /* EQ_DSP_CONV_H */
