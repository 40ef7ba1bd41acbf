/* add_avx512.c - y += x over n floats (the residual connection), 16 at a time. */
#include "kernels.h"
#include "vecmath_avx512.h"

void add_inplace_avx512(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 2 * V16 <= n; i += 2 * V16) {
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
        _mm512_storeu_ps(y + i + V16,
                         _mm512_add_ps(_mm512_loadu_ps(y + i + V16), _mm512_loadu_ps(x + i + V16)));
    }
    for (; i < n; i += V16) {
        const __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}
