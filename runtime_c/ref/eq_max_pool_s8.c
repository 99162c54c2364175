/* Reference int8 max pooling. */
#include "eq_pool_window.h"

eq_status_t eq_max_pool_s8(const eq_max_pool_s8_params_t *p, const int8_t *in, int8_t *out)
{
    return eq_pool(p, in, out, 0, 0);
}
