/* SVDF, int8 with int16 state: TFLM's EvalIntegerSvdfReference<int16_t> (svdf_common.cc). Sums of products wrap
 * as TFLM's int32 sums do on hardware, computed in uint32 so that wrapping is defined C. */
#include "eq_recurrent.h"

eq_status_t eq_svdf_s8(const eq_svdf_s8_params_t *p, const int8_t *in, int8_t *out, int16_t *state)
{
    if (p == NULL || in == NULL || out == NULL || state == NULL || p->rank <= 0 || p->memory <= 0) {
        return EQ_ERR_ARG;
    }
    const int32_t f_count = p->filters, m_count = p->memory;
    const size_t total = (size_t)p->batches * (size_t)f_count * (size_t)m_count;
    /* every filter's memory moves one step left; the newest column is written below */
    memmove(state, state + 1, (total - 1) * sizeof *state);
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)p->input_size;
        int16_t *s = state + (size_t)b * (size_t)f_count * (size_t)m_count;
        for (int32_t f = 0; f < f_count; f++) {
            const int8_t *w = p->weights_feature + (size_t)f * (size_t)p->input_size;
            uint32_t dot = 0;
            for (int32_t c = 0; c < p->input_size; c++) {
                dot += (uint32_t)((int32_t)w[c] * ((int32_t)x[c] - p->input_zp));
            }
            const int32_t scaled = eq_mbqm((int32_t)dot, p->feature_multiplier, (int)p->feature_shift);
            s[(size_t)f * (size_t)m_count + (size_t)(m_count - 1)] =
                (int16_t)eq_clamp(eq_wrap32((int64_t)scaled + p->state_zp), INT16_MIN, INT16_MAX);
        }
        for (int32_t u = 0; u < p->units; u++) {
            uint32_t acc = (uint32_t)p->bias[u];
            for (int32_t r = 0; r < p->rank; r++) {
                const size_t f = (size_t)u * (size_t)p->rank + (size_t)r;
                const int16_t *w = p->weights_time + f * (size_t)m_count;
                const int16_t *col = s + f * (size_t)m_count;
                for (int32_t m = 0; m < m_count; m++) {
                    acc += (uint32_t)((int32_t)w[m] * ((int32_t)col[m] - p->state_zp));
                }
            }
            const int32_t scaled = eq_mbqm((int32_t)acc, p->time_multiplier, (int)p->time_shift);
            out[(size_t)b * (size_t)p->units + (size_t)u] =
                (int8_t)eq_clamp(eq_wrap32((int64_t)scaled + p->output_zp), INT8_MIN, INT8_MAX);
        }
    }
    return EQ_OK;
}
