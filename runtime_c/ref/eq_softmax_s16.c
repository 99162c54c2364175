/* Reference 16x8 SOFTMAX: TFLite's reference_ops::SoftmaxInt16, interpolated exp and reciprocal tables. */
#include "eq_activations.h"

/* TFLite's lut_lookup for int16: 512 base entries, the 513th only for the last slope; Q0.15 arithmetic. */
static int32_t eq_lut_lookup_s16(int32_t value, const int16_t *lut)
{
    const int32_t index = 256 + (value >> 7);
    const int32_t base = lut[index];
    const int32_t slope = (int16_t)(uint16_t)(uint32_t)(lut[index + 1] - base);
    return (int16_t)(uint16_t)(uint32_t)(base + ((slope * (value & 0x7F) + 64) >> 7));
}

eq_status_t eq_softmax_s16(const eq_softmax_s16_params_t *p, const int8_t *in, int8_t *out)
{
    /* depth up to 65535 keeps the Q16.15 sum of exps (each at most 2^15) in int32 */
    if (p == NULL || in == NULL || out == NULL || p->depth <= 0 || p->depth > 65535) {
        return EQ_ERR_ARG;
    }
    for (int32_t r = 0; r < p->rows; r++) {
        const size_t row = (size_t)r * (size_t)p->depth;
        int32_t max = INT16_MIN;
        for (int32_t c = 0; c < p->depth; c++) {
            max = EQ_MAX(max, eq_load(in, row + (size_t)c, 1));
        }
        /* the exps go to the output first (as TFLite caches them there), then are scaled in place */
        int32_t sum = 0;
        for (int32_t c = 0; c < p->depth; c++) {
            const int32_t scaled = eq_mbqm(eq_load(in, row + (size_t)c, 1) - max, p->input_multiplier,
                                           (int)p->input_left_shift);
            const int32_t e = eq_lut_lookup_s16(eq_clamp(scaled + 32767, INT16_MIN, INT16_MAX), p->exp_lut);
            eq_store(out, row + (size_t)c, e, 1);
            sum += e;
        }
        const int headroom_plus_one = eq_clz32((uint32_t)sum);
        const int32_t shifted_sum = (int32_t)((((int64_t)sum << (headroom_plus_one - 1)) + (1 << 13)) >> 14);
        const int32_t reciprocal = eq_lut_lookup_s16(
            eq_clamp(shifted_sum - ((1 << 15) + (1 << 16)), INT16_MIN, INT16_MAX), p->recip_lut);
        const int right_shift = 31 - headroom_plus_one;
        for (int32_t c = 0; c < p->depth; c++) {
            const int64_t e = eq_load(out, row + (size_t)c, 1);
            const int32_t v = (int32_t)((e * reciprocal + ((int64_t)1 << (right_shift - 1))) >> right_shift);
            eq_store(out, row + (size_t)c, eq_clamp(v, 0, INT16_MAX), 1);
        }
    }
    return EQ_OK;
}
