/* gemm_avx2.c - the f32 micro-kernel of gemm.h with AVX2 + FMA (8 floats a vector).
 *
 * Tile: 6 rows of x by one panel (16 columns = 2 ymm), 12 accumulators, plus the two
 * panel vectors and one broadcast: 15 of the 16 ymm registers. One k step: 2 vector
 * loads + 6 broadcasts for 12 FMAs, the classic shape for two FMA pipes (Haswell to
 * Alder Lake, Zen 1-3). Each output is one FMA chain in k order, bit-identical to the
 * scalar reference. Fewer rows run a constant-row copy; fewer columns mask y and bias
 * (the zero-padded panel needs no mask).
 */
#include <immintrin.h>

#include "gemm.h"

#define MR 6

/* Lanes [0, n) set, n clamped to 0..8, for maskload/maskstore. */
static inline __m256i lanes8(int n) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n < 0 ? 0 : n > 8 ? 8 : n), index);
}

static inline __attribute__((always_inline)) void tile(const gemm_tile *t, const int mr) {
    const float *w = t->w, *x = t->x;
    float *y = t->y;
    const size_t ldx = t->ldx, ldy = t->ldy;
    const int full = t->n >= 16;
    const __m256i lo = lanes8(t->n), hi = lanes8(t->n - 8);
    __m256 acc[MR][2];
    const __m256 b0 = t->bias ? (full ? _mm256_loadu_ps(t->bias) : _mm256_maskload_ps(t->bias, lo)) : _mm256_setzero_ps();
    const __m256 b1 = t->bias ? (full ? _mm256_loadu_ps(t->bias + 8) : _mm256_maskload_ps(t->bias + 8, hi)) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        if (t->load_y) {
            float *yi = y + i * ldy;
            acc[i][0] = full ? _mm256_loadu_ps(yi) : _mm256_maskload_ps(yi, lo);
            acc[i][1] = full ? _mm256_loadu_ps(yi + 8) : _mm256_maskload_ps(yi + 8, hi);
            if (t->bias) {
                acc[i][0] = _mm256_add_ps(acc[i][0], b0);
                acc[i][1] = _mm256_add_ps(acc[i][1], b1);
            }
        } else {
            acc[i][0] = b0;
            acc[i][1] = b1;
        }
    }
    const int k = t->k;
    const char *next = t->next_w;     /* the next tile's panel, one line per k step */
    for (int p = 0; p < k; p++) {
        if (next) _mm_prefetch(next + p * 64, _MM_HINT_T1);
        const __m256 v0 = _mm256_load_ps(w + p * 16), v1 = _mm256_load_ps(w + p * 16 + 8);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m256 a = _mm256_broadcast_ss(x + i * ldx + p);
            acc[i][0] = _mm256_fmadd_ps(a, v0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, v1, acc[i][1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *yi = y + i * ldy;
        if (full) {
            _mm256_storeu_ps(yi, acc[i][0]);
            _mm256_storeu_ps(yi + 8, acc[i][1]);
        } else {
            _mm256_maskstore_ps(yi, lo, acc[i][0]);
            _mm256_maskstore_ps(yi + 8, hi, acc[i][1]);
        }
    }
}

void gemm_f32_avx2_6x16(const gemm_tile *t) {
    switch (t->m) {
    case 1: tile(t, 1); break;
    case 2: tile(t, 2); break;
    case 3: tile(t, 3); break;
    case 4: tile(t, 4); break;
    case 5: tile(t, 5); break;
    case 6: tile(t, 6); break;
    default: break;
    }
}
