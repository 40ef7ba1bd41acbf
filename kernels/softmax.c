/* softmax.c - softmax over one row of n floats, in place, scalar reference.
 *
 * x[i] = exp(x[i] - max) / sum_j exp(x[j] - max). Subtracting the row maximum keeps every
 * exp in (0, 1], so nothing overflows whatever the magnitudes; the sum is kept in double.
 */
#include <math.h>

#include "kernels.h"

void softmax_scalar(float *x, int n) {
    if (n <= 0) return;
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] = (float)(x[i] / sum);
}
