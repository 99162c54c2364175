/* The walk of a binary element-wise kernel over its 4-D output, in order: the statements given run once per output
 * element with a and b, the element offsets of the two inputs (stride 0 on broadcast dims). */
#ifndef EQ_BROADCAST_H
#define EQ_BROADCAST_H

#include "eq_common.h"

#define EQ_FOR_EACH_BROADCAST(p, a, b, ...)                                                                          \
    for (int32_t i0_ = 0; i0_ < (p)->d0; i0_++) {                                                                    \
        for (int32_t i1_ = 0; i1_ < (p)->d1; i1_++) {                                                                \
            for (int32_t i2_ = 0; i2_ < (p)->d2; i2_++) {                                                            \
                for (int32_t i3_ = 0; i3_ < (p)->d3; i3_++) {                                                        \
                    const size_t a = (size_t)i0_ * (p)->in0_s0 + (size_t)i1_ * (p)->in0_s1                           \
                                     + (size_t)i2_ * (p)->in0_s2 + (size_t)i3_ * (p)->in0_s3;                        \
                    const size_t b = (size_t)i0_ * (p)->in1_s0 + (size_t)i1_ * (p)->in1_s1                           \
                                     + (size_t)i2_ * (p)->in1_s2 + (size_t)i3_ * (p)->in1_s3;                        \
                    __VA_ARGS__                                                                                      \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

#endif /* EQ_BROADCAST_H */
