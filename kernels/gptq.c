/* gptq.c - rounding weights to q8_0 / q4_0 with error feedback (GPTQ: Frantar, Ashkboos,
 * Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
 * Transformers", 2022).
 *
 * Rounding each weight to its nearest level is best for the weights, not for the layer's
 * output y = W x. GPTQ rounds W [n, k] one column (one k step) at a time and moves each
 * column's rounding error onto the columns not yet rounded, in the direction that keeps y
 * closest to the original on calibration inputs x [rows, k]. With H = x^T x / rows [k, k]
 * (the inputs' second moments) and U the upper Cholesky factor of H^-1 (H^-1 = U^T U):
 *     e = (w_j - q_j) / U[j][j],   w_j' -= e U[j][j']   for every later column j'.
 * If the inputs are uncorrelated (H diagonal), U is diagonal and nothing moves: plain
 * rounding. In a transformer they are far from that, and the output error of a layer falls
 * several times (README, "Quantized models": the measured effect on embeddings).
 *
 * Details:
 *   - U without inverting H first: if H = V V^T with V upper triangular (a Cholesky
 *     factorization in reversed order), then H^-1 = V^-T V^-1, so U = V^-1.
 *   - H gets GPTQ_DAMP x mean(diag H) on its diagonal; a column no calibration row reaches
 *     (diag 0) is rounded as 0 (it never meets an input).
 *   - Block scales: a block of 32 columns takes its scale (quant_block_scale, the same rule
 *     as plain packing) from its values when rounding reaches it, after earlier feedback.
 *   - Columns go in groups of 128: feedback inside the group column by column, onto the
 *     columns after it as one product (blas_dgemm_tn). Double precision throughout.
 */
#include "gptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define GROUP 128                 /* columns fed back one by one before one product */

/* H = x^T x / rows, plus GPTQ_DAMP x the mean of its diagonal on the diagonal, [k, k];
 * a column no row reaches (dead[c] = 1) gets 1 on the diagonal and zeros elsewhere.
 * xd: scratch [rows, k]. extra: more damping, as a fraction of each diagonal entry. */
static void second_moments(double *h, const float *x, int rows, int k, double *xd, unsigned char *dead,
                           double extra) {
    for (size_t e = 0; e < (size_t)rows * k; e++) xd[e] = x[e];
    blas_dgram(h, xd, rows, k);
    for (size_t e = 0; e < (size_t)k * k; e++) h[e] /= rows;
    double mean = 0;
    int live = 0;
    for (int c = 0; c < k; c++) {
        dead[c] = !(h[(size_t)c * k + c] > 0);
        if (!dead[c]) mean += h[(size_t)c * k + c], live++;
    }
    mean = live ? mean / live : 1.0;
    for (int c = 0; c < k; c++) {
        if (dead[c]) {
            for (int j = 0; j < k; j++) h[(size_t)c * k + j] = h[(size_t)j * k + c] = 0;
            h[(size_t)c * k + c] = 1;
        }
        h[(size_t)c * k + c] += GPTQ_DAMP * mean + extra * h[(size_t)c * k + c];
    }
}

/* h [k, k] symmetric positive definite -> U, upper, with h^-1 = U^T U (see above). -1 if
 * h is not positive definite. */
static int inverse_factor(double *h, int k) {
    const size_t nn = (size_t)k * k;
    /* reversing the flat array reverses rows and columns both: P h P */
    for (size_t e = 0; e < nn / 2; e++) { double t = h[e]; h[e] = h[nn - 1 - e]; h[nn - 1 - e] = t; }
    if (blas_cholesky_lower(h, k) != 0) return -1;                  /* P h P = L L^T */
    for (size_t e = 0; e < nn / 2; e++) { double t = h[e]; h[e] = h[nn - 1 - e]; h[nn - 1 - e] = t; }
    for (int i = 1; i < k; i++) memset(&h[(size_t)i * k], 0, sizeof(double) * (size_t)i);   /* V = P L P */
    blas_invert_upper(h, k);                                        /* U = V^-1 */
    return 0;
}

int gptq_quantize(gemm_type type, float *w, int n, int k, const float *x, int rows, uint16_t *scales) {
    const int n_blocks = (k + QK - 1) / QK;
    double *h = malloc(sizeof(double) * (size_t)k * k);
    double *xd = malloc(sizeof(double) * (size_t)rows * k);
    double *wt = malloc(sizeof(double) * (size_t)k * n);            /* W^T [k, n]: column j contiguous */
    double *err = malloc(sizeof(double) * (size_t)GROUP * n);       /* [GROUP, n] */
    float *scale = malloc(sizeof(float) * (size_t)n);               /* the current block's, per row */
    unsigned char *dead = malloc((size_t)k);
    int rc = -1;
    if (!h || !xd || !wt || !err || !scale || !dead) goto done;
    /* the damping keeps h positive definite in exact arithmetic; should rounding defeat it,
     * more damping (towards plain rounding's diagonal U) */
    for (size_t e = 0; e < (size_t)rows * k; e++)
        if (!isfinite(x[e])) { rc = -2; goto done; }
    second_moments(h, x, rows, k, xd, dead, 0.0);
    for (double extra = 0.1; inverse_factor(h, k) != 0; extra *= 10) {
        if (extra > 1e3) { rc = -2; goto done; }
        second_moments(h, x, rows, k, xd, dead, extra);
    }
    for (int j = 0; j < k; j++)
        for (int r = 0; r < n; r++) wt[(size_t)j * n + r] = dead[j] ? 0.0 : w[(size_t)r * k + j];

    for (int g0 = 0; g0 < k; g0 += GROUP) {
        const int g1 = g0 + GROUP < k ? g0 + GROUP : k;
        for (int j = g0; j < g1; j++) {
            double *wj = wt + (size_t)j * n, *ej = err + (size_t)(j - g0) * n;
            if (j % QK == 0)                  /* a new block: its scale from its values now */
                for (int r = 0; r < n; r++) {
                    float v[QK];
                    for (int c = 0; c < QK; c++) v[c] = j + c < k ? (float)wt[(size_t)(j + c) * n + r] : 0.0f;
                    scales[(size_t)r * n_blocks + j / QK] = quant_block_scale(type, v);
                    scale[r] = f16_to_f32(scales[(size_t)r * n_blocks + j / QK]);
                }
            const double *u = h + (size_t)j * k;
            for (int r = 0; r < n; r++) {
                const double q = (double)quant_level(type, (float)wj[r], scale[r]) * scale[r];
                ej[r] = (wj[r] - q) / u[j];
                wj[r] = q;
            }
            for (int j2 = j + 1; j2 < g1; j2++) {
                double *w2 = wt + (size_t)j2 * n;
                for (int r = 0; r < n; r++) w2[r] -= ej[r] * u[j2];
            }
        }
        /* the group's errors onto every later column: wt[g1:] -= U[g0:g1, g1:]^T err */
        if (g1 < k)
            blas_dgemm_tn(wt + (size_t)g1 * n, n, h + (size_t)g0 * k + g1, k, err, n, k - g1, n, g1 - g0, -1.0, 1.0);
    }
    for (int r = 0; r < n; r++)
        for (int j = 0; j < k; j++) w[(size_t)r * k + j] = (float)wt[(size_t)j * n + r];
    rc = 0;
done:
    free(h), free(xd), free(wt), free(err), free(scale), free(dead);
    return rc;
}
