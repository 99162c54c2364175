/* UNIDIRECTIONAL_SEQUENCE_LSTM of a 16x8 model: int16 activations, int8 weights, int64 biases (TFLM's LSTM). */
#include "eq_lstm.h"

eq_status_t eq_lstm_s16(const eq_lstm_s16_params_t *p, const int8_t *in, int8_t *out, void *hidden, int16_t *cell)
{
    return eq_lstm_run(p, in, out, (int8_t *)hidden, cell, 1);
}
