/* edgeq reference kernels: every kernel the generated code may call. */
#ifndef EQ_KERNELS_H
#define EQ_KERNELS_H

#include "eq_common.h"
#include "eq_conv.h"
#include "eq_pooling.h"
#include "eq_elementwise.h"
#include "eq_activations.h"
#include "eq_movement.h"
#include "eq_reduce.h"
#include "eq_batch_matmul.h"
#include "eq_recurrent.h"

#endif /* EQ_KERNELS_H */
