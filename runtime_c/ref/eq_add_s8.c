/* Reference int8 ADD: TFLite's (inputs raised by left_shift, rescaled, summed, rescaled), over broadcast strides. */
#include "eq_add_sub.h"

eq_status_t eq_add_s8(const eq_add_s8_params_t *p, const int8_t *in0, const int8_t *in1, int8_t *out)
{
    return eq_add_sub(p, in0, in1, out, 1, 0, 0);
}
