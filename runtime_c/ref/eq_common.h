/* edgeq runtime: status codes, dimension structs and TFLite's fixed-point arithmetic in C99.
 * Twin of edgeq/quant/fixedpoint.py; both reproduce tflite/kernels/internal/common.h bit for bit. */
#ifndef EQ_COMMON_H
#define EQ_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

typedef enum {
    EQ_OK = 0,
    EQ_ERR_ARG = 1,      /* a NULL pointer or an impossible parameter */
    EQ_ERR_UNSUPPORTED = 2
} eq_status_t;

/* How a kernel rescales its accumulators: TFLite's multiplier and shift, or (power-of-two graphs) one
 * rounding shift with no multiplier. */
typedef enum {
    EQ_REQUANT_MULTIPLIER = 0,
    EQ_REQUANT_SHIFT = 1
} eq_requant_t;

#if defined(__GNUC__) || defined(__clang__)
#define EQ_ALIGNED(n) __attribute__((aligned(n)))
#define EQ_ALWAYS_INLINE inline __attribute__((always_inline))
#define EQ_NOINLINE __attribute__((noinline))
#else
#define EQ_ALIGNED(n)
#define EQ_ALWAYS_INLINE inline
#define EQ_NOINLINE
#endif

#define EQ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EQ_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline int32_t eq_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* int32 wrap-around without signed-overflow UB (conversion to int32_t is two's complement with gcc/clang). */
static inline int32_t eq_wrap32(int64_t x)
{
    return (int32_t)(uint32_t)(uint64_t)x;
}

/* gemmlowp SaturatingRoundingDoublingHighMul */
static inline int32_t eq_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31));
}

/* gemmlowp RoundingDivideByPOT, exponent in [0, 31] */
static inline int32_t eq_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* tflite::MultiplyByQuantizedMultiplier, double rounding (TFLM's default build) */
static inline int32_t eq_mbqm(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return eq_rdbpot(eq_srdhm(eq_wrap32((int64_t)x * (1LL << left)), multiplier), right);
}

/* tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0) */
static inline int32_t eq_mbqm_smaller_than_one(int32_t x, int32_t multiplier, int left_shift)
{
    return eq_rdbpot(eq_srdhm(x, multiplier), -left_shift);
}

/* tflite::MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0) */
static inline int32_t eq_mbqm_greater_than_one(int32_t x, int32_t multiplier, int left_shift)
{
    return eq_srdhm(eq_wrap32((int64_t)x * (1LL << left_shift)), multiplier);
}

/* x * 2^-shift for shift > 0: the magnitude plus a nudge, shifted right, so no negative value is ever
 * right-shifted; otherwise a multiply. Saturated to int32. */
static inline int32_t eq_shift_by_magnitude(int64_t x, int32_t shift, int64_t nudge)
{
    if (shift > 0) {
        const int64_t magnitude = ((x < 0 ? -x : x) + nudge) >> shift;
        x = x < 0 ? -magnitude : magnitude;
    } else if (shift < 0) {
        x = x * ((int64_t)1 << -shift);
    }
    return x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : (int32_t)x);
}

/* Power-of-two requantization (graphs quantized with --quant pot): x * 2^-shift rounded half away from
 * zero, as TFLite's RoundingDivideByPOT rounds (ADD). Twin of fixedpoint.rounding_shift. */
static inline int32_t eq_rounding_shift(int64_t x, int32_t shift)
{
    return eq_shift_by_magnitude(x, shift, shift > 0 ? (int64_t)1 << (shift - 1) : 0);
}

/* x * 2^-shift rounded as tflite::MultiplyByQuantizedMultiplier rounds a multiplier of 2^-shift (its two
 * roundings as one nudge), so exported power-of-two models match LiteRT bit for bit (convolutions,
 * depthwise, MUL). Twin of fixedpoint.tflite_rounding_shift. */
static inline int32_t eq_tflite_rounding_shift(int64_t x, int32_t shift)
{
    int64_t nudge = 0;
    if (shift > 0) {
        nudge = ((int64_t)1 << (shift - 1)) + (x >= 0 ? (shift >= 2) : -(shift == 1));
    }
    return eq_shift_by_magnitude(x, shift, nudge);
}

/* tflite::MultiplyByQuantizedMultiplier for the int64 accumulators of 16x8 layers: the multiplier rounded to
 * 16 bits, one rounding shift. */
static inline int32_t eq_mbqm64(int64_t x, int32_t multiplier, int shift)
{
    const int64_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
    const int total = 15 - shift;
    return (int32_t)((x * reduced + ((int64_t)1 << (total - 1))) >> total);
}

/* int16 tensors live in the byte arena: loads and stores by memcpy assume no alignment and alias nothing. */
static inline int32_t eq_load(const int8_t *base, size_t i, int wide)
{
    if (!wide) {
        return base[i];
    }
    int16_t v;
    memcpy(&v, base + 2 * i, sizeof v);
    return v;
}

static inline void eq_store(int8_t *base, size_t i, int32_t v, int wide)
{
    if (!wide) {
        base[i] = (int8_t)v;
        return;
    }
    const int16_t s = (int16_t)v;
    memcpy(base + 2 * i, &s, sizeof s);
}

#endif /* EQ_COMMON_H */
