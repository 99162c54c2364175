/* edgeq's own Helium (MVE) kernels (Cortex-M55/M85), included by a model that calls any of them. */
#ifndef EQ_MVE_KERNELS_H
#define EQ_MVE_KERNELS_H

#include "eq_mve_conv.h"
#include "eq_mve_depthwise.h"
#include "eq_mve_elementwise.h"

#endif /* EQ_MVE_KERNELS_H */
