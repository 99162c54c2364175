/* Convolutions and fully connected layers on Helium, as matrix products (eq_mve_gemm.h). 1x1 convolutions
 * and fully connected layers whose depth is a multiple of 16 read their input rows in place; others copy
 * rows (or im2col windows, padded with the input's zero point, which the folded offset turns into zero) two
 * at a time into scratch rows of whole chunks. */
#ifndef EQ_MVE_CONV_H
#define EQ_MVE_CONV_H

#include "eq_mve_gemm.h"

typedef struct {
    eq_mve_gemm_t gemm;  /* depth: filter_h * filter_w * input_c rounded up to 16 */
    int32_t input_h, input_w, input_c, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t pad_value;   /* the input's zero point */
} eq_mve_conv_t;

static EQ_ALWAYS_INLINE const int8_t *eq_mve_pixel(const eq_mve_conv_t *p, const int8_t *in, int32_t r)
{
    if (p->stride_h == 1 && p->stride_w == 1) {
        return in + (size_t)r * p->input_c;
    }
    const int32_t oy = r / p->output_w, ox = r % p->output_w;
    return in + ((size_t)oy * p->stride_h * p->input_w + (size_t)ox * p->stride_w) * p->input_c;
}

/* 1x1, no padding, no dilation: output pixel r reads input pixel (oy * stride_h, ox * stride_w). scratch (two
 * rows of gemm.depth bytes) when input_c is not a multiple of 16. An odd last pixel runs as a pair with itself
 * (one inlined product per layer). */
static EQ_ALWAYS_INLINE eq_status_t eq_mve_conv_1x1_s8(const eq_mve_conv_t *p, const int8_t *in, int8_t *out,
                                                       int8_t *scratch, const int mode)
{
    const int32_t rows = p->output_h * p->output_w, channels = p->gemm.channels, depth = p->gemm.depth;
    for (int32_t r = 0; r < rows; r += 2) {
        const int32_t r1 = r + 1 < rows ? r + 1 : r;
        const int8_t *x0 = eq_mve_pixel(p, in, r), *x1 = eq_mve_pixel(p, in, r1);
        if (p->input_c != depth) {
            eq_mve_copy(scratch, x0, p->input_c);
            eq_mve_copy(scratch + depth, x1, p->input_c);
            x0 = scratch;
            x1 = scratch + depth;
        }
        eq_mve_gemm_rows(&p->gemm, x0, x1, out + (size_t)r * channels, out + (size_t)r1 * channels, 1, mode);
    }
    return EQ_OK;
}

/* The receptive field of output pixel r as one row of depth values. */
static EQ_ALWAYS_INLINE void eq_mve_im2col(const eq_mve_conv_t *p, const int8_t *in, int32_t r, int8_t *col)
{
    const int32_t oy = r / p->output_w, ox = r % p->output_w, c = p->input_c;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int32_t span = p->filter_w * c;
    const int inside_x = x0 >= 0 && x0 + (p->filter_w - 1) * p->dilation_w < p->input_w;
    if (inside_x && p->dilation_w == 1 && y0 >= 0 && y0 + (p->filter_h - 1) * p->dilation_h < p->input_h) {
        /* the usual window, inside the input: one copy per filter row, no checks */
        const int8_t *src = in + ((size_t)y0 * p->input_w + x0) * c;
        const size_t next = (size_t)p->dilation_h * p->input_w * c;
        EQ_MVE_UNROLL
        for (int32_t ky = 0; ky < p->filter_h; ky++, col += span, src += next) {
            eq_mve_copy(col, src, span);
        }
        return;
    }
    for (int32_t ky = 0; ky < p->filter_h; ky++, col += span) {
        const int32_t iy = y0 + ky * p->dilation_h;
        if (iy < 0 || iy >= p->input_h) {
            eq_mve_fill(col, (int8_t)p->pad_value, span);
        } else if (inside_x && p->dilation_w == 1) {
            eq_mve_copy(col, in + ((size_t)iy * p->input_w + x0) * c, span);
        } else {
            for (int32_t kx = 0; kx < p->filter_w; kx++) {
                const int32_t ix = x0 + kx * p->dilation_w;
                if (ix < 0 || ix >= p->input_w) {
                    eq_mve_fill(col + kx * c, (int8_t)p->pad_value, c);
                } else {
                    eq_mve_copy(col + kx * c, in + ((size_t)iy * p->input_w + ix) * c, c);
                }
            }
        }
    }
}

/* Any convolution without groups. scratch: two windows of gemm.depth bytes. An odd last pixel runs as a pair
 * with itself, as in eq_mve_conv_1x1_s8. */
static EQ_ALWAYS_INLINE eq_status_t eq_mve_conv_s8(const eq_mve_conv_t *p, const int8_t *in, int8_t *out,
                                                   int8_t *scratch, const int mode)
{
    const int32_t rows = p->output_h * p->output_w, channels = p->gemm.channels;
    int8_t *col0 = scratch, *col1 = scratch + p->gemm.depth;
    for (int32_t r = 0; r < rows; r += 2) {
        const int32_t r1 = r + 1 < rows ? r + 1 : r;
        eq_mve_im2col(p, in, r, col0);
        eq_mve_im2col(p, in, r1, col1);
        eq_mve_gemm_rows(&p->gemm, col0, col1, out + (size_t)r * channels, out + (size_t)r1 * channels, 1, mode);
    }
    return EQ_OK;
}

/* scratch: two rows of g->depth bytes when the true depth (in_depth) is not a multiple of 16. */
static EQ_ALWAYS_INLINE eq_status_t eq_mve_fully_connected_s8(const eq_mve_gemm_t *g, int32_t batches,
                                                              int32_t in_depth, const int8_t *in, int8_t *out,
                                                              int8_t *scratch, const int mode)
{
    const int32_t depth = g->depth;
    int32_t b = 0;
    for (; b + 2 <= batches; b += 2) {
        const int8_t *x0 = in + (size_t)b * in_depth, *x1 = x0 + in_depth;
        if (in_depth != depth) {
            eq_mve_copy(scratch, x0, in_depth);
            eq_mve_copy(scratch + depth, x1, in_depth);
            x0 = scratch;
            x1 = scratch + depth;
        }
        eq_mve_gemm_rows(g, x0, x1, out + (size_t)b * g->channels, out + (size_t)(b + 1) * g->channels, 1, mode);
    }
    if (b < batches) {
        const int8_t *x0 = in + (size_t)b * in_depth;
        if (in_depth != depth) {
            eq_mve_copy(scratch, x0, in_depth);
            x0 = scratch;
        }
        eq_mve_gemm_rows(g, x0, NULL, out + (size_t)b * g->channels, NULL, 0, mode);
    }
    return EQ_OK;
}

#endif /* EQ_MVE_CONV_H */
