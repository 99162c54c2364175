/* Reference 16x8 RSQRT: TFLite's RsqrtEvalQuantized for int16 (zero points 0). */
#include "eq_activations.h"

eq_status_t eq_rsqrt_s16(const eq_rsqrt_s16_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        const int32_t x = eq_load(in, (size_t)i, 1);
        int32_t y = INT16_MAX;
        if (x > 0) {
            int32_t m;
            int shift;
            eq_inv_sqrt(x, &m, &shift);
            y = eq_mbqm(eq_mbqm(1, m, shift + 20), p->out_mult, (int)p->out_shift - 20); /* via 1/sqrt(x) * 2^20 */
        }
        eq_store(out, (size_t)i, eq_clamp(y, INT16_MIN, INT16_MAX), 1);
    }
    return EQ_OK;
}
