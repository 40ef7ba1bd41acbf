/* layernorm_neon.c - LayerNorm over the last dimension, 4 floats at a time (NEON).
 *
 * x, out: [n_rows, dim] (out may equal x); gamma, beta: [dim]. The algorithm of
 * layernorm_avx2.c: two passes with the sums in double (two float64x2 accumulators, the
 * tail added in double too), the mean split into float hi + lo so the deviations
 * x - mean keep its low bits, then out = (x - mean) * rstd * gamma + beta with one FMA.
 * The tail elements take exactly the vector lanes' roundings (fmaf is one FMA).
 */
#include <arm_neon.h>
#include <math.h>

#include "kernels.h"

void layernorm_neon(float *out, const float *x, const float *gamma, const float *beta,
                    int n_rows, int dim, float eps) {
    if (dim <= 0) return;
    const int n_full = dim - dim % 4;
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = out + (size_t)r * dim;

        float64x2_t acc0 = vdupq_n_f64(0), acc1 = vdupq_n_f64(0);
        for (int i = 0; i < n_full; i += 4) {
            const float32x4_t v = vld1q_f32(xr + i);
            acc0 = vaddq_f64(acc0, vcvt_f64_f32(vget_low_f32(v)));
            acc1 = vaddq_f64(acc1, vcvt_high_f64_f32(v));
        }
        double sum = vaddvq_f64(vaddq_f64(acc0, acc1));
        for (int i = n_full; i < dim; i++) sum += xr[i];
        const double mean = sum / dim;
        const float mean_hi = (float)mean, mean_lo = (float)(mean - mean_hi);
        const float32x4_t vmean_hi = vdupq_n_f32(mean_hi), vmean_lo = vdupq_n_f32(mean_lo);

        acc0 = vdupq_n_f64(0);
        acc1 = vdupq_n_f64(0);
        for (int i = 0; i < n_full; i += 4) {
            const float32x4_t d = vsubq_f32(vsubq_f32(vld1q_f32(xr + i), vmean_hi), vmean_lo);
            const float64x2_t d0 = vcvt_f64_f32(vget_low_f32(d)), d1 = vcvt_high_f64_f32(d);
            acc0 = vfmaq_f64(acc0, d0, d0);
            acc1 = vfmaq_f64(acc1, d1, d1);
        }
        double sum_sq = vaddvq_f64(vaddq_f64(acc0, acc1));
        for (int i = n_full; i < dim; i++) {
            const double d = (xr[i] - mean_hi) - mean_lo;
            sum_sq += d * d;
        }
        const float rstd = (float)(1.0 / sqrt(sum_sq / dim + eps));
        const float32x4_t vrstd = vdupq_n_f32(rstd);

        for (int i = 0; i < n_full; i += 4) {
            const float32x4_t d = vsubq_f32(vsubq_f32(vld1q_f32(xr + i), vmean_hi), vmean_lo);
            vst1q_f32(yr + i, vfmaq_f32(vld1q_f32(beta + i), vmulq_f32(d, vrstd), vld1q_f32(gamma + i)));
        }
        for (int i = n_full; i < dim; i++)
            yr[i] = fmaf(((xr[i] - mean_hi) - mean_lo) * rstd, gamma[i], beta[i]);
    }
}
