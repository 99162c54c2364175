/* edgeq reference kernels: table lookups for unary int8 ops, softmax and L2 normalization. */
#ifndef EQ_ACTIVATIONS_H
#define EQ_ACTIVATIONS_H

#include "eq_common.h"

/* out[i] = table[in[i] + 128]; the table holds TFLite's exact result for each of the 256 inputs. */
typedef struct {
    int32_t size;
    const int8_t *table;
} eq_lut_s8_params_t;

typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier, input_left_shift, diff_min; /* TFLite's; the table below is made from them */
    const int32_t *exp_table; /* gemmlowp exp (Q0.31) of each input difference -255..0; 0 below diff_min */
} eq_softmax_s8_params_t;

/* Each row of depth values divided by its L2 norm; the output is in 1/128 with zero point 0. */
typedef struct {
    int32_t rows, depth, input_zp;
} eq_l2_normalization_s8_params_t;

eq_status_t eq_l2_normalization_s8(const eq_l2_normalization_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_lut_s8(const eq_lut_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_softmax_s8(const eq_softmax_s8_params_t *p, const int8_t *in, int8_t *out);

#endif /* EQ_ACTIVATIONS_H */
