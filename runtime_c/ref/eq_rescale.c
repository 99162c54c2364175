/* Reference QUANTIZE between int8 and int16 tensors (TFLite's Requantize), and 16x8 RELU, RELU6, LEAKY_RELU. */
#include "eq_elementwise.h"

eq_status_t eq_rescale(const eq_rescale_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->size; i++) {
        const int32_t x = eq_load(in, (size_t)i, p->in_wide) - p->input_zp;
        const int32_t v = x >= 0 ? eq_mbqm(x, p->out_mult, (int)p->out_shift) : eq_mbqm(x, p->neg_mult, (int)p->neg_shift);
        eq_store(out, (size_t)i, eq_clamp(v + p->output_zp, p->out_min, p->out_max), p->out_wide);
    }
    return EQ_OK;
}
