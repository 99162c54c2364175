/* Element-wise ADD of two int8 tensors of one shape on RVV: TFLite's arithmetic (offsets, left shift 20, each
 * input rescaled, the sum rescaled), or edgeq's power-of-two ADD (inputs aligned by left shifts, one rounding
 * shift), 32-bit lanes. A rounding divide by 2^r, half away from zero, is a floor shift of x + 2^(r-1) - (x < 0). */
#ifndef EQ_RVV_ELEMENTWISE_H
#define EQ_RVV_ELEMENTWISE_H

#include "eq_rvv_common.h"

typedef struct {
    int32_t size, in0_offset, in1_offset, left_shift, in0_mult, in0_shift, in1_mult, in1_shift;
    int32_t out_mult, out_shift, output_offset, act_min, act_max;
} eq_rvv_add_t;

static EQ_ALWAYS_INLINE vint32m4_t eq_rvv_round_shift(vint32m4_t x, int32_t r, size_t vl)
{
    if (r <= 0) {
        return x;
    }
    x = __riscv_vadd_vv_i32m4(x, __riscv_vsra_vx_i32m4(x, 31, vl), vl);
    return __riscv_vsra_vx_i32m4(__riscv_vadd_vx_i32m4(x, (int32_t)(1u << (r - 1)), vl), (size_t)r, vl);
}

/* tflite::MultiplyByQuantizedMultiplier with the layer's (constant) multiplier and shift */
static EQ_ALWAYS_INLINE vint32m4_t eq_rvv_mbqm(vint32m4_t x, int32_t mult, int32_t shift, size_t vl)
{
    if (shift > 0) {
        x = __riscv_vsll_vx_i32m4(x, (size_t)shift, vl);
    }
    return eq_rvv_round_shift(__riscv_vsmul_vx_i32m4(x, mult, __RISCV_VXRM_RNU, vl), -shift, vl);
}

static EQ_ALWAYS_INLINE eq_status_t eq_rvv_add_s8(const eq_rvv_add_t *p, const int8_t *in0, const int8_t *in1,
                                                  int8_t *out, const int mode)
{
    for (int32_t i = 0; i < p->size;) {
        const size_t vl = __riscv_vsetvl_e8m1((size_t)(p->size - i));
        vint32m4_t a = __riscv_vadd_vx_i32m4(__riscv_vsext_vf4_i32m4(__riscv_vle8_v_i8m1(in0 + i, vl), vl),
                                             p->in0_offset, vl);
        vint32m4_t b = __riscv_vadd_vx_i32m4(__riscv_vsext_vf4_i32m4(__riscv_vle8_v_i8m1(in1 + i, vl), vl),
                                             p->in1_offset, vl);
        vint32m4_t acc;
        if (mode == EQ_RVV_MULTIPLIER) {
            a = eq_rvv_mbqm(__riscv_vsll_vx_i32m4(a, (size_t)p->left_shift, vl), p->in0_mult, p->in0_shift, vl);
            b = eq_rvv_mbqm(__riscv_vsll_vx_i32m4(b, (size_t)p->left_shift, vl), p->in1_mult, p->in1_shift, vl);
            acc = eq_rvv_mbqm(__riscv_vadd_vv_i32m4(a, b, vl), p->out_mult, p->out_shift, vl);
        } else {
            acc = __riscv_vadd_vv_i32m4(__riscv_vsll_vx_i32m4(a, (size_t)p->in0_shift, vl),
                                        __riscv_vsll_vx_i32m4(b, (size_t)p->in1_shift, vl), vl);
            acc = eq_rvv_round_shift(acc, p->out_shift, vl);
        }
        acc = __riscv_vadd_vx_i32m4(acc, p->output_offset, vl);
        acc = __riscv_vmax_vx_i32m4(__riscv_vmin_vx_i32m4(acc, p->act_max, vl), p->act_min, vl);
        __riscv_vse8_v_i8m1(out + i, __riscv_vncvt_x_x_w_i8m1(__riscv_vncvt_x_x_w_i16m2(acc, vl), vl), vl);
        i += (int32_t)vl;
    }
    return EQ_OK;
}

#endif /* EQ_RVV_ELEMENTWISE_H */
