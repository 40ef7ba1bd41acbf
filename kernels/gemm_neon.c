/* gemm_neon.c - the NT register-tile kernel of gemm.h with NEON (4 floats a vector).
 *
 * y[i, j] (+)= bias[j] + sum_p x[i, p] w[j, p] for a block of m rows of x and n rows of W,
 * both walked along k (gemm_block_fn). The register tile is 5 rows of x by 4 rows of W:
 * 20 accumulators (4 lanes of k each), 5 x vectors and the W vector in flight, 26 of the
 * 32 vector registers. One step over 4 values of k is 9 loads and 20 FMAs
 * (fmla vD.4s, vN.4s, vM.4s), so the loads never limit the two FMA pipes of a big core;
 * the accumulators are reduced across lanes once, after the k loop. The last k % 4 values
 * go through a zero-padded buffer; fewer than 5 rows use a smaller tile; fewer than 4 W
 * rows repeat the last valid row and store only the valid outputs.
 */
#include <arm_neon.h>
#include <string.h>

#include "gemm.h"

#define MR 5
#define NR 4

static inline float32x4_t load_padded(const float *p, int n) {
    float buf[4] = {0, 0, 0, 0};
    memcpy(buf, p, (size_t)n * sizeof(float));
    return vld1q_f32(buf);
}

static inline __attribute__((always_inline)) void
tile(float *y, int ldy, const float *x, int ldx, const float *w0, const float *w1,
     const float *w2, const float *w3, int k, const float *bias, int n_valid, int accumulate,
     const int mr) {
    const float *w[NR] = {w0, w1, w2, w3};
    float32x4_t acc[MR][NR];
#pragma GCC unroll 5
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) acc[i][j] = vdupq_n_f32(0);

    int p = 0;
    for (; p + 4 <= k; p += 4) {
        float32x4_t xv[MR];
#pragma GCC unroll 5
        for (int i = 0; i < mr; i++) xv[i] = vld1q_f32(x + (size_t)i * ldx + p);
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) {
            const float32x4_t wv = vld1q_f32(w[j] + p);
#pragma GCC unroll 5
            for (int i = 0; i < mr; i++) acc[i][j] = vfmaq_f32(acc[i][j], xv[i], wv);
        }
    }
    if (p < k) {
        float32x4_t xv[MR];
#pragma GCC unroll 5
        for (int i = 0; i < mr; i++) xv[i] = load_padded(x + (size_t)i * ldx + p, k - p);
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) {
            const float32x4_t wv = load_padded(w[j] + p, k - p);
#pragma GCC unroll 5
            for (int i = 0; i < mr; i++) acc[i][j] = vfmaq_f32(acc[i][j], xv[i], wv);
        }
    }

    float b[NR] = {0, 0, 0, 0};
    if (bias) memcpy(b, bias, (size_t)n_valid * sizeof(float));
    const float32x4_t bv = vld1q_f32(b);
#pragma GCC unroll 5
    for (int i = 0; i < mr; i++) {
        float *yr = y + (size_t)i * ldy;
        /* (sum acc0, sum acc1, sum acc2, sum acc3) + bias */
        float32x4_t s = vpaddq_f32(vpaddq_f32(acc[i][0], acc[i][1]), vpaddq_f32(acc[i][2], acc[i][3]));
        s = vaddq_f32(s, bv);
        if (n_valid == NR) {
            if (accumulate) s = vaddq_f32(vld1q_f32(yr), s);
            vst1q_f32(yr, s);
        } else {
            float out[NR];
            vst1q_f32(out, s);
            for (int j = 0; j < n_valid; j++) yr[j] = accumulate ? yr[j] + out[j] : out[j];
        }
    }
}

void gemm_block_neon(float *y, int ldy, const float *x, int ldx, const float *w, int ldw,
                     int m, int n, int k, const float *bias, int accumulate) {
    for (int j = 0; j < n; j += NR) {
        const int n_valid = n - j < NR ? n - j : NR;
        const float *w0 = w + (size_t)j * ldw;
        const float *w1 = w0 + (size_t)(n_valid > 1 ? 1 : 0) * ldw;
        const float *w2 = w0 + (size_t)(n_valid > 2 ? 2 : n_valid - 1) * ldw;
        const float *w3 = w0 + (size_t)(n_valid > 3 ? 3 : n_valid - 1) * ldw;
        const float *b = bias ? bias + j : NULL;
        float *yj = y + j;
        int i = 0;
        for (; i + MR <= m; i += MR)
            tile(yj + (size_t)i * ldy, ldy, x + (size_t)i * ldx, ldx, w0, w1, w2, w3, k, b, n_valid,
                 accumulate, MR);
        float *yi = yj + (size_t)i * ldy;
        const float *xi = x + (size_t)i * ldx;
        switch (m - i) {
        case 1: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, 1); break;
        case 2: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, 2); break;
        case 3: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, 3); break;
        case 4: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, 4); break;
        default: break;
        }
    }
}
