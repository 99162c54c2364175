/* SVDF, int8 with int8 state and time weights (TFLM's EvalIntegerSvdfReference<int8_t>). */
#include "eq_svdf.h"

eq_status_t eq_svdf_state8_s8(const eq_svdf_state8_s8_params_t *p, const int8_t *in, int8_t *out, int8_t *state)
{
    return eq_svdf_run(p, in, out, state, 0);
}
