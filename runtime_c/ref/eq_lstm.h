/* The integer LSTM shared by eq_lstm_s8.c and eq_lstm_s16.c: TFLM's LstmStep computed unit by unit (a unit's four
 * gates, cell and hidden value depend only on the input and the previous hidden state); the new hidden state goes
 * to the output first and is copied into the state after the step. int16 values travel by eq_load/eq_store. */
#ifndef EQ_LSTM_H
#define EQ_LSTM_H

#include "eq_activations.h"
#include "eq_recurrent.h"

static inline int32_t eq_lstm_clamp16(int64_t v)
{
    return v < INT16_MIN ? INT16_MIN : (v > INT16_MAX ? INT16_MAX : (int32_t)v);
}

/* the int16 input rescale of reference_integer_ops::Logistic and Tanh (multiplier below 2^15) */
static inline int32_t eq_lstm_rescale(int32_t x, int32_t mult, int32_t shift)
{
    return (x * mult + (shift > 0 ? (int32_t)1 << (shift - 1) : 0)) >> shift;
}

/* reference_integer_ops::Logistic on int16 with TFLM's LSTM rescale (x 3), output in 2^-15 */
static inline int32_t eq_lstm_sigmoid(const uint16_t *table, int32_t x)
{
    const int32_t v = eq_lstm_rescale(x, 3, 0);
    uint32_t r = eq_sigmoid_interp(table, v, 9, 0x7FFFu << 10);
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1;
    return (int32_t)(r >> 10);
}

/* reference_integer_ops::Tanh on int16, output in 2^-15 */
static inline int32_t eq_lstm_tanh(const uint16_t *table, int32_t x, int32_t mult, int32_t shift)
{
    const int32_t v = eq_lstm_rescale(x, mult, shift);
    int32_t r = (int32_t)eq_sigmoid_interp(table, v, 8, 0xFFFFu << 8);
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return r >> 8;
}

/* One gate's FC (row w of n weights) of x, rescaled into int16. int8: sums wrap as TFLM's int32 ones do (computed
 * in uint32); 16x8: int64 sums and TFLite's 64-bit rescale. */
static inline int32_t eq_lstm_fc(const int8_t *w, const int8_t *x, int32_t n, int32_t zp, int64_t bias, int32_t mult,
                                 int32_t shift, const int wide)
{
    if (wide) {
        int64_t acc = bias;
        for (int32_t k = 0; k < n; k++) {
            acc += (int64_t)w[k] * (int64_t)eq_load(x, (size_t)k, 1);
        }
        return eq_lstm_clamp16(eq_mbqm64(acc, mult, (int)shift));
    }
    uint32_t acc = (uint32_t)(int32_t)bias;
    for (int32_t k = 0; k < n; k++) {
        acc += (uint32_t)((int32_t)w[k] * ((int32_t)x[k] - zp));
    }
    return eq_lstm_clamp16(eq_mbqm((int32_t)acc, mult, (int)shift));
}

static inline eq_status_t eq_lstm_run(const eq_lstm_params_t *p, const int8_t *in, int8_t *out, int8_t *hidden,
                                      int16_t *cell, const int wide)
{
    if (p == NULL || in == NULL || out == NULL || hidden == NULL || cell == NULL || p->units <= 0) {
        return EQ_ERR_ARG;
    }
    const int32_t u_count = p->units, n_in = p->input_size;
    const int32_t in_mult[4] = {p->input_in_mult, p->forget_in_mult, p->cell_in_mult, p->output_in_mult};
    const int32_t in_shift[4] = {p->input_in_shift, p->forget_in_shift, p->cell_in_shift, p->output_in_shift};
    const int32_t rec_mult[4] = {p->input_rec_mult, p->forget_rec_mult, p->cell_rec_mult, p->output_rec_mult};
    const int32_t rec_shift[4] = {p->input_rec_shift, p->forget_rec_shift, p->cell_rec_shift, p->output_rec_shift};
    const int32_t lo = wide ? INT16_MIN : INT8_MIN, hi = wide ? INT16_MAX : INT8_MAX;
    const size_t elem = wide ? 2 : 1;
    if (p->reset_state) {
        for (int32_t k = 0; k < p->batches * u_count; k++) {
            if (wide) {
                ((int16_t *)(void *)hidden)[k] = (int16_t)p->hidden_zp;
            } else {
                hidden[k] = (int8_t)p->hidden_zp;
            }
            cell[k] = 0;
        }
    }
    for (int32_t b = 0; b < p->batches; b++) {
        int8_t *h = hidden + (size_t)b * (size_t)u_count * elem;
        int16_t *c = cell + (size_t)b * (size_t)u_count;
        for (int32_t t = 0; t < p->steps; t++) {
            const size_t row = p->time_major ? (size_t)t * (size_t)p->batches + (size_t)b
                                             : (size_t)b * (size_t)p->steps + (size_t)t;
            const int8_t *x = in + row * (size_t)n_in * elem;
            int8_t *y = out + row * (size_t)u_count * elem;
            for (int32_t u = 0; u < u_count; u++) {
                int32_t gate[4];
                for (int g = 0; g < 4; g++) {
                    const size_t unit = (size_t)g * (size_t)u_count + (size_t)u;
                    const int64_t bias = wide ? ((const int64_t *)p->bias)[unit] : ((const int32_t *)p->bias)[unit];
                    const int32_t from_in = eq_lstm_fc(p->input_weights + unit * (size_t)n_in, x, n_in, p->input_zp,
                                                       bias, in_mult[g], in_shift[g], wide);
                    const int32_t from_h = eq_lstm_fc(p->recurrent_weights + unit * (size_t)u_count, h, u_count,
                                                      p->hidden_zp, 0, rec_mult[g], rec_shift[g], wide);
                    const int32_t pre = eq_lstm_clamp16((int64_t)from_in + from_h);
                    gate[g] = g == 2 ? eq_lstm_tanh(p->sigmoid_table, pre, 3, 0) : eq_lstm_sigmoid(p->sigmoid_table, pre);
                }
                /* cell = forget x cell + input x cell gate, each product rescaled and clamped, the sum saturated */
                const int32_t kept = eq_lstm_clamp16(eq_mbqm(gate[1] * (int32_t)c[u], p->forget_cell_mult,
                                                             (int)p->forget_cell_shift));
                const int32_t added = eq_lstm_clamp16(eq_mbqm(gate[0] * gate[2], p->input_cell_mult,
                                                              (int)p->input_cell_shift));
                int32_t next = eq_lstm_clamp16((int64_t)kept + added);
                if (p->cell_clip > 0) {
                    next = eq_clamp(next, -p->cell_clip, p->cell_clip);
                }
                c[u] = (int16_t)next;
                const int32_t squashed = eq_lstm_tanh(p->sigmoid_table, next, p->tanh_mult, p->tanh_shift);
                const int32_t value = eq_mbqm(squashed * gate[3], p->hidden_mult, (int)p->hidden_shift) + p->hidden_zp;
                eq_store(y, (size_t)u, eq_clamp(value, lo, hi), wide);
            }
            memcpy(h, y, (size_t)u_count * elem);
        }
    }
    return EQ_OK;
}

#endif /* EQ_LSTM_H */
