/* edgeq reference kernels: convolution, depthwise and transposed convolution, fully connected (int8, per-channel). */
#ifndef EQ_CONV_H
#define EQ_CONV_H

#include "eq_common.h"

typedef struct {
    int32_t batches, input_h, input_w, input_c;
    int32_t output_h, output_w, output_c;
    int32_t filter_h, filter_w, filter_c; /* filter_c = input_c / groups */
    int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *weights;   /* [output_c][filter_h][filter_w][filter_c] */
    const int32_t *bias;     /* [output_c] */
    eq_requant_t requant;
    const int32_t *out_mult; /* [output_c]; NULL with EQ_REQUANT_SHIFT, where out_shift alone rescales */
    const int32_t *out_shift;
} eq_conv_s8_params_t;

typedef struct {
    int32_t batches, input_h, input_w, input_c;
    int32_t output_h, output_w, output_c; /* output_c = input_c * depth_multiplier */
    int32_t filter_h, filter_w, depth_multiplier;
    int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *weights;   /* [filter_h][filter_w][output_c] */
    const int32_t *bias;
    eq_requant_t requant;
    const int32_t *out_mult;
    const int32_t *out_shift;
} eq_depthwise_conv_s8_params_t;

typedef struct {
    int32_t batches, input_depth, output_depth;
    int32_t input_offset, weights_offset, output_offset, act_min, act_max;
    const int8_t *weights;   /* [output_depth][input_depth] */
    const int32_t *bias;
    eq_requant_t requant;
    const int32_t *out_mult; /* per output unit (all equal for per-tensor weights) */
    const int32_t *out_shift;
} eq_fully_connected_s8_params_t;

/* The convolution TRANSPOSE_CONV transposes: its input is this one's output (pad_h/pad_w are that one's). */
typedef struct {
    int32_t batches, input_h, input_w, input_c;
    int32_t output_h, output_w, output_c;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *weights;   /* [output_c][filter_h][filter_w][input_c] */
    const int32_t *bias;     /* [output_c] */
    eq_requant_t requant;
    const int32_t *out_mult;
    const int32_t *out_shift;
} eq_transpose_conv_s8_params_t;

/* 16x8 layers: int16 activations (zero point 0, passed as bytes of the arena), int8 weights, int64 bias and
 * accumulators, TFLite's multipliers applied by eq_mbqm64. */
typedef struct {
    int32_t batches, input_h, input_w, input_c;
    int32_t output_h, output_w, output_c;
    int32_t filter_h, filter_w, filter_c;
    int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *weights;
    const int64_t *bias;
    const int32_t *out_mult;
    const int32_t *out_shift;
} eq_conv_s16_params_t;

typedef struct {
    int32_t batches, input_h, input_w, input_c;
    int32_t output_h, output_w, output_c;
    int32_t filter_h, filter_w, depth_multiplier;
    int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *weights;
    const int64_t *bias;
    const int32_t *out_mult;
    const int32_t *out_shift;
} eq_depthwise_conv_s16_params_t;

typedef struct {
    int32_t batches, input_depth, output_depth;
    int32_t input_offset, weights_offset, output_offset, act_min, act_max;
    const int8_t *weights;
    const int64_t *bias;
    const int32_t *out_mult;
    const int32_t *out_shift;
} eq_fully_connected_s16_params_t;

/* TRANSPOSE_CONV's gather, shared by both widths: the sum, over the input pixels of one batch whose scattered
 * taps reach output pixel (oy, ox), of w (one output channel's [filter_h][filter_w][input_c] weights) times the
 * input plus input_offset (int16 inputs when wide). */
typedef struct {
    int32_t input_h, input_w, input_c, filter_h, filter_w, stride_h, stride_w, pad_h, pad_w, input_offset;
} eq_transpose_geometry_t;

static inline int64_t eq_transpose_conv_sum(const eq_transpose_geometry_t *g, const int8_t *in, int wide,
                                            const int8_t *w, int32_t oy, int32_t ox)
{
    int64_t acc = 0;
    for (int32_t ky = 0; ky < g->filter_h; ky++) {
        const int32_t ty = oy + g->pad_h - ky; /* = iy * stride_h */
        if (ty < 0 || ty % g->stride_h != 0 || ty / g->stride_h >= g->input_h) {
            continue;
        }
        for (int32_t kx = 0; kx < g->filter_w; kx++) {
            const int32_t tx = ox + g->pad_w - kx;
            if (tx < 0 || tx % g->stride_w != 0 || tx / g->stride_w >= g->input_w) {
                continue;
            }
            const size_t x = ((size_t)(ty / g->stride_h) * g->input_w + tx / g->stride_w) * g->input_c;
            const int8_t *wk = w + ((size_t)ky * g->filter_w + kx) * g->input_c;
            for (int32_t c = 0; c < g->input_c; c++) {
                acc += (int64_t)wk[c] * (eq_load(in, x + (size_t)c, wide) + g->input_offset);
            }
        }
    }
    return acc;
}

/* 16x8 TRANSPOSE_CONV: eq_transpose_conv_s8's geometry, int16 activations, int64 bias and accumulators. */
typedef struct {
    int32_t batches, input_h, input_w, input_c;
    int32_t output_h, output_w, output_c;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset, output_offset, act_min, act_max;
    const int8_t *weights;   /* [output_c][filter_h][filter_w][input_c] */
    const int64_t *bias;     /* [output_c] */
    const int32_t *out_mult;
    const int32_t *out_shift;
} eq_transpose_conv_s16_params_t;

eq_status_t eq_conv_s16(const eq_conv_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_depthwise_conv_s16(const eq_depthwise_conv_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_fully_connected_s16(const eq_fully_connected_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_transpose_conv_s8(const eq_transpose_conv_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_transpose_conv_s16(const eq_transpose_conv_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_conv_s8(const eq_conv_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_depthwise_conv_s8(const eq_depthwise_conv_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_fully_connected_s8(const eq_fully_connected_s8_params_t *p, const int8_t *in, int8_t *out);

#endif /* EQ_CONV_H */
