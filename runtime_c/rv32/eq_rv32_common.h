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

/* Requantization constants per channel, computed at build time, rows of `channels` int32:
 *   [0] multiplier (multiplier mode), [1] left shift, [2] right shift,
 *   [3] what is added before the floor shift for acc >= 0, [4] for acc < 0.
 * Multiplier mode is tflite::MultiplyByQuantizedMultiplier: the doubling high multiply rounds half up for a
 * positive multiplier, and RoundingDivideByPOT is a floor shift of acc + 2^(r-1) (acc >= 0) or
 * acc + 2^(r-1) - 1 (acc < 0). The shift mode (power-of-two graphs) is the same floor shift with the addends of
 * edgeq's rounding (edgeq/lowering). */
#define EQ_RV32_RQ_MULT 0
#define EQ_RV32_RQ_LEFT 1
#define EQ_RV32_RQ_RIGHT 2
#define EQ_RV32_RQ_POS 3
#define EQ_RV32_RQ_NEG 4

enum { EQ_RV32_SHIFT, EQ_RV32_MULTIPLIER };

static EQ_ALWAYS_INLINE int8_t eq_rv32_requant(int32_t acc, const int32_t *rq, int32_t channels, int32_t c,
                                               int32_t out_offset, int32_t lo, int32_t hi, const int mode)
{
    if (mode == EQ_RV32_MULTIPLIER) {
        /* the left shift wraps as TFLite's int32 product does */
        acc = (int32_t)((uint32_t)acc << rq[EQ_RV32_RQ_LEFT * channels + c]);
        acc = (int32_t)(((int64_t)acc * rq[EQ_RV32_RQ_MULT * channels + c] + (1LL << 30)) >> 31);
    }
    const int32_t add = rq[(acc >= 0 ? EQ_RV32_RQ_POS : EQ_RV32_RQ_NEG) * channels + c];
    acc = (int32_t)(((int64_t)acc + add) >> rq[EQ_RV32_RQ_RIGHT * channels + c]);
    return (int8_t)(eq_clamp(acc, lo - out_offset, hi - out_offset) + out_offset);  /* no int32 overflow */
}

#endif /* EQ_RV32_COMMON_H */
