/* Reference int8 L2_NORMALIZATION: TFLite's reference_integer_ops::L2Normalization, with its inverse square
 * root (GetInvSqrtQuantizedMultiplierExp: five Newton-Raphson steps in gemmlowp's FixedPoint<int32, 3>). */
#include "eq_activations.h"

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0 */
static int32_t sat_left(int32_t x, int exponent)
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

static int count_leading_zeros(uint32_t x)
{
    int n = 0;
    while (n < 32 && !(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
}

/* 1/sqrt(x) as a Q31 multiplier and a left shift (TFLite's, with kReverseShift applied). */
static void inv_sqrt(int32_t x, int32_t *multiplier, int *left_shift)
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
    const int pairs = (count_leading_zeros((uint32_t)x) - 1) / 2 - 1;
    shift -= pairs;
    x <<= 2 * pairs;
    const int32_t half_input = eq_rdbpot(x >> 1, 1);
    const int32_t half_three = (1 << 28) + (1 << 27);
    int32_t v = 1 << 28; /* one in FixedPoint<int32, 3> */
    for (int i = 0; i < 5; i++) {
        const int32_t cube = sat_left(eq_srdhm(eq_srdhm(v, v), v), 6);
        v = sat_left((int32_t)((uint32_t)eq_srdhm(half_three, v) - (uint32_t)eq_srdhm(half_input, cube)), 3);
    }
    v = eq_srdhm(v, 1518500250); /* sqrt(2) / 2 */
    if (shift < 0) {
        v = (int32_t)((uint32_t)v << -shift);
        shift = 0;
    }
    *multiplier = v;
    *left_shift = -shift;
}

eq_status_t eq_l2_normalization_s8(const eq_l2_normalization_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t r = 0; r < p->rows; r++) {
        const int8_t *x = in + (size_t)r * p->depth;
        int32_t acc = 0;
        for (int32_t c = 0; c < p->depth; c++) {
            const int32_t v = (int32_t)x[c] - p->input_zp;
            acc = eq_wrap32((int64_t)acc + v * v);
        }
        int32_t multiplier;
        int shift;
        inv_sqrt(acc, &multiplier, &shift);
        for (int32_t c = 0; c < p->depth; c++) {
            const int32_t v = eq_mbqm((int32_t)x[c] - p->input_zp, multiplier, shift + 7);
            out[(size_t)r * p->depth + c] = (int8_t)eq_clamp(v, INT8_MIN, INT8_MAX);
        }
    }
    return EQ_OK;
}
