/* Reference int8 SUB: ADD's arithmetic with the second scaled input subtracted. */
#include "eq_add_sub.h"

eq_status_t eq_sub_s8(const eq_sub_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    return eq_add_sub(p, in0, in1, out, -1, 0, 0);
}
