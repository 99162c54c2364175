/* The matrix product under convolutions and fully connected layers: each output row is the dot products of
 * one int8 input row (a pixel's channels, or an im2col window) with every output channel's weights.
 * VMLADAVA multiplies 16 int8 pairs and adds them to a scalar accumulator; a pass computes four channels
 * for two rows, so each input vector loaded serves four channels and each weight vector two rows (six
 * loads for eight dot products of 16). Weights are repacked at build time in groups of four channels,
 * chunk by chunk of 16 values: a group's pass reads one stream. The depth's last values (depth % 16) load
 * predicated (VCTP), so nothing is read beyond a row and no padding is stored. */
#ifndef EQ_MVE_GEMM_H
#define EQ_MVE_GEMM_H

#include "eq_mve_common.h"

typedef struct {
    const int8_t *weights;  /* per group of 4 channels (the last may have fewer, n): per chunk of 16 depth
                               values (the last may have fewer, t), the group's channels one after another */
    const int32_t *rq;      /* [4][channels rounded up to 4]: see eq_mve_common.h */
    int32_t depth, channels, output_offset, act_min, act_max;
} eq_mve_gemm_t;

typedef struct {
    int32x4_t r0, r1;
} eq_mve_acc2_t;

/* Two 32-bit accumulators per instruction into lanes (VMOV Qd[2], Qd[0], Rt, Rt2). */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_lanes(int32_t a0, int32_t a1, int32_t a2, int32_t a3)
{
    int32x4_t v;
    __asm__("vmov %q[v][2], %q[v][0], %[a0], %[a2]\n\t"
            "vmov %q[v][3], %q[v][1], %[a1], %[a3]"
            : [v] "=w"(v)
            : [a0] "r"(a0), [a1] "r"(a1), [a2] "r"(a2), [a3] "r"(a3));
    return v;
}

/* Rows x0, x1 times the group of four channels at w: accumulators [row][channel].
 * The loop over whole chunks is inline assembly: VMLADAVA accumulates in even registers only, and gcc 12
 * allocates eight such accumulators with moves and a spill in every iteration (26 instructions instead of
 * 16). Loads alternate with products so the M55's load and multiply beats can overlap. */
static EQ_ALWAYS_INLINE eq_mve_acc2_t eq_mve_dot_2x4(const int8_t *x0, const int8_t *x1, const int8_t *w,
                                                     const int32_t depth)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    int32_t chunks = depth / 16;
    if (chunks > 0) {
        __asm__("1:\n\t"
                "vldrb.8 q0, [%[x0]], #16\n\t"
                "vldrb.8 q2, [%[w]], #64\n\t"
                "vldrb.8 q1, [%[x1]], #16\n\t"
                "vmladava.s8 %[a0], q0, q2\n\t"
                "vldrb.8 q3, [%[w], #-48]\n\t"
                "vmladava.s8 %[b0], q1, q2\n\t"
                "vmladava.s8 %[a1], q0, q3\n\t"
                "vldrb.8 q2, [%[w], #-32]\n\t"
                "vmladava.s8 %[b1], q1, q3\n\t"
                "vmladava.s8 %[a2], q0, q2\n\t"
                "vldrb.8 q3, [%[w], #-16]\n\t"
                "vmladava.s8 %[b2], q1, q2\n\t"
                "vmladava.s8 %[a3], q0, q3\n\t"
                "subs %[n], %[n], #1\n\t"
                "vmladava.s8 %[b3], q1, q3\n\t"
                "bne 1b"
                : [a0] "+Te"(a0), [a1] "+Te"(a1), [a2] "+Te"(a2), [a3] "+Te"(a3), [b0] "+Te"(b0),
                  [b1] "+Te"(b1), [b2] "+Te"(b2), [b3] "+Te"(b3), [x0] "+r"(x0), [x1] "+r"(x1), [w] "+r"(w),
                  [n] "+r"(chunks)
                :
                : "q0", "q1", "q2", "q3", "memory", "cc");
    }
    const int32_t t = depth % 16;
    if (t) {
        const mve_pred16_t p = vctp8q((uint32_t)t);
        const int8x16_t u = vldrbq_z_s8(x0, p), v = vldrbq_z_s8(x1, p);
        int8x16_t wv = vldrbq_z_s8(w, p);
        a0 = vmladavaq_s8(a0, u, wv);
        b0 = vmladavaq_s8(b0, v, wv);
        wv = vldrbq_z_s8(w + t, p);
        a1 = vmladavaq_s8(a1, u, wv);
        b1 = vmladavaq_s8(b1, v, wv);
        wv = vldrbq_z_s8(w + 2 * t, p);
        a2 = vmladavaq_s8(a2, u, wv);
        b2 = vmladavaq_s8(b2, v, wv);
        wv = vldrbq_z_s8(w + 3 * t, p);
        a3 = vmladavaq_s8(a3, u, wv);
        b3 = vmladavaq_s8(b3, v, wv);
    }
    const eq_mve_acc2_t acc = {eq_mve_lanes(a0, a1, a2, a3), eq_mve_lanes(b0, b1, b2, b3)};
    return acc;
}

/* One row times the group of four channels at w (the same loop for one row). */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_dot_1x4(const int8_t *x, const int8_t *w, const int32_t depth)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int32_t chunks = depth / 16;
    if (chunks > 0) {
        __asm__("1:\n\t"
                "vldrb.8 q0, [%[x]], #16\n\t"
                "vldrb.8 q2, [%[w]], #64\n\t"
                "vldrb.8 q3, [%[w], #-48]\n\t"
                "vmladava.s8 %[a0], q0, q2\n\t"
                "vldrb.8 q2, [%[w], #-32]\n\t"
                "vmladava.s8 %[a1], q0, q3\n\t"
                "vldrb.8 q3, [%[w], #-16]\n\t"
                "vmladava.s8 %[a2], q0, q2\n\t"
                "subs %[n], %[n], #1\n\t"
                "vmladava.s8 %[a3], q0, q3\n\t"
                "bne 1b"
                : [a0] "+Te"(a0), [a1] "+Te"(a1), [a2] "+Te"(a2), [a3] "+Te"(a3), [x] "+r"(x), [w] "+r"(w),
                  [n] "+r"(chunks)
                :
                : "q0", "q2", "q3", "memory", "cc");
    }
    const int32_t t = depth % 16;
    if (t) {
        const mve_pred16_t p = vctp8q((uint32_t)t);
        const int8x16_t u = vldrbq_z_s8(x, p);
        a0 = vmladavaq_s8(a0, u, vldrbq_z_s8(w, p));
        a1 = vmladavaq_s8(a1, u, vldrbq_z_s8(w + t, p));
        a2 = vmladavaq_s8(a2, u, vldrbq_z_s8(w + 2 * t, p));
        a3 = vmladavaq_s8(a3, u, vldrbq_z_s8(w + 3 * t, p));
    }
    return eq_mve_lanes(a0, a1, a2, a3);
}

/* Channel i of a group of n (< 4) channels at w, one row. */
static EQ_ALWAYS_INLINE int32_t eq_mve_dot_1(const int8_t *x, const int8_t *w, const int32_t depth, int32_t n,
                                             int32_t i)
{
    int32_t a = 0;
    const int32_t full = depth & ~15;
    const int8_t *wi = w + 16 * i;
    for (int32_t k = 0; k < full; k += 16, wi += 16 * n) {
        a = vmladavaq_s8(a, vldrbq_s8(x + k), vldrbq_s8(wi));
    }
    if (depth > full) {
        const int32_t t = depth - full;
        const mve_pred16_t p = vctp8q((uint32_t)t);
        a = vmladavaq_s8(a, vldrbq_z_s8(x + full, p), vldrbq_z_s8(w + (size_t)full * n + (size_t)i * t, p));
    }
    return a;
}

/* The last group's n (< 4) channels for one row, lanes beyond n zero. */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_dot_1xn(const int8_t *x, const int8_t *w, const int32_t depth, int32_t n)
{
    int32_t a[4] = {0, 0, 0, 0};
    for (int32_t i = 0; i < n; i++) {
        a[i] = eq_mve_dot_1(x, w, depth, n, i);
    }
    return vldrwq_s32(a);
}

static EQ_ALWAYS_INLINE void eq_mve_store4(int8_t *y, const int32x4_t acc, const eq_mve_rq_t *q,
                                           const eq_mve_gemm_t *g, int32_t n, const int mode)
{
    const int32x4_t out = eq_mve_requant(acc, q, g->output_offset, g->act_min, g->act_max, mode);
    if (n == 4) {
        vstrbq_s32(y, out);
    } else {
        vstrbq_p_s32(y, out, vctp32q((uint32_t)n));
    }
}

/* Rows x0 -> y0 and, when two, x1 -> y1: every channel. */
static EQ_ALWAYS_INLINE void eq_mve_gemm_rows(const eq_mve_gemm_t *g, const int8_t *x0, const int8_t *x1, int8_t *y0,
                                              int8_t *y1, const int two, const int mode)
{
    const int32_t depth = g->depth, channels = g->channels, stride = (channels + 3) & ~3;
    const int32_t groups = channels / 4, n = channels % 4;
    const int8_t *w = g->weights;
    for (int32_t q = 0; q < groups; q++, w += 4 * depth) {
        const int32_t c = 4 * q;
        if (two) {
            const eq_mve_acc2_t acc = eq_mve_dot_2x4(x0, x1, w, depth);
            const eq_mve_rq_t r = eq_mve_rq_load(g->rq, stride, c, mode);
            eq_mve_store4(y0 + c, acc.r0, &r, g, 4, mode);
            eq_mve_store4(y1 + c, acc.r1, &r, g, 4, mode);
        } else {
            const int32x4_t acc = eq_mve_dot_1x4(x0, w, depth);
            const eq_mve_rq_t r = eq_mve_rq_load(g->rq, stride, c, mode);
            eq_mve_store4(y0 + c, acc, &r, g, 4, mode);
        }
    }
    if (n) {
        const int32_t c = 4 * groups;
        const eq_mve_rq_t r = eq_mve_rq_load(g->rq, stride, c, mode);
        eq_mve_store4(y0 + c, eq_mve_dot_1xn(x0, w, depth, n), &r, g, n, mode);
        if (two) {
            eq_mve_store4(y1 + c, eq_mve_dot_1xn(x1, w, depth, n), &r, g, n, mode);
        }
    }
}

#endif /* EQ_MVE_GEMM_H */
