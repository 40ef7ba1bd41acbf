/* test_kernels.c - the numeric kernels against independent references.
 *
 * Two kinds of reference:
 *   - math written here in double precision (libm erfc/exp, naive attention and matrix
 *     product), which the scalar kernels and every SIMD version must match;
 *   - the scalar kernels themselves, which every SIMD level this CPU has must match on
 *     odd sizes (tails of every length) and awkward data (large magnitudes, big offsets,
 *     extreme activation inputs), without NaN/Inf and without writing past its output.
 * A SIMD level the CPU lacks is skipped (TEST_SKIP: counted and named by run_tests.sh);
 * the scalar tests always run.
 */
#include <float.h>
#include <stdint.h>

#include "testutil.h"
#include "../kernels/kernels.h"

/* ---- the implementations under test, by level --------------------------------------- */

typedef struct {
    cpu_level level;
    void (*layernorm)(float *, const float *, const float *, const float *, int, int, float);
    void (*quick_gelu)(float *, size_t);
    void (*gelu)(float *, size_t);
    void (*softmax)(float *, int);
    void (*add_inplace)(float *, const float *, size_t);
    void (*attention)(float *, const float *, int, int, int, int, float *);
    uint32_t (*adler32)(uint32_t, const void *, size_t);
} impl;

static const impl impls[] = {
    {CPU_SCALAR, layernorm_scalar, quick_gelu_scalar, gelu_scalar, softmax_scalar,
     add_inplace_scalar, attention_scalar, adler32_scalar},
#if defined(CLIP_KERNELS_X86)
    {CPU_AVX2, layernorm_avx2, quick_gelu_avx2, gelu_avx2, softmax_avx2, add_inplace_avx2,
     attention_avx2, adler32_avx2},
    {CPU_AVX512, layernorm_avx512, quick_gelu_avx512, gelu_avx512, softmax_avx512,
     add_inplace_avx512, attention_avx512, adler32_avx2},
#endif
#if defined(CLIP_KERNELS_ARM)
    {CPU_NEON, layernorm_neon, quick_gelu_neon, gelu_neon, softmax_neon, add_inplace_neon,
     attention_neon, adler32_neon},
#endif
};
#define N_IMPLS ((int)(sizeof impls / sizeof impls[0]))

/* The implementation of loop index i, or NULL when the CPU lacks its level. */
static const impl *level_impl(int i) { return cpu_level_usable(impls[i].level) ? &impls[i] : NULL; }

/* The test of loop index _i is skipped (reported, not passed) when the CPU lacks its level. */
#define IMPL_OR_SKIP(im)                                                                  \
    const impl *im = level_impl(_i);                                                      \
    if (!im) TEST_SKIP("%s: this CPU has no %s", cpu_level_name(impls[_i].level),      \
                       cpu_level_name(impls[_i].level))

static const int sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                            127, 128, 129, 511, 512, 769, 1025};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* Buffers carry GUARD floats of a sentinel after the data, to catch stray writes. */
#define GUARD 32
static const uint32_t sentinel_bits = 0x7fc0dead;   /* a NaN no kernel would produce */

static float *alloc_guarded(size_t n) {
    float *p = malloc((n + GUARD) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = n; i < n + GUARD; i++) memcpy(&p[i], &sentinel_bits, sizeof sentinel_bits);
    return p;
}

static void check_guard(const float *p, size_t n, const char *what) {
    for (size_t i = n; i < n + GUARD; i++)
        ck_assert_msg(memcmp(&p[i], &sentinel_bits, sizeof sentinel_bits) == 0,
                      "%s wrote past its %zu outputs (at +%zu)", what, n, i - n);
}

static void fill(float *x, size_t n, float lo, float hi, unsigned *seed) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * 0.5f * (test_rand(seed) + 1.0f);
}

/* ---- CPU detection and dispatch ----------------------------------------------------- */

START_TEST(test_cpu_detect) {
    const cpu_level level = cpu_detect();
    ck_assert_int_ge(level, CPU_SCALAR);
    ck_assert_int_lt(level, CPU_LEVEL_COUNT);
    ck_assert(cpu_level_usable(level));
    ck_assert(cpu_level_usable(CPU_SCALAR));
    const unsigned features = cpu_features();
#if defined(CLIP_KERNELS_X86) && defined(__GNUC__)
    /* libgcc's own cpuid + xgetbv reading is an independent opinion */
    __builtin_cpu_init();
    cpu_level expected = CPU_SCALAR;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) expected = CPU_AVX2;
    if (expected == CPU_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        expected = CPU_AVX512;
    ck_assert_msg(level == expected, "cpu_detect() = %s, libgcc says %s", cpu_level_name(level),
                  cpu_level_name(expected));
    ck_assert(!cpu_level_usable(CPU_NEON));
    ck_assert_uint_eq(features & CPU_FEAT_ASIMD, 0);
    if (expected == CPU_AVX512)
        ck_assert_msg(!(features & CPU_FEAT_AVX512_VNNI) == !__builtin_cpu_supports("avx512vnni"),
                      "avx512_vnni: cpu_features and libgcc disagree");
#elif defined(CLIP_KERNELS_ARM)
    /* every aarch64 Linux CPU has ASIMD; the compiler assumes it too */
#if !defined(__ARM_NEON)
#error "aarch64 without __ARM_NEON"
#endif
    ck_assert_int_eq(level, CPU_NEON);
    ck_assert(features & CPU_FEAT_ASIMD);
    ck_assert(!cpu_level_usable(CPU_AVX2) && !cpu_level_usable(CPU_AVX512));
#else
    ck_assert_int_eq(level, CPU_SCALAR);
#endif
    char names[128];
    cpu_features_string(features, names, sizeof names);
    printf("note: cpu_detect() = %s, features: %s\n", cpu_level_name(level), names);
    ck_assert_str_eq(cpu_features_string(0, names, sizeof names), "none");
    ck_assert_str_eq(cpu_features_string(CPU_FEAT_ASIMD | CPU_FEAT_DOTPROD | CPU_FEAT_BF16, names, sizeof names),
                     "asimd dotprod bf16");
    ck_assert_str_eq(cpu_level_name(CPU_SCALAR), "scalar");
    ck_assert_str_eq(cpu_level_name(CPU_AVX2), "avx2");
    ck_assert_str_eq(cpu_level_name(CPU_AVX512), "avx512");
    ck_assert_str_eq(cpu_level_name(CPU_NEON), "neon");

    kernels_init();
    kernels_init();
    ck_assert(cpu_level_usable(kernels_level()));
    for (int l = 0; l < CPU_LEVEL_COUNT; l++) {     /* a level the CPU lacks gives the best */
        kernels_force((cpu_level)l);
        ck_assert_int_eq(kernels_level(), cpu_level_usable((cpu_level)l) ? (cpu_level)l : level);
    }
    kernels_force(CPU_SCALAR);
    ck_assert_int_eq(kernels_level(), CPU_SCALAR);
    kernels_force(level);
}
END_TEST

/* CLIP_CPU picks the level at the first kernels_init() of a process, so this runs only
 * when Check forks a fresh process per test (its default). */
START_TEST(test_env_override) {
    const char *ck_fork = getenv("CK_FORK");
    if (ck_fork && strcmp(ck_fork, "no") == 0) TEST_SKIP("CLIP_CPU=%d: needs a process per test (CK_FORK=no)", _i);
    static const char *values[] = {"scalar", "avx2", "avx512", "neon", "auto", "sse9"};
    static const int named[] = {CPU_SCALAR, CPU_AVX2, CPU_AVX512, CPU_NEON, -1, -1};
    const cpu_level best = cpu_detect();
    /* a named level this CPU can run is taken; anything else gives the best */
    const cpu_level expected = named[_i] >= 0 && cpu_level_usable((cpu_level)named[_i]) ? (cpu_level)named[_i] : best;
    setenv("CLIP_CPU", values[_i], 1);
    ck_assert_msg(kernels_level() == expected, "CLIP_CPU=%s gave %s", values[_i], cpu_level_name(kernels_level()));
}
END_TEST

/* The public names run exactly (bit for bit) the implementation of the forced level. */
START_TEST(test_dispatch) {
    IMPL_OR_SKIP(im);
    kernels_force(im->level);
    ck_assert_int_eq(kernels_level(), im->level);

    enum { n = 77, dim = 45, n_tok = 9, head_dim = 13 };
    unsigned seed = 7;
    float a[n], b[n], addend[n], g[dim], beta[dim], x[3 * dim];
    fill(a, n, -6, 6, &seed);
    fill(addend, n, -6, 6, &seed);
    memcpy(b, a, sizeof a);
    add_inplace(a, addend, n);
    im->add_inplace(b, addend, n);
    ck_assert(memcmp(a, b, sizeof a) == 0);

    fill(g, dim, 0.5f, 1.5f, &seed);
    fill(beta, dim, -1, 1, &seed);
    fill(x, 3 * dim, -3, 5, &seed);
    float y1[3 * dim], y2[3 * dim];
    layernorm(y1, x, g, beta, 3, dim, 1e-5f);
    im->layernorm(y2, x, g, beta, 3, dim, 1e-5f);
    ck_assert(memcmp(y1, y2, sizeof y1) == 0);

    float qkv[n_tok * 3 * head_dim], o1[n_tok * head_dim], o2[n_tok * head_dim], scratch[n_tok];
    fill(qkv, n_tok * 3 * head_dim, -2, 2, &seed);
    attention(o1, qkv, n_tok, n_tok, head_dim, 1, scratch);
    im->attention(o2, qkv, n_tok, n_tok, head_dim, 1, scratch);
    ck_assert(memcmp(o1, o2, sizeof o1) == 0);

    ck_assert_uint_eq(adler32(1, qkv, sizeof qkv - 5), im->adler32(1, qkv, sizeof qkv - 5));

    kernels_force(cpu_detect());
}
END_TEST

/* ---- LayerNorm ---------------------------------------------------------------------- */

/* Rows of several kinds: plain, offset far from zero (a mean large against the spread),
 * large magnitudes, tiny magnitudes, and constant rows (variance 0: eps alone). */
static void layernorm_data(float *x, int n_rows, int dim, int kind, unsigned *seed) {
    for (int r = 0; r < n_rows; r++) {
        float *row = x + (size_t)r * dim;
        switch ((kind + r) % 5) {
        case 0: fill(row, dim, -2, 2, seed); break;
        case 1: fill(row, dim, 999, 1001, seed); break;
        case 2: fill(row, dim, -3e4f, 5e4f, seed); break;
        case 3: fill(row, dim, -1e-3f, 1e-3f, seed); break;
        default: for (int i = 0; i < dim; i++) row[i] = 3.25f; break;
        }
    }
}

/* |out - ref| relative to the size of the terms that make it up: (x - mean) rstd gamma
 * and beta, as the output can cancel to ~0 */
static void check_layernorm(const float *out, const float *x, const float *g, const float *b,
                            int n_rows, int dim, float eps, double rtol, const char *what) {
    for (int r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        long double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= dim;
        const long double rstd = 1.0L / sqrtl(var + eps);
        for (int i = 0; i < dim; i++) {
            const long double normed = (xr[i] - mean) * rstd * g[i];
            const double ref = (double)(normed + b[i]);
            const double err = fabs(out[(size_t)r * dim + i] - ref);
            const double tol = rtol * (double)(fabsl(normed) + fabsf(b[i])) + 1e-30;
            ck_assert_msg(err <= tol, "%s: dim %d row %d [%d]: %.9g, expected %.9g (err %.3g > %.3g)",
                          what, dim, r, i, out[(size_t)r * dim + i], ref, err, tol);
        }
    }
}

START_TEST(test_layernorm_scalar_vs_double) {
    unsigned seed = 11;
    const int n_rows = 5;
    for (int s = 0; s < N_SIZES; s++) {
        const int dim = sizes[s];
        float *x = malloc(sizeof(float) * n_rows * dim), *g = malloc(sizeof(float) * dim);
        float *b = malloc(sizeof(float) * dim), *y = alloc_guarded((size_t)n_rows * dim);
        layernorm_data(x, n_rows, dim, s, &seed);
        fill(g, dim, -2, 2, &seed);
        fill(b, dim, -1, 1, &seed);
        layernorm_scalar(y, x, g, b, n_rows, dim, 1e-5f);
        check_guard(y, (size_t)n_rows * dim, "layernorm_scalar");
        check_layernorm(y, x, g, b, n_rows, dim, 1e-5f, 2e-7, "layernorm_scalar");
        free(x), free(g), free(b), free(y);
    }
}
END_TEST

START_TEST(test_layernorm_simd) {
    IMPL_OR_SKIP(im);
    unsigned seed = 12;
    const int n_rows = 5;
    for (int s = 0; s < N_SIZES; s++) {
        const int dim = sizes[s];
        const size_t n = (size_t)n_rows * dim;
        float *x = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * dim);
        float *b = malloc(sizeof(float) * dim), *y = alloc_guarded(n), *ref = malloc(sizeof(float) * n);
        layernorm_data(x, n_rows, dim, s, &seed);
        fill(g, dim, -2, 2, &seed);
        fill(b, dim, -1, 1, &seed);
        im->layernorm(y, x, g, b, n_rows, dim, 1e-5f);
        check_guard(y, n, "layernorm (SIMD)");
        check_layernorm(y, x, g, b, n_rows, dim, 1e-5f, 1e-6, cpu_level_name(im->level));

        /* against the scalar reference, and in place (out == x) */
        layernorm_scalar(ref, x, g, b, n_rows, dim, 1e-5f);
        im->layernorm(x, x, g, b, n_rows, dim, 1e-5f);
        ck_assert(memcmp(x, y, sizeof(float) * n) == 0);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(fabsf(y[i] - ref[i]) <= 1e-6f * (fabsf(ref[i]) + 2.0f * fabsf(g[i % dim]) + fabsf(b[i % dim])),
                          "%s layernorm dim %d [%zu]: %.9g, scalar %.9g", cpu_level_name(im->level), dim, i,
                          y[i], ref[i]);
        free(x), free(g), free(b), free(y), free(ref);
    }
}
END_TEST

/* ---- activations -------------------------------------------------------------------- */

/* Activation inputs: a fine sweep over [-12, 12], random values in [-10, 10] and [-100, 100],
 * and the extremes of float. Returns the count written (at most cap). */
static size_t activation_inputs(float *x, size_t cap, unsigned *seed) {
    static const float extremes[] = {0.0f, -0.0f, 1e-30f, -1e-30f, FLT_MIN, -FLT_MIN, 1e-40f, -1e-40f,
                                     1e-7f, -1e-7f, 0.5f, -0.5f, 1.0f, -1.0f, 1.41421f, -1.41421f,
                                     1.41422f, -1.41422f, 5.0f, -5.0f, 10.0f, -10.0f, 13.5f, -13.5f,
                                     14.8f, -14.8f, 20.0f, -20.0f, 51.0f, -51.0f, 52.5f, -52.5f,
                                     88.0f, -88.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e20f, -1e20f,
                                     FLT_MAX, -FLT_MAX};
    size_t n = 0;
    for (size_t i = 0; i < sizeof extremes / sizeof extremes[0] && n < cap; i++) x[n++] = extremes[i];
    for (float v = -12.0f; v <= 12.0f && n < cap; v += 0.00137f) x[n++] = v;
    while (n < cap - 2000) x[n++] = 10.0f * test_rand(seed);
    while (n < cap) x[n++] = 100.0f * test_rand(seed);
    return n;
}

#define N_ACT 30000

static double gelu_ref(float x) { return 0.5 * x * erfc(-(double)x / sqrt(2.0)); }
/* the float coefficient, as PyTorch multiplies a float32 tensor by 1.702 */
static double quick_gelu_ref(float x) { return x / (1.0 + exp(-(double)1.702f * x)); }

/* Error allowed: a few ulp of the result (plus a subnormal's worth). quick_gelu rounds
 * 1.702 x to float before the exp, as PyTorch does, which moves its negative tail by up to
 * 1.702 |x| / 2 ulp: that is allowed for too. */
static int close_gelu(double got, double ref, double ulps) {
    return fabs(got - ref) <= ulps * FLT_EPSILON * fabs(ref) + 1e-40;
}

static int close_quick_gelu(double got, double ref, float x, double ulps) {
    const double spread = 1.0 + 1.702 * fabs((double)x) / 2;
    /* below x = -52.1, 1 + exp(-1.702 x) overflows float and the result is -0 (PyTorch's
     * sigmoid gives 0 there too): the true value is under 2e-37 */
    return fabs(got - ref) <= ulps * FLT_EPSILON * spread * fabs(ref) + (x < -52 ? 2e-37 : 1e-40);
}

START_TEST(test_gelu_scalar_vs_double) {
    unsigned seed = 21;
    float *x = malloc(sizeof(float) * N_ACT), *y = alloc_guarded(N_ACT);
    const size_t n = activation_inputs(x, N_ACT, &seed);
    memcpy(y, x, sizeof(float) * n);
    gelu_scalar(y, n);
    check_guard(y, n, "gelu_scalar");
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(close_gelu(y[i], gelu_ref(x[i]), 1), "gelu_scalar(%.9g) = %.9g, expected %.9g",
                      x[i], y[i], gelu_ref(x[i]));
    memcpy(y, x, sizeof(float) * n);
    quick_gelu_scalar(y, n);
    check_guard(y, n, "quick_gelu_scalar");
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(close_quick_gelu(y[i], quick_gelu_ref(x[i]), x[i], 2),
                      "quick_gelu_scalar(%.9g) = %.9g, expected %.9g", x[i], y[i], quick_gelu_ref(x[i]));
    free(x), free(y);
}
END_TEST

START_TEST(test_activations_simd) {
    IMPL_OR_SKIP(im);
    const char *name = cpu_level_name(im->level);
    unsigned seed = 22;
    float *x = malloc(sizeof(float) * N_ACT), *y = alloc_guarded(N_ACT), *ref = malloc(sizeof(float) * N_ACT);
    const size_t n = activation_inputs(x, N_ACT, &seed);

    /* against double math: a few ulp */
    memcpy(y, x, sizeof(float) * n);
    im->gelu(y, n);
    check_guard(y, n, "gelu (SIMD)");
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(y[i]), "%s gelu(%.9g) = %g", name, x[i], y[i]);
        ck_assert_msg(close_gelu(y[i], gelu_ref(x[i]), 5), "%s gelu(%.9g) = %.9g, expected %.9g",
                      name, x[i], y[i], gelu_ref(x[i]));
    }
    memcpy(ref, x, sizeof(float) * n);
    gelu_scalar(ref, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(y[i] - ref[i]) <= 1e-6f * fmaxf(1.0f, fabsf(ref[i])),
                      "%s gelu(%.9g) = %.9g, scalar %.9g", name, x[i], y[i], ref[i]);

    memcpy(y, x, sizeof(float) * n);
    im->quick_gelu(y, n);
    check_guard(y, n, "quick_gelu (SIMD)");
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(y[i]), "%s quick_gelu(%.9g) = %g", name, x[i], y[i]);
        ck_assert_msg(close_quick_gelu(y[i], quick_gelu_ref(x[i]), x[i], 3),
                      "%s quick_gelu(%.9g) = %.9g, expected %.9g", name, x[i], y[i], quick_gelu_ref(x[i]));
    }
    memcpy(ref, x, sizeof(float) * n);
    quick_gelu_scalar(ref, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(y[i] - ref[i]) <= 1e-6f * fmaxf(1.0f, fabsf(ref[i])),
                      "%s quick_gelu(%.9g) = %.9g, scalar %.9g", name, x[i], y[i], ref[i]);

    /* every tail length, each element as the scalar reference has it */
    for (int s = 0; s < N_SIZES; s++) {
        const size_t m = (size_t)sizes[s];
        float *a = alloc_guarded(m), *b = malloc(sizeof(float) * m);
        for (int which = 0; which < 2; which++) {
            fill(a, m, -10, 10, &seed);
            memcpy(b, a, sizeof(float) * m);
            (which ? im->gelu : im->quick_gelu)(a, m);
            (which ? gelu_scalar : quick_gelu_scalar)(b, m);
            check_guard(a, m, which ? "gelu" : "quick_gelu");
            for (size_t i = 0; i < m; i++)
                ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-6f * fmaxf(1.0f, fabsf(b[i])), "%s %s n=%zu [%zu]: %.9g vs %.9g",
                              name, which ? "gelu" : "quick_gelu", m, i, a[i], b[i]);
        }
        free(a), free(b);
    }
    free(x), free(y), free(ref);
}
END_TEST

/* ---- softmax ------------------------------------------------------------------------ */

/* Each element within 1e-6 relative of the exact value, or negligible (< 1e-9 of the
 * row's total of 1, where float's own rounding of x - max dominates). */
static void check_softmax(const float *got, const float *x, int n, double rtol, const char *what) {
    double max = x[0], sum = 0;
    for (int i = 1; i < n; i++) max = fmax(max, x[i]);
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - max);
    double total = 0;
    for (int i = 0; i < n; i++) {
        const double ref = exp((double)x[i] - max) / sum;
        total += got[i];
        ck_assert_msg(fabs(got[i] - ref) <= rtol * ref + 1e-9, "%s n=%d [%d] (x=%.9g): %.9g, expected %.9g",
                      what, n, i, x[i], got[i], ref);
    }
    ck_assert_msg(fabs(total - 1.0) <= 2e-6, "%s n=%d: sums to %.9g", what, n, total);
}

static void softmax_data(float *x, int n, int kind, unsigned *seed) {
    switch (kind) {
    case 0: fill(x, n, -80, 80, seed); break;         /* exp(80) would overflow without the max */
    case 1: fill(x, n, -3, 3, seed); break;
    case 2: fill(x, n, 70, 80, seed); break;
    default: for (int i = 0; i < n; i++) x[i] = -42.5f; break;
    }
}

START_TEST(test_softmax_scalar_vs_double) {
    unsigned seed = 31;
    for (int s = 0; s < N_SIZES; s++)
        for (int kind = 0; kind < 4; kind++) {
            const int n = sizes[s];
            float *x = malloc(sizeof(float) * n), *y = alloc_guarded(n);
            softmax_data(x, n, kind, &seed);
            memcpy(y, x, sizeof(float) * n);
            softmax_scalar(y, n);
            check_guard(y, n, "softmax_scalar");
            check_softmax(y, x, n, 1e-6, "softmax_scalar");
            free(x), free(y);
        }
}
END_TEST

START_TEST(test_softmax_simd) {
    IMPL_OR_SKIP(im);
    unsigned seed = 32;
    for (int s = 0; s < N_SIZES; s++)
        for (int kind = 0; kind < 4; kind++) {
            const int n = sizes[s];
            float *x = malloc(sizeof(float) * n), *y = alloc_guarded(n), *ref = malloc(sizeof(float) * n);
            softmax_data(x, n, kind, &seed);
            memcpy(y, x, sizeof(float) * n);
            memcpy(ref, x, sizeof(float) * n);
            im->softmax(y, n);
            softmax_scalar(ref, n);
            check_guard(y, n, "softmax (SIMD)");
            check_softmax(y, x, n, 1e-6, cpu_level_name(im->level));
            for (int i = 0; i < n; i++)
                ck_assert_msg(fabsf(y[i] - ref[i]) <= 1e-6f * ref[i] + 1e-9f, "%s softmax n=%d [%d]: %.9g, scalar %.9g",
                              cpu_level_name(im->level), n, i, y[i], ref[i]);
            free(x), free(y), free(ref);
        }
}
END_TEST

/* ---- add ---------------------------------------------------------------------------- */

START_TEST(test_add_inplace) {
    IMPL_OR_SKIP(im);
    unsigned seed = 41;
    for (int s = 0; s < N_SIZES; s++) {
        const size_t n = (size_t)sizes[s];
        float *y = alloc_guarded(n), *x = malloc(sizeof(float) * n), *y0 = malloc(sizeof(float) * n);
        fill(y, n, -100, 100, &seed);
        fill(x, n, -1, 1, &seed);
        memcpy(y0, y, sizeof(float) * n);
        im->add_inplace(y, x, n);
        check_guard(y, n, "add_inplace");
        for (size_t i = 0; i < n; i++) {
            const float want = y0[i] + x[i];          /* one rounding: exact agreement */
            ck_assert_msg(memcmp(&y[i], &want, sizeof want) == 0, "%s add n=%zu [%zu]: %.9g, expected %.9g",
                          cpu_level_name(im->level), n, i, y[i], want);
        }
        free(y), free(x), free(y0);
    }
}
END_TEST

/* ---- attention ---------------------------------------------------------------------- */

/* out[t] = softmax(q k^T / sqrt(head_dim)) v, all in long double, written plainly.
 * cond[t] = max_j sum_d |q_d k_jd| / sqrt(head_dim): the size of the terms summed into a
 * score, which bounds the rounding error any float computation makes in it. */
static void attention_naive(double *out, double *cond, const float *qkv, int n_tokens, int n_queries,
                            int hd, int causal) {
    long double *p = malloc(sizeof(long double) * n_tokens);
    const size_t row = 3 * (size_t)hd;
    for (int t = 0; t < n_queries; t++) {
        const int n_keys = causal ? t + 1 : n_tokens;
        long double max = -INFINITY, sum = 0, terms_max = 0;
        for (int j = 0; j < n_keys; j++) {
            long double dot = 0, terms = 0;
            for (int d = 0; d < hd; d++) {
                const long double prod = (long double)qkv[t * row + d] * qkv[j * row + hd + d];
                dot += prod;
                terms += fabsl(prod);
            }
            p[j] = dot / sqrtl(hd);
            if (p[j] > max) max = p[j];
            if (terms > terms_max) terms_max = terms;
        }
        cond[t] = (double)(terms_max / sqrtl(hd));
        for (int j = 0; j < n_keys; j++) sum += p[j] = expl(p[j] - max);
        for (int d = 0; d < hd; d++) {
            long double acc = 0;
            for (int j = 0; j < n_keys; j++) acc += p[j] * qkv[j * row + 2 * hd + d];
            out[(size_t)t * hd + d] = (double)(acc / sum);
        }
    }
    free(p);
}

/* head_dim 1 .. 100, chosen so every tail length of the SIMD blocks (16 and 64 columns
 * for AVX-512, 8 and 32 for AVX2, 4 and 16 for NEON) occurs, and 1, 7, 63, 65 tokens;
 * q and k in [-qk_range, qk_range]. */
typedef struct { int n_tokens, n_queries, head_dim; float qk_range; } attn_case;
static const attn_case attn_cases[] = {
    {1, 1, 64, 1},     {2, 2, 4, 1},     {7, 7, 32, 2},    {5, 5, 5, 1},     {9, 4, 7, 2},
    {13, 13, 65, 1},   {17, 5, 80, 1.5f}, {33, 33, 48, 1}, {50, 1, 64, 1},   {77, 77, 64, 1},
    {65, 65, 64, 4},   {31, 30, 31, 3},  {197, 1, 64, 1},  {40, 40, 9, 6},   {11, 11, 40, 1},
    {6, 6, 57, 2},     {10, 7, 100, 1},  {12, 12, 20, 3},  {63, 63, 1, 2},   {7, 3, 2, 1},
    {64, 64, 3, 1},    {3, 3, 6, 1},     {8, 8, 17, 2},    {5, 2, 18, 1},    {4, 4, 19, 1},
};
#define N_ATTN ((int)(sizeof attn_cases / sizeof attn_cases[0]))

static void run_attention_cases(void (*fn)(float *, const float *, int, int, int, int, float *),
                                const char *name) {
    unsigned seed = 51;
    for (int c = 0; c < N_ATTN; c++)
        for (int causal = 0; causal < 2; causal++) {
            const attn_case ac = attn_cases[c];
            const int hd = ac.head_dim;
            const size_t n_qkv = (size_t)ac.n_tokens * 3 * hd, n_out = (size_t)ac.n_queries * hd;
            float *qkv = malloc(sizeof(float) * n_qkv), *out = alloc_guarded(n_out);
            float *scratch = alloc_guarded((size_t)ac.n_tokens);
            double *ref = malloc(sizeof(double) * n_out);
            double *cond = malloc(sizeof(double) * ac.n_queries);
            /* q and k scaled up make some rows of weights sharply peaked */
            for (int t = 0; t < ac.n_tokens; t++) {
                float *row = qkv + (size_t)t * 3 * hd;
                fill(row, 2 * (size_t)hd, -ac.qk_range, ac.qk_range, &seed);
                fill(row + 2 * hd, (size_t)hd, -1, 1, &seed);
            }
            attention_naive(ref, cond, qkv, ac.n_tokens, ac.n_queries, hd, causal);
            fn(out, qkv, ac.n_tokens, ac.n_queries, hd, causal, scratch);
            check_guard(out, n_out, "attention out");
            check_guard(scratch, (size_t)ac.n_tokens, "attention scratch");
            /* Values lie in [-1, 1] and the output is their weighted mean, so the bound is
             * absolute: an error d in the scores moves the weights by d relative, the
             * output by at most ~d. d is a few ulp of the score terms (cond). */
            for (size_t i = 0; i < n_out; i++) {
                const int t = (int)(i / hd);
                const double tol = 2e-6 + 2 * FLT_EPSILON * cond[t];
                ck_assert_msg(fabs(out[i] - ref[i]) <= tol,
                              "%s attention %d tokens, %d queries, head_dim %d, causal %d: [%zu] %.9g, "
                              "expected %.9g (tolerance %.3g)", name, ac.n_tokens, ac.n_queries, hd,
                              causal, i, out[i], ref[i], tol);
            }
            free(qkv), free(out), free(scratch), free(ref), free(cond);
        }
}

START_TEST(test_attention) {
    IMPL_OR_SKIP(im);
    run_attention_cases(im->attention, cpu_level_name(im->level));
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cpu_detect);
    tcase_add_loop_test(tc, test_env_override, 0, 6);
    tcase_add_loop_test(tc, test_dispatch, 0, N_IMPLS);
    tcase_add_test(tc, test_layernorm_scalar_vs_double);
    tcase_add_loop_test(tc, test_layernorm_simd, 1, N_IMPLS);
    tcase_add_test(tc, test_gelu_scalar_vs_double);
    tcase_add_loop_test(tc, test_activations_simd, 1, N_IMPLS);
    tcase_add_test(tc, test_softmax_scalar_vs_double);
    tcase_add_loop_test(tc, test_softmax_simd, 1, N_IMPLS);
    tcase_add_loop_test(tc, test_add_inplace, 0, N_IMPLS);
    tcase_add_loop_test(tc, test_attention, 0, N_IMPLS);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()
