/* Convolutions as matrix products on RVV, vectorised over output channels: for each input value x (a scalar
 * load) and a strip of channels, one widening multiply-accumulate vd += w * x into 32-bit accumulators.
 * `rows` output pixels (1 to 8) share each loaded weight vector. Their receptive fields are gathered into scratch
 * interleaved (value k of pixel r at rows * k + r), so one pointer walks them all; padding is the input's zero
 * point. Weights are repacked at build time as [depth][channels], so a strip of channels is one unit-stride load.
 *
 * The accumulators' LMUL (2, 4 or 8) and `rows` are chosen per layer at build time (edgeq/codegen/backends/
 * rvv.py, gemm_shape): a wide LMUL takes more channels per instruction, more rows reuse each weight vector more
 * often, and rows * LMUL accumulator registers must fit in the 32 vector registers beside the weights. */
#ifndef EQ_RVV_CONV_H
#define EQ_RVV_CONV_H

#include "eq_rvv_common.h"

#define EQ_RVV_MAX_ROWS 8

/* Unrolled over a short constant depth, the loop's weight vectors of every step would be loaded first and
 * spilled: one pass per two steps keeps them in registers. */
#if defined(__clang__)
#define EQ_RVV_KEEP_LOOP _Pragma("clang loop unroll(disable)")
#else
#define EQ_RVV_KEEP_LOOP
#endif

typedef struct {
    const int8_t *weights;  /* [depth][channels] */
    const int32_t *bias;    /* [channels]: bias + input_offset * the channel's weight sum */
    const int32_t *rq;      /* [4][channels]: see eq_rvv_common.h */
    const int16_t *shift;   /* [channels]: right shifts */
    int32_t depth, channels, output_offset, act_min, act_max;
} eq_rvv_gemm_t;

typedef struct {
    eq_rvv_gemm_t gemm;  /* depth = filter_h * filter_w * input_c */
    int32_t input_h, input_w, input_c, output_h, output_w;
    int32_t filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int32_t pad_value;   /* the input's zero point */
} eq_rvv_conv_t;

/* Sizeless vector types cannot form arrays: eight named accumulators, of which a layer's constant `rows` keeps
 * the first ones (the compiler drops the rest). */
#define EQ_RVV_EACH_ROW(DO, L) DO(0, L) DO(1, L) DO(2, L) DO(3, L) DO(4, L) DO(5, L) DO(6, L) DO(7, L)
#define EQ_RVV_MACC0(R, L) if (rows > R) { a##R = __riscv_vwmacc_vx_i32##L(a##R, x[R], w0, vl); }
#define EQ_RVV_MACC1(R, L) if (rows > R) { a##R = __riscv_vwmacc_vx_i32##L(a##R, x[rows + R], w1, vl); }
#define EQ_RVV_STORE(R, L)                                                                                      \
    if (rows > R) {                                                                                              \
        eq_rvv_requant_store_##L(a##R, g->rq, g->shift, channels, c, vl, g->output_offset, g->act_min,          \
                                 g->act_max, y[R] + c, flags);                                                   \
    }

/* `rows` interleaved rows (col[rows * k + r]) -> y[r] + c for every channel strip, accumulators at LMUL L
 * (weights widened to 16 bits at L/2, loaded at L/4); the depth loop takes two steps per pass. */
#define EQ_RVV_DEFINE_GEMM(L, L16, L8)                                                                           \
    static EQ_ALWAYS_INLINE void eq_rvv_gemm_##L(const eq_rvv_gemm_t *g, const int8_t *col, int8_t *const *y,    \
                                                 const int rows, const int flags)                                 \
    {                                                                                                            \
        const int32_t channels = g->channels, depth = g->depth;                                                  \
        for (int32_t c = 0; c < channels;) {                                                                     \
            const size_t vl = __riscv_vsetvl_e32##L((size_t)(channels - c));                                     \
            vint32##L##_t a0 = __riscv_vle32_v_i32##L(g->bias + c, vl);                                          \
            vint32##L##_t a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;                         \
            const int8_t *w = g->weights + c;                                                                    \
            const int8_t *x = col;                                                                               \
            int32_t k = 0;                                                                                       \
            EQ_RVV_KEEP_LOOP                                                                                     \
            for (; k + 2 <= depth; k += 2, w += 2 * channels, x += 2 * rows) {                                   \
                const vint16##L16##_t w0 = __riscv_vsext_vf2_i16##L16(__riscv_vle8_v_i8##L8(w, vl), vl);         \
                const vint16##L16##_t w1 = __riscv_vsext_vf2_i16##L16(__riscv_vle8_v_i8##L8(w + channels, vl), vl); \
                EQ_RVV_EACH_ROW(EQ_RVV_MACC0, L)                                                                    \
                EQ_RVV_EACH_ROW(EQ_RVV_MACC1, L)                                                                    \
            }                                                                                                    \
            if (k < depth) {                                                                                     \
                const vint16##L16##_t w0 = __riscv_vsext_vf2_i16##L16(__riscv_vle8_v_i8##L8(w, vl), vl);         \
                EQ_RVV_EACH_ROW(EQ_RVV_MACC0, L)                                                                    \
            }                                                                                                    \
            EQ_RVV_EACH_ROW(EQ_RVV_STORE, L)                                                                        \
            c += (int32_t)vl;                                                                                    \
        }                                                                                                        \
    }

EQ_RVV_DEFINE_GEMM(m2, m1, mf2)
EQ_RVV_DEFINE_GEMM(m4, m2, m1)
EQ_RVV_DEFINE_GEMM(m8, m4, m2)

/* The matrix product at the layer's LMUL (a constant: only one branch is compiled into the layer). */
static EQ_ALWAYS_INLINE void eq_rvv_gemm(const eq_rvv_gemm_t *g, const int8_t *col, int8_t *const *y, const int rows,
                                         const int lmul, const int flags)
{
    if (lmul == 2) {
        eq_rvv_gemm_m2(g, col, y, rows, flags);
    } else if (lmul == 4) {
        eq_rvv_gemm_m4(g, col, y, rows, flags);
    } else {
        eq_rvv_gemm_m8(g, col, y, rows, flags);
    }
}

/* n contiguous int8 values from src to dst + rows * i (one interleaved row). */
static EQ_ALWAYS_INLINE void eq_rvv_scatter_row(const int8_t *src, int8_t *dst, int32_t n, const int rows)
{
    for (size_t vl; n > 0; n -= (int32_t)vl, src += vl, dst += (size_t)rows * vl) {
        vl = __riscv_vsetvl_e8m4((size_t)n);
        __riscv_vsse8_v_i8m4(dst, rows, __riscv_vle8_v_i8m4(src, vl), vl);
    }
}

static EQ_ALWAYS_INLINE void eq_rvv_fill_row(int8_t value, int8_t *dst, int32_t n, const int rows)
{
    for (size_t vl; n > 0; n -= (int32_t)vl, dst += (size_t)rows * vl) {
        vl = __riscv_vsetvl_e8m4((size_t)n);
        __riscv_vsse8_v_i8m4(dst, rows, __riscv_vmv_v_x_i8m4(value, vl), vl);
    }
}

/* The receptive field of output pixel r into its slot (col) of the interleaved block. */
static EQ_ALWAYS_INLINE void eq_rvv_im2col(const eq_rvv_conv_t *p, const int8_t *in, int32_t r, int8_t *col,
                                           const int rows)
{
    const int32_t oy = r / p->output_w, ox = r % p->output_w, c = p->input_c;
    const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
    const int inside_x = x0 >= 0 && x0 + (p->filter_w - 1) * p->dilation_w < p->input_w;
    for (int32_t ky = 0; ky < p->filter_h; ky++, col += rows * p->filter_w * c) {
        const int32_t iy = y0 + ky * p->dilation_h;
        if (iy < 0 || iy >= p->input_h) {
            eq_rvv_fill_row((int8_t)p->pad_value, col, p->filter_w * c, rows);
        } else if (inside_x && p->dilation_w == 1) {
            eq_rvv_scatter_row(in + ((size_t)iy * p->input_w + x0) * c, col, p->filter_w * c, rows);
        } else {
            for (int32_t kx = 0; kx < p->filter_w; kx++) {
                const int32_t ix = x0 + kx * p->dilation_w;
                if (ix < 0 || ix >= p->input_w) {
                    eq_rvv_fill_row((int8_t)p->pad_value, col + rows * kx * c, c, rows);
                } else {
                    eq_rvv_scatter_row(in + ((size_t)iy * p->input_w + ix) * c, col + rows * kx * c, c, rows);
                }
            }
        }
    }
}

static EQ_ALWAYS_INLINE const int8_t *eq_rvv_pixel(const eq_rvv_conv_t *p, const int8_t *in, int32_t r)
{
    const int32_t oy = r / p->output_w, ox = r % p->output_w;
    return in + ((size_t)oy * p->stride_h * p->input_w + (size_t)ox * p->stride_w) * p->input_c;
}

/* Any convolution without groups, one image; scratch holds rows * depth bytes. 1x1 convolutions without padding
 * or dilation (one_by_one) copy input pixels instead of windows. A last block of fewer than `rows` pixels repeats
 * its last pixel, whose output is then written more than once. */
static EQ_ALWAYS_INLINE eq_status_t eq_rvv_conv_s8(const eq_rvv_conv_t *p, const int8_t *in, int8_t *out,
                                                   int8_t *scratch, const int one_by_one, const int rows,
                                                   const int lmul, const int flags)
{
    const int32_t pixels = p->output_h * p->output_w, channels = p->gemm.channels;
    for (int32_t r = 0; r < pixels; r += rows) {
        int8_t *y[EQ_RVV_MAX_ROWS];
        for (int32_t i = 0; i < rows; i++) {
            const int32_t ri = r + i < pixels ? r + i : pixels - 1;
            if (one_by_one) {
                eq_rvv_scatter_row(eq_rvv_pixel(p, in, ri), scratch + i, p->input_c, rows);
            } else {
                eq_rvv_im2col(p, in, ri, scratch + i, rows);
            }
            y[i] = out + (size_t)ri * channels;
        }
        eq_rvv_gemm(&p->gemm, scratch, y, rows, lmul, flags);
    }
    return EQ_OK;
}

/* Fully connected: for each pair of units, dot products along the depth (int8 at LMUL 2, products widened
 * to 16 and accumulated in 32 bits per lane), reduced once at the end; then requantised 32 units at a time.
 * Weights keep TFLite's [units][depth] layout. */
#define EQ_RVV_FC_CHUNK 32

static EQ_ALWAYS_INLINE eq_status_t eq_rvv_fully_connected_s8(const eq_rvv_gemm_t *g, int32_t batches,
                                                              const int8_t *in, int8_t *out, const int flags)
{
    const int32_t depth = g->depth, units = g->channels;
    const size_t vlmax = __riscv_vsetvlmax_e32m8();
    for (int32_t b = 0; b < batches; b++, in += depth, out += units) {
        for (int32_t u0 = 0; u0 < units; u0 += EQ_RVV_FC_CHUNK) {
            const int32_t n = EQ_MIN(EQ_RVV_FC_CHUNK, units - u0);
            int32_t sums[EQ_RVV_FC_CHUNK];
            int32_t u = 0;
            for (; u + 2 <= n; u += 2) {
                const int8_t *w0 = g->weights + (size_t)(u0 + u) * depth, *w1 = w0 + depth;
                vint32m8_t a0 = __riscv_vmv_v_x_i32m8(0, vlmax), a1 = a0;
                for (int32_t k = 0; k < depth;) {
                    const size_t vl = __riscv_vsetvl_e8m2((size_t)(depth - k));
                    const vint8m2_t x = __riscv_vle8_v_i8m2(in + k, vl);
                    a0 = __riscv_vwadd_wv_i32m8_tu(a0, a0, __riscv_vwmul_vv_i16m4(x, __riscv_vle8_v_i8m2(w0 + k, vl), vl), vl);
                    a1 = __riscv_vwadd_wv_i32m8_tu(a1, a1, __riscv_vwmul_vv_i16m4(x, __riscv_vle8_v_i8m2(w1 + k, vl), vl), vl);
                    k += (int32_t)vl;
                }
                const vint32m1_t zero = __riscv_vmv_s_x_i32m1(0, 1);
                sums[u] = __riscv_vmv_x_s_i32m1_i32(__riscv_vredsum_vs_i32m8_i32m1(a0, zero, vlmax));
                sums[u + 1] = __riscv_vmv_x_s_i32m1_i32(__riscv_vredsum_vs_i32m8_i32m1(a1, zero, vlmax));
            }
            for (; u < n; u++) {
                const int8_t *w0 = g->weights + (size_t)(u0 + u) * depth;
                vint32m8_t a0 = __riscv_vmv_v_x_i32m8(0, vlmax);
                for (int32_t k = 0; k < depth;) {
                    const size_t vl = __riscv_vsetvl_e8m2((size_t)(depth - k));
                    const vint8m2_t x = __riscv_vle8_v_i8m2(in + k, vl);
                    a0 = __riscv_vwadd_wv_i32m8_tu(a0, a0, __riscv_vwmul_vv_i16m4(x, __riscv_vle8_v_i8m2(w0 + k, vl), vl), vl);
                    k += (int32_t)vl;
                }
                sums[u] = __riscv_vmv_x_s_i32m1_i32(__riscv_vredsum_vs_i32m8_i32m1(a0, __riscv_vmv_s_x_i32m1(0, 1), vlmax));
            }
            for (int32_t c = 0; c < n;) {
                const size_t vl = __riscv_vsetvl_e32m4((size_t)(n - c));
                const vint32m4_t acc = __riscv_vadd_vv_i32m4(__riscv_vle32_v_i32m4(sums + c, vl),
                                                             __riscv_vle32_v_i32m4(g->bias + u0 + c, vl), vl);
                eq_rvv_requant_store_m4(acc, g->rq, g->shift, units, u0 + c, vl, g->output_offset, g->act_min,
                                        g->act_max, out + u0 + c, flags);
                c += (int32_t)vl;
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_RVV_CONV_H */
