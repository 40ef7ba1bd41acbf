/* softmax_avx2.c - softmax over one row of n floats, in place, 8 at a time.
 *
 * Three passes as in softmax.c: the row maximum, exp(x - max) with its sum (polynomial
 * exp of vecmath_avx2.h), then the scaling by 1 / sum.
 */
#include "kernels.h"
#include "vecmath_avx2.h"

void softmax_avx2(float *x, int n) {
    if (n <= 0) return;
    const size_t len = (size_t)n;
    const float sum = row_exp_sum8(x, len, row_max8(x, len));
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    size_t i = 0;
    for (; i + V8 <= len; i += V8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    if (i < len) {
        const __m256i m = mask8(len - i);
        _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
    }
}
