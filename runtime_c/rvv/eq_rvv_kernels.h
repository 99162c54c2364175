/* edgeq's own RVV 1.0 kernels (RISC-V vector extension), included by a model that calls any of them. */
#ifndef EQ_RVV_KERNELS_H
#define EQ_RVV_KERNELS_H

#include "eq_rvv_conv.h"
#include "eq_rvv_depthwise.h"
#include "eq_rvv_elementwise.h"

#endif /* EQ_RVV_KERNELS_H */
