/* gemm_avx2.c - the NT register-tile kernel of gemm.h with AVX2 + FMA (8 floats a vector).
 *
 * The same scheme as gemm_avx512.c within 16 ymm registers: a tile of 3 rows of x by
 * 4 rows of W is 12 accumulators, plus the 3 x vectors and one W vector in flight.
 * One step over 8 values of k: 7 loads, 12 FMAs. The last step loads with a lane mask;
 * fewer than 3 rows use a smaller tile; fewer than 4 W rows repeat the last valid row
 * and store only the valid outputs.
 */
#include <immintrin.h>

#include "gemm.h"

#define MR 3
#define NR 4

static inline __m128 sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* Lanes [0, n) set, n in 0..8, for maskload/maskstore. */
static inline __m256i lanes8(int n) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), index);
}

static inline __attribute__((always_inline)) void
tile(float *y, int ldy, const float *x, int ldx, const float *w0, const float *w1,
     const float *w2, const float *w3, int k, const float *bias, int n_valid, int accumulate,
     const float *prefetch, int ldw, const int mr) {
    const float *w[NR] = {w0, w1, w2, w3};
    __m256 acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();

    int p = 0;
    for (; p + 8 <= k; p += 8) {
        if (prefetch && p % 16 == 0)
#pragma GCC unroll 4
            for (int j = 0; j < NR; j++) _mm_prefetch((const char *)(prefetch + (size_t)j * ldw + p), _MM_HINT_T0);
        __m256 xv[MR];
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) xv[i] = _mm256_loadu_ps(x + (size_t)i * ldx + p);
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) {
            const __m256 wv = _mm256_loadu_ps(w[j] + p);
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }
    if (p < k) {
        const __m256i m = lanes8(k - p);
        __m256 xv[MR];
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) xv[i] = _mm256_maskload_ps(x + (size_t)i * ldx + p, m);
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) {
            const __m256 wv = _mm256_maskload_ps(w[j] + p, m);
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }

    const __m128i valid = _mm256_castsi256_si128(lanes8(n_valid));
    const __m128 b = bias ? _mm_maskload_ps(bias, valid) : _mm_setzero_ps();
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        float *yr = y + (size_t)i * ldy;
        __m128 s = _mm_add_ps(sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), b);
        if (accumulate) s = _mm_add_ps(_mm_maskload_ps(yr, valid), s);
        _mm_maskstore_ps(yr, valid, s);
    }
}

void gemm_block_avx2(float *y, int ldy, const float *x, int ldx, const float *w, int ldw,
                     int m, int n, int k, const float *bias, int accumulate) {
    for (int j = 0; j < n; j += NR) {
        const int n_valid = n - j < NR ? n - j : NR;
        const float *w0 = w + (size_t)j * ldw;
        const float *w1 = w0 + (size_t)(n_valid > 1 ? 1 : 0) * ldw;
        const float *w2 = w0 + (size_t)(n_valid > 2 ? 2 : n_valid - 1) * ldw;
        const float *w3 = w0 + (size_t)(n_valid > 3 ? 3 : n_valid - 1) * ldw;
        const float *b = bias ? bias + j : NULL;
        /* While the first tile runs, fetch the next 4 W rows (whole, if there are 4) into
         * L1: W streams from memory once, and its first touch would otherwise stall. */
        const float *next = j + 2 * NR <= n ? w0 + (size_t)NR * ldw : NULL;
        float *yj = y + j;
        int i = 0;
        if (i + MR <= m) {
            tile(yj, ldy, x, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, next, ldw, MR);
            i += MR;
        }
        for (; i + MR <= m; i += MR)
            tile(yj + (size_t)i * ldy, ldy, x + (size_t)i * ldx, ldx, w0, w1, w2, w3, k, b, n_valid,
                 accumulate, NULL, ldw, MR);
        float *yi = yj + (size_t)i * ldy;
        const float *xi = x + (size_t)i * ldx;
        switch (m - i) {
        case 1: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, i ? NULL : next, ldw, 1); break;
        case 2: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, i ? NULL : next, ldw, 2); break;
        default: break;
        }
    }
}
