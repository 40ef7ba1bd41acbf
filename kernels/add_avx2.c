/* add_avx2.c - y += x over n floats (the residual connection), 8 at a time. */
#include "kernels.h"
#include "vecmath_avx2.h"

void add_inplace_avx2(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 2 * V8 <= n; i += 2 * V8) {
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
        _mm256_storeu_ps(y + i + V8,
                         _mm256_add_ps(_mm256_loadu_ps(y + i + V8), _mm256_loadu_ps(x + i + V8)));
    }
    for (; i < n; i += V8) {
        const __m256i m = mask8(n - i);
        _mm256_maskstore_ps(y + i, m,
                            _mm256_add_ps(_mm256_maskload_ps(y + i, m), _mm256_maskload_ps(x + i, m)));
    }
}
