/* edgeq reference kernels: reductions other than MEAN/SUM (int8 in). */
#ifndef EQ_REDUCE_H
#define EQ_REDUCE_H

#include "eq_common.h"

/* Input dims d0..d3 (right-aligned to 4-D); reduceI = 1 for each reduced axis. */
typedef struct {
    int32_t d0, d1, d2, d3;
    int32_t reduce0, reduce1, reduce2, reduce3;
} eq_reduce_max_s8_params_t;

/* The input seen as outer x axis_size x inner; the output holds outer x inner indices of out_bytes (4 or 8). */
typedef struct {
    int32_t outer, axis_size, inner, out_bytes;
} eq_arg_max_s8_params_t;

eq_status_t eq_reduce_max_s8(const eq_reduce_max_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_arg_max_s8(const eq_arg_max_s8_params_t *p, const int8_t *in, int8_t *out);

#endif /* EQ_REDUCE_H */
