/* layernorm.c - LayerNorm over the last dimension, scalar reference.
 *
 * x, out: [n_rows, dim] (out may equal x); gamma, beta: [dim].
 * out[r][i] = (x[r][i] - mean_r) / sqrt(var_r + eps) * gamma[i] + beta[i], with the biased
 * variance var_r = mean((x[r] - mean_r)^2), as torch.nn.LayerNorm. Two passes over the
 * row (mean first, then the variance around it) avoid the cancellation of E[x^2] - E[x]^2,
 * and double accumulation makes this the accurate reference the SIMD versions are held to.
 */
#include <math.h>

#include "kernels.h"

void layernorm_scalar(float *out, const float *x, const float *gamma, const float *beta,
                      int n_rows, int dim, float eps) {
    if (dim <= 0) return;
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = out + (size_t)r * dim;

        double sum = 0;
        for (int i = 0; i < dim; i++) sum += xr[i];
        const double mean = sum / dim;

        double sum_sq = 0;
        for (int i = 0; i < dim; i++) {
            const double d = xr[i] - mean;
            sum_sq += d * d;
        }
        const double rstd = 1.0 / sqrt(sum_sq / dim + eps);

        for (int i = 0; i < dim; i++)
            yr[i] = (float)((xr[i] - mean) * rstd * gamma[i] + beta[i]);
    }
}
