/* edgeq reference kernels: data movement (transpose, slices, gather, depth/space/batch rearrangements,
 * nearest-neighbour resize) for elements of any integer size, gather at run-time indices, and bilinear resize
 * (int8). */
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

/* GATHER at run-time int32 indices: for each of outer blocks, the row of inner int8 elements at each index
 * along an axis of axis_size. An index outside the axis fails, as in TFLite Micro.
 * eq_gather_table reads a constant x (an embedding table) from table. */
typedef struct {
    int32_t outer, axis_size, n_indices, inner;
} eq_gather_params_t;

typedef struct {
    int32_t outer, axis_size, n_indices, inner;
    const int8_t *table;
} eq_gather_table_params_t;

/* The int32 index i (indices live in the byte arena: no alignment assumed). */
static inline int32_t eq_gather_index(const int8_t *indices, size_t i)
{
    int32_t k;
    memcpy(&k, indices + 4 * i, sizeof k);
    return k;
}

/* Shared by both kernels: every index checked before anything is written, then one copy per row. */
static inline eq_status_t eq_gather_rows(const eq_gather_params_t *p, const int8_t *in, const int8_t *indices,
                                         int8_t *out)
{
    if (in == NULL || indices == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    for (int32_t i = 0; i < p->n_indices; i++) {
        const int32_t k = eq_gather_index(indices, (size_t)i);
        if (k < 0 || k >= p->axis_size) {
            return EQ_ERR_ARG;
        }
    }
    const size_t row = (size_t)p->inner;
    for (int32_t o = 0; o < p->outer; o++) {
        const int8_t *block = in + (size_t)o * (size_t)p->axis_size * row;
        for (int32_t i = 0; i < p->n_indices; i++) {
            memcpy(out, block + (size_t)eq_gather_index(indices, (size_t)i) * row, row);
            out += row;
        }
    }
    return EQ_OK;
}

/* rows: (lower row, upper row, upper row's weight in 1/1024) per output row; cols likewise per column. */
typedef struct {
    int32_t batches, input_h, input_w, channels, output_h, output_w;
    const int32_t *rows;
    const int32_t *cols;
} eq_resize_bilinear_s8_params_t;

eq_status_t eq_resize_bilinear_s8(const eq_resize_bilinear_s8_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_remap(const eq_remap_params_t *p, const int8_t *in, int8_t *out);
eq_status_t eq_gather(const eq_gather_params_t *p, const int8_t *in, const int8_t *indices, int8_t *out);
eq_status_t eq_gather_table(const eq_gather_table_params_t *p, const int8_t *indices, int8_t *out);

#endif /* EQ_MOVEMENT_H */
