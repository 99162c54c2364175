/* The matrix product under convolutions and fully connected layers: each output row is the dot products
 * of one int8 input row (a pixel's channels, or an im2col window) with every output channel's weights.
 * SXTB16 splits a word of four int8 into the even and the odd pair, for weights and inputs alike, so
 * SMLAD multiplies matching pairs with no reordering. Rows taken two at a time are sign-extended once into
 * scratch (a single row is split word by word in place); the weights, split on the fly, are stored at build
 * time in the order the loops read them:
 *
 *   channels in groups of 4 (then one of 2 and one of 1 for the rest); per group, for each four-deep chunk
 *   of the depth, the group's channels' words side by side (16 bytes for a group of 4), then each channel's
 *   depth % 4 tail bytes, the group padded to whole words.
 *
 * so every step is 64-bit loads (LDRD) of two channels' words and of a row's unpacked pair. */
#ifndef EQ_DSP_GEMM_H
#define EQ_DSP_GEMM_H

#include "eq_dsp_common.h"

/* Channels whose weights are all zero (dead channels, frequent in pruned or regularised MobileNets) give one
 * constant whatever the input: the build leaves them out of weights and tables, and each output row starts as a
 * copy of fill, which holds their constants, before the computed channels are written over it. */
typedef struct {
    const int8_t *weights;  /* the computed channels, grouped as above */
    const int32_t *bias;    /* [channels]: bias + input_offset * the channel's weight sum */
    eq_dsp_rescale_t rq;
    const uint16_t *live;   /* [channels]: each computed channel's place in the output row; NULL: in order */
    const int8_t *fill;     /* [out_channels]: the output row's dead channels; NULL: none */
    int32_t depth, channels, out_channels;
} eq_dsp_gemm_t;

/* Where computed channel c goes in an output row. */
static EQ_ALWAYS_INLINE int32_t eq_dsp_out(const eq_dsp_gemm_t *g, int32_t c)
{
    return g->live ? g->live[c] : c;
}

static EQ_ALWAYS_INLINE void eq_dsp_fill(const eq_dsp_gemm_t *g, int8_t *y)
{
    if (g->fill) {
        memcpy(y, g->fill, (size_t)g->out_channels);
    }
}

static EQ_ALWAYS_INLINE void eq_dsp_store(const eq_dsp_gemm_t *g, int8_t *y, int32_t c, int32_t acc, const int mode)
{
    if (!g->live) {
        EQ_DSP_IN_ORDER();
    }
    y[eq_dsp_out(g, c)] = eq_dsp_requantize(acc, &g->rq, c, mode);
}

/* A word of four int8 weights (the arrays are int8: read as bytes, not through a uint32_t lvalue). */
static EQ_ALWAYS_INLINE uint32_t eq_dsp_word(const uint32_t *w)
{
    return eq_load4((const int8_t *)w);
}

/* Bytes of a group of n channels: n words per chunk, then n tails, padded to whole words. */
static EQ_ALWAYS_INLINE size_t eq_dsp_group_bytes(const eq_dsp_gemm_t *g, int32_t n)
{
    return (size_t)n * (size_t)(g->depth & ~3) + (((size_t)n * (size_t)(g->depth & 3) + 3u) & ~(size_t)3);
}

/* Two rows sign-extended into SXTB16 order, chunk by chunk: per chunk the (even, odd) pair of words of x0, then
 * of x1; the depth % 4 tail stays in the int8 rows. */
static EQ_ALWAYS_INLINE void eq_dsp_unpack(const int8_t *x0, const int8_t *x1, int32_t depth, uint32_t *u)
{
    for (int32_t k = 0; k + 4 <= depth; k += 4) {
        const uint32_t v = eq_load4(x0 + k), w = eq_load4(x1 + k);
        *u++ = eq_sxtb16(v);
        *u++ = eq_sxtb16_ror8(v);
        *u++ = eq_sxtb16(w);
        *u++ = eq_sxtb16_ror8(w);
    }
}

/* Two rows (u interleaved) by the two channels whose words lie side by side at w, the next chunk's `step` words
 * on: 16 MACs per step from one 64-bit load of weights and two of inputs. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define EQ_DSP_2X2_STEP(step_bytes)                                                                              \
    __asm__("ldrd %[wa], %[wb], [%[w]], #" #step_bytes "\n\t"                                                    \
            "ldrd %[x0], %[x1], [%[u]], #16\n\t"                                                                 \
            "sxtb16 %[ta], %[wa]\n\t"                                                                            \
            "sxtb16 %[wa], %[wa], ror #8\n\t"                                                                    \
            "sxtb16 %[tb], %[wb]\n\t"                                                                            \
            "sxtb16 %[wb], %[wb], ror #8\n\t"                                                                    \
            "smlad %[a0], %[x0], %[ta], %[a0]\n\t"                                                               \
            "smlad %[a0], %[x1], %[wa], %[a0]\n\t"                                                               \
            "smlad %[b0], %[x0], %[tb], %[b0]\n\t"                                                               \
            "smlad %[b0], %[x1], %[wb], %[b0]\n\t"                                                               \
            "ldrd %[x0], %[x1], [%[u], #-8]\n\t"                                                                 \
            "smlad %[a1], %[x0], %[ta], %[a1]\n\t"                                                               \
            "smlad %[a1], %[x1], %[wa], %[a1]\n\t"                                                               \
            "smlad %[b1], %[x0], %[tb], %[b1]\n\t"                                                               \
            "smlad %[b1], %[x1], %[wb], %[b1]"                                                                   \
            : [wa] "=&r"(wa), [wb] "=&r"(wb), [ta] "=&r"(ta), [tb] "=&r"(tb), [x0] "=&r"(x0), [x1] "=&r"(x1),   \
              [a0] "+r"(*a0), [a1] "+r"(*a1), [b0] "+r"(*b0), [b1] "+r"(*b1), [w] "+r"(w), [u] "+r"(u)          \
            :                                                                                                    \
            : "memory")
/* One int8 row, read in place (no scratch), by four channels: 16 MACs from one word and two 64-bit loads. */
#define EQ_DSP_1X4_STEP()                                                                                        \
    __asm__("ldr %[x0], [%[x]], #4\n\t"                                                                         \
            "ldrd %[wa], %[wb], [%[w]], #16\n\t"                                                                \
            "sxtb16 %[x1], %[x0], ror #8\n\t"                                                                   \
            "sxtb16 %[x0], %[x0]\n\t"                                                                           \
            "sxtb16 %[t], %[wa]\n\t"                                                                            \
            "sxtb16 %[wa], %[wa], ror #8\n\t"                                                                   \
            "smlad %[a], %[x0], %[t], %[a]\n\t"                                                                 \
            "smlad %[a], %[x1], %[wa], %[a]\n\t"                                                                \
            "sxtb16 %[t], %[wb]\n\t"                                                                            \
            "sxtb16 %[wb], %[wb], ror #8\n\t"                                                                   \
            "smlad %[b], %[x0], %[t], %[b]\n\t"                                                                 \
            "smlad %[b], %[x1], %[wb], %[b]\n\t"                                                                \
            "ldrd %[wa], %[wb], [%[w], #-8]\n\t"                                                                \
            "sxtb16 %[t], %[wa]\n\t"                                                                            \
            "sxtb16 %[wa], %[wa], ror #8\n\t"                                                                   \
            "smlad %[d], %[x0], %[t], %[d]\n\t"                                                                 \
            "smlad %[d], %[x1], %[wa], %[d]\n\t"                                                                \
            "sxtb16 %[t], %[wb]\n\t"                                                                            \
            "sxtb16 %[wb], %[wb], ror #8\n\t"                                                                   \
            "smlad %[e], %[x0], %[t], %[e]\n\t"                                                                 \
            "smlad %[e], %[x1], %[wb], %[e]"                                                                    \
            : [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t), [x0] "=&r"(x0), [x1] "=&r"(x1), [a] "+r"(*a),        \
              [b] "+r"(*b), [d] "+r"(*d), [e] "+r"(*e), [w] "+r"(w), [x] "+r"(x)                                 \
            :                                                                                                    \
            : "memory")
#endif

static EQ_ALWAYS_INLINE void eq_dsp_dot_2x2(const uint32_t *w, const uint32_t *u, int32_t chunks, const int step,
                                            int32_t *a0, int32_t *a1, int32_t *b0, int32_t *b1)
{
    for (const uint32_t *end = u + 4 * chunks; u < end;) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
        uint32_t wa, wb, ta, tb, x0, x1;
        if (step == 4) {
            EQ_DSP_2X2_STEP(16);
        } else {
            EQ_DSP_2X2_STEP(8);
        }
#else
        const uint32_t wa = eq_dsp_word(w), wb = eq_dsp_word(w + 1);
        const uint32_t ta = eq_sxtb16(wa), tb = eq_sxtb16(wb), sa = eq_sxtb16_ror8(wa), sb = eq_sxtb16_ror8(wb);
        *a0 = eq_smlad(u[1], sa, eq_smlad(u[0], ta, *a0));
        *b0 = eq_smlad(u[1], sb, eq_smlad(u[0], tb, *b0));
        *a1 = eq_smlad(u[3], sa, eq_smlad(u[2], ta, *a1));
        *b1 = eq_smlad(u[3], sb, eq_smlad(u[2], tb, *b1));
        w += step;
        u += 4;
#endif
    }
}

static EQ_ALWAYS_INLINE void eq_dsp_dot_1x4(const uint32_t *w, const int8_t *x, int32_t chunks, int32_t *a,
                                            int32_t *b, int32_t *d, int32_t *e)
{
    for (const int8_t *end = x + 4 * chunks; x < end;) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
        uint32_t wa, wb, t, x0, x1;
        EQ_DSP_1X4_STEP();
#else
        const uint32_t v = eq_load4(x), x0 = eq_sxtb16(v), x1 = eq_sxtb16_ror8(v);
        const uint32_t wa = eq_dsp_word(w), wb = eq_dsp_word(w + 1), wc = eq_dsp_word(w + 2), wd = eq_dsp_word(w + 3);
        *a = eq_smlad(x1, eq_sxtb16_ror8(wa), eq_smlad(x0, eq_sxtb16(wa), *a));
        *b = eq_smlad(x1, eq_sxtb16_ror8(wb), eq_smlad(x0, eq_sxtb16(wb), *b));
        *d = eq_smlad(x1, eq_sxtb16_ror8(wc), eq_smlad(x0, eq_sxtb16(wc), *d));
        *e = eq_smlad(x1, eq_sxtb16_ror8(wd), eq_smlad(x0, eq_sxtb16(wd), *e));
        w += 4;
        x += 4;
#endif
    }
}

/* One channel of a group of n (its chunk words every n words) over two unpacked rows, or over one int8 row
 * read in place (u NULL). */
static EQ_ALWAYS_INLINE void eq_dsp_dot_1ch(const uint32_t *w, const uint32_t *u, const int8_t *x, int32_t chunks,
                                            int32_t n, int32_t *a0, int32_t *a1)
{
    for (int32_t k = 0; k < chunks; k++, w += n) {
        const uint32_t v = eq_dsp_word(w), t = eq_sxtb16(v), s = eq_sxtb16_ror8(v);
        if (u) {
            *a0 = eq_smlad(u[4 * k + 1], s, eq_smlad(u[4 * k], t, *a0));
            *a1 = eq_smlad(u[4 * k + 3], s, eq_smlad(u[4 * k + 2], t, *a1));
        } else {
            const uint32_t xv = eq_load4(x + 4 * k);
            *a0 = eq_smlad(eq_sxtb16_ror8(xv), s, eq_smlad(eq_sxtb16(xv), t, *a0));
        }
    }
}

/* The depth % 4 tail of channel j of a group of n at grp. */
static EQ_ALWAYS_INLINE int32_t eq_dsp_tail(const eq_dsp_gemm_t *g, const int8_t *grp, int32_t n, int32_t j,
                                            const int8_t *x, int32_t acc)
{
    const int32_t body = g->depth & ~3, t = g->depth & 3;
    const int8_t *w = grp + (size_t)n * body + (size_t)j * t;
    for (int32_t k = 0; k < t; k++) {
        acc += x[body + k] * w[k];
    }
    return acc;
}

/* Two input rows x0, x1 -> two output rows y0, y1; u: scratch of EQ_DSP_GEMM_SCRATCH(depth) bytes. */
static EQ_ALWAYS_INLINE void eq_dsp_gemm_2rows(const eq_dsp_gemm_t *g, const int8_t *x0, const int8_t *x1,
                                               uint32_t *u, int8_t *y0, int8_t *y1, const int mode)
{
    const int32_t chunks = g->depth / 4;
    const int8_t *grp = g->weights;
    eq_dsp_unpack(x0, x1, g->depth, u);
    eq_dsp_fill(g, y0);
    eq_dsp_fill(g, y1);
    int32_t c = 0;
    for (; c + 4 <= g->channels; c += 4, grp += eq_dsp_group_bytes(g, 4)) {
        for (int32_t half = 0; half < 2; half++) {
            const int32_t j = 2 * half;
            int32_t a0 = g->bias[c + j], b0 = g->bias[c + j + 1], a1 = a0, b1 = b0;
            eq_dsp_dot_2x2((const uint32_t *)grp + j, u, chunks, 4, &a0, &a1, &b0, &b1);
            a0 = eq_dsp_tail(g, grp, 4, j, x0, a0);
            a1 = eq_dsp_tail(g, grp, 4, j, x1, a1);
            b0 = eq_dsp_tail(g, grp, 4, j + 1, x0, b0);
            b1 = eq_dsp_tail(g, grp, 4, j + 1, x1, b1);
            eq_dsp_store(g, y0, c + j, a0, mode);
            eq_dsp_store(g, y1, c + j, a1, mode);
            eq_dsp_store(g, y0, c + j + 1, b0, mode);
            eq_dsp_store(g, y1, c + j + 1, b1, mode);
        }
    }
    if (c + 2 <= g->channels) {
        int32_t a0 = g->bias[c], b0 = g->bias[c + 1], a1 = a0, b1 = b0;
        eq_dsp_dot_2x2((const uint32_t *)grp, u, chunks, 2, &a0, &a1, &b0, &b1);
        a0 = eq_dsp_tail(g, grp, 2, 0, x0, a0);
        a1 = eq_dsp_tail(g, grp, 2, 0, x1, a1);
        b0 = eq_dsp_tail(g, grp, 2, 1, x0, b0);
        b1 = eq_dsp_tail(g, grp, 2, 1, x1, b1);
        eq_dsp_store(g, y0, c, a0, mode);
        eq_dsp_store(g, y1, c, a1, mode);
        eq_dsp_store(g, y0, c + 1, b0, mode);
        eq_dsp_store(g, y1, c + 1, b1, mode);
        c += 2;
        grp += eq_dsp_group_bytes(g, 2);
    }
    if (c < g->channels) {
        int32_t a0 = g->bias[c], a1 = a0;
        eq_dsp_dot_1ch((const uint32_t *)grp, u, NULL, chunks, 1, &a0, &a1);
        eq_dsp_store(g, y0, c, eq_dsp_tail(g, grp, 1, 0, x0, a0), mode);
        eq_dsp_store(g, y1, c, eq_dsp_tail(g, grp, 1, 0, x1, a1), mode);
    }
}

/* Scratch bytes for two unpacked rows. */
#define EQ_DSP_GEMM_SCRATCH(depth) (4 * ((depth) & ~3))

/* One input row -> one output row, read in place: four channels per pass, so each input word is split once for
 * four weight words. */
static EQ_ALWAYS_INLINE void eq_dsp_gemm_1row(const eq_dsp_gemm_t *g, const int8_t *x, int8_t *y, const int mode)
{
    const int32_t chunks = g->depth / 4;
    const int8_t *grp = g->weights;
    eq_dsp_fill(g, y);
    int32_t c = 0;
    for (; c + 4 <= g->channels; c += 4, grp += eq_dsp_group_bytes(g, 4)) {
        int32_t a = g->bias[c], b = g->bias[c + 1], d = g->bias[c + 2], e = g->bias[c + 3];
        eq_dsp_dot_1x4((const uint32_t *)grp, x, chunks, &a, &b, &d, &e);
        eq_dsp_store(g, y, c, eq_dsp_tail(g, grp, 4, 0, x, a), mode);
        eq_dsp_store(g, y, c + 1, eq_dsp_tail(g, grp, 4, 1, x, b), mode);
        eq_dsp_store(g, y, c + 2, eq_dsp_tail(g, grp, 4, 2, x, d), mode);
        eq_dsp_store(g, y, c + 3, eq_dsp_tail(g, grp, 4, 3, x, e), mode);
    }
    for (int32_t n = 2; n >= 1; n--) {  /* the group of 2, then the group of 1 */
        if (c + n > g->channels) {
            continue;
        }
        for (int32_t j = 0; j < n; j++) {
            int32_t a = g->bias[c + j], unused = 0;
            eq_dsp_dot_1ch((const uint32_t *)grp + j, NULL, x, chunks, n, &a, &unused);
            eq_dsp_store(g, y, c + j, eq_dsp_tail(g, grp, n, j, x, a), mode);
        }
        c += n;
        grp += eq_dsp_group_bytes(g, n);
    }
}

#endif /* EQ_DSP_GEMM_H */
