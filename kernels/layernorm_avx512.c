/* layernorm_avx512.c - LayerNorm over the last dimension, 16 floats at a time.
 *
 * x, out: [n_rows, dim] (out may equal x); gamma, beta: [dim]. Same two-pass algorithm
 * as layernorm.c. The sums are kept in double (8 lanes each, two accumulators): LayerNorm
 * costs next to nothing beside the matrix products, and this keeps rows whose mean is
 * large against their spread exact. The mean is split into float hi + lo so that the
 * deviations x - mean are formed in float without losing the low bits of the mean.
 */
#include <math.h>

#include "kernels.h"
#include "vecmath_avx512.h"

static inline __m512d widen_lo(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline __m512d widen_hi(__m512 v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

void layernorm_avx512(float *out, const float *x, const float *gamma, const float *beta,
                      int n_rows, int dim, float eps) {
    if (dim <= 0) return;
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = out + (size_t)r * dim;

        __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
        for (int i = 0; i < dim; i += V16) {
            const __m512 v = _mm512_maskz_loadu_ps(mask16((size_t)(dim - i)), xr + i);
            acc0 = _mm512_add_pd(acc0, widen_lo(v));
            acc1 = _mm512_add_pd(acc1, widen_hi(v));
        }
        const double mean = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1)) / dim;
        const float mean_hi = (float)mean, mean_lo = (float)(mean - mean_hi);
        const __m512 vmean_hi = _mm512_set1_ps(mean_hi), vmean_lo = _mm512_set1_ps(mean_lo);

        acc0 = _mm512_setzero_pd();
        acc1 = _mm512_setzero_pd();
        for (int i = 0; i < dim; i += V16) {
            const __mmask16 m = mask16((size_t)(dim - i));
            const __m512 v = _mm512_maskz_loadu_ps(m, xr + i);
            const __m512 d = _mm512_maskz_sub_ps(m, _mm512_sub_ps(v, vmean_hi), vmean_lo);
            const __m512d d0 = widen_lo(d), d1 = widen_hi(d);
            acc0 = _mm512_fmadd_pd(d0, d0, acc0);
            acc1 = _mm512_fmadd_pd(d1, d1, acc1);
        }
        const double var = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1)) / dim;
        const __m512 rstd = _mm512_set1_ps((float)(1.0 / sqrt(var + eps)));

        for (int i = 0; i < dim; i += V16) {
            const __mmask16 m = mask16((size_t)(dim - i));
            const __m512 v = _mm512_maskz_loadu_ps(m, xr + i);
            const __m512 d = _mm512_sub_ps(_mm512_sub_ps(v, vmean_hi), vmean_lo);
            const __m512 g = _mm512_maskz_loadu_ps(m, gamma + i);
            const __m512 b = _mm512_maskz_loadu_ps(m, beta + i);
            _mm512_mask_storeu_ps(yr + i, m, _mm512_fmadd_ps(_mm512_mul_ps(d, rstd), g, b));
        }
    }
}
