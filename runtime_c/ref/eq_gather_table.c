/* Reference GATHER of a constant tensor (an embedding table) at indices computed at run time. */
#include "eq_movement.h"

eq_status_t eq_gather_table(const eq_gather_table_params_t *p, const int8_t *indices, int8_t *out)
{
    if (p == NULL) {
        return EQ_ERR_ARG;
    }
    const eq_gather_params_t dims = {p->outer, p->axis_size, p->n_indices, p->inner};
    return eq_gather_rows(&dims, p->table, indices, out);
}
