/* vecmath_avx512.h - exp, GELU, quick GELU and reductions on 16 floats (AVX-512F).
 *
 * Static inline helpers shared by the *_avx512.c kernels; the polynomials and the
 * reasoning behind them are in vecmath.h. Include only from files built with
 * -mavx512f (and friends).
 */
#ifndef CLIP_KERNELS_VECMATH_AVX512_H
#define CLIP_KERNELS_VECMATH_AVX512_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

#include "vecmath.h"

#define V16 16

/* Lanes [0, n) of a 16-lane vector, for the tail of a row (n may exceed 16). */
static inline __mmask16 mask16(size_t n) {
    return n >= V16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

static inline __m512 exp512(__m512 x) {
    /* max(lo, x) returns x when x is NaN, so NaN survives the clamp */
    x = _mm512_min_ps(_mm512_set1_ps(EXP_ARG_MAX), _mm512_max_ps(_mm512_set1_ps(EXP_ARG_MIN), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 q = _mm512_set1_ps(EXP_Q4);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(EXP_Q3));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(EXP_Q2));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(EXP_Q1));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(EXP_Q0));
    const __m512 p = _mm512_add_ps(_mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    /* scalef multiplies by 2^n with one rounding, producing subnormals and +inf correctly */
    return _mm512_scalef_ps(p, n);
}

static inline __m512 quick_gelu512(__m512 x) {
    const __m512 e = exp512(_mm512_mul_ps(x, _mm512_set1_ps(-QUICK_GELU_ALPHA)));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));   /* x / inf = -0 */
}

static inline __m512 gelu512(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    const __m512 ax = _mm512_min_ps(_mm512_abs_ps(x), _mm512_set1_ps(GELU_ABS_X_MAX));
    const __m512 z = _mm512_mul_ps(ax, _mm512_set1_ps(GELU_SQRT1_2));
    const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(ERFC_T_SCALE), one));
    __m512 r = _mm512_set1_ps(ERFC_R10);
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R9));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R8));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R7));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R6));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R5));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R4));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R3));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R2));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R1));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(ERFC_R0));
    /* z^2 = x^2 / 2 = (hi + lo) / 2 exactly */
    const __m512 xx_hi = _mm512_mul_ps(ax, ax);
    const __m512 xx_lo = _mm512_fmsub_ps(ax, ax, xx_hi);
    __m512 erfc = _mm512_mul_ps(exp512(_mm512_mul_ps(xx_hi, _mm512_set1_ps(-0.5f))), r);
    erfc = _mm512_fnmadd_ps(erfc, _mm512_mul_ps(xx_lo, half), erfc);
    const __m512 h = _mm512_mul_ps(_mm512_mul_ps(half, x), erfc);                 /* x erfc(z) / 2 */
    const __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_sub_ps(h, positive, x, h);
}

/* Largest of x[0..n); -inf for n = 0. */
static inline float row_max512(const float *x, size_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (size_t i = 0; i < n; i += V16)
        m = _mm512_max_ps(m, _mm512_mask_loadu_ps(m, mask16(n - i), x + i));
    return _mm512_reduce_max_ps(m);
}

/* x[i] = exp(x[i] - shift) for i < n; returns their sum (two accumulators). */
static inline float row_exp_sum512(float *x, size_t n, float shift) {
    const __m512 s = _mm512_set1_ps(shift);
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 2 * V16 <= n; i += 2 * V16) {
        const __m512 e0 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        const __m512 e1 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i + V16), s));
        _mm512_storeu_ps(x + i, e0);
        _mm512_storeu_ps(x + i + V16, e1);
        sum0 = _mm512_add_ps(sum0, e0);
        sum1 = _mm512_add_ps(sum1, e1);
    }
    for (; i < n; i += V16) {
        const __mmask16 m = mask16(n - i);
        const __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum0 = _mm512_add_ps(sum0, e);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
}

#endif
