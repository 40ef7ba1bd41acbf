/* test_quant.c - the weight types beyond f32 (kernels/quant.c): f16/bf16 conversion,
 * q8_0/q4_0 quantization, and the products over every type.
 *
 * References:
 *   - f16: the x86 F16C instructions (vcvtps2ph / vcvtph2ps) on every one of the 65536
 *     half values and on a million random and edge-case floats; elsewhere exact
 *     properties (round trip, monotonicity);
 *   - bf16: rounding computed here in double (nearest even of the 8-bit mantissa); the
 *     order of the bf16 product against the AVX-512 BF16 instruction itself (vdpbf16ps)
 *     on random and edge lanes (subnormals, ties, overflow, cancellation), where the CPU
 *     has it; every bf16 micro-kernel bit for bit against the scalar reference on edge
 *     values and tile edges;
 *   - quantization: per-element error bounds derived from the block's scale;
 *   - products: a double-precision dot product over the dequantized weights (quant_row)
 *     and, for the int8 types, the dequantized activations (d x q, computed here from the
 *     stored scales and values), which every kernel level must match within float
 *     summation error; thread counts and rows computed alone must be bit-identical;
 *   - micro-kernels: every table row of these types that this CPU can run (the SIMD
 *     variants picked by extension: AVX-512 VNNI, NEON sdot / smmla / plain) against the
 *     scalar reference of its type, bit for bit, on every tile edge;
 *   - dispatch: the kernel chosen for each type follows the CPU's extensions as the OS
 *     reports them, read here straight from the hwcaps (aarch64) or cpuid (x86), so qemu's
 *     CPU models (tests/run_tests.sh, arm64 stage) drive each NEON path in turn.
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
static int have_bf16_dot(void) { return (cpu_features() & CPU_FEAT_AVX512_BF16) != 0; }
/* One vdpbf16ps on 16 lanes: acc[j] += x[j] . w[j] over each lane's bf16 pair. */
__attribute__((target("avx512bf16,avx512f"))) static void hw_dpbf16(float *acc, const uint32_t *x, const uint32_t *w) {
    const __m512 sum = _mm512_dpbf16_ps(_mm512_loadu_ps(acc), (__m512bh)_mm512_loadu_si512(x),
                                        (__m512bh)_mm512_loadu_si512(w));
    _mm512_storeu_ps(acc, sum);
}
#else
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif
static int have_bf16_dot(void) { return 0; }
static void hw_dpbf16(float *acc, const uint32_t *x, const uint32_t *w) { (void)acc, (void)x, (void)w; }
static int have_f16c(void) { return 0; }
static uint16_t hw_to_f16(float f) { (void)f; return 0; }
static float hw_from_f16(uint16_t h) { (void)h; return 0; }
#endif

#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

/* aligned_alloc wants a size that is a multiple of the alignment (a q8_0 block is 544 bytes). */
static void *alloc64(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float float_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* bf16 rounding computed here: of the two bf16 neighbours of f (its top half, and that plus
 * one unit), the nearer in double, a tie to the even one. */
static uint16_t bf16_nearest(float f) {
    const uint32_t lo_bits = bits(f) & 0xffff0000u, hi_bits = lo_bits + 0x10000u;
    const double dl = fabs((double)f - float_bits(lo_bits)), dh = fabs((double)float_bits(hi_bits) - f);
    return (uint16_t)((dl < dh || (dl == dh && !((lo_bits >> 16) & 1))) ? lo_bits >> 16 : hi_bits >> 16);
}
/* The activations of a bf16 product: an f32 subnormal becomes zero of its sign (DAZ), then
 * bf16_nearest (finite values; NaN and infinities are handled by the caller's test). */
static float bf16_activation(float f) {
    if (fabsf(f) < 0x1p-126f) return copysignf(0.0f, f);
    return float_bits((uint32_t)bf16_nearest(f) << 16);
}

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
        uint16_t b = f32_to_bf16(f), want = bf16_nearest(f);
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
 * q8_act_quantize stores them: d = max|x| / 127, q = round(x * 127 / max|x|)), for bf16
 * the activations rounded to bf16 (bf16_activation, computed here). */
static void reference(double *ref, double *mag, const float *x, const gemm_weight *pw, const float *bias, int m) {
    const int n = pw->n, k = pw->k, is_int = pw->type == GEMM_Q8_0 || pw->type == GEMM_Q4_0;
    float *row = malloc(sizeof(float) * k), *xd = malloc(sizeof(float) * k);
    for (int i = 0; i < m; i++) {
        for (int b = 0; b < k; b += QK) {
            float amax = 0;
            for (int p = b; p < b + QK && p < k; p++) amax = fmaxf(amax, fabsf(x[(size_t)i * k + p]));
            for (int p = b; p < b + QK && p < k; p++) {
                const float v = x[(size_t)i * k + p];
                xd[p] = pw->type == GEMM_BF16 ? bf16_activation(v)
                        : !is_int ? v : amax > 0 ? (amax / 127.0f) * nearbyintf(v * (127.0f / amax)) : 0;
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
#if defined(__x86_64__) || defined(__aarch64__)
    static const int ks[] = {1, 15, 16, 17, 31, 32, 33, 100, 2048};
    typedef void quantize_fn(q8_act *, const float *, size_t, int, int, int);
#if defined(__x86_64__)
    quantize_fn *fns[] = {q8_act_quantize_avx2, q8_act_quantize_avx512};
    const cpu_level levels[] = {CPU_AVX2, CPU_AVX512};
#else
    quantize_fn *fns[] = {q8_act_quantize_neon};
    const cpu_level levels[] = {CPU_NEON};
#endif
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

/* ---- Every micro-kernel of these types against the scalar reference, on every tile edge ---- */
static gemm_ukernel_fn *scalar_of(gemm_type type) {
    switch (type) {
    case GEMM_F16: return gemm_f16_scalar_4x16;
    /* bf16 reads its activations rounded in the work buffer, in pairs of k:
     * test_bf16_kernels_edge_values compares its kernels on every tile edge */
    case GEMM_Q8_0: return gemm_q8_0_scalar_4x16;
    case GEMM_Q4_0: return gemm_q4_0_scalar_4x16;
    default: return NULL;
    }
}

/* The extensions a row needs that this CPU lacks, by name ("" if none). */
static const char *missing_needs(const gemm_ukernel *uk) {
    if (!cpu_level_usable(uk->isa)) return cpu_level_name(uk->isa);
    if (gemm_ukernel_usable(uk)) return "";
    return uk->needs & GEMM_NEEDS_VNNI   ? "avx512_vnni"
           : uk->needs & GEMM_NEEDS_BF16 ? "avx512_bf16"
           : uk->needs & GEMM_NEEDS_I8MM ? "i8mm"
                                         : "dotprod";
}

START_TEST(test_ukernels_match_scalar) {
    int n_uk;
    const gemm_ukernel *uk = gemm_ukernels(&n_uk);
    static const int half_k[] = {1, 2, 3, 4, 5, 7, 63, 65}, int_k[] = {32, 64, 96, 320};
    for (int u = 0; u < n_uk; u++) {
        gemm_ukernel_fn *ref_fn = scalar_of(uk[u].type);
        if (!ref_fn || uk[u].run == ref_fn) continue;
        if (*missing_needs(&uk[u])) {
            TEST_SKIP_PART("%s: this CPU has no %s", uk[u].name, missing_needs(&uk[u]));
            continue;
        }
        const int is_int = uk[u].type == GEMM_Q8_0 || uk[u].type == GEMM_Q4_0;
        const int *ks = is_int ? int_k : half_k, n_ks = is_int ? COUNT(int_k) : COUNT(half_k);
        const int mr = uk[u].mr, nr = uk[u].nr;
        for (int m = 1; m <= mr; m++)
            for (int n = 1; n <= nr; n += (n == 1 || n % 16 >= 15 || n % 16 == 0) ? 1 : 6)
                for (int ki = 0; ki < n_ks; ki++)
                    for (int variant = 0; variant < 4; variant++) {
                        const int k = ks[ki], use_bias = variant & 1, load_y = variant >> 1;
                        const int ldx = k + 33, ldy = n + 5;        /* strides wider than the tile */
                        unsigned seed = 1000 + 97 * m + 13 * n + k + variant;
                        float *x = malloc(sizeof(float) * m * ldx), *w = malloc(sizeof(float) * n * k);
                        float *bias = malloc(sizeof(float) * n);
                        float *y = malloc(sizeof(float) * (m * ldy + 16)), *ref = malloc(sizeof(float) * (m * ldy + 16));
                        for (int i = 0; i < m * ldx; i++) x[i] = test_rand(&seed) * (1 + i % 3);
                        for (int i = 0; i < n * k; i++) w[i] = test_rand(&seed) * 0.1f;
                        for (int i = 0; i < n; i++) bias[i] = test_rand(&seed);
                        for (int i = 0; i < m * ldy + 16; i++) y[i] = ref[i] = test_rand(&seed);
                        void *packed = alloc64(gemm_packed_bytes(uk[u].type, n, k));
                        gemm_weight pw;
                        gemm_pack(&pw, packed, uk[u].type, w, n, k);
                        if (uk[u].type == GEMM_Q8_0)      /* a file may hold -128 (the packer never writes it) */
                            ((q8_0_block *)packed)->q[variant][(n - 1) % 16][variant] = -128;
                        /* the activations quantized as the driver does, in rows of ldx */
                        void *act_mem = malloc(q8_act_bytes(m, ldx));
                        q8_act act;
                        q8_act_init(&act, act_mem, m, ldx);
                        q8_act_quantize(&act, x, (size_t)ldx, 0, m, ldx);
                        gemm_tile t = {.x = x, .ldx = (size_t)ldx, .w = pw.panels, .panel_bytes = pw.panel_bytes,
                                       .y = y, .ldy = (size_t)ldy, .bias = use_bias ? bias : NULL, .m = m, .n = n,
                                       .k = k, .load_y = load_y, .next_w = variant == 3 ? pw.panels : NULL,
                                       .type = uk[u].type, .xq = act.q, .xd = act.d, .xs = act.s,
                                       .ldxq = (size_t)act.n_blocks * QK, .ldxd = (size_t)act.n_blocks};
                        uk[u].run(&t);
                        t.y = ref;
                        ref_fn(&t);
                        ck_assert_msg(memcmp(y, ref, sizeof(float) * (size_t)(m * ldy + 16)) == 0,
                                      "%s: m %d n %d k %d bias %d load_y %d differs from the scalar reference "
                                      "(or wrote outside its tile)", uk[u].name, m, n, k, use_bias, load_y);
                        free(x), free(w), free(bias), free(y), free(ref), free(packed), free(act_mem);
                    }
    }
}
END_TEST

/* The driver's kernel per type follows the extensions the OS reports for this CPU. */
START_TEST(test_dispatch_follows_cpu_extensions) {
    const cpu_level level = cpu_detect();
    const gemm_ukernel *q8 = gemm_ukernel_for(GEMM_Q8_0, level), *q4 = gemm_ukernel_for(GEMM_Q4_0, level);
    const gemm_ukernel *f16 = gemm_ukernel_for(GEMM_F16, level);
    ck_assert_int_eq(q8->needs, q4->needs);
    const char *want_q8, *want_f16;
#if defined(__aarch64__) && defined(__linux__)
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    want_q8 = (hwcap2 & HWCAP2_I8MM) ? "neon-i8mm q8_0 4x16" : (hwcap & HWCAP_ASIMDDP) ? "neon-dotprod q8_0 3x16"
                                                                                      : "neon q8_0 3x16";
    want_f16 = "neon f16 5x16";
    printf("dispatch on this CPU: %s, %s, %s\n", f16->name, q8->name, q4->name);
#elif defined(__x86_64__)
    want_q8 = level == CPU_AVX512 && __builtin_cpu_supports("avx512vnni") ? "avx512-vnni q8_0 8x32"
            : level >= CPU_AVX2 ? "avx2 q8_0 4x16" : "scalar q8_0 4x16";
    want_f16 = level == CPU_AVX512 ? "avx512 f16 8x32" : level >= CPU_AVX2 ? "avx2 f16 6x16" : "scalar f16 4x16";
#else
    want_q8 = "scalar q8_0 4x16", want_f16 = "scalar f16 4x16";
#endif
    ck_assert_str_eq(q8->name, want_q8);
    ck_assert_str_eq(f16->name, want_f16);
    /* the scalar level always takes the references */
    ck_assert_str_eq(gemm_ukernel_for(GEMM_Q4_0, CPU_SCALAR)->name, "scalar q4_0 4x16");
}
END_TEST

/* CLIP_GEMM_TILE naming a q8_0 kernel: that type takes it (if usable), the others keep theirs.
 * Check runs each test in its own process, so the setting is read fresh here. */
START_TEST(test_dispatch_tile_override) {
    const char *ck_fork = getenv("CK_FORK");
    if (ck_fork && strcmp(ck_fork, "no") == 0) TEST_SKIP("CLIP_GEMM_TILE: needs a process per test (CK_FORK=no)");
    const cpu_level level = cpu_detect();
    const char *want = level == CPU_NEON ? "neon q8_0 3x16" : level >= CPU_AVX2 ? "avx2 q8_0 4x16" : "scalar q8_0 4x16";
    setenv("CLIP_GEMM_TILE", want, 1);
    ck_assert_str_eq(gemm_ukernel_for(GEMM_Q8_0, level)->name, want);
    ck_assert_str_ne(gemm_ukernel_for(GEMM_Q4_0, level)->name, want);
    ck_assert_str_eq(gemm_ukernel_for(GEMM_Q8_0, CPU_SCALAR)->name, "scalar q8_0 4x16");   /* above the level */
}
END_TEST

/* ---- bf16: the order of vdpbf16ps ------------------------------------------------------- */
static uint64_t xorshift(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

/* A bf16 from a mix meant to reach every branch of the order: zeros and subnormals, the
 * smallest and largest exponents (products that underflow or overflow), infinities (with
 * `inf` set), and ordinary values. */
static uint16_t edge_bf16(uint64_t *s, int inf) {
    const uint64_t r = xorshift(s);
    const uint16_t sign = (uint16_t)((r >> 8 & 1) << 15), man = (uint16_t)(r >> 16 & 0x7f);
    const unsigned e = (unsigned)(r >> 24);
    switch (r % 8) {
    case 0: return sign | man;                                  /* subnormal or zero */
    case 1: return inf ? (uint16_t)(sign | 0x7f80) : sign;      /* infinity */
    case 2: return sign | (uint16_t)((e % 20 + 1) << 7) | man;  /* tiny */
    case 3: return sign | (uint16_t)((e % 20 + 235) << 7) | man; /* huge */
    default: return sign | (uint16_t)((e % 40 + 107) << 7) | man; /* ordinary */
    }
}
static float edge_f32(uint64_t *s) {
    const uint64_t r = xorshift(s);
    const uint32_t sign = (uint32_t)(r >> 8 & 1) << 31, man = (uint32_t)(r >> 9) & 0x7fffff;
    const unsigned e = (unsigned)(r >> 40);
    switch (r % 6) {
    case 0: return float_bits(sign | man);                      /* subnormal */
    case 1: return float_bits(sign | (e % 30 + 1) << 23 | man);
    case 2: return float_bits(sign | (e % 30 + 225) << 23 | man);
    case 3: return 0.0f;
    default: return float_bits(sign | (e % 60 + 97) << 23 | man);
    }
}

static int same_bits(float a, float b) { return bits(a) == bits(b) || (isnan(a) && isnan(b)); }

/* The scalar reference's order (quant.h) against the instruction it describes: a 1 x 16
 * tile with k = 2 is exactly one vdpbf16ps per lane. 2 million lanes of random edge
 * values (a fifth with the odd product made to cancel the even one's operands), then the
 * hand-picked cases: a sum just below 2^-126 that rounds up to it stays (x86 detects
 * tininess after rounding), exact subnormal results flush to zero of their sign, a
 * subnormal start is read as zero, overflow to infinity. */
START_TEST(test_bf16_order_against_vdpbf16ps) {
    if (!have_bf16_dot()) TEST_SKIP("no AVX-512 BF16 on this CPU: no hardware reference for vdpbf16ps's order");
    uint64_t s = 88172645463325252ull;
    uint16_t xb[2], wb[2 * GEMM_PANEL] __attribute__((aligned(64)));
    float acc[GEMM_PANEL], hw[GEMM_PANEL], ref[GEMM_PANEL];
    uint32_t xl[GEMM_PANEL], wl[GEMM_PANEL];
    for (int round = 0; round < 125000 + 8; round++) {
        const int hand = round - 125000;        /* >= 0: the hand-picked cases */
        xb[0] = edge_bf16(&s, 1), xb[1] = edge_bf16(&s, 1);
        for (int c = 0; c < GEMM_PANEL; c++) {
            wb[2 * c] = edge_bf16(&s, 1), wb[2 * c + 1] = edge_bf16(&s, 1);
            if (xorshift(&s) % 5 == 0) wb[2 * c] = (uint16_t)(xb[1] ^ 0x8000), wb[2 * c + 1] = xb[0];
            acc[c] = edge_f32(&s);
        }
        if (hand >= 0) {
            static const struct { float acc; float x1, w1, x0, w0; } cases[] = {
                {0x1p-126f, 0x1p-80f, -0x1p-80f, 0, 0},          /* 2^-126 - 2^-160: stays 2^-126 */
                {0x1p-125f, 0x1.8p-63f, -0x1p-63f, 0, 0},        /* 2^-127 exactly: flushed */
                {-0x1p-125f, 0, 0, 0x1.8p-63f, 0x1p-63f},        /* -2^-127 in the even step: -0 */
                {0x1p-130f, 0, 0, 0, 0},                         /* subnormal start: 0 */
                {-0x1p-140f, 1, 1, -1, 1},                       /* -> 1, then 0 */
                {0x1.fffffep127f, 0x1.fep127f, 1, 0, 0},         /* overflow: inf */
                {1, 0x1.02p0f, 0x1.02p0f, -1, 1},                /* a product needing 16 bits */
                {0x1p24f, 1, 1, 1, 1},                           /* ties to even twice */
            };
            const int h = hand % COUNT(cases);
            acc[0] = cases[h].acc;
            xb[1] = (uint16_t)(bits(cases[h].x1) >> 16), xb[0] = (uint16_t)(bits(cases[h].x0) >> 16);
            wb[1] = (uint16_t)(bits(cases[h].w1) >> 16), wb[0] = (uint16_t)(bits(cases[h].w0) >> 16);
        }
        for (int c = 0; c < GEMM_PANEL; c++) {
            xl[c] = xb[0] | (uint32_t)xb[1] << 16;
            wl[c] = wb[2 * c] | (uint32_t)wb[2 * c + 1] << 16;
        }
        memcpy(hw, acc, sizeof hw);
        hw_dpbf16(hw, xl, wl);
        memcpy(ref, acc, sizeof ref);
        gemm_tile t = {.w = wb, .panel_bytes = sizeof wb, .y = ref, .ldy = GEMM_PANEL, .m = 1, .n = GEMM_PANEL,
                       .k = 2, .load_y = 1, .type = GEMM_BF16, .xb = xb, .ldxb = 2};
        gemm_bf16_scalar_4x16(&t);
        for (int c = 0; c < GEMM_PANEL; c++)
            ck_assert_msg(same_bits(ref[c], hw[c]),
                          "acc %a + (%a . %a, %a . %a): vdpbf16ps %a, the scalar reference %a", acc[c],
                          bf16_to_f32(xb[1]), bf16_to_f32(wb[2 * c + 1]), bf16_to_f32(xb[0]), bf16_to_f32(wb[2 * c]),
                          hw[c], ref[c]);
    }
    /* a hand-picked case really is what it says (so the list above cannot silently rot) */
    {
        uint16_t x2[2] = {0, (uint16_t)(bits(0x1p-80f) >> 16)}, w2[2 * GEMM_PANEL] __attribute__((aligned(64))) = {0};
        w2[1] = (uint16_t)(bits(-0x1p-80f) >> 16);
        float y = 0x1p-126f;
        gemm_tile t = {.w = w2, .panel_bytes = sizeof w2, .y = &y, .ldy = 1, .m = 1, .n = 1, .k = 2, .load_y = 1,
                       .type = GEMM_BF16, .xb = x2, .ldxb = 2};
        gemm_bf16_scalar_4x16(&t);
        ck_assert_msg(y == 0x1p-126f, "2^-126 - 2^-160 gave %a", y);
    }
}
END_TEST

/* The activation rounding (scalar and AVX-512) against bf16_activation computed here, on
 * odd k (partial vectors, the zero pad), subnormals, ties, the largest floats (rounding
 * up to infinity), infinities and NaN (must stay NaN, quiet). */
START_TEST(test_bf16_activation_rounding) {
    static const int ks[] = {1, 7, 15, 16, 17, 63, 65, 768};
    uint64_t s = 12345;
    unsigned seed = 5;
    for (int ki = 0; ki < COUNT(ks); ki++) {
        const int k = ks[ki], m = 3;
        const size_t ldxb = bf16_act_stride(k);
        float *x = malloc(sizeof(float) * m * k);
        uint16_t *a = malloc(bf16_act_bytes(m, k)), *b = malloc(bf16_act_bytes(m, k));
        for (int i = 0; i < m * k; i++) {
            switch (xorshift(&s) % 6) {
            case 0: x[i] = edge_f32(&s); break;
            case 1: x[i] = float_bits((bits(edge_f32(&s)) & 0xffff0000u) | 0x8000u); break;  /* a tie */
            case 2: x[i] = i % 3 == 0 ? -INFINITY : i % 3 == 1 ? NAN : 0x1.fffffep127f; break;
            default: x[i] = test_rand(&seed) * 10; break;
            }
        }
        memset(a, 0xee, bf16_act_bytes(m, k)), memset(b, 0xee, bf16_act_bytes(m, k));
        bf16_round_rows(a, x, (size_t)k, 0, m, k);
        for (int r = 0; r < m; r++)
            for (int p = 0; p < (int)ldxb; p++) {
                const float v = bf16_to_f32(a[r * ldxb + p]);
                if (p == k) { ck_assert_msg(a[r * ldxb + p] == 0, "k %d: the pad is %04x", k, a[r * ldxb + p]); continue; }
                const float f = x[(size_t)r * k + p];
                if (isnan(f)) ck_assert_msg(isnan(v) && (a[r * ldxb + p] & 0x40), "NaN became %04x", a[r * ldxb + p]);
                else if (isinf(f) || fabsf(f) > 0x1.fefffep127f) ck_assert(v == copysignf(INFINITY, f));
                else ck_assert_msg(bits(v) == bits(bf16_activation(f)), "%a -> %a, want %a", f, v, bf16_activation(f));
            }
#if defined(__x86_64__)
        if (cpu_level_usable(CPU_AVX512)) {
            bf16_round_rows_avx512(b, x, (size_t)k, 0, m, k);
            ck_assert_msg(memcmp(a, b, sizeof(uint16_t) * m * ldxb) == 0, "k %d: AVX-512 rounding differs", k);
        }
#endif
        free(x), free(a), free(b);
    }
}
END_TEST

/* Every bf16 micro-kernel against the scalar reference, bit for bit, on tile edges (m 1 to
 * MR + 1, n 1 to 33, odd k), bias and load_y, with edge values: tiny products (flushes),
 * subnormal starts, cancellations (signed zeros), overflow to infinity. */
START_TEST(test_bf16_kernels_edge_values) {
    int n_uk;
    const gemm_ukernel *uk = gemm_ukernels(&n_uk);
    static const int ms[] = {1, 2, 3, 4, 5, 7, 9, 10, 11}, ns[] = {1, 7, 16, 17, 31, 32, 33}, ks[] = {1, 2, 7, 63, 65};
    uint64_t s = 999;
    int tried = 0;
    for (int u = 0; u < n_uk; u++) {
        if (uk[u].type != GEMM_BF16 || uk[u].isa == CPU_SCALAR) continue;
        if (!cpu_level_usable(uk[u].isa) || !gemm_ukernel_usable(&uk[u])) {
            TEST_SKIP_PART("%s: not runnable on this CPU", uk[u].name);
            continue;
        }
        tried++;
        for (int mi = 0; mi < COUNT(ms); mi++)
            for (int ni = 0; ni < COUNT(ns); ni++)
                for (int ki = 0; ki < COUNT(ks); ki++)
                    for (int variant = 0; variant < 4; variant++) {
                        const int m = ms[mi] < uk[u].mr ? ms[mi] : uk[u].mr, n = ns[ni] < uk[u].nr ? ns[ni] : uk[u].nr;
                        const int k = ks[ki], kp = (int)bf16_act_stride(k), ldy = n + 3;
                        float *w = malloc(sizeof(float) * n * k), *x = malloc(sizeof(float) * m * k);
                        float *bias = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * m * ldy);
                        float *ref = malloc(sizeof(float) * m * ldy);
                        for (int i = 0; i < n * k; i++) w[i] = bf16_to_f32(edge_bf16(&s, variant == 3));
                        for (int i = 0; i < m * k; i++) x[i] = bf16_to_f32(edge_bf16(&s, 0));
                        for (int i = 0; i < n; i++) bias[i] = edge_f32(&s);
                        for (int i = 0; i < m * ldy; i++) y[i] = ref[i] = edge_f32(&s);
                        void *packed = alloc64(gemm_packed_bytes(GEMM_BF16, n, k));
                        gemm_weight pw;
                        gemm_pack(&pw, packed, GEMM_BF16, w, n, k);
                        /* a few subnormal weights straight into the panel (a foreign file) */
                        ((uint16_t *)packed)[xorshift(&s) % (size_t)k] = (uint16_t)(xorshift(&s) & 0x807f);
                        uint16_t *xb = malloc(bf16_act_bytes(m, k));
                        bf16_round_rows(xb, x, (size_t)k, 0, m, k);
                        gemm_tile t = {.w = packed, .panel_bytes = pw.panel_bytes, .y = y, .ldy = (size_t)ldy,
                                       .bias = variant & 1 ? bias : NULL, .m = m, .n = n, .k = kp,
                                       .load_y = variant >> 1, .type = GEMM_BF16, .xb = xb, .ldxb = (size_t)kp};
                        uk[u].run(&t);
                        t.y = ref;
                        gemm_bf16_scalar_4x16(&t);
                        for (int i = 0; i < m * ldy; i++)
                            ck_assert_msg(same_bits(y[i], ref[i]), "%s m %d n %d k %d variant %d: y[%d] = %a, scalar %a",
                                          uk[u].name, m, n, k, variant, i, y[i], ref[i]);
                        free(w), free(x), free(bias), free(y), free(ref), free(packed), free(xb);
                    }
    }
    (void)tried;
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
    tcase_add_test(tc, test_ukernels_match_scalar);
    tcase_add_test(tc, test_dispatch_follows_cpu_extensions);
    tcase_add_test(tc, test_dispatch_tile_override);
    tcase_add_test(tc, test_products_close_to_f32);
    tcase_add_test(tc, test_bf16_order_against_vdpbf16ps);
    tcase_add_test(tc, test_bf16_activation_rounding);
    tcase_add_test(tc, test_bf16_kernels_edge_values);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()
