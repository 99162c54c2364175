/* edgeq's integer GRU (ONNX's GRU with linear_before_reset, as PyTorch's nn.GRU exports it), built from the integer
 * LSTM's pieces: gate FCs into int16 at 2^-12, TFLite's int16 sigmoid and tanh into 2^-15. Each step reads the
 * hidden state from the previous step's output row (none before the first step: zero, its FC only the bias). */
#include "eq_lstm.h"

eq_status_t eq_gru_s8(const eq_gru_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->units <= 0) {
        return EQ_ERR_ARG;
    }
    const int32_t u_count = p->units, n_in = p->input_size;
    const int32_t in_mult[3] = {p->update_in_mult, p->reset_in_mult, p->new_in_mult};
    const int32_t in_shift[3] = {p->update_in_shift, p->reset_in_shift, p->new_in_shift};
    const int32_t rec_mult[3] = {p->update_rec_mult, p->reset_rec_mult, p->new_rec_mult};
    const int32_t rec_shift[3] = {p->update_rec_shift, p->reset_rec_shift, p->new_rec_shift};
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t t = 0; t < p->steps; t++) {
            const size_t row = (size_t)b * (size_t)p->steps + (size_t)t;
            const int8_t *x = in + row * (size_t)n_in;
            int8_t *y = out + row * (size_t)u_count;
            const int8_t *h = t > 0 ? y - u_count : NULL;
            const int32_t h_count = t > 0 ? u_count : 0;
            for (int32_t u = 0; u < u_count; u++) {
                int32_t from_in[3], from_h[3];
                for (int g = 0; g < 3; g++) {
                    const size_t unit = (size_t)g * (size_t)u_count + (size_t)u;
                    from_in[g] = eq_lstm_fc(p->input_weights + unit * (size_t)n_in, x, n_in, p->input_zp,
                                            p->input_bias[unit], in_mult[g], in_shift[g], 0);
                    from_h[g] = eq_lstm_fc(p->recurrent_weights + unit * (size_t)u_count, h, h_count, p->hidden_zp,
                                           p->recurrent_bias[unit], rec_mult[g], rec_shift[g], 0);
                }
                const int32_t z = eq_lstm_sigmoid(p->sigmoid_table, eq_lstm_clamp16((int64_t)from_in[0] + from_h[0]));
                const int32_t r = eq_lstm_sigmoid(p->sigmoid_table, eq_lstm_clamp16((int64_t)from_in[1] + from_h[1]));
                const int32_t reset = eq_lstm_clamp16(eq_mbqm(r * from_h[2], p->gate_mult, (int)p->gate_shift));
                const int32_t n = eq_lstm_tanh(p->sigmoid_table, eq_lstm_clamp16((int64_t)from_in[2] + reset), 3, 0);
                const int32_t prev = h != NULL ? (int32_t)h[u] - p->hidden_zp : 0;
                const int32_t h15 = eq_lstm_clamp16(eq_mbqm(prev, p->to_gate_mult, (int)p->to_gate_shift));
                const int32_t kept = eq_lstm_clamp16(eq_mbqm(z * (h15 - n), p->gate_mult, (int)p->gate_shift));
                const int32_t next = eq_lstm_clamp16((int64_t)n + kept);
                const int32_t value = eq_mbqm(next, p->from_gate_mult, (int)p->from_gate_shift) + p->hidden_zp;
                y[u] = (int8_t)eq_clamp(value, INT8_MIN, INT8_MAX);
            }
        }
    }
    return EQ_OK;
}
