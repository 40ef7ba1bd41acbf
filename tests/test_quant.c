/* test_quant.c - the weight types beyond f32 (kernels/quant.c): f16/bf16 conversion,
 * q8_0/q4_0 quantization, and the products over every type.
 *
 * References:
 *   - f16: the x86 F16C instructions (vcvtps2ph / vcvtph2ps) on every one of the 65536
 *     half values and on a million random and edge-case floats; elsewhere exact
 *     properties (round trip, monotonicity);
 *   - bf16: rounding computed here in double (nearest even of the 8-bit mantissa);
 *   - quantization: per-element error bounds derived from the block's scale;
 *   - products: a double-precision dot product over the dequantized weights (quant_row)
 *     and, for the int8 types, the dequantized activations (d x q, computed here from the
 *     stored scales and values), which every kernel level must match within float
 *     summation error; thread counts and rows computed alone must be bit-identical.
 */
#include <math.h>
#include <stdint.h>

#include "testutil.h"
#include "../kernels/gemm.h"
#include "../kernels/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t hw_to_f16(float f) {
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}
__attribute__((target("f16c"))) static float hw_from_f16(uint16_t h) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}
static int have_f16c(void) { return __builtin_cpu_supports("f16c"); }
#else
static int have_f16c(void) { return 0; }
static uint16_t hw_to_f16(float f) { (void)f; return 0; }
static float hw_from_f16(uint16_t h) { (void)h; return 0; }
#endif

#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

/* aligned_alloc wants a size that is a multiple of the alignment (a q8_0 block is 544 bytes). */
static void *alloc64(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

START_TEST(test_f16_against_f16c) {
    if (!have_f16c()) {
        /* no hardware reference: exact properties still hold */
        for (uint32_t h = 0; h < 65536; h++) {
            if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;   /* NaN */
            ck_assert_uint_eq(f32_to_f16(f16_to_f32((uint16_t)h)), h);
        }
        return;
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float a = f16_to_f32((uint16_t)h), b = hw_from_f16((uint16_t)h);
        ck_assert_msg(bits(a) == bits(b) || (isnan(a) && isnan(b)), "f16 %04x -> %a, F16C says %a", h, a, b);
    }
    unsigned seed = 11;
    static const float edges[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, -1e9f, 6.1035156e-05f,
                                  6.1e-05f, 5.96e-08f, 2.98e-08f, 2.99e-08f, 1e-10f, INFINITY, -INFINITY};
    for (int i = 0; i < 1000000 + COUNT(edges); i++) {
        float f;
        if (i < COUNT(edges)) f = edges[i];
        else {
            uint32_t u = (seed = seed * 1664525u + 1013904223u);
            u = (u & 0x807fffff) | ((100 + (u >> 23) % 60) << 23);    /* exponents around f16's range */
            memcpy(&f, &u, 4);
        }
        ck_assert_msg(f32_to_f16(f) == hw_to_f16(f), "f32 %a -> f16 %04x, F16C says %04x", f, f32_to_f16(f),
                      hw_to_f16(f));
    }
}
END_TEST

START_TEST(test_bf16_rounding) {
    unsigned seed = 3;
    for (int i = 0; i < 1000000; i++) {
        float f = test_rand(&seed) * ldexpf(1.0f, (int)(seed % 80) - 40);
        uint16_t b = f32_to_bf16(f);
        /* reference: the two bf16 neighbours of f, nearest wins, ties to the even one */
        uint32_t u = bits(f);
        float lo, hi;
        uint32_t lo_bits = u & 0xffff0000u, hi_bits = lo_bits + 0x10000u;
        memcpy(&lo, &lo_bits, 4);
        memcpy(&hi, &hi_bits, 4);
        double dl = fabs((double)f - lo), dh = fabs((double)hi - f);
        uint16_t want = (uint16_t)((dl < dh || (dl == dh && !((lo_bits >> 16) & 1))) ? lo_bits >> 16 : hi_bits >> 16);
        ck_assert_msg(b == want, "bf16 of %a: %04x, want %04x", f, b, want);
        ck_assert(bits(bf16_to_f32(b)) == (uint32_t)b << 16);
    }
    ck_assert(isnan(bf16_to_f32(f32_to_bf16(NAN))));
}
END_TEST

/* Each quantized element lies within half a step of its weight (q8_0: amax / 254), within
 * amax / 8 (q4_0: rounding or clipping), or within half a unit in the last place (f16, bf16);
 * an all-zero row stays zero. */
START_TEST(test_quantization_error_bounds) {
    const int n = 37, k = 100;   /* ragged panel, a partial last block */
    unsigned seed = 5;
    float *w = malloc(sizeof(float) * n * k), *row = malloc(sizeof(float) * k);
    for (int i = 0; i < n * k; i++) w[i] = test_rand(&seed) * (1 + (i % 7));
    for (int i = 0; i < k; i++) w[3 * k + i] = 0;                   /* an all-zero row */
    gemm_type types[] = {GEMM_Q8_0, GEMM_Q4_0, GEMM_F16, GEMM_BF16};
    for (int ti = 0; ti < COUNT(types); ti++) {
        void *packed = alloc64(gemm_packed_bytes(types[ti], n, k));
        gemm_weight pw;
        ck_assert_int_eq(gemm_pack(&pw, packed, types[ti], w, n, k), 0);
        for (int j = 0; j < n; j++) {
            quant_row(&pw, j, row);
            for (int b = 0; b < k; b += QK) {
                float amax = 0;
                for (int p = b; p < b + QK && p < k; p++) amax = fmaxf(amax, fabsf(w[j * k + p]));
                double step = types[ti] == GEMM_Q8_0 ? amax / 127.0 : types[ti] == GEMM_Q4_0 ? amax / 7.0 : 0;
                for (int p = b; p < b + QK && p < k; p++) {
                    double err = fabs((double)row[p] - w[j * k + p]);
                    double bound = types[ti] == GEMM_F16 ? fabs(w[j * k + p]) * 0x1p-11 + 0x1p-25
                                 : types[ti] == GEMM_BF16 ? fabs(w[j * k + p]) * 0x1p-8
                                 : types[ti] == GEMM_Q8_0 ? step * 0.502 + amax * 0x1p-11
                                 : amax / 8 * 1.002 + amax * 0x1p-10;  /* q4: a scale of at least
                                     amax / 8 rounds within d / 2 <= amax / 14, and clips the
                                     side opposite the extreme at 7 d >= 7/8 amax */
                    ck_assert_msg(err <= bound, "%s row %d k %d: %g vs %g (bound %g)",
                                  gemm_type_get(types[ti])->name, j, p, row[p], w[j * k + p], bound);
                }
            }
            if (j == 3)
                for (int p = 0; p < k; p++) ck_assert(row[p] == 0);
        }
        free(packed);
    }
    free(w), free(row);
}
END_TEST

/* ---- Products ----------------------------------------------------------------------------- */
typedef struct { int m, n, k; } shape;
static const shape shapes[] = {{1, 1, 1}, {7, 65, 63}, {63, 7, 65}, {1, 16, 32}, {17, 33, 100},
                               {50, 96, 768}, {5, 130, 2500}, {3, 17, 31}};

/* y = x W^T + b in double, from what the kernel is defined to multiply: the dequantized
 * weights, and for the int8 types the dequantized activations (scales and values as
 * q8_act_quantize stores them: d = max|x| / 127, q = round(x * 127 / max|x|)). */
static void reference(double *ref, double *mag, const float *x, const gemm_weight *pw, const float *bias, int m) {
    const int n = pw->n, k = pw->k, is_int = pw->type == GEMM_Q8_0 || pw->type == GEMM_Q4_0;
    float *row = malloc(sizeof(float) * k), *xd = malloc(sizeof(float) * k);
    for (int i = 0; i < m; i++) {
        for (int b = 0; b < k; b += QK) {
            float amax = 0;
            for (int p = b; p < b + QK && p < k; p++) amax = fmaxf(amax, fabsf(x[(size_t)i * k + p]));
            for (int p = b; p < b + QK && p < k; p++) {
                const float v = x[(size_t)i * k + p];
                xd[p] = !is_int ? v : amax > 0 ? (amax / 127.0f) * nearbyintf(v * (127.0f / amax)) : 0;
            }
        }
        for (int j = 0; j < n; j++) {
            quant_row(pw, j, row);
            double s = bias ? bias[j] : 0, a = bias ? fabs(bias[j]) : 0;
            for (int p = 0; p < k; p++) {
                s += (double)xd[p] * row[p];
                a += fabs((double)xd[p] * row[p]);
            }
            ref[(size_t)i * n + j] = s;
            mag[(size_t)i * n + j] = a;
        }
    }
    free(row), free(xd);
}

static int level_ok(cpu_level level) { return cpu_level_usable(level); }

START_TEST(test_products_every_type_and_level) {
    gemm_type types[] = {GEMM_F16, GEMM_BF16, GEMM_Q8_0, GEMM_Q4_0};
    threadpool *pool = threadpool_new(3);
    for (int si = 0; si < COUNT(shapes); si++)
        for (int ti = 0; ti < COUNT(types); ti++) {
            const shape s = shapes[si];
            unsigned seed = 100 + si;
            float *x = malloc(sizeof(float) * s.m * s.k), *w = malloc(sizeof(float) * s.n * s.k);
            float *bias = malloc(sizeof(float) * s.n);
            for (int i = 0; i < s.m * s.k; i++) x[i] = test_rand(&seed);
            for (int i = 0; i < s.n * s.k; i++) w[i] = test_rand(&seed) * 0.1f;
            for (int i = 0; i < s.n; i++) bias[i] = test_rand(&seed);
            void *packed = alloc64(gemm_packed_bytes(types[ti], s.n, s.k));
            gemm_weight pw;
            gemm_pack(&pw, packed, types[ti], w, s.n, s.k);
            double *ref = malloc(sizeof(double) * s.m * s.n), *mag = malloc(sizeof(double) * s.m * s.n);
            reference(ref, mag, x, &pw, bias, s.m);
            float *y = malloc(sizeof(float) * s.m * s.n), *first = malloc(sizeof(float) * s.m * s.n);
            void *work = malloc(gemm_work_bytes(types[ti], s.m, s.k) + 1);
            for (int level = CPU_SCALAR; level < CPU_LEVEL_COUNT; level++) {
                if (!level_ok((cpu_level)level)) continue;
                for (int threads = 0; threads < 2; threads++) {
                    gemm_op op = {y, x, &pw, bias, s.m, 0, GEMM_ACT_NONE, work};
                    gemm_run(threads ? pool : NULL, &op, GEMM_NATIVE, (cpu_level)level);
                    for (int i = 0; i < s.m * s.n; i++) {
                        /* float summation error of k terms, plus the block scales' products */
                        double tol = (s.k / QK + s.k + 4) * 0x1p-24 * mag[i] + 1e-6;
                        ck_assert_msg(fabs(y[i] - ref[i]) <= tol, "%s %s %dx%dx%d: y[%d] %g, reference %g",
                                      gemm_type_get(types[ti])->name, cpu_level_name((cpu_level)level),
                                      s.m, s.n, s.k, i, y[i], ref[i]);
                    }
                    if (level == CPU_SCALAR && !threads) memcpy(first, y, sizeof(float) * s.m * s.n);
                    else
                        ck_assert_msg(memcmp(first, y, sizeof(float) * s.m * s.n) == 0,
                                      "%s %s threads %d: not bit-identical to the scalar reference",
                                      gemm_type_get(types[ti])->name, cpu_level_name((cpu_level)level), threads);
                }
                /* each row alone = the same row in the batch */
                for (int r = 0; r < s.m; r += 1 + s.m / 5) {
                    gemm_op one = {y, x + (size_t)r * s.k, &pw, bias, 1, 0, GEMM_ACT_NONE, work};
                    gemm_run(NULL, &one, GEMM_NATIVE, (cpu_level)level);
                    ck_assert_msg(memcmp(y, first + (size_t)r * s.n, sizeof(float) * s.n) == 0,
                                  "%s: row %d alone differs", gemm_type_get(types[ti])->name, r);
                }
            }
            free(x), free(w), free(bias), free(packed), free(ref), free(mag), free(y), free(first), free(work);
        }
    threadpool_free(pool);
}
END_TEST

/* The vector activation quantizers store the scalar one's bytes (values, scales and block
 * sums; the scalar sums are checked against the stored values): odd k (partial blocks),
 * an all-zero row, values halfway between two steps (ties to even), NaN and infinities. */
START_TEST(test_activation_quantizers_identical) {
#if defined(__x86_64__)
    static const int ks[] = {1, 15, 16, 17, 31, 32, 33, 100, 2048};
    typedef void quantize_fn(q8_act *, const float *, size_t, int, int, int);
    quantize_fn *fns[] = {q8_act_quantize_avx2, q8_act_quantize_avx512};
    const cpu_level levels[] = {CPU_AVX2, CPU_AVX512};
    unsigned seed = 21;
    for (int ki = 0; ki < COUNT(ks); ki++) {
        const int m = 5, k = ks[ki];
        float *x = malloc(sizeof(float) * m * k);
        for (int i = 0; i < m * k; i++) x[i] = test_rand(&seed) * (float)(1 + i % 5);
        for (int p = 0; p < k; p++) x[k + p] = 0;                             /* row 1: zeros */
        for (int p = 0; p < k; p++) x[2 * k + p] = (float)(p % 9) - 4.5f;      /* row 2: ties */
        x[3 * k + k / 2] = NAN;                                                /* row 3 */
        x[4 * k + k / 3] = INFINITY;                                           /* row 4 */
        if (k > 1) x[4 * k + k - 1] = -INFINITY;
        const size_t bytes = q8_act_bytes(m, k);
        void *want_s = malloc(bytes), *got_s = malloc(bytes);
        memset(want_s, 0x55, bytes);
        q8_act want, got;
        q8_act_init(&want, want_s, m, k);
        q8_act_quantize(&want, x, (size_t)k, 0, m, k);
        for (int b = 0; b < m * want.n_blocks; b++) {          /* s = the sum of the stored values */
            int32_t sum = 0;
            for (int c = 0; c < QK; c++) sum += want.q[(size_t)b * QK + c];
            ck_assert_msg(want.s[b] == sum, "scalar k %d block %d: sum %d, values add to %d", k, b, want.s[b], sum);
        }
        for (int f = 0; f < COUNT(fns); f++) {
            if (!level_ok(levels[f])) continue;
            memset(got_s, 0x55, bytes);
            q8_act_init(&got, got_s, m, k);
            fns[f](&got, x, (size_t)k, 0, m, k);
            ck_assert_msg(memcmp(want.q, got.q, (size_t)m * want.n_blocks * QK) == 0, "%s k %d: values differ",
                          cpu_level_name(levels[f]), k);
            ck_assert_msg(memcmp(want.d, got.d, sizeof(float) * m * want.n_blocks) == 0, "%s k %d: scales differ",
                          cpu_level_name(levels[f]), k);
            ck_assert_msg(memcmp(want.s, got.s, sizeof(int32_t) * m * want.n_blocks) == 0, "%s k %d: sums differ",
                          cpu_level_name(levels[f]), k);
        }
        free(x), free(want_s), free(got_s);
    }
#endif
}
END_TEST

/* The quantized products stay close to the exact f32 product (what a user sees). */
START_TEST(test_products_close_to_f32) {
    const int m = 20, n = 256, k = 768;
    unsigned seed = 77;
    float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k);
    for (int i = 0; i < m * k; i++) x[i] = test_rand(&seed);
    for (int i = 0; i < n * k; i++) w[i] = test_rand(&seed) * 0.05f;
    float *exact = malloc(sizeof(float) * m * n), *y = malloc(sizeof(float) * m * n);
    gemm_type types[] = {GEMM_F32, GEMM_F16, GEMM_BF16, GEMM_Q8_0, GEMM_Q4_0};
    const double min_cosine[] = {1, 0.9999999, 0.99999, 0.9999, 0.995};
    for (int ti = 0; ti < COUNT(types); ti++) {
        void *packed = alloc64(gemm_packed_bytes(types[ti], n, k));
        void *work = malloc(gemm_work_bytes(types[ti], m, k) + 1);
        gemm_weight pw;
        gemm_pack(&pw, packed, types[ti], w, n, k);
        gemm_op op = {ti ? y : exact, x, &pw, NULL, m, 0, GEMM_ACT_NONE, work};
        gemm_run(NULL, &op, GEMM_NATIVE, kernels_level());
        if (ti) {
            double ab = 0, aa = 0, bb = 0;
            for (int i = 0; i < m * n; i++) ab += (double)y[i] * exact[i], aa += (double)y[i] * y[i], bb += (double)exact[i] * exact[i];
            double cosine = ab / sqrt(aa * bb);
            ck_assert_msg(cosine >= min_cosine[ti], "%s: cosine to f32 %.7f < %.7f", gemm_type_get(types[ti])->name,
                          cosine, min_cosine[ti]);
        }
        free(packed), free(work);
    }
    free(x), free(w), free(exact), free(y);
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_f16_against_f16c);
    tcase_add_test(tc, test_bf16_rounding);
    tcase_add_test(tc, test_quantization_error_bounds);
    tcase_add_test(tc, test_products_every_type_and_level);
    tcase_add_test(tc, test_activation_quantizers_identical);
    tcase_add_test(tc, test_products_close_to_f32);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()
