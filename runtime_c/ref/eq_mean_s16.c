/* Reference int16 MEAN and SUM (16x8 models). */
#include "eq_mean.h"

eq_status_t eq_mean_s16(const eq_mean_s16_params_t *p, const int8_t *in, int8_t *out)
{
    return eq_mean(p, in, out, 1);
}
