/* ADD and SUB of two same-shape int8 tensors. TFLite rescales each input on its own (offset, left shift,
 * multiplier) before the sum, so each input's 256 possible values are rescaled once, at build time, into a
 * table: an element costs two table loads, an add and the output's rescale (one SMLAL sum, or one shift in
 * power-of-two graphs), where CMSIS-NN's ADD computes three multiplier rescales. */
#ifndef EQ_DSP_ELEMENTWISE_H
#define EQ_DSP_ELEMENTWISE_H

#include "eq_dsp_common.h"

typedef struct {
    const int32_t *table0;  /* [256]: input 0's rescaled value, indexed by the int8 element's byte */
    const int32_t *table1;  /* [256]: input 1's, negated for SUB */
    eq_dsp_rescale_t rq;    /* the sum's rescale, one channel */
    int32_t size;
} eq_dsp_add_t;

static EQ_ALWAYS_INLINE eq_status_t eq_dsp_add_s8(const eq_dsp_add_t *p, const int8_t *in0, const int8_t *in1,
                                                  int8_t *out, const int mode)
{
    const uint8_t *a = (const uint8_t *)in0, *b = (const uint8_t *)in1;
    for (int32_t i = 0; i < p->size; i++) {
        out[i] = eq_dsp_requantize(p->table0[a[i]] + p->table1[b[i]], &p->rq, 0, mode);
    }
    return EQ_OK;
}

#endif /* EQ_DSP_ELEMENTWISE_H */
