/* Reference int16 SUB (16x8 models): the int8 arithmetic with TFLite's int16 left shift of 15. */
#include "eq_add_sub.h"

eq_status_t eq_sub_s16(const eq_sub_s16_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    return eq_add_sub(p, in0, in1, out, -1, 0, 1);
}
