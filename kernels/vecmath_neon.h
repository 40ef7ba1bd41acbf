/* vecmath_neon.h - exp, GELU, quick GELU, tails and reductions on 4 floats (aarch64 NEON).
 *
 * Static inline helpers shared by the *_neon.c kernels; the polynomials and the reasoning
 * behind them are in vecmath.h, and each function here is the same sequence of roundings
 * as its AVX2 twin in vecmath_avx2.h (FMA where that has FMA), so every SIMD level gives
 * the same numbers. NEON has no masked loads: the last partial vector of a row goes
 * through a 4-float buffer (load_tail / store_tail), so no kernel reads or writes past n.
 */
#ifndef CLIP_KERNELS_VECMATH_NEON_H
#define CLIP_KERNELS_VECMATH_NEON_H

#include <arm_neon.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vecmath.h"

#define V4 4

/* The first n (<= 4) floats of p in the low lanes, `fill` in the others. */
static inline float32x4_t load_tail(const float *p, size_t n, float fill) {
    float buf[V4] = {fill, fill, fill, fill};
    memcpy(buf, p, n * sizeof(float));
    return vld1q_f32(buf);
}

/* Store the low n (<= 4) lanes of v to p. */
static inline void store_tail(float *p, float32x4_t v, size_t n) {
    float buf[V4];
    vst1q_f32(buf, v);
    memcpy(p, buf, n * sizeof(float));
}

/* All-ones in lanes [0, n), zero elsewhere. */
static inline uint32x4_t lanes_below(size_t n) {
    static const uint32_t index[V4] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(index), vdupq_n_u32((uint32_t)n));
}

/* 2^n for integer-valued n in [-126, 127] */
static inline float32x4_t pow2i4(int32x4_t n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n, vdupq_n_s32(127)), 23));
}

static inline float32x4_t exp4(float32x4_t x) {
    /* FMAX/FMIN return NaN when either input is NaN, so NaN survives the clamp */
    x = vminq_f32(vdupq_n_f32(EXP_ARG_MAX), vmaxq_f32(vdupq_n_f32(EXP_ARG_MIN), x));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(EXP_LOG2E)));   /* to nearest even */
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(EXP_LN2_HI));                 /* x - n ln2_hi */
    r = vfmsq_f32(r, n, vdupq_n_f32(EXP_LN2_LO));
    float32x4_t q = vdupq_n_f32(EXP_Q4);
    q = vfmaq_f32(vdupq_n_f32(EXP_Q3), q, r);
    q = vfmaq_f32(vdupq_n_f32(EXP_Q2), q, r);
    q = vfmaq_f32(vdupq_n_f32(EXP_Q1), q, r);
    q = vfmaq_f32(vdupq_n_f32(EXP_Q0), q, r);
    const float32x4_t p = vaddq_f32(vfmaq_f32(r, q, vmulq_f32(r, r)), vdupq_n_f32(1.0f));
    /* n lies in [-150, 128]: scale by 2^(n/2) twice (see vecmath_avx2.h) */
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t n1 = vshrq_n_s32(ni, 1);
    return vmulq_f32(vmulq_f32(p, pow2i4(n1)), pow2i4(vsubq_s32(ni, n1)));
}

static inline float32x4_t quick_gelu4(float32x4_t x) {
    const float32x4_t e = exp4(vmulq_f32(x, vdupq_n_f32(-QUICK_GELU_ALPHA)));
    return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e));               /* x / inf = -0 */
}

static inline float32x4_t gelu4(float32x4_t x) {
    const float32x4_t one = vdupq_n_f32(1.0f), half = vdupq_n_f32(0.5f);
    const float32x4_t ax = vminq_f32(vabsq_f32(x), vdupq_n_f32(GELU_ABS_X_MAX));
    const float32x4_t z = vmulq_f32(ax, vdupq_n_f32(GELU_SQRT1_2));
    const float32x4_t t = vdivq_f32(one, vfmaq_f32(one, z, vdupq_n_f32(ERFC_T_SCALE)));
    float32x4_t r = vdupq_n_f32(ERFC_R10);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R9), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R8), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R7), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R6), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R5), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R4), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R3), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R2), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R1), r, t);
    r = vfmaq_f32(vdupq_n_f32(ERFC_R0), r, t);
    /* z^2 = x^2 / 2 = (hi + lo) / 2 exactly: lo = fma(ax, ax, -hi) */
    const float32x4_t xx_hi = vmulq_f32(ax, ax);
    const float32x4_t xx_lo = vfmaq_f32(vnegq_f32(xx_hi), ax, ax);
    float32x4_t erfc = vmulq_f32(exp4(vmulq_f32(xx_hi, vdupq_n_f32(-0.5f))), r);
    erfc = vfmsq_f32(erfc, erfc, vmulq_f32(xx_lo, half));
    const float32x4_t h = vmulq_f32(vmulq_f32(half, x), erfc);              /* x erfc(z) / 2 */
    const uint32x4_t positive = vcgtq_f32(x, vdupq_n_f32(0.0f));
    return vbslq_f32(positive, vsubq_f32(x, h), h);
}

/* Largest of x[0..n); -inf for n = 0. */
static inline float row_max4(const float *x, size_t n) {
    float32x4_t m = vdupq_n_f32(-INFINITY);
    size_t i = 0;
    for (; i + V4 <= n; i += V4) m = vmaxq_f32(m, vld1q_f32(x + i));
    if (i < n) m = vmaxq_f32(m, load_tail(x + i, n - i, -INFINITY));
    return vmaxvq_f32(m);
}

/* x[i] = exp(x[i] - shift) for i < n; returns their sum (two accumulators). */
static inline float row_exp_sum4(float *x, size_t n, float shift) {
    const float32x4_t s = vdupq_n_f32(shift);
    float32x4_t sum0 = vdupq_n_f32(0.0f), sum1 = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 2 * V4 <= n; i += 2 * V4) {
        const float32x4_t e0 = exp4(vsubq_f32(vld1q_f32(x + i), s));
        const float32x4_t e1 = exp4(vsubq_f32(vld1q_f32(x + i + V4), s));
        vst1q_f32(x + i, e0);
        vst1q_f32(x + i + V4, e1);
        sum0 = vaddq_f32(sum0, e0);
        sum1 = vaddq_f32(sum1, e1);
    }
    for (; i < n; i += V4) {
        const size_t len = n - i < V4 ? n - i : V4;
        float32x4_t e = exp4(vsubq_f32(load_tail(x + i, len, 0.0f), s));
        /* lanes past n: zero, not exp(-shift), in the sum */
        e = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e), lanes_below(len)));
        store_tail(x + i, e, len);
        sum0 = vaddq_f32(sum0, e);
    }
    return vaddvq_f32(vaddq_f32(sum0, sum1));
}

#endif
