/* Reference GATHER at indices computed at run time: one row copy per index. */
#include "eq_movement.h"

eq_status_t eq_gather(const eq_gather_params_t *p, const int8_t *in, const int8_t *indices, int8_t *out)
{
    return p == NULL ? EQ_ERR_ARG : eq_gather_rows(p, in, indices, out);
}
