/* tile_avx512.h - the start and end of an AVX-512 micro-kernel's tile, shared by the
 * per-type kernels (quant_avx512.c, bf16_avx512.c): accumulators of 16 columns per panel,
 * masked to the n valid columns of y and bias (gemm.h: a kernel reads nothing past them).
 * Internal: include only from files compiled with the AVX-512 flags. */
#ifndef CLIP_TILE_AVX512_H
#define CLIP_TILE_AVX512_H

#include <immintrin.h>

#include "gemm.h"

/* The valid columns of panel j of a tile n columns wide. */
static inline __mmask16 panel_mask(int n, int j) {
    const int cols = n - 16 * j;
    return cols >= 16 ? (__mmask16)0xffff : cols <= 0 ? 0 : (__mmask16)((1u << cols) - 1);
}

/* Row i, panel j at the start: y (load_y) plus the bias, the bias, or zero. */
static inline __m512 start_acc(const gemm_tile *t, int i, int j) {
    const __mmask16 cols = panel_mask(t->n, j);
    __m512 acc = t->load_y ? _mm512_maskz_loadu_ps(cols, t->y + (size_t)i * t->ldy + 16 * j) : _mm512_setzero_ps();
    if (t->bias) {
        const __m512 b = _mm512_maskz_loadu_ps(cols, t->bias + 16 * j);
        acc = t->load_y ? _mm512_add_ps(acc, b) : b;
    }
    return acc;
}

static inline void store_acc(const gemm_tile *t, int i, int j, __m512 acc) {
    _mm512_mask_storeu_ps(t->y + (size_t)i * t->ldy + 16 * j, panel_mask(t->n, j), acc);
}

#endif
