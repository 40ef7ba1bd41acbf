/* add_neon.c - y += x over n floats (the residual connection), 4 at a time (NEON).
 * One rounding per element, as the scalar reference: the results are identical. */
#include <arm_neon.h>

#include "kernels.h"

void add_inplace_neon(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
        vst1q_f32(y + i + 4, vaddq_f32(vld1q_f32(y + i + 4), vld1q_f32(x + i + 4)));
    }
    for (; i < n; i++) y[i] += x[i];
}
