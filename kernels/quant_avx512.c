/* quant_avx512.c - AVX-512 micro-kernels of the weight types beyond f32 (kernels/quant.h),
 * tiles of up to 8 rows x 16 features (one panel). Each reproduces its scalar reference in
 * quant.c bit for bit: the same float operations per output in the same order.
 *
 *   f16 / bf16: per k step, the panel's 16 values converted to floats (vcvtph2ps, or a
 *     16-bit shift for bf16), then one FMA per row against the broadcast x value.
 *   q8_0 / q4_0 (AVX-512 VNNI): per block of 32 k steps, 8 groups of 4; per group one
 *     64-byte line of weights (q4_0: half a line of nibbles, unpacked with AND / shift) and
 *     per row one vpdpbusd of 4 broadcast activation bytes against it. vpdpbusd multiplies
 *     unsigned by signed bytes, so the activations enter as x + 128 (an XOR of the sign
 *     bit) and 128 x (sum of the block's weights), one more vpdpbusd per group for all rows,
 *     is subtracted: the int32 block sums are exact, as in the scalar reference. Then
 *     acc = fma((float)isum, dx * dw, acc) per block.
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define MR 8

static __m512 start_row(const gemm_tile *t, int i) {
    const __mmask16 cols = (__mmask16)((1u << t->n) - 1);
    __m512 acc = t->load_y ? _mm512_maskz_loadu_ps(cols, t->y + (size_t)i * t->ldy) : _mm512_setzero_ps();
    if (t->bias) {
        const __m512 b = _mm512_maskz_loadu_ps(cols, t->bias);
        acc = t->load_y ? _mm512_add_ps(acc, b) : b;
    }
    return acc;
}

static void store_rows(const gemm_tile *t, const __m512 *acc) {
    const __mmask16 cols = (__mmask16)((1u << t->n) - 1);
    for (int i = 0; i < t->m; i++) _mm512_mask_storeu_ps(t->y + (size_t)i * t->ldy, cols, acc[i]);
}

/* f16 and bf16 panels: [k][16] 2-byte values. One panel per call (n <= 16). */
static inline __m512 half_line(const uint16_t *p, int is_f16) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return is_f16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static void half_tile(const gemm_tile *t, int is_f16) {
    __m512 acc[MR];
    for (int i = 0; i < t->m; i++) acc[i] = start_row(t, i);
    const uint16_t *w = t->w;
    for (int p = 0; p < t->k; p++) {
        const __m512 wv = half_line(w + (size_t)p * GEMM_PANEL, is_f16);
        for (int i = 0; i < t->m; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(t->x[(size_t)i * t->ldx + p]), wv, acc[i]);
    }
    store_rows(t, acc);
}

/* The driver hands a tile of up to NR = 16 columns: one panel. */
void gemm_f16_avx512_8x16(const gemm_tile *t) { half_tile(t, 1); }
void gemm_bf16_avx512_8x16(const gemm_tile *t) { half_tile(t, 0); }

/* The 64-byte int8 line of group g of a block (q8_0: stored; q4_0: unpacked nibbles). */
static inline __m512i q8_line(const q8_0_block *b, int g) { return _mm512_loadu_si512(b->q[g]); }
static inline __m512i q4_line(const q4_0_block *b, int g) {
    const __m512i bytes = _mm512_loadu_si512(b->q[g / 2]);
    const __m512i nib = g % 2 ? _mm512_and_si512(_mm512_srli_epi16(bytes, 4), _mm512_set1_epi8(15))
                              : _mm512_and_si512(bytes, _mm512_set1_epi8(15));
    return _mm512_sub_epi8(nib, _mm512_set1_epi8(8));
}

#define VNNI __attribute__((target("avx512vnni")))

static inline VNNI void int_tile(const gemm_tile *t, int is_q4) __attribute__((always_inline));
static inline VNNI void int_tile(const gemm_tile *t, int is_q4) {
    __m512 acc[MR];
    for (int i = 0; i < t->m; i++) acc[i] = start_row(t, i);
    const int n_blocks = t->k / QK;
    const __m512i bias128 = _mm512_set1_epi8((char)0x80), zero = _mm512_setzero_si512();
    for (int b = 0; b < n_blocks; b++) {
        const void *blk = (const char *)t->w + (size_t)b * (is_q4 ? sizeof(q4_0_block) : sizeof(q8_0_block));
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));   /* d[16] first */
        __m512i isum[MR], corr = zero;
        for (int i = 0; i < t->m; i++) isum[i] = zero;
        for (int g = 0; g < QK / 4; g++) {
            const __m512i w = is_q4 ? q4_line(blk, g) : q8_line(blk, g);
            corr = _mm512_dpbusd_epi32(corr, bias128, w);                  /* 128 x sum(w) */
            for (int i = 0; i < t->m; i++) {
                int32_t four;
                memcpy(&four, t->xq + (size_t)i * t->ldxq + b * QK + 4 * g, 4);
                const __m512i xu = _mm512_xor_si512(_mm512_set1_epi32(four), bias128);   /* x + 128 */
                isum[i] = _mm512_dpbusd_epi32(isum[i], xu, w);
            }
        }
        for (int i = 0; i < t->m; i++) {
            const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(t->xd[(size_t)i * t->ldxd + b]), dw);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(isum[i], corr)), scale, acc[i]);
        }
    }
    store_rows(t, acc);
}

VNNI void gemm_q8_0_avx512vnni_8x16(const gemm_tile *t) { int_tile(t, 0); }
VNNI void gemm_q4_0_avx512vnni_8x16(const gemm_tile *t) { int_tile(t, 1); }
