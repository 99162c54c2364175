/* edgeq reference kernels: data movement (transpose, slices, gather, depth/space/batch rearrangements,
 * nearest-neighbour resize) for elements of any integer size, and bilinear resize (int8). */
#ifndef EQ_MOVEMENT_H
#define EQ_MOVEMENT_H

#include "eq_common.h"

/* The output, seen as d0 x .. x d5, takes at (i0, .., i5) the input element offsets[i0] + offsets[d0 + i1] + ..
 * (one table per axis, back to back; offsets in elements). */
typedef struct {
    int32_t d0, d1, d2, d3, d4, d5;
    int32_t elem_bytes;
    int32_t contiguous; /* the last axis's table counts up by one: each row is one copy */
    const int32_t *offsets;
} eq_remap_params_t;

/* rows: (lower row, upper row, upper row's weight in 1/1024) per output row; cols likewise per column. */
typedef struct {
    int32_t batches, input_h, input_w, channels, output_h, output_w;
    const int32_t *rows;
    const int32_t *cols;
} eq_resize_bilinear_s8_params_t;

eq_status_t eq_resize_bilinear_s8(const eq_resize_bilinear_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_remap(const eq_remap_params_t *p, const int8_t *in, int8_t *out);

#endif /* EQ_MOVEMENT_H */
