/* quant_avx2.c - AVX2 (+ FMA, F16C) micro-kernels of the weight types beyond f32
 * (kernels/quant.h), tiles of up to MR rows x 16 features (one panel = two ymm of 8
 * features). Each reproduces its scalar reference in quant.c bit for bit: the same float
 * operations per output in the same order.
 *
 *   f16 (6 x 16): per k step, the panel's 16 values converted to floats (vcvtph2ps),
 *     then one FMA per row and half-panel against
 *     the broadcast x value: the f32 kernel's 12 accumulators with a conversion in front.
 *   q8_0 / q4_0 (4 x 16): per block of 32 k steps, 8 groups of 4; the group's 64-byte line
 *     (features 0-7, 8-15; q4_0: nibbles unpacked with AND / shift, minus 8) against 4
 *     broadcast activation bytes per row. Without VNNI the int8 x int8 dot product is
 *     vpmaddubsw (unsigned x signed bytes -> saturating int16 pair sums) on |w| and
 *     sign(x, w) = x * sgn(w): the products are unchanged, and since the activations are
 *     quantized to |x| <= 127 and |w| <= 128 (even a -128 from a file: vpabsb gives 0x80 =
 *     128 unsigned), a pair sum is at most 2 x 128 x 127 = 32512 < 32767, no saturation.
 *     vpmaddwd with ones then sums the pairs to int32, and the group sums add in int32:
 *     the block sums are exact, as in the scalar reference. Then
 *     acc = fma((float)isum, dx * dw, acc) per block.
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"

/* Lanes [0, n) set, n clamped to 0..8, for maskload/maskstore. */
static inline __m256i lanes8(int n) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n < 0 ? 0 : n > 8 ? 8 : n), index);
}

/* Row i's two accumulators at the start: y (load_y), plus the bias; masked to n columns. */
static inline void start_row(const gemm_tile *t, int i, __m256i lo, __m256i hi, __m256 *a0, __m256 *a1) {
    __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
    if (t->load_y) {
        const float *y = t->y + (size_t)i * t->ldy;
        v0 = _mm256_maskload_ps(y, lo);
        v1 = _mm256_maskload_ps(y + 8, hi);
    }
    if (t->bias) {
        const __m256 b0 = _mm256_maskload_ps(t->bias, lo), b1 = _mm256_maskload_ps(t->bias + 8, hi);
        v0 = t->load_y ? _mm256_add_ps(v0, b0) : b0;
        v1 = t->load_y ? _mm256_add_ps(v1, b1) : b1;
    }
    *a0 = v0;
    *a1 = v1;
}

static inline void store_row(const gemm_tile *t, int i, __m256i lo, __m256i hi, __m256 a0, __m256 a1) {
    float *y = t->y + (size_t)i * t->ldy;
    _mm256_maskstore_ps(y, lo, a0);
    _mm256_maskstore_ps(y + 8, hi, a1);
}

/* ---- f16: [k][16] 2-byte values (bf16 has its own kernel: bf16_avx2.c) ------------------------ */
#define HALF_MR 6

static inline __m256 half8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* mr a compile-time constant (the switch below), so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void half_tile(const gemm_tile *t, const int mr) {
    const __m256i lo = lanes8(t->n), hi = lanes8(t->n - 8);
    __m256 acc[HALF_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) start_row(t, i, lo, hi, &acc[i][0], &acc[i][1]);
    const uint16_t *w = t->w;
    const float *x = t->x;
    const size_t ldx = t->ldx;
    for (int p = 0; p < t->k; p++) {
        const __m256 v0 = half8(w + (size_t)p * GEMM_PANEL), v1 = half8(w + (size_t)p * GEMM_PANEL + 8);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m256 a = _mm256_broadcast_ss(x + i * ldx + p);
            acc[i][0] = _mm256_fmadd_ps(a, v0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, v1, acc[i][1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) store_row(t, i, lo, hi, acc[i][0], acc[i][1]);
}

void gemm_f16_avx2_6x16(const gemm_tile *t) {
    switch (t->m) {
    case 1: half_tile(t, 1); break;
    case 2: half_tile(t, 2); break;
    case 3: half_tile(t, 3); break;
    case 4: half_tile(t, 4); break;
    case 5: half_tile(t, 5); break;
    case 6: half_tile(t, 6); break;
    default: break;
    }
}


/* ---- q8_0 / q4_0 ---------------------------------------------------------------------------- */
#define INT_MR 4

/* Group g's weights of a block as int8, features 0-7 in *w0 and 8-15 in *w1. */
static inline void q8_group(const q8_0_block *b, int g, __m256i *w0, __m256i *w1) {
    *w0 = _mm256_loadu_si256((const __m256i *)b->q[g]);
    *w1 = _mm256_loadu_si256((const __m256i *)b->q[g] + 1);
}
static inline void q4_group(const q4_0_block *b, int g, __m256i *w0, __m256i *w1) {
    const __m256i b0 = _mm256_loadu_si256((const __m256i *)b->q[g / 2]);
    const __m256i b1 = _mm256_loadu_si256((const __m256i *)b->q[g / 2] + 1);
    const __m256i low4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    if (g % 2) {
        *w0 = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(b0, 4), low4), eight);
        *w1 = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(b1, 4), low4), eight);
    } else {
        *w0 = _mm256_sub_epi8(_mm256_and_si256(b0, low4), eight);
        *w1 = _mm256_sub_epi8(_mm256_and_si256(b1, low4), eight);
    }
}

/* Exact int32 sums of 4 products per feature: |w| (unsigned) x sign(x, w). */
static inline __m256i dot4(__m256i wabs, __m256i w, __m256i x4, __m256i ones16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(x4, w)), ones16);
}

static inline __attribute__((always_inline)) void int_tile(const gemm_tile *t, const int mr, const int is_q4) {
    const __m256i lo = lanes8(t->n), hi = lanes8(t->n - 8), ones16 = _mm256_set1_epi16(1);
    __m256 acc[INT_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) start_row(t, i, lo, hi, &acc[i][0], &acc[i][1]);
    const int n_blocks = t->k / QK;
    for (int b = 0; b < n_blocks; b++) {
        const void *blk = (const char *)t->w + (size_t)b * (is_q4 ? sizeof(q4_0_block) : sizeof(q8_0_block));
        const __m256 dw0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));      /* d[16] first */
        const __m256 dw1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk + 1));
        __m256i isum[INT_MR][2];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) isum[i][0] = isum[i][1] = _mm256_setzero_si256();
        for (int g = 0; g < QK / 4; g++) {
            __m256i w0, w1;
            if (is_q4) q4_group(blk, g, &w0, &w1);
            else q8_group(blk, g, &w0, &w1);
            const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
#pragma GCC unroll 8
            for (int i = 0; i < mr; i++) {
                int32_t four;
                memcpy(&four, t->xq + (size_t)i * t->ldxq + b * QK + 4 * g, 4);
                const __m256i x4 = _mm256_set1_epi32(four);
                isum[i][0] = _mm256_add_epi32(isum[i][0], dot4(a0, w0, x4, ones16));
                isum[i][1] = _mm256_add_epi32(isum[i][1], dot4(a1, w1, x4, ones16));
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m256 dx = _mm256_set1_ps(t->xd[(size_t)i * t->ldxd + b]);
            acc[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][0]), _mm256_mul_ps(dx, dw0), acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][1]), _mm256_mul_ps(dx, dw1), acc[i][1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) store_row(t, i, lo, hi, acc[i][0], acc[i][1]);
}

static inline __attribute__((always_inline)) void int_dispatch(const gemm_tile *t, const int is_q4) {
    switch (t->m) {
    case 1: int_tile(t, 1, is_q4); break;
    case 2: int_tile(t, 2, is_q4); break;
    case 3: int_tile(t, 3, is_q4); break;
    case 4: int_tile(t, 4, is_q4); break;
    default: break;
    }
}

void gemm_q8_0_avx2_4x16(const gemm_tile *t) { int_dispatch(t, 0); }
void gemm_q4_0_avx2_4x16(const gemm_tile *t) { int_dispatch(t, 1); }

/* ---- Activation rows quantized per block of 32 (quant.h, q8_act_quantize) -----------------
 * The same elementwise operations as the scalar version, so the same bytes: max |x| (max_ps
 * with the new value first skips a NaN as fmaxf does), one division, x * (127 / max) rounded
 * to nearest even by vcvtps2dq (the default rounding mode, as nearbyintf), max / 127. The
 * int32 -> int8 step keeps the low byte (AND, then unsigned packs that cannot saturate), as
 * the scalar cast does: equal for -127..127, and a NaN or infinite x (0x80000000) gives 0
 * there too, where signed packs would give -128. */
void q8_act_quantize_avx2(q8_act *a, const float *x, size_t ldx, int row0, int n_rows, int k) {
    const __m256 no_sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);   /* undo the packs' lane interleave */
    for (int r = row0; r < row0 + n_rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        for (int b = 0; b < a->n_blocks; b++) {
            const int p0 = b * QK;
            __m256 v[4], mx = _mm256_setzero_ps();
            for (int j = 0; j < 4; j++) {
                v[j] = _mm256_maskload_ps(xr + p0 + 8 * j, lanes8(k - p0 - 8 * j));
                mx = _mm256_max_ps(_mm256_and_ps(v[j], no_sign), mx);
            }
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
            const float amax = _mm_cvtss_f32(m4);
            const __m256 inv = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
            __m256i i[4];
            for (int j = 0; j < 4; j++)
                i[j] = _mm256_and_si256(_mm256_cvtps_epi32(_mm256_mul_ps(v[j], inv)), _mm256_set1_epi32(0xff));
            const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(i[0], i[1]), _mm256_packus_epi32(i[2], i[3]));
            _mm256_storeu_si256((__m256i *)(a->q + ((size_t)r * a->n_blocks + b) * QK),
                                _mm256_permutevar8x32_epi32(bytes, order));
            a->d[(size_t)r * a->n_blocks + b] = amax / 127.0f;
            /* the sum of the 32 stored bytes: vpsadbw adds q + 128 (XOR 0x80) per 8 bytes */
            const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(bytes, _mm256_set1_epi8((char)0x80)),
                                                _mm256_setzero_si256());
            const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
            a->s[(size_t)r * a->n_blocks + b] =
                (int32_t)(_mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1)) - QK * 128;
        }
    }
}
