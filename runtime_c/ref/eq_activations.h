/* edgeq reference kernels: table lookups for unary int8 ops, softmax and L2 normalization, 16x8 abs,
 * rsqrt, logistic, tanh and softmax. */
#ifndef EQ_ACTIVATIONS_H
#define EQ_ACTIVATIONS_H

#include "eq_common.h"

/* out[i] = table[in[i] + 128]; the table holds TFLite's exact result for each of the 256 inputs. */
typedef struct {
    int32_t size;
    const int8_t *table;
} eq_lut_s8_params_t;

typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier, input_left_shift, diff_min; /* TFLite's; the table below is made from them */
    const int32_t *exp_table; /* gemmlowp exp (Q0.31) of each input difference -255..0; 0 below diff_min */
} eq_softmax_s8_params_t;

/* Leading zero bits of x (32 for 0). */
static inline int eq_clz32(uint32_t x)
{
    int n = 0;
    while (n < 32 && (x & 0x80000000u) == 0) {
        x <<= 1;
        n++;
    }
    return n;
}

/* gemmlowp SaturatingRoundingMultiplyByPOT for an exponent in [1, 30] */
static inline int32_t eq_sat_shift_left(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((1LL << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* tflite::GetInvSqrtQuantizedMultiplierExp(x, kReverseShift): 1/sqrt(x) as a Q31 multiplier and a left shift,
 * by five Newton-Raphson steps in gemmlowp's FixedPoint<int32, 3> (L2_NORMALIZATION, RSQRT). */
static inline void eq_inv_sqrt(int32_t x, int32_t *multiplier, int *left_shift)
{
    if (x <= 1) {
        *multiplier = INT32_MAX;
        *left_shift = 0;
        return;
    }
    int shift = 11;
    while (x >= (1 << 29)) {
        x /= 4;
        shift++;
    }
    const int pairs = (eq_clz32((uint32_t)x) - 1) / 2 - 1;
    shift -= pairs;
    x <<= 2 * pairs;
    const int32_t half_input = eq_rdbpot(x >> 1, 1);
    const int32_t half_three = (1 << 28) + (1 << 27);
    int32_t v = 1 << 28; /* one in FixedPoint<int32, 3> */
    for (int i = 0; i < 5; i++) {
        const int32_t cube = eq_sat_shift_left(eq_srdhm(eq_srdhm(v, v), v), 6);
        v = eq_sat_shift_left((int32_t)((uint32_t)eq_srdhm(half_three, v) - (uint32_t)eq_srdhm(half_input, cube)), 3);
    }
    v = eq_srdhm(v, 1518500250); /* sqrt(2) / 2 */
    if (shift < 0) {
        v = (int32_t)((uint32_t)v << -shift);
        shift = 0;
    }
    *multiplier = v;
    *left_shift = -shift;
}

/* 16x8 LOGISTIC and TANH (TFLite's int16 kernels): the input times input_multiplier, shifted right by
 * input_left_shift (a scale of 1/(3 * 4096)), then TFLite's sigmoid table interpolated; output in 1/32768. */
typedef struct {
    int32_t size, input_multiplier, input_left_shift;
    const uint16_t *table; /* sigmoid(i / 24) in unsigned 0.16, 256 entries */
} eq_logistic_s16_params_t;
typedef eq_logistic_s16_params_t eq_tanh_s16_params_t;

/* 16x8 ABS: |x|, times TFLite's multiplier when rescale is set (the scales differ), clamped to int16. */
typedef struct {
    int32_t size, rescale, out_mult, out_shift;
} eq_abs_s16_params_t;

/* 16x8 RSQRT (TFLite's RsqrtEvalQuantized, zero points 0): 1/sqrt(x) to 2^-20, times TFLite's multiplier; the
 * largest output for x <= 0 (TFLite Micro stops on negative inputs). */
typedef struct {
    int32_t size, out_mult, out_shift;
} eq_rsqrt_s16_params_t;

/* 16x8 SOFTMAX (TFLite's SoftmaxInt16): differences to the row maximum scaled so [-65535, 0] is [-10, 0],
 * exp and 1 / (1 + x) from two interpolated Q0.15 tables of 513 entries; output in 1/32768. */
typedef struct {
    int32_t rows, depth, input_multiplier, input_left_shift;
    const int16_t *exp_lut, *recip_lut;
} eq_softmax_s16_params_t;

/* The sigmoid table interpolated at |v| with frac_bits fractional bits (9: logistic, 8: tanh), in 0.(16 +
 * frac_bits); saturate beyond the table. */
static inline uint32_t eq_sigmoid_interp(const uint16_t *table, int32_t v, int frac_bits, uint32_t saturate)
{
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> frac_bits;
    if (uh >= 255) {
        return saturate;
    }
    const uint32_t ua = table[uh], ub = table[uh + 1];
    return (ua << frac_bits) + (a & ((1u << frac_bits) - 1)) * (ub - ua);
}

/* TFLite's int16 rescale for LOGISTIC and TANH; a multiplier below 2^15 keeps the product in int32. */
static inline int32_t eq_sigmoid_rescale(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
    return (x * multiplier + round) >> shift;
}

/* The rescaled element i of a LOGISTIC or TANH input. */
static inline int32_t eq_sigmoid_input(const eq_logistic_s16_params_t *p, const int8_t *in, int32_t i)
{
    return eq_sigmoid_rescale(eq_load(in, (size_t)i, 1), p->input_multiplier, p->input_left_shift);
}

/* reference_integer_ops::Logistic of a rescaled input v, in 1/32768: sigmoid(-x) = 1 - sigmoid(x). */
static inline int32_t eq_logistic16(const uint16_t *table, int32_t v)
{
    uint32_t r = eq_sigmoid_interp(table, v, 9, 0x7FFFu << 10);
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1;
    return (int32_t)(r >> 10);
}

/* reference_integer_ops::Tanh of a rescaled input v, in 1/32768: tanh(x) = 2 sigmoid(2x) - 1. */
static inline int32_t eq_tanh16(const uint16_t *table, int32_t v)
{
    const int32_t r = (int32_t)eq_sigmoid_interp(table, v, 8, 0xFFFFu << 8);
    return (v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1) >> 8;
}

static inline int eq_sigmoid_params_ok(const eq_logistic_s16_params_t *p, const int8_t *in, const int8_t *out)
{
    return p != NULL && in != NULL && out != NULL && p->table != NULL && p->input_left_shift >= 0 &&
           p->input_left_shift <= 31 && p->input_multiplier >= 0 && p->input_multiplier <= INT16_MAX;
}

/* Each row of depth values divided by its L2 norm; the output is in 1/128 with zero point 0. */
typedef struct {
    int32_t rows, depth, input_zp;
} eq_l2_normalization_s8_params_t;

eq_status_t eq_l2_normalization_s8(const eq_l2_normalization_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_lut_s8(const eq_lut_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_softmax_s8(const eq_softmax_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_abs_s16(const eq_abs_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_logistic_s16(const eq_logistic_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_rsqrt_s16(const eq_rsqrt_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_tanh_s16(const eq_tanh_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_softmax_s16(const eq_softmax_s16_params_t *p, const int8_t *in, int8_t *out);

#endif /* EQ_ACTIVATIONS_H */
