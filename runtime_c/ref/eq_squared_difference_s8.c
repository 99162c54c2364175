/* Reference int8 SQUARED_DIFFERENCE: SUB's scaled difference, squared, then rescaled. */
#include "eq_add_sub.h"

eq_status_t eq_squared_difference_s8(const eq_squared_difference_s8_params_t *p, const int8_t *in0, const int8_t *in1,
                                     int8_t *out)
{
    return eq_add_sub(p, in0, in1, out, -1, 1, 0);
}
