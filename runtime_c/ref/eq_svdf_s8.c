/* SVDF, int8 with int16 state and time weights (TFLM's EvalIntegerSvdfReference<int16_t>). */
#include "eq_svdf.h"

eq_status_t eq_svdf_s8(const eq_svdf_s8_params_t *p, const int8_t *in, int8_t *out, int16_t *state)
{
    return eq_svdf_run(p, in, out, (int8_t *)state, 1);
}
