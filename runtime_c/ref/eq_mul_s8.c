/* Reference int8 MUL over broadcast strides. */
#include "eq_mul.h"

eq_status_t eq_mul_s8(const eq_mul_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    return eq_mul(p, in0, in1, out, 0);
}
