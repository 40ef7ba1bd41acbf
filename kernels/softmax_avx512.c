/* softmax_avx512.c - softmax over one row of n floats, in place, 16 at a time.
 *
 * Three passes as in softmax.c: the row maximum, exp(x - max) with its sum (polynomial
 * exp of vecmath_avx512.h), then the scaling by 1 / sum.
 */
#include "kernels.h"
#include "vecmath_avx512.h"

void softmax_avx512(float *x, int n) {
    if (n <= 0) return;
    const size_t len = (size_t)n;
    const float sum = row_exp_sum512(x, len, row_max512(x, len));
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (size_t i = 0; i < len; i += V16) {
        const __mmask16 m = mask16(len - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}
