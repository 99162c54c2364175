/* Reference int8 BATCH_MATMUL of an activation by a constant. */
#include "eq_batch_matmul.h"

eq_status_t eq_batch_matmul_const_rhs_s8(const eq_batch_matmul_const_rhs_s8_params_t *p, const int8_t *lhs,
                                         int8_t *out)
{
    if (p == NULL || lhs == NULL || out == NULL || p->rhs == NULL) {
        return EQ_ERR_ARG;
    }
    EQ_BATCH_MATMUL_BODY(p, lhs, p->rhs, out);
    return EQ_OK;
}
