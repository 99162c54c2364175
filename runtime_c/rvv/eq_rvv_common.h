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

/* How accumulators become int8: TFLite's multiplier and shift (per channel), or one rounding shift of
 * power-of-two graphs, rounded as LiteRT rounds convolutions or as it rounds fully connected layers. */
enum { EQ_RVV_MULTIPLIER, EQ_RVV_SHIFT };

/* Requantization constants per channel, computed at build time, rows of `channels` int32:
 *   [0] multiplier (multiplier mode), [1] left shift, [2] right shift,
 *   [3] rounding addend for acc >= 0, [4] for acc < 0.
 * Multiplier mode is tflite::MultiplyByQuantizedMultiplier: vsmul with round-to-nearest-up is gemmlowp's
 * SaturatingRoundingDoublingHighMul for a positive multiplier, and RoundingDivideByPOT is a floor shift of
 * acc + 2^(r-1) (acc >= 0) or acc + 2^(r-1) - 1 (acc < 0). The shift modes are the same floor shift with the
 * addends of edgeq's rounding (edgeq/lowering): both turn into one add and one arithmetic shift here. */
#define EQ_RVV_RQ_MULT 0
#define EQ_RVV_RQ_LEFT 1
#define EQ_RVV_RQ_RIGHT 2
#define EQ_RVV_RQ_POS 3
#define EQ_RVV_RQ_NEG 4

#define EQ_RVV_DEFINE_REQUANT(LMUL, MB, NARROW16, NARROW8)                                                     \
    static EQ_ALWAYS_INLINE void eq_rvv_requant_store_##LMUL(vint32##LMUL##_t acc, const int32_t *rq,             \
                                                            int32_t channels, int32_t c, size_t vl,              \
                                                            int32_t out_offset, int32_t lo, int32_t hi,          \
                                                            int8_t *y, const int mode)                           \
    {                                                                                                            \
        const int32_t *const q = rq + c;                                                                         \
        if (mode == EQ_RVV_MULTIPLIER) {                                                                         \
            const vuint32##LMUL##_t left = __riscv_vreinterpret_v_i32##LMUL##_u32##LMUL(                         \
                __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_LEFT * channels, vl));                                   \
            acc = __riscv_vsll_vv_i32##LMUL(acc, left, vl);                                                      \
            acc = __riscv_vsmul_vv_i32##LMUL(acc, __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_MULT * channels, vl),  \
                                             __RISCV_VXRM_RNU, vl);                                              \
        }                                                                                                        \
        const vbool##MB##_t negative = __riscv_vmslt_vx_i32##LMUL##_b##MB(acc, 0, vl);                          \
        const vint32##LMUL##_t add = __riscv_vmerge_vvm_i32##LMUL(                                               \
            __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_POS * channels, vl),                                         \
            __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_NEG * channels, vl), negative, vl);                          \
        const vuint32##LMUL##_t right = __riscv_vreinterpret_v_i32##LMUL##_u32##LMUL(                            \
            __riscv_vle32_v_i32##LMUL(q + EQ_RVV_RQ_RIGHT * channels, vl));                                      \
        acc = __riscv_vsra_vv_i32##LMUL(__riscv_vadd_vv_i32##LMUL(acc, add, vl), right, vl);                     \
        acc = __riscv_vadd_vx_i32##LMUL(acc, out_offset, vl);                                                    \
        acc = __riscv_vmax_vx_i32##LMUL(__riscv_vmin_vx_i32##LMUL(acc, hi, vl), lo, vl);                         \
        __riscv_vse8_v_i8##NARROW8(y, __riscv_vncvt_x_x_w_i8##NARROW8(                                           \
                                          __riscv_vncvt_x_x_w_i16##NARROW16(acc, vl), vl), vl);                  \
    }

/* i32m4 accumulators (int8 at LMUL 1) and i32m8 ones (int8 at LMUL 2) */
EQ_RVV_DEFINE_REQUANT(m4, 8, m2, m1)
EQ_RVV_DEFINE_REQUANT(m8, 4, m4, m2)

#endif /* EQ_RVV_COMMON_H */
