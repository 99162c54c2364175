/* edgeq's own DSP-extension kernels (Cortex-M4/M7/M33), included by a model that calls any of them. */
#ifndef EQ_DSP_KERNELS_H
#define EQ_DSP_KERNELS_H

#include "eq_dsp_conv.h"
#include "eq_dsp_depthwise.h"
#include "eq_dsp_elementwise.h"

#endif /* EQ_DSP_KERNELS_H */
