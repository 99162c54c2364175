/* UNIDIRECTIONAL_SEQUENCE_LSTM with int8 activations and an int16 cell state (TFLM's integer LSTM). */
#include "eq_lstm.h"

eq_status_t eq_lstm_s8(const eq_lstm_s8_params_t *p, const int8_t *in, int8_t *out, void *hidden, int16_t *cell)
{
    return eq_lstm_run(p, in, out, (int8_t *)hidden, cell, 0);
}
