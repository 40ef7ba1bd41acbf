/* quant_avx512.c - AVX-512 micro-kernels of the weight types beyond f32 (kernels/quant.h),
 * tiles of up to MR rows x 32 features (two panels). Each reproduces its scalar reference
 * in quant.c bit for bit: the same float operations per output in the same order.
 *
 *   f16 (HALF_MR x 32): per k step, each panel's 16 values converted to floats
 *     (vcvtph2ps), then one FMA per row and panel against the
 *     broadcast x value: the f32 8x32 kernel's shape with a conversion in front.
 *   q8_0 / q4_0 (AVX-512 VNNI, INT_MR x 32): per block of 32 k steps, 8 groups of 4; per
 *     group and panel one 64-byte line of weights (q4_0: half a line of nibbles, unpacked
 *     with AND / shift) and per row one vpdpbusd of 4 broadcast activation bytes against
 *     it. vpdpbusd multiplies unsigned by signed bytes, so the WEIGHTS enter unsigned:
 *     q8_0's as w + 128 (an XOR of the sign bit, once per line for all rows), q4_0's as
 *     the stored nibble w + 8; the activations stay signed, broadcast straight from
 *     memory. Each block's int32 sums start at -bias x (sum of the row's 32 x values,
 *     stored by the activation quantizer), which takes the bias back out: the sums are
 *     exact, as in the scalar reference. Then acc = fma((float)isum, dx * dw, acc).
 *
 * Why two panels and compile-time row counts: the accumulators only stay in registers
 * when the loops over rows and panels have constant bounds (a switch on m and on the
 * panel count instantiates each case), and two panels share each broadcast x (and, for
 * the int8 types, its XOR) between two FMAs / dot products.
 *
 * Why 8 rows for the int8 types: the 16 int32 block sums, the 2 weight lines and the
 * broadcast fill the registers, so the 16 float accumulators live on the stack; they
 * are touched once per block (load, fma, store: 16 of each per 128 vpdpbusd), which
 * costs less than what 8 rows save where the weights stream from memory: a short
 * text's 8 tokens are one tile that does all its work while each line passes by, where
 * 6-row tiles needed two passes, the first one waiting on memory (ViT-B/32 "a photo of
 * a dog.", 1 thread, Zen 4: 2.25-2.33 ms against 2.53-3.46, interleaved; images the same).
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"
#include "tile_avx512.h"

#define HALF_MR 8
#define INT_MR 8
#define MAX_NP 2              /* panels per tile */


/* ---- f16 panels: [k][16] 2-byte values (bf16 has its own kernel: bf16_avx512.c) ---------- */
static inline __m512 half_line(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

static inline __attribute__((always_inline)) void half_tile(const gemm_tile *t, const int mr, const int np) {
    __m512 acc[HALF_MR][MAX_NP];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++) acc[i][j] = start_acc(t, i, j);
    const uint16_t *w0 = t->w, *w1 = (const uint16_t *)((const char *)t->w + t->panel_bytes);
    const float *x = t->x;
    const size_t ldx = t->ldx;
    const char *next = t->next_w;       /* the next tile's panels: one 32-byte step a k */
    for (int p = 0; p < t->k; p++) {
        if (next && p % 2 == 0) {
            _mm_prefetch(next + (size_t)p * 32, _MM_HINT_T1);
            if (np > 1) _mm_prefetch(next + t->panel_bytes + (size_t)p * 32, _MM_HINT_T1);
        }
        __m512 wv[MAX_NP];
        wv[0] = half_line(w0 + (size_t)p * GEMM_PANEL);
        if (np > 1) wv[1] = half_line(w1 + (size_t)p * GEMM_PANEL);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_set1_ps(x[i * ldx + p]);
#pragma GCC unroll 2
            for (int j = 0; j < np; j++) acc[i][j] = _mm512_fmadd_ps(a, wv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++) store_acc(t, i, j, acc[i][j]);
}

#define HALF_CASE(mr) case mr: if (two) half_tile(t, mr, 2); else half_tile(t, mr, 1); break;
void gemm_f16_avx512_8x32(const gemm_tile *t) {
    const int two = t->n > 16;
    switch (t->m) {
    HALF_CASE(1) HALF_CASE(2) HALF_CASE(3) HALF_CASE(4) HALF_CASE(5) HALF_CASE(6) HALF_CASE(7) HALF_CASE(8)
    default: break;
    }
}

/* ---- q8_0 / q4_0 --------------------------------------------------------------------------- */
/* The 64-byte line of group g of a block as UNSIGNED bytes u = w + bias: q8_0 stores w in
 * -128..127, and XOR 0x80 gives w + 128; q4_0's nibbles already are w + 8. */
static inline __m512i q8_line_u(const q8_0_block *b, int g) {
    return _mm512_xor_si512(_mm512_loadu_si512(b->q[g]), _mm512_set1_epi8((char)0x80));
}
static inline __m512i q4_line_u(const q4_0_block *b, int g) {
    const __m512i bytes = _mm512_loadu_si512(b->q[g / 2]);
    return g % 2 ? _mm512_and_si512(_mm512_srli_epi16(bytes, 4), _mm512_set1_epi8(15))
                 : _mm512_and_si512(bytes, _mm512_set1_epi8(15));
}

#define VNNI __attribute__((target("avx512vnni")))

/* Per block: isum = -bias x s + the 8 groups' vpdpbusd(u, x) = -bias x s + sum((w + bias) x)
 * = sum(w x), the exact block sum of quant.h (s = the sum of the block's x values, stored by
 * the activation quantizer; every partial sum stays within int32: |.| < 2^21). */
static inline VNNI __attribute__((always_inline)) void int_tile(const gemm_tile *t, const int mr, const int np,
                                                                const int is_q4) {
    __m512 acc[INT_MR][MAX_NP];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++) acc[i][j] = start_acc(t, i, j);
    const int n_blocks = t->k / QK;
    const size_t block_bytes = is_q4 ? sizeof(q4_0_block) : sizeof(q8_0_block);
    const int bias = is_q4 ? 8 : 128;   /* what the unsigned weights carry: q4_0 w + 8, q8_0 w + 128 */
    const int *xs = t->xs;
    const char *next = t->next_w;
    for (int b = 0; b < n_blocks; b++) {
        const char *blk[MAX_NP] = {(const char *)t->w + (size_t)b * block_bytes,
                                   (const char *)t->w + t->panel_bytes + (size_t)b * block_bytes};
        if (next)
            for (int j = 0; j < np; j++)
                for (size_t o = 0; o < block_bytes; o += 64)
                    _mm_prefetch(next + j * t->panel_bytes + (size_t)b * block_bytes + o, _MM_HINT_T1);
        /* Starting at -bias x s rather than 0 saves a subtraction per sum at the end. */
        __m512i isum[INT_MR][MAX_NP];
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const __m512i corr = _mm512_set1_epi32(-bias * xs[(size_t)i * t->ldxd + b]);
#pragma GCC unroll 2
            for (int j = 0; j < np; j++) isum[i][j] = corr;
        }
        const int8_t *xb = t->xq + (size_t)b * QK;
#pragma GCC unroll 8
        for (int g = 0; g < QK / 4; g++) {
            __m512i w[MAX_NP];
#pragma GCC unroll 2
            for (int j = 0; j < np; j++)
                w[j] = is_q4 ? q4_line_u((const q4_0_block *)blk[j], g) : q8_line_u((const q8_0_block *)blk[j], g);
#pragma GCC unroll 16
            for (int i = 0; i < mr; i++) {
                int32_t four;
                memcpy(&four, xb + (size_t)i * t->ldxq + 4 * g, 4);
                const __m512i x4 = _mm512_set1_epi32(four);                   /* 4 signed x bytes */
#pragma GCC unroll 2
                for (int j = 0; j < np; j++) isum[i][j] = _mm512_dpbusd_epi32(isum[i][j], w[j], x4);
            }
        }
        __m512 dw[MAX_NP];
#pragma GCC unroll 2
        for (int j = 0; j < np; j++) dw[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk[j]));  /* d[16] */
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const __m512 dx = _mm512_set1_ps(t->xd[(size_t)i * t->ldxd + b]);
#pragma GCC unroll 2
            for (int j = 0; j < np; j++)
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][j]), _mm512_mul_ps(dx, dw[j]), acc[i][j]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < np; j++) store_acc(t, i, j, acc[i][j]);
}

#define INT_CASE(mr) case mr: if (two) int_tile(t, mr, 2, is_q4); else int_tile(t, mr, 1, is_q4); break;
static inline VNNI __attribute__((always_inline)) void int_dispatch(const gemm_tile *t, const int is_q4) {
    const int two = t->n > 16;
    switch (t->m) {
    INT_CASE(1) INT_CASE(2) INT_CASE(3) INT_CASE(4) INT_CASE(5) INT_CASE(6)
#if INT_MR > 6
    INT_CASE(7) INT_CASE(8)
#endif
    default: break;
    }
}

VNNI void gemm_q8_0_avx512vnni_8x32(const gemm_tile *t) { int_dispatch(t, 0); }
VNNI void gemm_q4_0_avx512vnni_8x32(const gemm_tile *t) { int_dispatch(t, 1); }

/* ---- Activation rows quantized per block of 32 (quant.h, q8_act_quantize) -----------------
 * The same elementwise operations as the scalar version, so the same bytes: max |x| (max_ps
 * with the new value first skips a NaN as fmaxf does), one division, x * (127 / max) rounded
 * to nearest even by vcvtps2dq (the default rounding mode, as nearbyintf), max / 127. */
void q8_act_quantize_avx512(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k) {
    const __m512 no_sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int r = row0; r < row0 + n_rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        for (int b = 0; b < a->n_blocks; b++) {
            const int p0 = b * QK, left = k - p0;
            const __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
            const __mmask16 m1 = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            const __m512 v0 = _mm512_maskz_loadu_ps(m0, xr + p0), v1 = _mm512_maskz_loadu_ps(m1, xr + p0 + 16);
            __m512 mx = _mm512_max_ps(_mm512_and_ps(v0, no_sign), _mm512_setzero_ps());
            mx = _mm512_max_ps(_mm512_and_ps(v1, no_sign), mx);
            const float amax = _mm512_reduce_max_ps(mx);
            const __m512 inv = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
            int8_t *q = a->q + ((size_t)r * a->n_blocks + b) * QK;
            const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)), i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, inv));
            _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(i0));        /* the low bytes */
            _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(i1));
            a->d[(size_t)r * a->n_blocks + b] = amax / 127.0f;
            /* the sum of the stored bytes: each low byte sign-extended (shift up, shift back) */
            a->s[(size_t)r * a->n_blocks + b] = _mm512_reduce_add_epi32(
                _mm512_add_epi32(_mm512_srai_epi32(_mm512_slli_epi32(i0, 24), 24),
                                 _mm512_srai_epi32(_mm512_slli_epi32(i1, 24), 24)));
        }
    }
}
