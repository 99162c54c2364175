/* Reference int8 REDUCE_MAX: the largest raw value over the reduced axes. */
#include "eq_reduce.h"

eq_status_t eq_reduce_max_s8(const eq_reduce_max_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    const int32_t d[4] = {p->d0, p->d1, p->d2, p->d3};
    const int32_t r[4] = {p->reduce0, p->reduce1, p->reduce2, p->reduce3};
    const int32_t zero[4] = {0, 0, 0, 0};
    int32_t od[4], i[4] = {0, 0, 0, 0}, lo[4], hi[4], j[4];
    if (!eq_reduce_dims(d, r, od)) {
        return EQ_ERR_ARG;
    }
    size_t o = 0;
    do { /* each output element, in row-major order: the largest value over its reduced axes */
        eq_reduce_window(d, r, i, lo, hi);
        memcpy(j, lo, sizeof j);
        int8_t best = INT8_MIN;
        do {
            best = EQ_MAX(best, in[eq_offset4(d, j)]);
        } while (eq_next_index(j, lo, hi));
        out[o++] = best;
    } while (eq_next_index(i, zero, od));
    return EQ_OK;
}
