/* bf16_avx2.c - the bf16 micro-kernel without AVX-512 BF16: the order of vdpbf16ps
 * (quant.h) with AVX2 FMAs, tiles of up to 4 rows x 16 features (one panel).
 *
 *   x:  the tile's rows rounded to bf16 (t->xb): per pair of k steps one 32-bit value
 *   W:  bf16 panels [k / 2][16][2]: per pair one 64-byte line, features 0-7 in its first
 *       32 bytes, 8-15 in the second, each lane a feature's (w[2q] low, w[2q + 1] high)
 *   y:  per row two accumulators of 8 floats
 *
 * A bf16 is the top half of an f32, so a lane's high half masked (AND 0xffff0000) is
 * w[2q + 1] as a float and its low half shifted up 16 bits is w[2q]; the same for each
 * row's broadcast pair of x. Per pair and row then two FMAs, the odd product first, as the
 * instruction does. Its denormal handling (subnormal inputs read as zero, results that are
 * subnormal after rounding flushed to zero) is exactly x86's MXCSR DAZ and FTZ modes, so
 * they are switched on for the pair loop and the caller's MXCSR is restored afterwards
 * (the bias and y are added before, in the ordinary mode, as in the scalar reference; x86
 * detects tininess after rounding, as the instruction's flush does: measured on Zen 4 and
 * checked by tests/test_quant.c's edge values).
 * Bit-identical to the scalar reference in quant.c (tests/test_quant.c).
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define BF16_MR 4

static inline __m256i lanes8(int n) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n < 0 ? 0 : n > 8 ? 8 : n), index);
}

/* The accumulators as operands of an empty volatile asm: computed before it, used after. */
static inline __attribute__((always_inline)) void fence(__m256 acc[][2], const int mr) {
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) __asm__ volatile("" : "+x"(acc[i][0]), "+x"(acc[i][1]));
}

static inline __attribute__((always_inline)) void bf16_tile(const gemm_tile *t, const int mr) {
    const __m256i lo = lanes8(t->n), hi = lanes8(t->n - 8);
    __m256 acc[BF16_MR][2];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        const float *y = t->y + (size_t)i * t->ldy;
        __m256 a0 = t->load_y ? _mm256_maskload_ps(y, lo) : _mm256_setzero_ps();
        __m256 a1 = t->load_y ? _mm256_maskload_ps(y + 8, hi) : _mm256_setzero_ps();
        if (t->bias) {
            const __m256 b0 = _mm256_maskload_ps(t->bias, lo), b1 = _mm256_maskload_ps(t->bias + 8, hi);
            a0 = t->load_y ? _mm256_add_ps(a0, b0) : b0;
            a1 = t->load_y ? _mm256_add_ps(a1, b1) : b1;
        }
        acc[i][0] = a0;
        acc[i][1] = a1;
    }
    /* The mode switch is ordered against the arithmetic: the accumulators pass through an
     * empty volatile asm after it (and before the switch back), so no FMA can be moved
     * across it and no bias addition into it. */
    const unsigned saved_csr = _mm_getcsr();
    fence(acc, mr);
    _mm_setcsr(saved_csr | _MM_FLUSH_ZERO_ON | 0x0040u /* DAZ */);
    fence(acc, mr);
    const __m256i top = _mm256_set1_epi32((int)0xffff0000u);
    const char *w = t->w;
    const uint16_t *xb = t->xb;
    for (int q = 0; q < t->k / 2; q++) {
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w + (size_t)q * 64));
        const __m256i l1 = _mm256_loadu_si256((const __m256i *)(w + (size_t)q * 64 + 32));
        const __m256 odd0 = _mm256_castsi256_ps(_mm256_and_si256(l0, top)),
                     odd1 = _mm256_castsi256_ps(_mm256_and_si256(l1, top));
        const __m256 even0 = _mm256_castsi256_ps(_mm256_slli_epi32(l0, 16)),
                     even1 = _mm256_castsi256_ps(_mm256_slli_epi32(l1, 16));
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) {
            /* the pair broadcast straight from memory (a load, no shuffle), then split */
            const __m256i pair = _mm256_castps_si256(_mm256_broadcast_ss((const float *)(xb + i * t->ldxb + 2 * (size_t)q)));
            const __m256 x_odd = _mm256_castsi256_ps(_mm256_and_si256(pair, top));
            const __m256 x_even = _mm256_castsi256_ps(_mm256_slli_epi32(pair, 16));
            acc[i][0] = _mm256_fmadd_ps(x_even, even0, _mm256_fmadd_ps(x_odd, odd0, acc[i][0]));
            acc[i][1] = _mm256_fmadd_ps(x_even, even1, _mm256_fmadd_ps(x_odd, odd1, acc[i][1]));
        }
    }
    fence(acc, mr);
    _mm_setcsr(saved_csr);
    fence(acc, mr);
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        float *y = t->y + (size_t)i * t->ldy;
        _mm256_maskstore_ps(y, lo, acc[i][0]);
        _mm256_maskstore_ps(y + 8, hi, acc[i][1]);
    }
}

void gemm_bf16_avx2_4x16(const gemm_tile *t) {
    switch (t->m) {
    case 1: bf16_tile(t, 1); break;
    case 2: bf16_tile(t, 2); break;
    case 3: bf16_tile(t, 3); break;
    case 4: bf16_tile(t, 4); break;
    default: break;
    }
}
