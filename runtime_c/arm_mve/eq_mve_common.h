/* edgeq's own kernels for Cortex-M cores with Helium (MVE, M55/M85): shared pieces.
 *
 * Every kernel is a static inline function each layer calls (from a function of its own) with its shapes,
 * offsets and shifts as literals, so the compiler specialises it (loop bounds, requantization mode).
 * Built at build time (edgeq/codegen/backends/arm_mve.py): the input offset folded into the bias, and per
 * channel the rescale as a table loaded four lanes at a time, padded to whole vectors of channels.
 * MVE has no host twin: the per-kernel tests run these kernels in QEMU (tests/test_mve_kernels.py). */
#ifndef EQ_MVE_COMMON_H
#define EQ_MVE_COMMON_H

#include <arm_mve.h>
#include <stdint.h>
#include <string.h>

#include "../eq_common.h"

/* How accumulators become int8:
 *  EQ_MVE_MULTIPLIER: tflite::MultiplyByQuantizedMultiplier (shift left, doubling high multiply, rounding
 *    divide by a power of two; CMSIS-NN's MVE sequence, which is TFLite's rounding bit for bit);
 *  EQ_MVE_MULTIPLIER_RIGHT: the same when every channel shifts right by one or more (the usual case: two
 *    instructions fewer, the left shift and the mask that keeps a shift of zero from rounding);
 *  EQ_MVE_SHIFT: power-of-two graphs, one floor shift of acc plus an addend chosen by the sign, which the
 *    build computes for edgeq's rounding of the layer (convolution or fully connected). */
enum { EQ_MVE_MULTIPLIER, EQ_MVE_MULTIPLIER_RIGHT, EQ_MVE_SHIFT };

/* Rows of the rescale table, each `stride` int32 (channels rounded up to four; depthwise: eight):
 *   multiplier modes: bias, multiplier, -right shift, left shift (EQ_MVE_MULTIPLIER only);
 *   shift mode:       bias, addend for acc >= 0, -shift, addend for acc < 0. */
typedef struct {
    int32x4_t bias, a, b, c;
} eq_mve_rq_t;

static EQ_ALWAYS_INLINE eq_mve_rq_t eq_mve_rq_load(const int32_t *rq, int32_t stride, int32_t c, const int mode)
{
    eq_mve_rq_t q;
    q.bias = vldrwq_s32(rq + c);
    q.a = vldrwq_s32(rq + stride + c);
    q.c = vldrwq_s32(rq + 2 * stride + c);
    q.b = mode == EQ_MVE_MULTIPLIER_RIGHT ? vdupq_n_s32(0) : vldrwq_s32(rq + 3 * stride + c);
    return q;
}

/* acc (without bias) -> int32 lanes ready to narrow: rescaled, offset and clamped. */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_requant(int32x4_t acc, const eq_mve_rq_t *q, int32_t offset, int32_t lo,
                                                 int32_t hi, const int mode)
{
    acc = vaddq_s32(acc, q->bias);
    if (mode == EQ_MVE_SHIFT) {
        const mve_pred16_t negative = vcmpltq_n_s32(acc, 0);
        acc = vshlq_s32(vaddq_s32(acc, vpselq_s32(q->b, q->a, negative)), q->c);
    } else {
        if (mode == EQ_MVE_MULTIPLIER) {
            acc = vshlq_s32(acc, q->b);
        }
        acc = vqrdmulhq_s32(acc, q->a);
        /* rounding half away from zero: a negative value is nudged down by one before the rounding shift */
        const int32x4_t negative = vshrq_n_s32(mode == EQ_MVE_MULTIPLIER ? vandq_s32(acc, q->c) : acc, 31);
        acc = vqaddq_s32(acc, negative);
        acc = vrshlq_s32(acc, q->c);
    }
    acc = vaddq_n_s32(acc, offset);
    return vminq_s32(vmaxq_s32(acc, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}

/* Loops whose trip counts are the layer's constants (filter taps, rows): unrolled. */
#if defined(__GNUC__) && !defined(__clang__)
#define EQ_MVE_UNROLL _Pragma("GCC unroll 32")
#else
#define EQ_MVE_UNROLL
#endif

/* n bytes (n >= 0) from src to dst, 16 per step with the tail predicated. */
static EQ_ALWAYS_INLINE void eq_mve_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n > 0; n -= 16, src += 16, dst += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
}

static EQ_ALWAYS_INLINE void eq_mve_fill(int8_t *dst, int8_t value, int32_t n)
{
    const int8x16_t v = vdupq_n_s8(value);
    for (; n > 0; n -= 16, dst += 16) {
        vstrbq_p_s8(dst, v, vctp8q((uint32_t)n));
    }
}

#endif /* EQ_MVE_COMMON_H */
