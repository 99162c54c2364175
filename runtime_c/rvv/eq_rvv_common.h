/* edgeq's own kernels for RISC-V cores with the vector extension 1.0 (RVV): shared pieces.
 *
 * VLEN-agnostic: every loop strip-mines with vsetvl, so the same code runs at any vector length.
 * Every kernel is a static inline function the generated model calls with its layer's shapes, offsets and
 * shifts as literals, so the compiler specialises each call. The input offset is folded into the bias at
 * build time (padding reads the input's zero point, which the folded offset turns into zero), so the inner
 * loops multiply raw int8 values with widening multiply-accumulates. */
#ifndef EQ_RVV_COMMON_H
#define EQ_RVV_COMMON_H

#include <riscv_vector.h>
#include <stdint.h>
#include <string.h>

#include "../eq_common.h"

/* How accumulators become int8, a layer's constant set of flags: EQ_RVV_MULTIPLIER (TFLite's multiplier and
 * shift per channel; else one rounding shift, edgeq's power-of-two graphs), EQ_RVV_LEFT (some channel's
 * multiplier mode shifts left first), and the nudge that makes the rounding right shift of vnclip (round to
 * nearest, ties up: it adds 2^(shift-1)) round as the layer must:
 *   none              ties up (power-of-two convolutions shifting by 1)
 *   EQ_RVV_NUDGE_SIGN acc - 1 when acc < 0: ties away from zero (TFLite's RoundingDivideByPOT; fully connected)
 *   EQ_RVV_NUDGE_AWAY acc + 1, or - 1 when acc < 0 (power-of-two convolutions shifting by 2 or more)
 *   EQ_RVV_NUDGE_ROWS acc + e - (acc < 0) * d, e and d per channel (channels that differ)
 * Multiplier mode is tflite::MultiplyByQuantizedMultiplier: vsmul with round-to-nearest-up is gemmlowp's
 * SaturatingRoundingDoublingHighMul for a positive multiplier. vnclip's 16-bit saturation cannot change the
 * result: the output offset is added with saturation and the activation's range lies within int8. */
#define EQ_RVV_SHIFT 0
#define EQ_RVV_MULTIPLIER 1
#define EQ_RVV_LEFT 2
#define EQ_RVV_NUDGE_SIGN 4
#define EQ_RVV_NUDGE_AWAY 8
#define EQ_RVV_NUDGE_ROWS 16

/* Requantization constants per channel, computed at build time: rq holds rows of `channels` int32,
 *   [0] multiplier, [1] left shift, [2] e, [3] d (see above); shift holds each channel's right shift. */
#define EQ_RVV_RQ_MULT 0
#define EQ_RVV_RQ_LEFT 1
#define EQ_RVV_RQ_E 2
#define EQ_RVV_RQ_D 3

#define EQ_RVV_DEFINE_REQUANT(LMUL, L16, L8)                                                                     \
    static EQ_ALWAYS_INLINE void eq_rvv_requant_store_##LMUL(vint32##LMUL##_t acc, const int32_t *rq,             \
                                                            const int16_t *shift, int32_t channels, int32_t c,  \
                                                            size_t vl, int32_t out_offset, int32_t lo,           \
                                                            int32_t hi, int8_t *y, const int flags)              \
    {                                                                                                            \
        const int32_t *const q = rq + c;                                                                         \
        if (flags & EQ_RVV_MULTIPLIER) {                                                                         \
            if (flags & EQ_RVV_LEFT) {                                                                           \
                const vint32##LMUL##_t left = __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_LEFT * channels, vl);      \
                acc = __riscv_vsll_vv_i32##LMUL(acc, __riscv_vreinterpret_v_i32##LMUL##_u32##LMUL(left), vl);    \
            }                                                                                                    \
            acc = __riscv_vsmul_vv_i32##LMUL(acc, __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_MULT * channels, vl),  \
                                             __RISCV_VXRM_RNU, vl);                                              \
        }                                                                                                        \
        if (flags & (EQ_RVV_NUDGE_SIGN | EQ_RVV_NUDGE_AWAY | EQ_RVV_NUDGE_ROWS)) {                               \
            vint32##LMUL##_t sign = __riscv_vsra_vx_i32##LMUL(acc, 31, vl);                                      \
            if (flags & EQ_RVV_NUDGE_AWAY) {                                                                     \
                sign = __riscv_vor_vx_i32##LMUL(sign, 1, vl);                                                    \
            } else if (flags & EQ_RVV_NUDGE_ROWS) {                                                              \
                sign = __riscv_vmadd_vv_i32##LMUL(sign, __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_D * channels, vl), \
                                                  __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_E * channels, vl), vl); \
            }                                                                                                    \
            acc = __riscv_vadd_vv_i32##LMUL(acc, sign, vl);                                                      \
        }                                                                                                        \
        const vuint16##L16##_t right =                                                                           \
            __riscv_vreinterpret_v_i16##L16##_u16##L16(__riscv_vle16_v_i16##L16(shift + c, vl));                 \
        vint16##L16##_t v = __riscv_vnclip_wv_i16##L16(acc, right, __RISCV_VXRM_RNU, vl);                          \
        v = __riscv_vsadd_vx_i16##L16(v, (int16_t)out_offset, vl);                                              \
        v = __riscv_vmax_vx_i16##L16(__riscv_vmin_vx_i16##L16(v, (int16_t)hi, vl), (int16_t)lo, vl);             \
        __riscv_vse8_v_i8##L8(y, __riscv_vncvt_x_x_w_i8##L8(v, vl), vl);                                         \
    }

/* i32m2 accumulators (int8 at LMUL 1/2), i32m4 ones (int8 at LMUL 1) and i32m8 ones (int8 at LMUL 2) */
EQ_RVV_DEFINE_REQUANT(m2, m1, mf2)
EQ_RVV_DEFINE_REQUANT(m4, m2, m1)
EQ_RVV_DEFINE_REQUANT(m8, m4, m2)

#endif /* EQ_RVV_COMMON_H */
