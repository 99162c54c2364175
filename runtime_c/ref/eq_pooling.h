/* edgeq reference kernels: average and max pooling, mean (int8). */
#ifndef EQ_POOLING_H
#define EQ_POOLING_H

#include "eq_common.h"

typedef struct {
    int32_t batches, input_h, input_w, channels, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} eq_pool_s8_params_t;

typedef eq_pool_s8_params_t eq_avg_pool_s8_params_t;
typedef eq_pool_s8_params_t eq_max_pool_s8_params_t;
typedef eq_pool_s8_params_t eq_avg_pool_s16_params_t; /* int16 elements, passed as bytes of the arena */
typedef eq_pool_s8_params_t eq_max_pool_s16_params_t;

/* Input dims d0..d3 (right-aligned to 4-D); reduceI = 1 for each reduced axis. */
typedef struct {
    int32_t d0, d1, d2, d3;
    int32_t reduce0, reduce1, reduce2, reduce3;
    int32_t count, input_zp, output_zp, out_mult, out_shift; /* for MEAN, out_mult/out_shift include 1/count; SUM uses this kernel too */
} eq_mean_s8_params_t;

typedef eq_mean_s8_params_t eq_mean_s16_params_t;

eq_status_t eq_avg_pool_s8(const eq_avg_pool_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_max_pool_s8(const eq_max_pool_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_avg_pool_s16(const eq_avg_pool_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_max_pool_s16(const eq_max_pool_s16_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_mean_s8(const eq_mean_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_mean_s16(const eq_mean_s16_params_t *p, const int8_t *in, int8_t *out);

#endif /* EQ_POOLING_H */
