/* Requantization of an accumulator, shared by the convolution and fully connected reference kernels. */
#ifndef EQ_REQUANTIZE_H
#define EQ_REQUANTIZE_H

#include "eq_common.h"

/* How a kernel rescales its accumulators: TFLite's multiplier and shift per channel, or (power-of-two
 * graphs, no multipliers) one rounding shift, rounded as LiteRT rounds that layer kind: convolutions as
 * MultiplyByQuantizedMultiplier rounds 2^-shift, fully connected layers once, half away from zero.
 * Each kernel's loops are compiled once per mode, with the mode constant, so no output pays for the choice. */
enum { EQ_MULTIPLIER, EQ_SHIFT_AS_CONV, EQ_SHIFT_AS_FC };

static EQ_ALWAYS_INLINE int8_t eq_requantize(int32_t acc, const int32_t *mult, const int32_t *shift, int32_t c,
                                             const int32_t offset, int32_t lo, int32_t hi, const int mode)
{
    const int32_t scaled = mode == EQ_SHIFT_AS_CONV ? eq_tflite_rounding_shift(acc, shift[c])
                           : mode == EQ_SHIFT_AS_FC ? eq_rounding_shift(acc, shift[c])
                                                    : eq_mbqm(acc, mult[c], (int)shift[c]);
    return (int8_t)eq_clamp(scaled + offset, lo, hi);
}

#endif /* EQ_REQUANTIZE_H */
