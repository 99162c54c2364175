/* Reference int16 BATCH_MATMUL of two activations (16x8 models). */
#include "eq_batch_matmul.h"

eq_status_t eq_batch_matmul_s16(const eq_batch_matmul_s16_params_t *p, const int8_t *lhs, const int8_t *rhs,
                                int8_t *out)
{
    if (p == NULL || lhs == NULL || rhs == NULL || out == NULL) {
        return EQ_ERR_ARG;
    }
    eq_batch_matmul_s16_body(p, lhs, rhs, out);
    return EQ_OK;
}
