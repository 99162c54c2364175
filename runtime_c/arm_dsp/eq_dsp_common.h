/* edgeq's own kernels for Cortex-M cores with the DSP extension (M4, M7, M33): shared pieces.
 *
 * Every kernel is a static inline function the generated model calls with its layer's shapes, offsets and
 * shifts as literals, so the compiler specialises each call (loop bounds, strides, requantization mode).
 * The input offset is folded into the bias at build time, so the inner loops multiply raw int8 values.
 * Without __ARM_FEATURE_DSP (the host's tests) the two SIMD instructions are plain C of the same meaning. */
#ifndef EQ_DSP_COMMON_H
#define EQ_DSP_COMMON_H

#include <stdint.h>
#include <string.h>

#include "../eq_common.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define eq_sxtb16(x) ((uint32_t)__sxtb16(x))
#define eq_smlad(a, b, acc) __smlad((a), (b), (acc))
#define eq_smlabb(a, b, acc) __smlabb((int32_t)(a), (int32_t)(b), (acc))
#define eq_smlatt(a, b, acc) __smlatt((int32_t)(a), (int32_t)(b), (acc))
/* gcc 12 emits a separate ROR for __sxtb16(__ror(x, 8)): one instruction instead of two */
static inline uint32_t eq_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#else
static inline uint32_t eq_sxtb16(uint32_t x)
{
    return (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xFF) | ((uint32_t)(uint16_t)(int16_t)(int8_t)(x >> 16) << 16);
}
static inline uint32_t eq_sxtb16_ror8(uint32_t x)
{
    return eq_sxtb16((x >> 8) | (x << 24));
}
static inline int32_t eq_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    const int32_t lo = (int32_t)(int16_t)(a & 0xFFFF) * (int32_t)(int16_t)(b & 0xFFFF);
    const int32_t hi = (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
static inline int32_t eq_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a & 0xFFFF) * (int32_t)(int16_t)(b & 0xFFFF)));
}
static inline int32_t eq_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16)));
}
#endif

/* Keeps gcc from hoisting every channel's table loads above the first channel's rescale: with four or more
 * accumulators live it then spills them all to the stack (~7 instructions an output). Not where the output
 * goes through the live-channel table, whose loads it would repeat. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define EQ_DSP_IN_ORDER() __asm__ volatile("" ::: "memory")
#else
#define EQ_DSP_IN_ORDER() ((void)0)
#endif

/* Fully unrolls a loop of a few constant trips (filter taps), which -O2 alone leaves rolled. */
#if defined(__GNUC__) && !defined(__clang__)
#define EQ_UNROLL _Pragma("GCC unroll 16")
#elif defined(__clang__)
#define EQ_UNROLL _Pragma("unroll 16")
#else
#define EQ_UNROLL
#endif

/* Four int8 values as one word, at any alignment (LDR on the M4/M7, which allow unaligned words). */
static EQ_ALWAYS_INLINE uint32_t eq_load4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* How accumulators become int8: TFLite's multiplier and shift (per channel), or one rounding shift of
 * power-of-two graphs, rounded as LiteRT rounds convolutions or as it rounds fully connected layers. */
enum { EQ_DSP_MULTIPLIER, EQ_DSP_MULTIPLIER_RIGHT, EQ_DSP_MULTIPLIER_FUSED, EQ_DSP_SHIFT_AS_CONV,
       EQ_DSP_SHIFT_AS_FC, EQ_DSP_SHIFT_FUSED };
/* EQ_DSP_MULTIPLIER_RIGHT: the multiplier mode of a layer whose shifts all divide (shift <= 0, as in
 * nearly every TFLite layer), which needs no left shift.
 * EQ_DSP_MULTIPLIER_FUSED: the same result in one 64-bit multiply-accumulate, for layers whose shifts all lie
 * in -22..-2: mult holds per channel the pair (multiplier, k), shift holds -shift - 1, and the output offset is
 * inside k (see eq_dsp_fused).
 * EQ_DSP_SHIFT_FUSED: a power-of-two rescale by 2^-k, either rounding, as one floor shift
 * (acc + add + (acc >> 31) * sign_step) >> k: add is the nudge of accumulators >= 0 plus offset * 2^k,
 * sign_step how much smaller the nudge of negative ones is (own_kernels.shift_nudges). add and k are literals
 * when every channel shares them (rshift > 0), else per channel in mult and shift. */

/* A layer's requantization; a static const struct, so its scalar fields fold into the kernel as constants. */
typedef struct {
    const int32_t *mult;   /* [channels]: multipliers, (multiplier, k) pairs (MULTIPLIER_FUSED) or adds (SHIFT_FUSED) */
    const int8_t *shift;   /* [channels] (every shift fits a byte) */
    /* The FUSED modes' constants when every channel shares them (rshift > 0; 0: per channel in mult and shift):
     * the multiplier (MULTIPLIER_FUSED), add (k of MULTIPLIER_FUSED), the shift (r - 1, or k), sign_step. */
    int32_t multiplier, add, rshift, sign_step;
    int32_t output_offset, act_min, act_max;
} eq_dsp_rescale_t;

/* tflite::MultiplyByQuantizedMultiplier with 32x32->64 multiplies only (SMULL): the doubling high
 * multiply with a fixed +2^30 nudge and a floor shift equals gemmlowp's sign-dependent nudge and
 * truncation for every product, and a positive multiplier never saturates. */
static EQ_ALWAYS_INLINE int32_t eq_dsp_mbqm(int32_t x, int32_t multiplier, int32_t shift, const int divides)
{
    const int32_t left = divides ? 0 : shift > 0 ? shift : 0;
    const int32_t right = divides ? -shift : shift > 0 ? 0 : -shift;
    const int32_t scaled = (int32_t)((uint32_t)x << left);
    const int32_t high = (int32_t)(((int64_t)scaled * multiplier + (1LL << 30)) >> 31);
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t remainder = high & mask;
    const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right) + (remainder > threshold ? 1 : 0);
}

/* tflite::MultiplyByQuantizedMultiplier(x, m, -r) + offset for 2 <= r <= 22, with both of its roundings in one
 * sum: floor((x * m + 2^30 + (2^(r-1) + offset * 2^r - [x < 0]) * 2^31) / 2^(31 + r)). The build computes
 * k = 2^(r-2) + offset * 2^(r-1), the sum's high word before the product, and r1 = r - 1: SMLAL, the sign's
 * borrow, one shift, where the two-step form takes a dozen instructions. */
static EQ_ALWAYS_INLINE int32_t eq_dsp_fused(int32_t x, int32_t m, int32_t k, int32_t r1)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    uint32_t lo = 0x40000000u;
    int32_t hi = k;
    const int32_t sign = x >> 31;
    __asm__("smlal %0, %1, %2, %3\n\tadds %0, %0, %4, lsl #31\n\tadc %1, %1, %4"
            : "+&r"(lo), "+&r"(hi) : "r"(x), "r"(m), "r"(sign) : "cc");
    return hi >> r1;
#else
    const int64_t sum = (int64_t)((uint64_t)(int64_t)k << 32) + 0x40000000 + (int64_t)x * m - (x < 0 ? 0x80000000LL : 0);
    return (int32_t)(sum >> 32) >> r1;
#endif
}

/* x * 2^-shift (shift >= 1) rounded on the magnitude, in 32-bit arithmetic: the twins of
 * eq_tflite_rounding_shift (convolutions) and eq_rounding_shift (fully connected). */
static EQ_ALWAYS_INLINE int32_t eq_dsp_shift(int32_t x, int32_t shift, const int mode)
{
    const uint32_t half = 1u << (shift - 1);
    if (x >= 0) {
        const uint32_t nudge = mode == EQ_DSP_SHIFT_AS_CONV ? half + (shift >= 2) : half;
        return (int32_t)(((uint32_t)x + nudge) >> shift);
    }
    const uint32_t nudge = mode == EQ_DSP_SHIFT_AS_CONV ? half - (shift == 1) : half;
    return -(int32_t)(((0u - (uint32_t)x) + nudge) >> shift);
}

static EQ_ALWAYS_INLINE int32_t eq_dsp_shift_fused(int32_t x, int32_t add, int32_t step, int32_t k)
{
    return (x + add + (x >> 31) * step) >> k;
}

static EQ_ALWAYS_INLINE int8_t eq_dsp_requantize(int32_t acc, const eq_dsp_rescale_t *rq, int32_t c, const int mode)
{
    const int32_t *mult = rq->mult;
    const int8_t *shift = rq->shift;
    const int32_t lo = rq->act_min, hi = rq->act_max;
    const int32_t scaled =
        mode == EQ_DSP_MULTIPLIER         ? eq_dsp_mbqm(acc, mult[c], shift[c], 0) + rq->output_offset
        : mode == EQ_DSP_MULTIPLIER_RIGHT ? eq_dsp_mbqm(acc, mult[c], shift[c], 1) + rq->output_offset
        : mode == EQ_DSP_MULTIPLIER_FUSED ? (rq->rshift ? eq_dsp_fused(acc, rq->multiplier, rq->add, rq->rshift)
                                                        : eq_dsp_fused(acc, mult[2 * c], mult[2 * c + 1], shift[c]))
        : mode == EQ_DSP_SHIFT_FUSED      ? (rq->rshift ? eq_dsp_shift_fused(acc, rq->add, rq->sign_step, rq->rshift)
                                                        : eq_dsp_shift_fused(acc, mult[c], rq->sign_step, shift[c]))
                                          : eq_dsp_shift(acc, shift[c], mode) + rq->output_offset;
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    if (lo == -128 && hi == 127) {  /* no fused activation: one saturating instruction */
        return (int8_t)__ssat(scaled, 8);
    }
#endif
    return (int8_t)eq_clamp(scaled, lo, hi);
}

#endif /* EQ_DSP_COMMON_H */
