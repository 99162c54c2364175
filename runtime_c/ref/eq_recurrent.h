/* edgeq reference kernels with state kept across invokes: SVDF, resource variables (and LSTM). The state is a
 * static buffer of the generated model, outside the arena, passed after the outputs. */
#ifndef EQ_RECURRENT_H
#define EQ_RECURRENT_H

#include "eq_common.h"

/* TFLite's integer SVDF (TFLM's EvalIntegerSvdfReference): int16 state and time weights (svdf_s8), or int8 ones
 * (svdf_state8_s8). */
typedef struct {
    int32_t batches, input_size, filters, units, rank, memory;
    int32_t input_zp, state_zp, output_zp;
    int32_t feature_multiplier, feature_shift; /* input * feature weights -> state */
    int32_t time_multiplier, time_shift;       /* state * time weights -> output */
    const int8_t *weights_feature;             /* [filters][input_size] */
    const void *weights_time;                  /* [filters][memory], int16_t or int8_t as the state */
    const int32_t *bias;                       /* [units] */
} eq_svdf_s8_params_t;
typedef eq_svdf_s8_params_t eq_svdf_state8_s8_params_t;

/* TFLite's integer LSTM (TFLM's LstmStep), gates in the order input, forget, cell, output. Activations are int8
 * (lstm_s8: int32 biases) or int16 (lstm_s16: int64 biases); the cell state is int16. */
typedef struct {
    int32_t batches, steps, input_size, units, time_major;
    int32_t reset_state; /* 1: hidden (at its zero point) and cell start from zero at every invoke (ONNX's LSTM) */
    int32_t input_zp, hidden_zp;
    /* each gate's input and recurrent FC into int16 at 2^-12 */
    int32_t input_in_mult, input_in_shift, input_rec_mult, input_rec_shift;
    int32_t forget_in_mult, forget_in_shift, forget_rec_mult, forget_rec_shift;
    int32_t cell_in_mult, cell_in_shift, cell_rec_mult, cell_rec_shift;
    int32_t output_in_mult, output_in_shift, output_rec_mult, output_rec_shift;
    /* forget x cell, input x cell gate (into the cell state), tanh(cell) x output (into the hidden state) */
    int32_t forget_cell_mult, forget_cell_shift, input_cell_mult, input_cell_shift, hidden_mult, hidden_shift;
    int32_t cell_clip;            /* 0: none */
    int32_t tanh_mult, tanh_shift; /* the cell state's rescale for tanh */
    const int8_t *input_weights;     /* [4][units][input_size] */
    const int8_t *recurrent_weights; /* [4][units][units] */
    const void *bias;                /* [4][units], int32_t (lstm_s8) or int64_t (lstm_s16) */
    const uint16_t *sigmoid_table;   /* TFLite's sigmoid_table_uint16 [256] */
} eq_lstm_params_t;
typedef eq_lstm_params_t eq_lstm_s8_params_t, eq_lstm_s16_params_t;

/* edgeq's integer GRU (ONNX's with linear_before_reset), gates in the order update, reset, new; int8 activations,
 * the hidden state starting at zero every invoke and kept in the output. */
typedef struct {
    int32_t batches, steps, input_size, units;
    int32_t input_zp, hidden_zp;
    /* each gate's input and recurrent FC into int16 at 2^-12 */
    int32_t update_in_mult, update_in_shift, update_rec_mult, update_rec_shift;
    int32_t reset_in_mult, reset_in_shift, reset_rec_mult, reset_rec_shift;
    int32_t new_in_mult, new_in_shift, new_rec_mult, new_rec_shift;
    /* a product of a 2^-15 gate, back to the other factor's scale; the hidden state into 2^-15 and out of it */
    int32_t gate_mult, gate_shift, to_gate_mult, to_gate_shift, from_gate_mult, from_gate_shift;
    const int8_t *input_weights;     /* [3][units][input_size] */
    const int8_t *recurrent_weights; /* [3][units][units] */
    const int32_t *input_bias;       /* [3][units] */
    const int32_t *recurrent_bias;   /* [3][units] */
    const uint16_t *sigmoid_table;   /* TFLite's sigmoid_table_uint16 [256] */
} eq_gru_s8_params_t;

/* A copy of a resource variable's bytes into a tensor, or of a tensor into the variable. */
typedef struct {
    int32_t bytes;
} eq_read_variable_params_t, eq_assign_variable_params_t;

/* READ_VARIABLE of a float variable kept in int8: each value converted through a table to the output's scale. */
typedef struct {
    int32_t size;
    const int8_t *table; /* [256], indexed by value + 128 */
} eq_read_variable_s8_params_t;

eq_status_t eq_svdf_s8(const eq_svdf_s8_params_t *p, const int8_t *in, int8_t *out, int16_t *state);
eq_status_t eq_svdf_state8_s8(const eq_svdf_state8_s8_params_t *p, const int8_t *in, int8_t *out, int8_t *state);
/* hidden: int8_t (lstm_s8) or int16_t (lstm_s16) [batches][units]; cell: [batches][units] */
eq_status_t eq_lstm_s8(const eq_lstm_s8_params_t *p, const int8_t *in, int8_t *out, void *hidden, int16_t *cell);
eq_status_t eq_lstm_s16(const eq_lstm_s16_params_t *p, const int8_t *in, int8_t *out, void *hidden, int16_t *cell);
eq_status_t eq_gru_s8(const eq_gru_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_read_variable(const eq_read_variable_params_t *p, int8_t *out, const void *state);
eq_status_t eq_read_variable_s8(const eq_read_variable_s8_params_t *p, int8_t *out, const int8_t *state);
eq_status_t eq_assign_variable(const eq_assign_variable_params_t *p, const int8_t *in, void *state);

#endif /* EQ_RECURRENT_H */
