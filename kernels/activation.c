/* activation.c - the MLP activations, scalar reference, in place over n floats.
 *
 * quick_gelu(x) = x * sigmoid(1.702 x) = x / (1 + exp(-1.702 x))   (OpenAI CLIP)
 * gelu(x)       = x * Phi(x) = x/2 * erfc(-x / sqrt 2)              (exact GELU)
 * Writing GELU with erfc rather than 1 + erf keeps the negative tail, where 1 + erf
 * cancels to almost nothing, accurate; it is evaluated in double, so the reference is
 * within an ulp everywhere (x / sqrt 2 rounded to float would already move the tail by
 * x^2 ulp). quick_gelu stays in float, as PyTorch computes it. Both are finite for every
 * finite x: exp overflowing to +inf makes quick_gelu return -0, erfc underflowing
 * makes gelu 0.
 */
#include <math.h>

#include "kernels.h"
#include "vecmath.h"

void quick_gelu_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-QUICK_GELU_ALPHA * x[i]));
}

void gelu_scalar(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(0.5 * x[i] * erfc(-x[i] * M_SQRT1_2));
}
