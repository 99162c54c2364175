/* edgeq reference kernels: data movement (transpose, slices, gather, depth/space/batch rearrangements,
 * nearest-neighbour resize), for elements of any integer size. */
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

eq_status_t eq_remap(const eq_remap_params_t *p, const int8_t *in, int8_t *out);

#endif /* EQ_MOVEMENT_H */
