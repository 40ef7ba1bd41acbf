/* gemm_avx512.c - the NT register-tile kernel of gemm.h with AVX-512 (16 floats a vector).
 *
 * Tile: 5 rows of x by 4 rows of W, 20 zmm accumulators, each the 16-lane partial dot
 * product of one (x row, W row) pair. One step over 16 values of k loads 5 x vectors and
 * 4 W vectors and issues 20 FMAs: the FMA units, not the loads, are the limit, and the
 * 20 independent accumulators cover the FMA latency. At the end of k the 4 accumulators
 * of an x row are reduced together into the 4 sums of its output segment (one __m128),
 * the bias is added, and the segment is stored (or added to y).
 *
 * Edges: the last k step loads with a lane mask; fewer than 5 rows use a smaller tile
 * (the same code inlined with a constant row count); fewer than 4 W rows repeat the last
 * valid row and store only the valid outputs. Every output is summed in the same order
 * whichever tile computes it.
 */
#include <immintrin.h>

#include "gemm.h"

#define MR 5                       /* rows of x per tile */
#define NR 4                       /* rows of W per tile */
#define SPREAD_MAX_K 1024          /* see gemm_block_avx512 */
#define PREFETCH_AHEAD 4

/* (sum of a0, sum of a1, sum of a2, sum of a3) */
static inline __m128 sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
#define FOLD(a) _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1))
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(FOLD(a0), FOLD(a1)), _mm256_hadd_ps(FOLD(a2), FOLD(a3)));
#undef FOLD
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

static inline __attribute__((always_inline)) void
tile(float *y, int ldy, const float *x, int ldx, const float *w0, const float *w1,
     const float *w2, const float *w3, int k, const float *bias, int n_valid, int accumulate,
     const float *prefetch, int prefetch_rows, int ldw, const int mr) {
    __m512 acc[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();

    int p = 0;
    for (; p + 16 <= k; p += 16) {
        if (prefetch) {
            _mm_prefetch((const char *)(prefetch + p), _MM_HINT_T1);
            if (prefetch_rows > 1)
#pragma GCC unroll 4
                for (int j = 1; j < NR; j++) _mm_prefetch((const char *)(prefetch + (size_t)j * ldw + p), _MM_HINT_T1);
        }
        __m512 xv[MR];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) xv[i] = _mm512_loadu_ps(x + (size_t)i * ldx + p);
        const __m512 wv[NR] = {_mm512_loadu_ps(w0 + p), _mm512_loadu_ps(w1 + p),
                               _mm512_loadu_ps(w2 + p), _mm512_loadu_ps(w3 + p)};
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++)
#pragma GCC unroll 8
            for (int i = 0; i < mr; i++) acc[i][j] = _mm512_fmadd_ps(xv[i], wv[j], acc[i][j]);
    }
    if (p < k) {
        const __mmask16 m = (__mmask16)((1u << (k - p)) - 1);
        __m512 xv[MR];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) xv[i] = _mm512_maskz_loadu_ps(m, x + (size_t)i * ldx + p);
        const __m512 wv[NR] = {_mm512_maskz_loadu_ps(m, w0 + p), _mm512_maskz_loadu_ps(m, w1 + p),
                               _mm512_maskz_loadu_ps(m, w2 + p), _mm512_maskz_loadu_ps(m, w3 + p)};
#pragma GCC unroll 4
        for (int j = 0; j < NR; j++)
#pragma GCC unroll 8
            for (int i = 0; i < mr; i++) acc[i][j] = _mm512_fmadd_ps(xv[i], wv[j], acc[i][j]);
    }

    const __mmask8 valid = (__mmask8)((1u << n_valid) - 1);
    const __m128 b = bias ? _mm_maskz_loadu_ps(valid, bias) : _mm_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *yr = y + (size_t)i * ldy;
        __m128 s = _mm_add_ps(sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), b);
        if (accumulate) s = _mm_add_ps(_mm_maskz_loadu_ps(valid, yr), s);
        _mm_mask_storeu_ps(yr, valid, s);
    }
}

void gemm_block_avx512(float *y, int ldy, const float *x, int ldx, const float *w, int ldw,
                       int m, int n, int k, const float *bias, int accumulate) {
    for (int j = 0; j < n; j += NR) {
        const int n_valid = n - j < NR ? n - j : NR;
        const float *w0 = w + (size_t)j * ldw;
        const float *w1 = w0 + (size_t)(n_valid > 1 ? 1 : 0) * ldw;
        const float *w2 = w0 + (size_t)(n_valid > 2 ? 2 : n_valid - 1) * ldw;
        const float *w3 = w0 + (size_t)(n_valid > 3 ? 3 : n_valid - 1) * ldw;
        const float *b = bias ? bias + j : NULL;
        /* W streams from memory once, and its first touch would stall: while this
         * group's tiles run, fetch a later group's 4 W rows into L2 (prefetcht1; into
         * L1 they evict the x rows in use, and queue behind each other). With at least 4
         * tiles a group, tile t < 4 fetches row t of the next group, spreading the
         * fetches over the group. With fewer (a short text: m = 7), a group is over
         * before a fetch returns, so the first tile fetches all 4 rows of the group
         * PREFETCH_AHEAD groups on: memory then streams while the FMAs run (m = 7,
         * k = 512: 38 -> 51 GFLOP/s). Long rows (k > SPREAD_MAX_K, fc2's chunks) fill
         * L1 with the x tile alone; they take the second scheme as well. */
        const int spread = m / MR >= NR && k <= SPREAD_MAX_K;
        const int ahead = spread ? 1 : PREFETCH_AHEAD;
        const float *next = j + (ahead + 1) * NR <= n ? w0 + (size_t)ahead * NR * ldw : NULL;
        float *yj = y + j;
        int i = 0;
        for (int t = 0; i + MR <= m; i += MR, t++) {
            const float *fetch = !next ? NULL : spread ? (t < NR ? next + (size_t)t * ldw : NULL)
                                                       : (t == 0 ? next : NULL);
            tile(yj + (size_t)i * ldy, ldy, x + (size_t)i * ldx, ldx, w0, w1, w2, w3, k, b, n_valid,
                 accumulate, fetch, spread ? 1 : NR, ldw, MR);
        }
        float *yi = yj + (size_t)i * ldy;
        const float *xi = x + (size_t)i * ldx;
        const float *fetch = i ? NULL : next;
        switch (m - i) {
        case 1: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, fetch, NR, ldw, 1); break;
        case 2: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, fetch, NR, ldw, 2); break;
        case 3: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, fetch, NR, ldw, 3); break;
        case 4: tile(yi, ldy, xi, ldx, w0, w1, w2, w3, k, b, n_valid, accumulate, fetch, NR, ldw, 4); break;
        default: break;
        }
    }
}
