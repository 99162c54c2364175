/* Reference int16 BATCH_MATMUL of an activation by a constant (16x8 models). */
#include "eq_batch_matmul.h"

eq_status_t eq_batch_matmul_const_rhs_s16(const eq_batch_matmul_const_rhs_s16_params_t *p, const int8_t *lhs,
                                          int8_t *out)
{
    if (p == NULL || lhs == NULL || out == NULL || p->rhs == NULL) {
        return EQ_ERR_ARG;
    }
    eq_batch_matmul_s16_body(p, lhs, (const int8_t *)p->rhs, out);
    return EQ_OK;
}
