/* add.c - y += x over n floats (the residual connection), scalar reference. */
#include "kernels.h"

void add_inplace_scalar(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
