/* Reference int8 BATCH_MATMUL of two activations. */
#include "eq_batch_matmul.h"

eq_status_t eq_batch_matmul_s8(const eq_batch_matmul_s8_params_t *p, const int8_t *lhs, const int8_t *rhs,
                               int8_t *out)
{
    if (p == NULL || lhs == NULL || rhs == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    EQ_BATCH_MATMUL_BODY(p, lhs, rhs, out);
    return EQ_OK;
}
