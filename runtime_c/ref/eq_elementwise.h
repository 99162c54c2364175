/* edgeq reference kernels: add, sub, squared difference, mul, maximum, minimum and prelu with broadcasting, pad,
 * concatenation (int8). */
#ifndef EQ_ELEMENTWISE_H
#define EQ_ELEMENTWISE_H

#include "eq_common.h"

/* Output dims d0..d3; each input is read at sum(index_i * stride_i), stride 0 on broadcast dims. */
typedef struct {
    int32_t d0, d1, d2, d3;
    int32_t in0_s0, in0_s1, in0_s2, in0_s3;
    int32_t in1_s0, in1_s1, in1_s2, in1_s3;
    int32_t in0_offset, in1_offset, output_offset, left_shift;
    int32_t in0_mult, in0_shift, in1_mult, in1_shift, out_mult, out_shift;
    int32_t act_min, act_max;
    eq_requant_t requant; /* EQ_REQUANT_SHIFT: inputs aligned by in*_shift left shifts, no multipliers */
} eq_add_s8_params_t;

typedef eq_add_s8_params_t eq_sub_s8_params_t;
/* 16x8 models' int16 tensors, passed as bytes of the arena */
typedef eq_add_s8_params_t eq_add_s16_params_t;
typedef eq_add_s8_params_t eq_sub_s16_params_t;
typedef eq_add_s8_params_t eq_squared_difference_s8_params_t; /* left_shift 7; out_mult/out_shift may exceed 1 */
typedef eq_add_s8_params_t eq_squared_difference_s16_params_t; /* left_shift 0 */

/* out = x >= 0 ? x * m1 : x * alpha * m2 (x and alpha with their offsets), alpha a constant read through
 * broadcast strides like a second input. */
typedef struct {
    int32_t d0, d1, d2, d3;
    int32_t in0_s0, in0_s1, in0_s2, in0_s3;
    int32_t in1_s0, in1_s1, in1_s2, in1_s3;
    int32_t in0_offset, in1_offset, output_offset;
    int32_t out_mult1, out_shift1, out_mult2, out_shift2;
    const int8_t *alpha;
} eq_prelu_s8_params_t;

typedef eq_prelu_s8_params_t eq_prelu_s16_params_t; /* int16 input and output, int8 alpha, as TFLite Micro has it */

typedef struct {
    int32_t d0, d1, d2, d3;
    int32_t in0_s0, in0_s1, in0_s2, in0_s3;
    int32_t in1_s0, in1_s1, in1_s2, in1_s3;
    int32_t is_max; /* MAXIMUM, else MINIMUM */
} eq_min_max_s8_params_t;

typedef eq_min_max_s8_params_t eq_min_max_s16_params_t;

typedef struct {
    int32_t d0, d1, d2, d3;
    int32_t in0_s0, in0_s1, in0_s2, in0_s3;
    int32_t in1_s0, in1_s1, in1_s2, in1_s3;
    int32_t in0_offset, in1_offset, output_offset;
    int32_t out_mult, out_shift, act_min, act_max;
    eq_requant_t requant;
} eq_mul_s8_params_t;

typedef eq_mul_s8_params_t eq_mul_s16_params_t;

typedef struct {
    int32_t in_d0, in_d1, in_d2, in_d3;
    int32_t out_d0, out_d1, out_d2, out_d3;
    int32_t pad_before0, pad_before1, pad_before2, pad_before3;
    int32_t pad_value;  /* int16 tensors (elem_bytes 2) have zero point 0: every padded byte is 0 */
    int32_t elem_bytes;
} eq_pad_s8_params_t;

/* Inputs share the output's quantization: each outer step copies copy_sizes[k] bytes of input k (int8 or int16). */
typedef struct {
    int32_t n_inputs, outer;
    const int32_t *copy_sizes;
} eq_concat_s8_params_t;

/* QUANTIZE between int8 and int16 (TFLite's Requantize), and 16x8's RELU, RELU6 and LEAKY_RELU:
 * out = clamp(mbqm(in - in_zp) + out_zp), with neg_mult/neg_shift for inputs below the zero point. */
typedef struct {
    int32_t size, in_wide, out_wide, input_zp, output_zp, out_mult, out_shift, neg_mult, neg_shift, out_min, out_max;
} eq_rescale_params_t;

eq_status_t eq_rescale(const eq_rescale_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_add_s8(const eq_add_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_sub_s8(const eq_sub_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_squared_difference_s8(const eq_squared_difference_s8_params_t *p, const int8_t *in0, const int8_t *in1,
                                     int8_t *out);
eq_status_t eq_prelu_s8(const eq_prelu_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_prelu_s16(const eq_prelu_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_min_max_s8(const eq_min_max_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_min_max_s16(const eq_min_max_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_squared_difference_s16(const eq_squared_difference_s16_params_t *p, const int8_t *in0,
                                      const int8_t *in1, int8_t *out);
eq_status_t eq_add_s16(const eq_add_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_sub_s16(const eq_sub_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_mul_s16(const eq_mul_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_mul_s8(const eq_mul_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out);
eq_status_t eq_pad_s8(const eq_pad_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_concat_s8(const eq_concat_s8_params_t *p, const int8_t *const *in, int8_t *out);

#endif /* EQ_ELEMENTWISE_H */
