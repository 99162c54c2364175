/* edgeq reference kernels: batch matrix product of two int8 operands (TFLite's BATCH_MATMUL). */
#ifndef EQ_BATCH_MATMUL_H
#define EQ_BATCH_MATMUL_H

#include "eq_common.h"

/* out[b][m][n] = requantize(sum_k (lhs + lhs_offset) * (rhs + rhs_offset)); each operand element (b, r, c) is
 * read at sum_i b_i * X_b_i + r * X_r + c * X_c (strides in elements, 0 on broadcast batch dims; lhs is
 * read as [M, K], rhs as [K, N]). */
typedef struct {
    int32_t b0, b1, b2, m, n, k;
    int32_t lhs_b0, lhs_b1, lhs_b2, lhs_r, lhs_c;
    int32_t rhs_b0, rhs_b1, rhs_b2, rhs_r, rhs_c;
    int32_t lhs_offset, rhs_offset, output_offset, out_mult, out_shift, act_min, act_max;
} eq_batch_matmul_s8_params_t;

typedef struct {
    int32_t b0, b1, b2, m, n, k;
    int32_t lhs_b0, lhs_b1, lhs_b2, lhs_r, lhs_c;
    int32_t rhs_b0, rhs_b1, rhs_b2, rhs_r, rhs_c;
    int32_t lhs_offset, rhs_offset, output_offset, out_mult, out_shift, act_min, act_max;
    const int8_t *rhs; /* the constant rhs, in flash */
} eq_batch_matmul_const_rhs_s8_params_t;

eq_status_t eq_batch_matmul_s8(const eq_batch_matmul_s8_params_t *p, const int8_t *lhs, const int8_t *rhs,
                               int8_t *out);
eq_status_t eq_batch_matmul_const_rhs_s8(const eq_batch_matmul_const_rhs_s8_params_t *p, const int8_t *lhs,
                                         int8_t *out);

/* The product itself, for both entry points (a macro so one body reads either params struct). */
#define EQ_BATCH_MATMUL_BODY(p, lhs, rhs, out)                                                                     \
    do {                                                                                                           \
        size_t o_ = 0;                                                                                             \
        for (int32_t i0 = 0; i0 < (p)->b0; i0++) {                                                                 \
            for (int32_t i1 = 0; i1 < (p)->b1; i1++) {                                                             \
                for (int32_t i2 = 0; i2 < (p)->b2; i2++) {                                                         \
                    const int8_t *l_ = (lhs) + (size_t)i0 * (p)->lhs_b0 + (size_t)i1 * (p)->lhs_b1                   \
                                       + (size_t)i2 * (p)->lhs_b2;                                                 \
                    const int8_t *r_ = (rhs) + (size_t)i0 * (p)->rhs_b0 + (size_t)i1 * (p)->rhs_b1                   \
                                       + (size_t)i2 * (p)->rhs_b2;                                                 \
                    for (int32_t mi = 0; mi < (p)->m; mi++) {                                                      \
                        for (int32_t ni = 0; ni < (p)->n; ni++) {                                                  \
                            int32_t acc_ = 0;                                                                      \
                            for (int32_t ki = 0; ki < (p)->k; ki++) {                                              \
                                acc_ += ((int32_t)l_[(size_t)mi * (p)->lhs_r + (size_t)ki * (p)->lhs_c]            \
                                         + (p)->lhs_offset)                                                        \
                                        * ((int32_t)r_[(size_t)ki * (p)->rhs_r + (size_t)ni * (p)->rhs_c]          \
                                           + (p)->rhs_offset);                                                     \
                            }                                                                                      \
                            const int32_t y_ = eq_mbqm(acc_, (p)->out_mult, (int)(p)->out_shift)                   \
                                               + (p)->output_offset;                                               \
                            (out)[o_++] = (int8_t)eq_clamp(y_, (p)->act_min, (p)->act_max);                        \
                        }                                                                                          \
                    }                                                                                              \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
    } while (0)

/* 16x8 models' BATCH_MATMUL: int16 operands (zero points 0) in the byte arena, int64 sums rescaled by eq_mbqm64,
 * int16 output. One struct for both entry points: rhs, the constant in flash, is read by the const_rhs one only. */
typedef struct {
    int32_t b0, b1, b2, m, n, k;
    int32_t lhs_b0, lhs_b1, lhs_b2, lhs_r, lhs_c;
    int32_t rhs_b0, rhs_b1, rhs_b2, rhs_r, rhs_c;
    int32_t lhs_offset, rhs_offset, output_offset, out_mult, out_shift, act_min, act_max;
    const int16_t *rhs;
} eq_batch_matmul_s16_params_t;

typedef eq_batch_matmul_s16_params_t eq_batch_matmul_const_rhs_s16_params_t;

eq_status_t eq_batch_matmul_s16(const eq_batch_matmul_s16_params_t *p, const int8_t *lhs, const int8_t *rhs,
                                int8_t *out);
eq_status_t eq_batch_matmul_const_rhs_s16(const eq_batch_matmul_const_rhs_s16_params_t *p, const int8_t *lhs,
                                          int8_t *out);

/* The int16 product for both entry points; rhs as bytes (int16 elements loaded without alignment). */
static inline void eq_batch_matmul_s16_body(const eq_batch_matmul_s16_params_t *p, const int8_t *lhs,
                                            const int8_t *rhs, int8_t *out)
{
    size_t o = 0;
    for (int32_t i0 = 0; i0 < p->b0; i0++) {
        for (int32_t i1 = 0; i1 < p->b1; i1++) {
            for (int32_t i2 = 0; i2 < p->b2; i2++) {
                const size_t l = (size_t)i0 * p->lhs_b0 + (size_t)i1 * p->lhs_b1 + (size_t)i2 * p->lhs_b2;
                const size_t r = (size_t)i0 * p->rhs_b0 + (size_t)i1 * p->rhs_b1 + (size_t)i2 * p->rhs_b2;
                for (int32_t mi = 0; mi < p->m; mi++) {
                    for (int32_t ni = 0; ni < p->n; ni++) {
                        int64_t acc = 0;
                        for (int32_t ki = 0; ki < p->k; ki++) {
                            const int64_t a = eq_load(lhs, l + (size_t)mi * p->lhs_r + (size_t)ki * p->lhs_c, 1);
                            const int64_t b = eq_load(rhs, r + (size_t)ki * p->rhs_r + (size_t)ni * p->rhs_c, 1);
                            acc += (a + p->lhs_offset) * (b + p->rhs_offset);
                        }
                        const int32_t y = eq_mbqm64(acc, p->out_mult, (int)p->out_shift) + p->output_offset;
                        eq_store(out, o++, eq_clamp(y, p->act_min, p->act_max), 1);
                    }
                }
            }
        }
    }
}

#endif /* EQ_BATCH_MATMUL_H */
