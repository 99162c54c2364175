/* Reference int8 softmax: TFLite's, gemmlowp fixed point throughout. */
#include "eq_activations.h"

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Newton-Raphson on Q2.29, input and result Q0.31 */
static int32_t eq_one_over_one_plus_x(int32_t a)
{
    int64_t sum = (int64_t)a + INT32_MAX;
    sum += sum >= 0 ? 1 : -1;
    const int32_t half_denominator = (int32_t)(sum / 2);
    int32_t x = eq_wrap32((int64_t)1515870810 + eq_srdhm(half_denominator, -1010580540));
    for (int i = 0; i < 3; i++) {
        const int32_t half_denominator_times_x = eq_srdhm(half_denominator, x);
        const int32_t one_minus = eq_wrap32((int64_t)(1 << 29) - half_denominator_times_x);
        x = eq_wrap32((int64_t)x + eq_sat_shift_left(eq_srdhm(x, one_minus), 2));
    }
    return eq_sat_shift_left(x, 1);
}

eq_status_t eq_softmax_s8(const eq_softmax_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->depth <= 0) {
        return EQ_ERR_ARG;
    }
    for (int32_t r = 0; r < p->rows; r++) {
        const int8_t *x = in + (size_t)r * p->depth;
        int8_t *y = out + (size_t)r * p->depth;
        int32_t max = INT8_MIN;
        for (int32_t c = 0; c < p->depth; c++) {
            max = EQ_MAX(max, (int32_t)x[c]);
        }
        int32_t sum = 0; /* Q12.19 */
        for (int32_t c = 0; c < p->depth; c++) {
            sum = eq_wrap32((int64_t)sum + eq_rdbpot(p->exp_table[(int32_t)x[c] - max + 255], 12));
        }
        const int headroom_plus_one = eq_clz32((uint32_t)sum);
        const int bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            eq_wrap32((int64_t)(((uint64_t)(uint32_t)sum << headroom_plus_one) & 0xFFFFFFFFu) - (1LL << 31));
        const int32_t scale = eq_one_over_one_plus_x(shifted_sum_minus_one);
        for (int32_t c = 0; c < p->depth; c++) {
            const int32_t e = p->exp_table[(int32_t)x[c] - max + 255];
            const int exponent = bits_over_unit + 31 - 8;
            /* rows of 512+ values can ask for a shift past 31: the exact quotient then rounds to 0 */
            const int32_t unsat = exponent > 31 ? 0 : eq_rdbpot(eq_srdhm(scale, e), exponent);
            y[c] = (int8_t)eq_clamp(unsat - 128, INT8_MIN, INT8_MAX);
        }
    }
    return EQ_OK;
}
