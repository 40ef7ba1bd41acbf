/* layernorm_avx2.c - LayerNorm over the last dimension, 8 floats at a time.
 *
 * x, out: [n_rows, dim] (out may equal x); gamma, beta: [dim]. Same two-pass algorithm
 * as layernorm.c. The sums are kept in double (4 lanes each, two accumulators): LayerNorm
 * costs next to nothing beside the matrix products, and this keeps rows whose mean is
 * large against their spread exact. The mean is split into float hi + lo so that the
 * deviations x - mean are formed in float without losing the low bits of the mean.
 */
#include <math.h>

#include "kernels.h"
#include "vecmath_avx2.h"

static inline double hsum4d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

void layernorm_avx2(float *out, const float *x, const float *gamma, const float *beta,
                    int n_rows, int dim, float eps) {
    if (dim <= 0) return;
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = out + (size_t)r * dim;

        __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
        for (int i = 0; i < dim; i += V8) {
            const __m256 v = _mm256_maskload_ps(xr + i, mask8((size_t)(dim - i)));
            acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
            acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
        }
        const double mean = hsum4d(_mm256_add_pd(acc0, acc1)) / dim;
        const float mean_hi = (float)mean, mean_lo = (float)(mean - mean_hi);
        const __m256 vmean_hi = _mm256_set1_ps(mean_hi), vmean_lo = _mm256_set1_ps(mean_lo);

        acc0 = _mm256_setzero_pd();
        acc1 = _mm256_setzero_pd();
        for (int i = 0; i < dim; i += V8) {
            const __m256i m = mask8((size_t)(dim - i));
            const __m256 v = _mm256_maskload_ps(xr + i, m);
            __m256 d = _mm256_sub_ps(_mm256_sub_ps(v, vmean_hi), vmean_lo);
            d = _mm256_and_ps(d, _mm256_castsi256_ps(m));           /* lanes past dim: 0 */
            const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
            const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
            acc0 = _mm256_fmadd_pd(d0, d0, acc0);
            acc1 = _mm256_fmadd_pd(d1, d1, acc1);
        }
        const double var = hsum4d(_mm256_add_pd(acc0, acc1)) / dim;
        const __m256 rstd = _mm256_set1_ps((float)(1.0 / sqrt(var + eps)));

        for (int i = 0; i < dim; i += V8) {
            const __m256i m = mask8((size_t)(dim - i));
            const __m256 v = _mm256_maskload_ps(xr + i, m);
            const __m256 d = _mm256_sub_ps(_mm256_sub_ps(v, vmean_hi), vmean_lo);
            const __m256 g = _mm256_maskload_ps(gamma + i, m);
            const __m256 b = _mm256_maskload_ps(beta + i, m);
            _mm256_maskstore_ps(yr + i, m, _mm256_fmadd_ps(_mm256_mul_ps(d, rstd), g, b));
        }
    }
}
