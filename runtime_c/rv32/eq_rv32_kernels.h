/* edgeq's own scalar kernels for RV32IM cores, included by a model that calls any of them. */
#ifndef EQ_RV32_KERNELS_H
#define EQ_RV32_KERNELS_H

#include "eq_rv32_conv.h"
#include "eq_rv32_depthwise.h"

#endif /* EQ_RV32_KERNELS_H */
