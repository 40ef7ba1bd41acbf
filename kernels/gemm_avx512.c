/* gemm_avx512.c - the NT register-tile kernel of gemm.h with AVX-512 (16 floats a vector).
 *
 * Tile: 5 rows of x by 4 rows of W, 20 zmm accumulators, each the 16-lane partial dot
 * product of one (x row, W row) pair. One step over 16 values of k loads 5 x vectors and
 * 4 W vectors and issues 20 FMAs: the FMA units, not the loads, are the limit, and the
 * 20 independent accumulators cover the FMA latency. At the end of k the accumulators are
 * reduced to their sums, the 16 of the first four x rows together (sum16: 45 instructions,
 * against 76 for four rows one at a time), the fifth row's 4 alone in the same order
 * (sum_row); then the bias is added and each row's segment stored (or added to y). The
 * reduction is 5-10% of a tile's instructions at k = 768, so it is worth the shuffles.
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

/* Accumulators a0..a3 of one x row -> per 128-bit lane, a partial sum of each of the four
 * (lane l of the result holds 4 of a_c's 16 lanes summed, for c = 0..3). */
static inline __m512 row_partials(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    /* per 128-bit lane: [a0[0]+a0[2], a1[0]+a1[2], a0[1]+a0[3], a1[1]+a1[3]], same for a2, a3 */
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))));
}

/* (l0 + l1, l2 + l3) of p's and q's 128-bit lanes: [p01, p23, q01, q23] */
static inline __m512 add_lane_pairs(__m512 p, __m512 q) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(p, q, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* The 16 sums of acc[r][c] (r, c < 4) in one vector, row r's four in 128-bit lane r. */
static inline __m512 sum16(__m512 acc[][NR]) {
    __m512 p[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) p[r] = row_partials(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
    return add_lane_pairs(add_lane_pairs(p[0], p[1]), add_lane_pairs(p[2], p[3]));
}

/* The 4 sums of one row, added in exactly sum16's order. */
static inline __m128 sum_row(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    const __m512 p = row_partials(a0, a1, a2, a3), half = add_lane_pairs(p, p);
    return _mm_add_ps(_mm512_castps512_ps128(half), _mm512_extractf32x4_ps(half, 1));
}

static inline __attribute__((always_inline)) void
store_row(float *yr, __m128 s, __m128 b, __mmask8 valid, int accumulate) {
    s = _mm_add_ps(s, b);
    if (accumulate) s = _mm_add_ps(_mm_maskz_loadu_ps(valid, yr), s);
    _mm_mask_storeu_ps(yr, valid, s);
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
    if (mr >= 4) {
        const __m512 sums = sum16(acc);
        store_row(y, _mm512_castps512_ps128(sums), b, valid, accumulate);
        store_row(y + (size_t)ldy, _mm512_extractf32x4_ps(sums, 1), b, valid, accumulate);
        store_row(y + 2 * (size_t)ldy, _mm512_extractf32x4_ps(sums, 2), b, valid, accumulate);
        store_row(y + 3 * (size_t)ldy, _mm512_extractf32x4_ps(sums, 3), b, valid, accumulate);
    }
#pragma GCC unroll 8
    for (int i = mr >= 4 ? 4 : 0; i < mr; i++)
        store_row(y + (size_t)i * ldy, sum_row(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), b, valid,
                  accumulate);
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
