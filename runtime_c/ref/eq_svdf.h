/* SVDF shared by eq_svdf_s8.c (int16 state and time weights) and eq_svdf_state8_s8.c (int8 ones): TFLM's
 * EvalIntegerSvdfReference<T>. Sums of products wrap as TFLM's int32 sums do on hardware, computed in uint32 so
 * that wrapping is defined C; state and time weights are read and written by eq_load/eq_store. */
#ifndef EQ_SVDF_H
#define EQ_SVDF_H

#include "eq_recurrent.h"

static inline eq_status_t eq_svdf_run(const eq_svdf_s8_params_t *p, const int8_t *in, int8_t *out, int8_t *state,
                                      const int wide)
{
    if (p == NULL || in == NULL || out == NULL || state == NULL || p->rank <= 0 || p->memory <= 0) {
        return EQ_ERR_ARG;
    }
    const int32_t f_count = p->filters, m_count = p->memory;
    const int32_t lo = wide ? INT16_MIN : INT8_MIN, hi = wide ? INT16_MAX : INT8_MAX;
    const size_t elem = wide ? 2 : 1, per_batch = (size_t)f_count * (size_t)m_count;
    const int8_t *wt = (const int8_t *)p->weights_time;
    /* every filter's memory moves one step left; the newest column is written below */
    memmove(state, state + elem, ((size_t)p->batches * per_batch - 1) * elem);
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)p->input_size;
        int8_t *s = state + (size_t)b * per_batch * elem;
        for (int32_t f = 0; f < f_count; f++) {
            const int8_t *w = p->weights_feature + (size_t)f * (size_t)p->input_size;
            uint32_t dot = 0;
            for (int32_t c = 0; c < p->input_size; c++) {
                dot += (uint32_t)((int32_t)w[c] * ((int32_t)x[c] - p->input_zp));
            }
            const int32_t scaled = eq_mbqm((int32_t)dot, p->feature_multiplier, (int)p->feature_shift);
            /* clamped, then the zero point added, the narrowing store wrapping, as the tflite-micro package
             * does (its newer sources add the zero point first; they differ for an int8 state with a zero point) */
            const int32_t value = eq_clamp(scaled, lo, hi) + p->state_zp;
            eq_store(s, (size_t)f * (size_t)m_count + (size_t)(m_count - 1),
                     wide ? (int32_t)(int16_t)(uint16_t)(uint32_t)value : (int32_t)(int8_t)(uint8_t)(uint32_t)value,
                     wide);
        }
        for (int32_t u = 0; u < p->units; u++) {
            uint32_t acc = (uint32_t)p->bias[u];
            for (int32_t r = 0; r < p->rank; r++) {
                const size_t row = ((size_t)u * (size_t)p->rank + (size_t)r) * (size_t)m_count;
                for (int32_t m = 0; m < m_count; m++) {
                    const int32_t v = eq_load(s, row + (size_t)m, wide) - p->state_zp;
                    acc += (uint32_t)((int64_t)eq_load(wt, row + (size_t)m, wide) * v);
                }
            }
            const int32_t scaled = eq_mbqm((int32_t)acc, p->time_multiplier, (int)p->time_shift);
            out[(size_t)b * (size_t)p->units + (size_t)u] =
                (int8_t)eq_clamp(eq_wrap32((int64_t)scaled + p->output_zp), INT8_MIN, INT8_MAX);
        }
    }
    return EQ_OK;
}

#endif /* EQ_SVDF_H */
