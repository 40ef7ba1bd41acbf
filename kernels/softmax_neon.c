/* softmax_neon.c - softmax over one row of n floats, in place, 4 at a time (NEON).
 *
 * Three passes as in softmax.c: the row maximum, exp(x - max) with its sum (polynomial
 * exp of vecmath_neon.h), then the scaling by 1 / sum.
 */
#include "kernels.h"
#include "vecmath_neon.h"

void softmax_neon(float *x, int n) {
    if (n <= 0) return;
    const size_t len = (size_t)n;
    const float sum = row_exp_sum4(x, len, row_max4(x, len));
    const float32x4_t inv = vdupq_n_f32(1.0f / sum);
    size_t i = 0;
    for (; i + V4 <= len; i += V4) vst1q_f32(x + i, vmulq_f32(vld1q_f32(x + i), inv));
    if (i < len) store_tail(x + i, vmulq_f32(load_tail(x + i, len - i, 0.0f), inv), len - i);
}
