/* edgeq reference kernels with state kept across invokes: SVDF, resource variables (and LSTM). The state is a
 * static buffer of the generated model, outside the arena, passed after the outputs. */
#ifndef EQ_RECURRENT_H
#define EQ_RECURRENT_H

#include "eq_common.h"

/* TFLite's integer SVDF with int16 state and time weights (TFLM's EvalIntegerSvdfReference). */
typedef struct {
    int32_t batches, input_size, filters, units, rank, memory;
    int32_t input_zp, state_zp, output_zp;
    int32_t feature_multiplier, feature_shift; /* input * feature weights -> state */
    int32_t time_multiplier, time_shift;       /* state * time weights -> output */
    const int8_t *weights_feature;             /* [filters][input_size] */
    const int16_t *weights_time;               /* [filters][memory] */
    const int32_t *bias;                       /* [units] */
} eq_svdf_s8_params_t;

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
eq_status_t eq_read_variable(const eq_read_variable_params_t *p, int8_t *out, const void *state);
eq_status_t eq_read_variable_s8(const eq_read_variable_s8_params_t *p, int8_t *out, const int8_t *state);
eq_status_t eq_assign_variable(const eq_assign_variable_params_t *p, const int8_t *in, void *state);

#endif /* EQ_RECURRENT_H */
