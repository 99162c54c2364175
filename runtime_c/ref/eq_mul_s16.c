/* Reference int16 MUL (16x8 models) over broadcast strides. */
#include "eq_mul.h"

eq_status_t eq_mul_s16(const eq_mul_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    return eq_mul(p, in0, in1, out, 1);
}
