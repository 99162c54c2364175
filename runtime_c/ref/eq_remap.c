/* Reference data movement: every output element copied from the input element its axis tables give. */
#include <string.h>
#include "eq_movement.h"

eq_status_t eq_remap(const eq_remap_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->offsets == NULL || p->elem_bytes < 1) {
        return EQ_ERR_ARG;
    }
    const int32_t *t0 = p->offsets;
    const int32_t *t1 = t0 + p->d0;
    const int32_t *t2 = t1 + p->d1;
    const int32_t *t3 = t2 + p->d2;
    const int32_t *t4 = t3 + p->d3;
    const int32_t *t5 = t4 + p->d4;
    const size_t elem = (size_t)p->elem_bytes;
    const size_t row = (size_t)p->d5 * elem;
    for (int32_t i0 = 0; i0 < p->d0; i0++) {
        for (int32_t i1 = 0; i1 < p->d1; i1++) {
            for (int32_t i2 = 0; i2 < p->d2; i2++) {
                for (int32_t i3 = 0; i3 < p->d3; i3++) {
                    for (int32_t i4 = 0; i4 < p->d4; i4++) {
                        const size_t base = (size_t)t0[i0] + (size_t)t1[i1] + (size_t)t2[i2] + (size_t)t3[i3]
                                            + (size_t)t4[i4];
                        if (p->contiguous) {
                            memcpy(out, in + (base + (size_t)t5[0]) * elem, row);
                            out += row;
                            continue;
                        }
                        for (int32_t i5 = 0; i5 < p->d5; i5++) {
                            memcpy(out, in + (base + (size_t)t5[i5]) * elem, elem);
                            out += elem;
                        }
                    }
                }
            }
        }
    }
    return EQ_OK;
}
