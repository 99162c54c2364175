/* ADD of two int8 tensors of the same shape (no broadcasting), four elements per vector: each input offset and
 * aligned by a left shift (one VMLAS), then TFLite's multipliers and rounding shifts (EQ_MVE_MULTIPLIER), or in
 * power-of-two graphs (EQ_MVE_SHIFT) the sum of the aligned inputs rounded once by out_shift. */
#ifndef EQ_MVE_ELEMENTWISE_H
#define EQ_MVE_ELEMENTWISE_H

#include "eq_mve_common.h"

typedef struct {
    int32_t size;                            /* elements */
    int32_t in0_offset, in1_offset;          /* pre-shifted: offset << left_shift (shift mode: << in*_shift) */
    int32_t left_shift, in0_mult, in0_shift, in1_mult, in1_shift;  /* shift mode: left shifts in*_shift */
    int32_t out_mult, out_shift, output_offset, act_min, act_max;  /* shift mode: out_shift >= 1 */
} eq_mve_add_t;

/* tflite::MultiplyByQuantizedMultiplier for one multiplier and shift, on four lanes. */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_mbqm_n(int32x4_t x, int32_t mult, int32_t shift)
{
    if (shift > 0) {
        x = vshlq_r_s32(x, shift);
    }
    x = vqrdmulhq_n_s32(x, mult);
    if (shift < 0) {  /* rounding half away from zero: negative values nudged down by one first */
        x = vqaddq_s32(x, vshrq_n_s32(x, 31));
        x = vrshlq_n_s32(x, shift);
    }
    return x;
}

static EQ_ALWAYS_INLINE eq_status_t eq_mve_add_s8(const eq_mve_add_t *p, const int8_t *in0, const int8_t *in1,
                                                  int8_t *out, const int mode)
{
    const int shift = mode == EQ_MVE_SHIFT;
    const int32x4_t scale0 = vdupq_n_s32(1 << (shift ? p->in0_shift : p->left_shift));
    const int32x4_t scale1 = vdupq_n_s32(1 << (shift ? p->in1_shift : p->left_shift));
    for (int32_t i = 0; i < p->size; i += 4, in0 += 4, in1 += 4, out += 4) {
        const mve_pred16_t live = vctp32q((uint32_t)(p->size - i));
        const int32x4_t a = vmlasq_n_s32(vldrbq_z_s32(in0, live), scale0, p->in0_offset);
        const int32x4_t b = vmlasq_n_s32(vldrbq_z_s32(in1, live), scale1, p->in1_offset);
        int32x4_t acc;
        if (shift) {  /* half away from zero: negative sums nudged down by one before the rounding shift */
            acc = vaddq_s32(a, b);
            acc = vrshlq_n_s32(vqaddq_s32(acc, vshrq_n_s32(acc, 31)), -p->out_shift);
        } else {
            acc = vaddq_s32(eq_mve_mbqm_n(a, p->in0_mult, p->in0_shift), eq_mve_mbqm_n(b, p->in1_mult, p->in1_shift));
            acc = eq_mve_mbqm_n(acc, p->out_mult, p->out_shift);
        }
        acc = vaddq_n_s32(acc, p->output_offset);
        acc = vminq_s32(vmaxq_s32(acc, vdupq_n_s32(p->act_min)), vdupq_n_s32(p->act_max));
        vstrbq_p_s32(out, acc, live);
    }
    return EQ_OK;
}

#endif /* EQ_MVE_ELEMENTWISE_H */
