/* Reference int8 RESIZE_BILINEAR: TFLite's ResizeBilinearInteger over precomputed source rows, columns and
 * weights (in 1/1024). */
#include "eq_movement.h"

eq_status_t eq_resize_bilinear_s8(const eq_resize_bilinear_s8_params_t *p, const int8_t *in, int8_t *out)
{
    if (p == NULL || in == NULL || out == NULL || p->rows == NULL || p->cols == NULL) {
        return EQ_ERR_ARG;
    }
    const int64_t one = 1 << 10;
    size_t o = 0;
    for (int32_t b = 0; b < p->batches; b++) {
        for (int32_t y = 0; y < p->output_h; y++) {
            const int32_t *r = p->rows + 3 * (size_t)y;
            const int64_t wy = r[2];
            for (int32_t x = 0; x < p->output_w; x++) {
                const int32_t *c = p->cols + 3 * (size_t)x;
                const int64_t wx = c[2];
                const int8_t *p00 = in + (((size_t)b * p->input_h + r[0]) * p->input_w + c[0]) * p->channels;
                const int8_t *p10 = in + (((size_t)b * p->input_h + r[1]) * p->input_w + c[0]) * p->channels;
                const int8_t *p01 = in + (((size_t)b * p->input_h + r[0]) * p->input_w + c[1]) * p->channels;
                const int8_t *p11 = in + (((size_t)b * p->input_h + r[1]) * p->input_w + c[1]) * p->channels;
                for (int32_t ch = 0; ch < p->channels; ch++) {
                    const int64_t total = p00[ch] * (one - wy) * (one - wx) + p10[ch] * wy * (one - wx)
                                          + p01[ch] * (one - wy) * wx + p11[ch] * wy * wx;
                    const int64_t rounded = total > 0 ? total + (1 << 19) : total - (1 << 19);
                    out[o++] = (int8_t)(rounded / (1 << 20));
                }
            }
        }
    }
    return EQ_OK;
}
