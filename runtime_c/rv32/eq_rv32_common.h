/* edgeq's own scalar kernels for RV32IM cores (no vector unit, no packed SIMD): shared pieces.
 *
 * Every kernel is a static inline function the generated model calls with its layer's shapes, offsets and
 * shifts as literals, so the compiler specialises each call: loop bounds and strides become constants, and
 * the loads of a block take immediate offsets from one pointer. The input offset is folded into the bias at
 * build time, so the inner loops multiply raw int8 values (one mul and one add per multiply-accumulate:
 * RV32IM has no multiply-add). */
#ifndef EQ_RV32_COMMON_H
#define EQ_RV32_COMMON_H

#include <stdint.h>
#include <string.h>

#include "../eq_common.h"

/* Requantization constants, computed at build time, EQ_RV32_RQ of them per channel (channel c at rq + 6 * c):
 *   [0] multiplier (multiplier mode), [1] left shift, [2] right shift r, [3] 2^r - 1,
 *   [4] what is added before the floor shift for acc >= 0, [5] that minus what is added for acc < 0.
 * Multiplier mode is tflite::MultiplyByQuantizedMultiplier: the doubling high multiply rounds half up for a
 * positive multiplier, and RoundingDivideByPOT is a floor shift of acc + 2^(r-1) (acc >= 0) or
 * acc + 2^(r-1) - 1 (acc < 0). The shift mode (power-of-two graphs) is the same floor shift with the addends of
 * edgeq's rounding (edgeq/lowering). */
#define EQ_RV32_RQ 6

enum { EQ_RV32_SHIFT, EQ_RV32_MULTIPLIER };

static EQ_ALWAYS_INLINE int8_t eq_rv32_requant(int32_t acc, const int32_t *q, int32_t out_offset, int32_t lo,
                                               int32_t hi, const int mode)
{
    if (mode == EQ_RV32_MULTIPLIER) {
        /* the left shift wraps as TFLite's int32 product does */
        acc = (int32_t)((uint32_t)acc << q[1]);
        acc = (int32_t)(((int64_t)acc * q[0] + (1LL << 30)) >> 31);
    }
    /* floor((acc + add) / 2^r) without a 64-bit shift: the remainder plus the addend stays below 2^32 */
    const uint32_t add = (uint32_t)(q[4] - (q[5] & (acc >> 31)));
    acc = (acc >> q[2]) + (int32_t)(((uint32_t)(acc & q[3]) + add) >> q[2]);
    return (int8_t)(eq_clamp(acc, lo - out_offset, hi - out_offset) + out_offset);  /* no int32 overflow */
}

#endif /* EQ_RV32_COMMON_H */
