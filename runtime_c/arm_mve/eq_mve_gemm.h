/* The matrix product under convolutions and fully connected layers: each output row is the dot products of
 * one int8 input row (a pixel's channels, or an im2col window) with every output channel's weights.
 * VMLADAVA multiplies 16 int8 pairs and adds them to a scalar accumulator; a pass computes four channels
 * for two rows, so each input vector loaded serves four channels and each weight vector two rows (six
 * loads for eight dot products of 16). Weights are repacked at build time in groups of four channels,
 * chunk by chunk of 16 values, the depth padded with zeros to a whole chunk: a group's pass reads one stream
 * and has no tail. Rows are read in whole chunks too: the values past a row's depth meet zero weights. */
#ifndef EQ_MVE_GEMM_H
#define EQ_MVE_GEMM_H

#include "eq_mve_common.h"

typedef struct {
    const int8_t *weights;  /* per group of 4 channels (the last may have fewer, n): per chunk of 16 depth
                               values, the group's channels one after another */
    const int32_t *rq;      /* [3 or 4][channels rounded up to 4]: see eq_mve_common.h */
    int32_t depth;          /* a multiple of 16: the true depth padded with zero weights */
    int32_t channels, output_offset, act_min, act_max;
} eq_mve_gemm_t;

typedef struct {
    int32x4_t r0, r1;
} eq_mve_acc2_t;

/* Rows x0, x1 times the group of four channels at w: accumulators [row][channel], as vectors.
 * Inline assembly: VMLADAVA accumulates in even registers only, and gcc 12 allocates eight such accumulators
 * with moves and a spill in every iteration (26 instructions instead of 16), while asking it for eight even
 * registers as operands can fail or take minutes. So the accumulators are fixed registers the statement
 * clobbers (r0 r4 r8 r12: row 0, r2 r6 r10 lr: row 1), the first chunk starts them (VMLADAV), a loop takes
 * the others, and VMOV moves them two at a time into lanes. Loads alternate with products so the M55's load
 * and multiply beats can overlap. */
#define EQ_MVE_DOT_2X4(OP)                                                  \
    "vldrb.8 q0, [%[x0]], #16\n\t"                                          \
    "vldrb.8 q2, [%[w]], #64\n\t"                                           \
    "vldrb.8 q1, [%[x1]], #16\n\t"                                          \
    OP " r0, q0, q2\n\t"                                                    \
    "vldrb.8 q3, [%[w], #-48]\n\t"                                          \
    OP " r2, q1, q2\n\t"                                                    \
    OP " r4, q0, q3\n\t"                                                    \
    "vldrb.8 q2, [%[w], #-32]\n\t"                                          \
    OP " r6, q1, q3\n\t"                                                    \
    OP " r8, q0, q2\n\t"                                                    \
    "vldrb.8 q3, [%[w], #-16]\n\t"                                          \
    OP " r10, q1, q2\n\t"                                                   \
    OP " r12, q0, q3\n\t"                                                   \
    OP " lr, q1, q3\n\t"
#define EQ_MVE_LANES_2X4                                                    \
    "vmov %q[r0][2], %q[r0][0], r0, r8\n\t"                                 \
    "vmov %q[r0][3], %q[r0][1], r4, r12\n\t"                                \
    "vmov %q[r1][2], %q[r1][0], r2, r10\n\t"                                \
    "vmov %q[r1][3], %q[r1][1], r6, lr"
#define EQ_MVE_CLOBBERS_2X4 "r0", "r2", "r4", "r6", "r8", "r10", "r12", "lr", "q0", "q1", "q2", "q3", "memory", "cc"

static EQ_ALWAYS_INLINE eq_mve_acc2_t eq_mve_dot_2x4(const int8_t *x0, const int8_t *x1, const int8_t *w,
                                                     const int32_t depth)
{
    eq_mve_acc2_t acc;
    int32_t more = depth / 16 - 1;
    if (more == 0) {
        __asm__(EQ_MVE_DOT_2X4("vmladav.s8") EQ_MVE_LANES_2X4
                : [r0] "=&w"(acc.r0), [r1] "=&w"(acc.r1), [x0] "+r"(x0), [x1] "+r"(x1), [w] "+r"(w)
                :
                : EQ_MVE_CLOBBERS_2X4);
    } else {
        __asm__(EQ_MVE_DOT_2X4("vmladav.s8") "1:\n\t" EQ_MVE_DOT_2X4("vmladava.s8")
                "subs %[n], %[n], #1\n\t"
                "bne 1b\n\t" EQ_MVE_LANES_2X4
                : [r0] "=&w"(acc.r0), [r1] "=&w"(acc.r1), [x0] "+r"(x0), [x1] "+r"(x1), [w] "+r"(w),
                  [n] "+r"(more)
                :
                : EQ_MVE_CLOBBERS_2X4);
    }
    return acc;
}

/* One row times the group of four channels at w (the same scheme: r0 r2 r4 r6). */
#define EQ_MVE_DOT_1X4(OP)                                                  \
    "vldrb.8 q0, [%[x]], #16\n\t"                                           \
    "vldrb.8 q2, [%[w]], #64\n\t"                                           \
    "vldrb.8 q3, [%[w], #-48]\n\t"                                          \
    OP " r0, q0, q2\n\t"                                                    \
    "vldrb.8 q2, [%[w], #-32]\n\t"                                          \
    OP " r2, q0, q3\n\t"                                                    \
    "vldrb.8 q3, [%[w], #-16]\n\t"                                          \
    OP " r4, q0, q2\n\t"                                                    \
    OP " r6, q0, q3\n\t"
#define EQ_MVE_LANES_1X4                                                    \
    "vmov %q[r0][2], %q[r0][0], r0, r4\n\t"                                 \
    "vmov %q[r0][3], %q[r0][1], r2, r6"
#define EQ_MVE_CLOBBERS_1X4 "r0", "r2", "r4", "r6", "q0", "q2", "q3", "memory", "cc"

static EQ_ALWAYS_INLINE int32x4_t eq_mve_dot_1x4(const int8_t *x, const int8_t *w, const int32_t depth)
{
    int32x4_t acc;
    int32_t more = depth / 16 - 1;
    if (more == 0) {
        __asm__(EQ_MVE_DOT_1X4("vmladav.s8") EQ_MVE_LANES_1X4
                : [r0] "=&w"(acc), [x] "+r"(x), [w] "+r"(w)
                :
                : EQ_MVE_CLOBBERS_1X4);
    } else {
        __asm__(EQ_MVE_DOT_1X4("vmladav.s8") "1:\n\t" EQ_MVE_DOT_1X4("vmladava.s8")
                "subs %[n], %[n], #1\n\t"
                "bne 1b\n\t" EQ_MVE_LANES_1X4
                : [r0] "=&w"(acc), [x] "+r"(x), [w] "+r"(w), [n] "+r"(more)
                :
                : EQ_MVE_CLOBBERS_1X4);
    }
    return acc;
}

/* The last group's n (< 4) channels for one row, lanes beyond n zero. */
static EQ_ALWAYS_INLINE int32x4_t eq_mve_dot_1xn(const int8_t *x, const int8_t *w, const int32_t depth, int32_t n)
{
    int32_t a[4] = {0, 0, 0, 0};
    for (int32_t i = 0; i < n; i++) {
        const int8_t *wi = w + 16 * i;
        for (int32_t k = 0; k < depth; k += 16, wi += 16 * n) {
            a[i] = vmladavaq_s8(a[i], vldrbq_s8(x + k), vldrbq_s8(wi));
        }
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

/* Rows x0 -> y0 and, when two, x1 -> y1: every channel. y1 is written first, so a row paired with itself
 * (x1 == x0, y1 == y0) is right. */
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
            eq_mve_store4(y1 + c, acc.r1, &r, g, 4, mode);
            eq_mve_store4(y0 + c, acc.r0, &r, g, 4, mode);
        } else {
            const int32x4_t acc = eq_mve_dot_1x4(x0, w, depth);
            const eq_mve_rq_t r = eq_mve_rq_load(g->rq, stride, c, mode);
            eq_mve_store4(y0 + c, acc, &r, g, 4, mode);
        }
    }
    if (n) {
        const int32_t c = 4 * groups;
        const eq_mve_rq_t r = eq_mve_rq_load(g->rq, stride, c, mode);
        if (two) {
            eq_mve_store4(y1 + c, eq_mve_dot_1xn(x1, w, depth, n), &r, g, n, mode);
        }
        eq_mve_store4(y0 + c, eq_mve_dot_1xn(x0, w, depth, n), &r, g, n, mode);
    }
}

#endif /* EQ_MVE_GEMM_H */
