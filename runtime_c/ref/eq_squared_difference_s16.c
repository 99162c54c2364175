/* Reference int16 SQUARED_DIFFERENCE (16x8 models): the int8 arithmetic with TFLite's int16 left shift of 0. */
#include "eq_add_sub.h"

eq_status_t eq_squared_difference_s16(const eq_squared_difference_s16_params_t *p, const int8_t *in0,
                                      const int8_t *in1, int8_t *out)
{
    return eq_add_sub(p, in0, in1, out, -1, 1, 1);
}
