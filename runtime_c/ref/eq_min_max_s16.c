/* Reference int16 MAXIMUM and MINIMUM (16x8 models) over broadcast strides: raw values compared, as TFLite Micro
 * does. */
#include "eq_broadcast.h"
#include "eq_elementwise.h"

eq_status_t eq_min_max_s16(const eq_min_max_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    if (p == NULL || in0 == NULL || in1 == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    EQ_FOR_EACH_BROADCAST(p, a, b, {
        const int32_t x = eq_load(in0, a, 1);
        const int32_t y = eq_load(in1, b, 1);
        eq_store(out, o++, p->is_max ? EQ_MAX(x, y) : EQ_MIN(x, y), 1);
    })
    return EQ_OK;
}
