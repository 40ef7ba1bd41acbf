/* gemm_avx512.c - f32 micro-kernels of gemm.h with AVX-512 (16 floats a vector = 1 panel).
 *
 * A tile is MR rows of x by NP panels (NP x 16 columns of y), MR x NP zmm accumulators,
 * one output per lane. One k step loads the NP panel vectors (a 64-byte line each, the
 * packed layout of gemm.h), broadcasts each of the MR x values and issues MR x NP FMAs:
 *     12x32 (NP 2): 24 accumulators + 2 panel vectors + 1 broadcast = 27 of 32 registers;
 *                   14 loads (2 vector, 12 broadcast) per 24 FMAs;
 *     8x32:         16 accumulators, for CPUs with two FMA pipes that want fewer rows;
 *     14x16 (NP 1): 14 accumulators, 15 loads per 14 FMAs, one panel stream.
 * Which one runs is decided per CPU in gemm_tune.c. No horizontal reduction: the
 * accumulators are stored (masked at the column edge) as they are, and each output's
 * value is one fused multiply-add chain in k order, bit-identical to the scalar reference.
 *
 * Edges: fewer rows than MR run the same code inlined with a smaller constant row count;
 * fewer columns than NR mask the loads of y and bias and the stores (the packed panel
 * is zero-padded, so its loads need no mask).
 */
#include <immintrin.h>

#include "gemm.h"

static inline __mmask16 cols_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

static inline __attribute__((always_inline)) void tile(const gemm_tile *t, const int mr, const int np) {
    const float *w0 = t->w;
    /* a second panel only if the tile has columns there; else reuse the first (no read
     * past the weight's last panel) and store nothing for it */
    const float *w1 = np > 1 && t->n > 16 ? (const float *)((const char *)t->w + t->panel_bytes) : w0;
    const __mmask16 m0 = cols_mask(t->n), m1 = np > 1 && t->n > 16 ? cols_mask(t->n - 16) : 0;
    const size_t ldx = t->ldx, ldy = t->ldy;
    const float *x = t->x;
    float *y = t->y;

    __m512 acc[14][2];
    const __m512 b0 = t->bias ? _mm512_maskz_loadu_ps(m0, t->bias) : _mm512_setzero_ps();
    const __m512 b1 = np > 1 && t->bias ? _mm512_maskz_loadu_ps(m1, t->bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        if (t->load_y) {
            acc[i][0] = _mm512_maskz_loadu_ps(m0, y + i * ldy);
            if (t->bias) acc[i][0] = _mm512_add_ps(acc[i][0], b0);
            if (np > 1) {
                acc[i][1] = _mm512_maskz_loadu_ps(m1, y + i * ldy + 16);
                if (t->bias) acc[i][1] = _mm512_add_ps(acc[i][1], b1);
            }
        } else {
            acc[i][0] = b0;
            if (np > 1) acc[i][1] = b1;
        }
    }

    const int k = t->k;
    if (t->next_w) {
        /* stream the next tile's panels into L2 at the pace this tile consumes its own */
        const char *n0 = t->next_w, *n1 = n0 + (np > 1 ? t->panel_bytes : 0);
        for (int p = 0; p < k; p++) {
            _mm_prefetch(n0 + p * 64, _MM_HINT_T1);
            if (np > 1) _mm_prefetch(n1 + p * 64, _MM_HINT_T1);
            const __m512 v0 = _mm512_load_ps(w0 + p * 16);
            const __m512 v1 = np > 1 ? _mm512_load_ps(w1 + p * 16) : v0;
#pragma GCC unroll 16
            for (int i = 0; i < mr; i++) {
                const __m512 a = _mm512_set1_ps(x[i * ldx + p]);
                acc[i][0] = _mm512_fmadd_ps(a, v0, acc[i][0]);
                if (np > 1) acc[i][1] = _mm512_fmadd_ps(a, v1, acc[i][1]);
            }
        }
    } else {
        for (int p = 0; p < k; p++) {
            const __m512 v0 = _mm512_load_ps(w0 + p * 16);
            const __m512 v1 = np > 1 ? _mm512_load_ps(w1 + p * 16) : v0;
#pragma GCC unroll 16
            for (int i = 0; i < mr; i++) {
                const __m512 a = _mm512_set1_ps(x[i * ldx + p]);
                acc[i][0] = _mm512_fmadd_ps(a, v0, acc[i][0]);
                if (np > 1) acc[i][1] = _mm512_fmadd_ps(a, v1, acc[i][1]);
            }
        }
    }

#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        _mm512_mask_storeu_ps(y + i * ldy, m0, acc[i][0]);
        if (np > 1) _mm512_mask_storeu_ps(y + i * ldy + 16, m1, acc[i][1]);
    }
}

/* One entry point per tile shape: the row count picks a constant-mr copy of tile(). */
#define CASE(r, np) case r: tile(t, r, np); break;
void gemm_f32_avx512_12x32(const gemm_tile *t) {
    switch (t->m) {
    CASE(1, 2) CASE(2, 2) CASE(3, 2) CASE(4, 2) CASE(5, 2) CASE(6, 2)
    CASE(7, 2) CASE(8, 2) CASE(9, 2) CASE(10, 2) CASE(11, 2) CASE(12, 2)
    default: break;
    }
}

void gemm_f32_avx512_8x32(const gemm_tile *t) {
    switch (t->m) {
    CASE(1, 2) CASE(2, 2) CASE(3, 2) CASE(4, 2) CASE(5, 2) CASE(6, 2) CASE(7, 2) CASE(8, 2)
    default: break;
    }
}

void gemm_f32_avx512_14x16(const gemm_tile *t) {
    switch (t->m) {
    CASE(1, 1) CASE(2, 1) CASE(3, 1) CASE(4, 1) CASE(5, 1) CASE(6, 1) CASE(7, 1)
    CASE(8, 1) CASE(9, 1) CASE(10, 1) CASE(11, 1) CASE(12, 1) CASE(13, 1) CASE(14, 1)
    default: break;
    }
}
