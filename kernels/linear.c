/* linear.c - the linear layer y = x W^T + b, through OpenBLAS.
 *
 * x: [n_rows, d_in], W: [d_out, d_in] (PyTorch's layout, so the product uses W
 * transposed), b: [d_out] or NULL, y: [n_rows, d_out] (must not overlap x or W).
 * The bias is written into every row of y first and sgemm adds the product onto it
 * (beta = 1), which saves a second pass over y; without a bias beta = 0, and BLAS then
 * never reads y.
 */
#include <cblas.h>
#include <string.h>

#include "kernels.h"

void linear(float *y, const float *x, const float *w, const float *b,
            int n_rows, int d_in, int d_out) {
    if (n_rows <= 0 || d_out <= 0) return;
    if (b)
        for (int r = 0; r < n_rows; r++) memcpy(y + (size_t)r * d_out, b, (size_t)d_out * sizeof *y);
    if (d_in <= 0) {                             /* an empty sum: y is just the bias */
        if (!b) memset(y, 0, (size_t)n_rows * d_out * sizeof *y);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_rows, d_out, d_in,
                1.0f, x, d_in, w, d_in, b ? 1.0f : 0.0f, y, d_out);
}

void blas_set_threads(int n_threads) {
    if (n_threads > 0) openblas_set_num_threads(n_threads);
}
