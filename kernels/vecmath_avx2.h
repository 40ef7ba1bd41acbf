/* vecmath_avx2.h - exp, GELU, quick GELU, tail masks and sums on 8 floats (AVX2 + FMA).
 *
 * Static inline helpers shared by the *_avx2.c kernels; the polynomials and the
 * reasoning behind them are in vecmath.h. Include only from files built with
 * -mavx2 -mfma.
 */
#ifndef CLIP_KERNELS_VECMATH_AVX2_H
#define CLIP_KERNELS_VECMATH_AVX2_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "vecmath.h"

#define V8 8

/* Lanes [0, n) of an 8-lane vector as a maskload/maskstore mask (n may exceed 8);
 * masked-out lanes are never touched in memory, so tails cannot fault. */
static inline __m256i mask8(size_t n) {
    static const int32_t ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - (n >= V8 ? V8 : n)));
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 2^n for integer-valued n in [-126, 127] */
static inline __m256 pow2i8(__m256i n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

static inline __m256 exp8(__m256 x) {
    /* max(lo, x) returns x when x is NaN, so NaN survives the clamp */
    x = _mm256_min_ps(_mm256_set1_ps(EXP_ARG_MAX), _mm256_max_ps(_mm256_set1_ps(EXP_ARG_MIN), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 q = _mm256_set1_ps(EXP_Q4);
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(EXP_Q3));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(EXP_Q2));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(EXP_Q1));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(EXP_Q0));
    const __m256 p = _mm256_add_ps(_mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    /* n lies in [-150, 128]: too wide for one float exponent, so scale by 2^(n/2) twice;
     * the first product is exact, the second rounds once, into a subnormal or +inf if due */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2i8(n1)), pow2i8(_mm256_sub_epi32(ni, n1)));
}

static inline __m256 quick_gelu8(__m256 x) {
    const __m256 e = exp8(_mm256_mul_ps(x, _mm256_set1_ps(-QUICK_GELU_ALPHA)));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));   /* x / inf = -0 */
}

static inline __m256 gelu8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    const __m256 ax = _mm256_min_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(GELU_ABS_X_MAX));
    const __m256 z = _mm256_mul_ps(ax, _mm256_set1_ps(GELU_SQRT1_2));
    const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(ERFC_T_SCALE), one));
    __m256 r = _mm256_set1_ps(ERFC_R10);
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R9));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R8));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R7));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R6));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R5));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R4));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R3));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R2));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R1));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(ERFC_R0));
    /* z^2 = x^2 / 2 = (hi + lo) / 2 exactly */
    const __m256 xx_hi = _mm256_mul_ps(ax, ax);
    const __m256 xx_lo = _mm256_fmsub_ps(ax, ax, xx_hi);
    __m256 erfc = _mm256_mul_ps(exp8(_mm256_mul_ps(xx_hi, _mm256_set1_ps(-0.5f))), r);
    erfc = _mm256_fnmadd_ps(erfc, _mm256_mul_ps(xx_lo, half), erfc);
    const __m256 h = _mm256_mul_ps(_mm256_mul_ps(half, x), erfc);                 /* x erfc(z) / 2 */
    const __m256 positive = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(h, _mm256_sub_ps(x, h), positive);
}

/* Largest of x[0..n); -inf for n = 0. */
static inline float row_max8(const float *x, size_t n) {
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    __m256 m = neg_inf;
    size_t i = 0;
    for (; i + V8 <= n; i += V8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    if (i < n) {
        const __m256i k = mask8(n - i);
        const __m256 v = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + i, k), _mm256_castsi256_ps(k));
        m = _mm256_max_ps(m, v);
    }
    return hmax8(m);
}

/* x[i] = exp(x[i] - shift) for i < n; returns their sum (two accumulators). */
static inline float row_exp_sum8(float *x, size_t n, float shift) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 2 * V8 <= n; i += 2 * V8) {
        const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + V8), s));
        _mm256_storeu_ps(x + i, e0);
        _mm256_storeu_ps(x + i + V8, e1);
        sum0 = _mm256_add_ps(sum0, e0);
        sum1 = _mm256_add_ps(sum1, e1);
    }
    for (; i < n; i += V8) {
        const __m256i k = mask8(n - i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), s));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(x + i, k, e);
        sum0 = _mm256_add_ps(sum0, e);
    }
    return hsum8(_mm256_add_ps(sum0, sum1));
}

#endif
