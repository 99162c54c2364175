/* Reference int16 MAXIMUM and MINIMUM (16x8 models) over broadcast strides: raw values compared, as TFLite Micro
 * does. */
#include "eq_elementwise.h"

eq_status_t eq_min_max_s16(const eq_min_max_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    if (p == NULL || in0 == NULL || in1 == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    for (int32_t i0 = 0; i0 < p->d0; i0++) {
        for (int32_t i1 = 0; i1 < p->d1; i1++) {
            for (int32_t i2 = 0; i2 < p->d2; i2++) {
                for (int32_t i3 = 0; i3 < p->d3; i3++) {
                    const int32_t a = eq_load(in0, (size_t)i0 * p->in0_s0 + (size_t)i1 * p->in0_s1
                                                       + (size_t)i2 * p->in0_s2 + (size_t)i3 * p->in0_s3, 1);
                    const int32_t b = eq_load(in1, (size_t)i0 * p->in1_s0 + (size_t)i1 * p->in1_s1
                                                       + (size_t)i2 * p->in1_s2 + (size_t)i3 * p->in1_s3, 1);
                    eq_store(out, o++, p->is_max ? EQ_MAX(a, b) : EQ_MIN(a, b), 1);
                }
            }
        }
    }
    return EQ_OK;
}
