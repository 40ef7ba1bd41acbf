/* bf16_avx512.c - the bf16 micro-kernel on AVX-512 BF16: vdpbf16ps, two multiply-adds per
 * 32-bit lane, tiles of up to BF16_MR rows x 32 features (two panels).
 *
 *   x:  the tile's rows already rounded to bf16 (t->xb, quant.h bf16_round_rows): per row
 *       and pair of k steps one 32-bit value (x[2q] low, x[2q + 1] high)
 *   W:  bf16 panels [k / 2][16][2]: per pair of k steps one 64-byte line = 16 lanes, each a
 *       feature's (w[2q], w[2q + 1])
 *   y:  per row and panel one accumulator of 16 floats
 *
 * Per pair: each panel's line is loaded once, each row's pair broadcast to all 16 lanes,
 * and one vdpbf16ps per row and panel adds x[2q + 1] w[2q + 1] and then x[2q] w[2q] to its
 * lanes, with the roundings, denormal handling and order that quant.h defines (and the
 * scalar reference in quant.c reproduces): bit-identical.
 *
 * Why 10 x 32: 20 accumulators + 2 weight lines + broadcasts fit the 32 zmm registers; a
 * ViT-B/32 image has 50 token rows = 5 tiles of 10, each panel line is reused 10 times.
 * Zen 4 runs a 512-bit vdpbf16ps as two 256-bit halves at one per cycle (as a 512-bit FMA),
 * i.e. 32 multiply-adds a cycle against the FMA's 16. 12 x 32, 13 x 32 and 14 x 32 were
 * measured too (ViT-B/32 image 42-46 ms for all four, within the shared machine's noise);
 * gemm_tune.c has the reasoning for Zen 5, bench/README.md the numbers.
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"
#include "tile_avx512.h"

#define BF16_MR 10
#define MAX_NP 2              /* panels per tile */

#define BF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

/* start_acc (tile_avx512.h): vdpbf16ps treats a subnormal start as zero itself (DAZ), as
 * the order of quant.h says. */
static inline BF16 __attribute__((always_inline)) void bf16_tile(const gemm_tile *t, const int mr, const int np) {
    __m512 acc[BF16_MR][MAX_NP];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++) acc[i][j] = start_acc(t, i, j);
    const char *w0 = t->w, *w1 = (const char *)t->w + t->panel_bytes;
    const uint16_t *xb = t->xb;
    const size_t ldxb = t->ldxb;
    const char *next = t->next_w;       /* the next tile's panels: one 64-byte line a pair */
    for (int q = 0; q < t->k / 2; q++) {
        if (next) {
            _mm_prefetch(next + (size_t)q * 64, _MM_HINT_T1);
            if (np > 1) _mm_prefetch(next + t->panel_bytes + (size_t)q * 64, _MM_HINT_T1);
        }
        __m512bh wv[MAX_NP];
        wv[0] = (__m512bh)_mm512_loadu_si512(w0 + (size_t)q * 64);
        if (np > 1) wv[1] = (__m512bh)_mm512_loadu_si512(w1 + (size_t)q * 64);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            uint32_t pair;
            memcpy(&pair, xb + i * ldxb + 2 * (size_t)q, 4);
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
#pragma GCC unroll 2
            for (int j = 0; j < np; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, wv[j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++)
            store_acc(t, i, j, acc[i][j]);
}

#define BF16_CASE(mr) case mr: if (two) bf16_tile(t, mr, 2); else bf16_tile(t, mr, 1); break;
BF16 void gemm_bf16_avx512bf16_10x32(const gemm_tile *t) {
    const int two = t->n > 16;
    switch (t->m) {
    BF16_CASE(1) BF16_CASE(2) BF16_CASE(3) BF16_CASE(4) BF16_CASE(5) BF16_CASE(6) BF16_CASE(7) BF16_CASE(8)
    BF16_CASE(9) BF16_CASE(10)
    default: break;
    }
}

/* ---- Activation rows rounded to bf16 (quant.h bf16_round_rows) ------------------------------
 * The scalar f32_to_bf16_daz on 16 lanes with integer operations (plain AVX-512F, so any
 * AVX-512 CPU gets it): a subnormal keeps only its sign; a NaN keeps its top half with the
 * quiet bit set; otherwise x + 0x7fff + (bit 16 of x), top half: round to nearest even (a
 * carry into the exponent is the correct rounding up, to infinity at the top). */
static inline __m256i round16(__m512i x) {
    const __m512i exp_mask = _mm512_set1_epi32(0x7f800000), abs_mask = _mm512_set1_epi32(0x7fffffff);
    const __mmask16 subnormal = _mm512_testn_epi32_mask(x, exp_mask);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, abs_mask), exp_mask);
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                      _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1))));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(x, _mm512_set1_epi32(0x400000)));
    r = _mm512_mask_mov_epi32(r, subnormal, _mm512_and_si512(x, _mm512_set1_epi32((int)0x80000000u)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

void bf16_round_rows_avx512(uint16_t *xb, const float *x, size_t ldx, int row0, int n_rows, int k) {
    const size_t ldxb = bf16_act_stride(k);
    for (int r = row0; r < row0 + n_rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        uint16_t *out = xb + (size_t)r * ldxb;
        for (int p = 0; p < k; p += 16) {
            const int left = k - p;
            const __mmask16 m = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
            _mm256_mask_storeu_epi16(out + p, m, round16(_mm512_maskz_loadu_epi32(m, xr + p)));
        }
        if (k % 2) out[k] = 0;
    }
}
