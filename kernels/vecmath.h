/* vecmath.h - constants of the vector exp and erf used by the AVX2 and AVX-512 kernels.
 *
 * The scalar references call libm (expf; erfc in double); SIMD code cannot, so it
 * evaluates the same functions with short polynomials. The coefficients below are minimax fits (Lawson's
 * iteratively reweighted least squares, in double, then rounded to float); the error
 * bounds quoted are those of the fit, before float rounding adds its ulp or two.
 *
 *   exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]
 *            (Cody-Waite: ln 2 split in a high part with few bits and a low correction),
 *            exp(r) = 1 + r + r^2 q(r), q of degree 4: relative error < 1e-8.
 *
 *   erfc(z) = exp(-z^2) R(t), t = 1 / (1 + 0.4 z), for 0 <= z <= 10.5 (erfc underflows
 *             float beyond), R of degree 10: relative error 2e-9 (about 2 ulp once
 *             evaluated in float). R is the scaled complementary error function
 *             erfcx(z) = exp(z^2) erfc(z), smooth and slowly varying on the whole
 *             half-line, so one fit in t covers it and there is no branch.
 *
 * GELU(x) = x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2. Writing z = |x| / sqrt 2 and
 * h = x erfc(z) / 2:  GELU(x) = x - h for x > 0, h for x <= 0.
 * Neither form cancels badly (x - h >= x/2), and the negative tail keeps its relative
 * accuracy instead of computing 1 + erf(...) ~ 0. z^2 = x^2 / 2 is formed exactly as a
 * float pair hi + lo (with an FMA), since rounding z^2 near z = 9 would move exp(-z^2) by
 * tens of ulp; exp(-hi - lo) = exp(-hi) (1 - lo). Measured over [-15, 15], the vector
 * GELU is within 7 ulp (4e-7 relative) of the exact value, exp within 1 ulp.
 */
#ifndef CLIP_KERNELS_VECMATH_H
#define CLIP_KERNELS_VECMATH_H

/* exp: arguments are clamped to [EXP_ARG_MIN, EXP_ARG_MAX]; exp(-104) rounds to 0 and
 * exp(89) overflows to +inf, so the clamp changes no result but keeps n in range. */
#define EXP_ARG_MIN (-104.0f)
#define EXP_ARG_MAX 89.0f
#define EXP_LOG2E 1.44269502f
#define EXP_LN2_HI 0.693145752f          /* 0x3F317200: n * EXP_LN2_HI is exact for |n| < 2^11 */
#define EXP_LN2_LO 1.42860677e-06f       /* ln 2 - EXP_LN2_HI */
#define EXP_Q0 0.5f
#define EXP_Q1 0.166665778f
#define EXP_Q2 0.0416668542f
#define EXP_Q3 0.00836314075f
#define EXP_Q4 0.00139012851f

/* erfcx(z) on [0, 10.5] as a polynomial in t = 1 / (1 + ERFC_T_SCALE z) */
#define ERFC_T_SCALE 0.4f
#define ERFC_R0 (-7.88780198e-06f)
#define ERFC_R1 0.225892231f
#define ERFC_R2 0.223064035f
#define ERFC_R3 0.225901693f
#define ERFC_R4 0.089263089f
#define ERFC_R5 0.37048021f
#define ERFC_R6 (-0.445165068f)
#define ERFC_R7 0.721795142f
#define ERFC_R8 (-0.61910814f)
#define ERFC_R9 0.245788068f
#define ERFC_R10 (-0.0379033424f)
/* |x| beyond which GELU's erfc(|x| / sqrt 2) < 1e-46 is 0 in float (z = 10.5); clamping
 * there keeps x^2 and t finite for any input */
#define GELU_ABS_X_MAX 14.85f

#define GELU_SQRT1_2 0.707106769f
#define QUICK_GELU_ALPHA 1.702f

#endif
