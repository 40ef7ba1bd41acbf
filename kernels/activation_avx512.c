/* activation_avx512.c - quick GELU and exact GELU, in place over n floats, 16 at a time.
 *
 * The math (polynomial exp and erf/erfc) is in vecmath_avx512.h; this file only walks
 * the array, with a masked last vector so any n works without touching memory past it.
 */
#include "kernels.h"
#include "vecmath_avx512.h"

void quick_gelu_avx512(float *x, size_t n) {
    size_t i = 0;
    for (; i + V16 <= n; i += V16) _mm512_storeu_ps(x + i, quick_gelu512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(x + i, m, quick_gelu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void gelu_avx512(float *x, size_t n) {
    size_t i = 0;
    for (; i + V16 <= n; i += V16) _mm512_storeu_ps(x + i, gelu512(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(x + i, m, gelu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}
