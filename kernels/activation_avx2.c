/* activation_avx2.c - quick GELU and exact GELU, in place over n floats, 8 at a time.
 *
 * The math (polynomial exp and erf/erfc) is in vecmath_avx2.h; this file only walks
 * the array, with a masked last vector so any n works without touching memory past it.
 */
#include "kernels.h"
#include "vecmath_avx2.h"

void quick_gelu_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + V8 <= n; i += V8) _mm256_storeu_ps(x + i, quick_gelu8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i m = mask8(n - i);
        _mm256_maskstore_ps(x + i, m, quick_gelu8(_mm256_maskload_ps(x + i, m)));
    }
}

void gelu_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + V8 <= n; i += V8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i m = mask8(n - i);
        _mm256_maskstore_ps(x + i, m, gelu8(_mm256_maskload_ps(x + i, m)));
    }
}
