/* test_gptq.c - GPTQ rounding (kernels/gptq.c) and the double-precision routines it runs on
 * (kernels/blas_loader.c).
 *
 * References:
 *   - GPTQ's recurrence as its paper derives it from Optimal Brain Quantization, written
 *     here in plain loops: the inverse of H inverted explicitly (Gauss-Jordan), each column's
 *     error spread with that inverse's row, then the column eliminated from the inverse.
 *     kernels/gptq.c computes the same from a Cholesky factor in groups with a matrix
 *     product: levels and scales must be identical, on odd sizes and across group edges;
 *   - uncorrelated inputs: exactly plain rounding (quant_pack), scales included;
 *   - a layer's output error |(W - Q) x^T| on correlated inputs: well below plain
 *     rounding's (the point of the method);
 *   - OpenBLAS's routines against the plain loops (blas_double_loops), and those loops
 *     against the definitions (L L^T = A, U U^-1 = I).
 */
#include <math.h>
#include <stdint.h>

#include "testutil.h"
#include "../kernels/gptq.h"
#include "../kernels/kernels.h"
#include "../kernels/quant.h"

#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

/* Correlated inputs x [rows, k]: a few strong directions plus weak noise; column `dead`
 * (if >= 0) all zero, as an input no calibration row reaches. */
static float *correlated_inputs(int rows, int k, int dead, unsigned seed) {
    const int m = k < 6 ? k : 6;
    float *x = malloc(sizeof(float) * (size_t)rows * k), *a = malloc(sizeof(float) * (size_t)m * k);
    for (int i = 0; i < m * k; i++) a[i] = test_rand(&seed);
    for (int r = 0; r < rows; r++) {
        float z[6];              /* the row's weights of the strong directions */
        for (int d = 0; d < m; d++) z[d] = (float)(m - d) * test_rand(&seed);
        for (int c = 0; c < k; c++) {
            float v = 0.1f * test_rand(&seed);
            for (int d = 0; d < m; d++) v += a[d * k + c] * z[d];
            x[(size_t)r * k + c] = c == dead ? 0.0f : v;
        }
    }
    free(a);
    return x;
}

/* The reference: Optimal Brain Quantization's recurrence with an explicit inverse. */
static void reference_gptq(gemm_type type, double *w, int n, int k, const float *x, int rows, uint16_t *scales) {
    const int n_blocks = (k + QK - 1) / QK;
    double *h = calloc((size_t)k * k, sizeof(double)), *inv = calloc((size_t)k * k, sizeof(double));
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            double s = 0;
            for (int r = 0; r < rows; r++) s += (double)x[(size_t)r * k + i] * x[(size_t)r * k + j];
            h[i * k + j] = s / rows;
        }
    double mean = 0;
    int live = 0;
    for (int c = 0; c < k; c++)
        if (h[c * k + c] > 0) mean += h[c * k + c], live++;
    mean = live ? mean / live : 1.0;
    for (int c = 0; c < k; c++) {
        if (!(h[c * k + c] > 0)) {          /* an input never seen: weight 0, H row and column unit */
            for (int j = 0; j < k; j++) h[c * k + j] = h[j * k + c] = 0;
            h[c * k + c] = 1;
            for (int r = 0; r < n; r++) w[r * k + c] = 0;
        }
        h[c * k + c] += GPTQ_DAMP * mean;
    }
    /* Gauss-Jordan with partial pivoting: inv = h^-1 */
    for (int i = 0; i < k; i++) inv[i * k + i] = 1;
    for (int c = 0; c < k; c++) {
        int p = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(h[r * k + c]) > fabs(h[p * k + c])) p = r;
        for (int j = 0; j < k; j++) {
            double t = h[c * k + j]; h[c * k + j] = h[p * k + j]; h[p * k + j] = t;
            t = inv[c * k + j]; inv[c * k + j] = inv[p * k + j]; inv[p * k + j] = t;
        }
        const double piv = h[c * k + c];
        for (int j = 0; j < k; j++) h[c * k + j] /= piv, inv[c * k + j] /= piv;
        for (int r = 0; r < k; r++)
            if (r != c) {
                const double f = h[r * k + c];
                for (int j = 0; j < k; j++) h[r * k + j] -= f * h[c * k + j], inv[r * k + j] -= f * inv[c * k + j];
            }
    }
    for (int j = 0; j < k; j++) {
        if (j % QK == 0)
            for (int r = 0; r < n; r++) {
                float v[QK];
                for (int c = 0; c < QK; c++) v[c] = j + c < k ? (float)w[r * k + j + c] : 0.0f;
                scales[r * n_blocks + j / QK] = quant_block_scale(type, v);
            }
        for (int r = 0; r < n; r++) {
            const float d = f16_to_f32(scales[r * n_blocks + j / QK]);
            const double q = (double)quant_level(type, (float)w[r * k + j], d) * d;
            const double e = (w[r * k + j] - q) / inv[j * k + j];
            w[r * k + j] = q;
            for (int j2 = j + 1; j2 < k; j2++) w[r * k + j2] -= e * inv[j * k + j2];
        }
        for (int a = j + 1; a < k; a++)      /* column j is fixed: eliminate it from the inverse */
            for (int b = j + 1; b < k; b++) inv[a * k + b] -= inv[a * k + j] * inv[j * k + b] / inv[j * k + j];
    }
    free(h), free(inv);
}

static const struct { int n, k, rows, dead; } cases[] = {
    {1, 1, 3, -1}, {7, 7, 20, -1}, {5, 63, 40, 5}, {16, 65, 200, -1}, {9, 200, 50, 130}, {3, 300, 500, -1},
};
static const gemm_type types[] = {GEMM_Q8_0, GEMM_Q4_0};

static void check_against_reference(int loops) {
    blas_double_loops(loops);
    for (int t = 0; t < COUNT(types); t++)
        for (int c = 0; c < COUNT(cases); c++) {
            const int n = cases[c].n, k = cases[c].k, rows = cases[c].rows, nb = (k + QK - 1) / QK;
            unsigned seed = 100 + c;
            float *x = correlated_inputs(rows, k, cases[c].dead, seed + 7);
            float *w = malloc(sizeof(float) * (size_t)n * k);
            double *ref = malloc(sizeof(double) * (size_t)n * k);
            for (int i = 0; i < n * k; i++) ref[i] = w[i] = 0.05f * test_rand(&seed);
            uint16_t *sc = malloc(sizeof(uint16_t) * (size_t)n * nb), *ref_sc = malloc(sizeof(uint16_t) * (size_t)n * nb);
            ck_assert_int_eq(gptq_quantize(types[t], w, n, k, x, rows, sc), 0);
            reference_gptq(types[t], ref, n, k, x, rows, ref_sc);
            int differ = 0;
            for (int i = 0; i < n * k; i++) differ += w[i] != (float)ref[i];
            for (int i = 0; i < n * nb; i++) differ += sc[i] != ref_sc[i];
            ck_assert_msg(differ == 0, "%s n %d k %d rows %d (loops %d): %d values or scales differ from the reference",
                          gemm_type_get(types[t])->name, n, k, rows, loops, differ);
            free(x), free(w), free(ref), free(sc), free(ref_sc);
        }
    blas_double_loops(0);
}

START_TEST(test_matches_reference_recurrence) { check_against_reference(0); }
END_TEST

START_TEST(test_matches_reference_recurrence_plain_loops) { check_against_reference(1); }
END_TEST

/* Plain rounding, as quant_pack stores it: the dequantized rows [n, k] into out. */
static void plain_rounding(gemm_type type, const float *w, int n, int k, float *out) {
    void *packed = malloc(quant_panel_bytes(type, k) * (size_t)((n + GEMM_PANEL - 1) / GEMM_PANEL));
    quant_pack(packed, type, w, n, k);
    const gemm_weight pw = gemm_weight_packed(type, packed, n, k);
    for (int r = 0; r < n; r++) quant_row(&pw, r, out + (size_t)r * k);
    free(packed);
}

/* Inputs along the axes only: H diagonal, nothing to move; plain rounding exactly. */
START_TEST(test_uncorrelated_inputs_give_plain_rounding) {
    for (int t = 0; t < COUNT(types); t++) {
        const int n = 17, k = 70, nb = (k + QK - 1) / QK;
        unsigned seed = 5;
        float *x = calloc((size_t)k * k, sizeof(float)), *w = malloc(sizeof(float) * n * k), *plain = malloc(sizeof(float) * n * k);
        for (int i = 0; i < k; i++) x[i * k + i] = 0.5f + (float)(i % 5);
        for (int i = 0; i < n * k; i++) plain[i] = w[i] = 0.1f * test_rand(&seed);
        uint16_t *sc = malloc(sizeof(uint16_t) * n * nb);
        ck_assert_int_eq(gptq_quantize(types[t], w, n, k, x, k, sc), 0);
        float *rounded = malloc(sizeof(float) * n * k);
        plain_rounding(types[t], plain, n, k, rounded);
        for (int r = 0; r < n; r++) {
            for (int j = 0; j < k; j++)
                ck_assert_msg(w[r * k + j] == rounded[r * k + j], "%s row %d col %d: %g, plain rounding %g",
                              gemm_type_get(types[t])->name, r, j, w[r * k + j], rounded[r * k + j]);
            for (int b = 0; b < nb; b++) {
                float v[QK];
                for (int c = 0; c < QK; c++) v[c] = b * QK + c < k ? plain[r * k + b * QK + c] : 0.0f;
                ck_assert_int_eq(sc[r * nb + b], quant_block_scale(types[t], v));
            }
        }
        free(x), free(w), free(plain), free(sc), free(rounded);
    }
}
END_TEST

static double output_error(const float *q, const float *w, const float *x, int n, int k, int rows) {
    double s = 0;
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < n; o++) {
            double d = 0;
            for (int j = 0; j < k; j++) d += ((double)q[o * k + j] - w[o * k + j]) * x[(size_t)r * k + j];
            s += d * d;
        }
    return s;
}

START_TEST(test_output_error_below_plain_rounding) {
    for (int t = 0; t < COUNT(types); t++) {
        const int n = 24, k = 160, rows = 400, nb = (k + QK - 1) / QK;
        unsigned seed = 11;
        float *x = correlated_inputs(rows, k, -1, 3), *w = malloc(sizeof(float) * n * k);
        float *g = malloc(sizeof(float) * n * k), *plain = malloc(sizeof(float) * n * k);
        for (int i = 0; i < n * k; i++) g[i] = w[i] = 0.05f * test_rand(&seed);
        uint16_t *sc = malloc(sizeof(uint16_t) * n * nb);
        ck_assert_int_eq(gptq_quantize(types[t], g, n, k, x, rows, sc), 0);
        plain_rounding(types[t], w, n, k, plain);
        const double e_gptq = output_error(g, w, x, n, k, rows), e_plain = output_error(plain, w, x, n, k, rows);
        /* here: 0.02x (q8_0), 0.05x (q4_0) of plain rounding's */
        ck_assert_msg(e_gptq < 0.25 * e_plain, "%s: output error %g, plain rounding %g",
                      gemm_type_get(types[t])->name, e_gptq, e_plain);
        free(x), free(w), free(g), free(plain), free(sc);
    }
}
END_TEST

START_TEST(test_non_finite_inputs_refused) {
    float x[4 * 8], w[2 * 8], keep[2 * 8];
    uint16_t sc[2];
    unsigned seed = 1;
    for (int i = 0; i < 32; i++) x[i] = test_rand(&seed);
    for (int i = 0; i < 16; i++) keep[i] = w[i] = test_rand(&seed);
    x[9] = NAN;
    ck_assert_int_eq(gptq_quantize(GEMM_Q4_0, w, 2, 8, x, 4, sc), -2);
    x[9] = INFINITY;
    ck_assert_int_eq(gptq_quantize(GEMM_Q8_0, w, 2, 8, x, 4, sc), -2);
    ck_assert(memcmp(w, keep, sizeof w) == 0);
}
END_TEST

/* The four routines: OpenBLAS's (when it loads) and the loops, against their definitions. */
START_TEST(test_double_routines) {
    const int sizes[] = {1, 7, 63, 65, 130};
    for (int loops = 0; loops < 2; loops++) {
        blas_double_loops(loops);
        for (int s = 0; s < COUNT(sizes); s++) {
            const int k = sizes[s], rows = k + 3;
            unsigned seed = 21 + k;
            double *x = malloc(sizeof(double) * rows * k), *h = malloc(sizeof(double) * k * k);
            double *l = malloc(sizeof(double) * k * k), *u = malloc(sizeof(double) * k * k), *inv = malloc(sizeof(double) * k * k);
            for (int i = 0; i < rows * k; i++) x[i] = test_rand(&seed);
            blas_dgram(h, x, rows, k);
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) {
                    double ref = 0;
                    for (int r = 0; r < rows; r++) ref += x[r * k + i] * x[r * k + j];
                    ck_assert_msg(fabs(h[i * k + j] - ref) <= 1e-12 * (1 + fabs(ref)), "dgram k %d (%d, %d)", k, i, j);
                }
            memcpy(l, h, sizeof(double) * k * k);
            ck_assert_int_eq(blas_cholesky_lower(l, k), 0);
            for (int i = 0; i < k; i++)
                for (int j = 0; j <= i; j++) {
                    double ref = 0;
                    for (int p = 0; p <= j; p++) ref += l[i * k + p] * l[j * k + p];
                    ck_assert_msg(fabs(ref - h[i * k + j]) <= 1e-9 * (1 + fabs(h[i * k + j])), "cholesky k %d (%d, %d)", k, i, j);
                }
            /* an upper triangle (L^T), inverted: U U^-1 = I */
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) u[i * k + j] = inv[i * k + j] = j >= i ? l[j * k + i] : 0.0;
            blas_invert_upper(inv, k);
            for (int i = 0; i < k; i++)
                for (int j = i; j < k; j++) {
                    double ref = 0;
                    for (int p = i; p <= j; p++) ref += u[i * k + p] * inv[p * k + j];
                    ck_assert_msg(fabs(ref - (i == j)) <= 1e-9, "invert k %d (%d, %d): %g", k, i, j, ref);
                }
            /* c = -a^T b + c, a [k, m], b [k, n] */
            const int m = k + 1, nn = 5;
            double *a = malloc(sizeof(double) * k * m), *b = malloc(sizeof(double) * k * nn), *c = malloc(sizeof(double) * m * nn);
            for (int i = 0; i < k * m; i++) a[i] = test_rand(&seed);
            for (int i = 0; i < k * nn; i++) b[i] = test_rand(&seed);
            for (int i = 0; i < m * nn; i++) c[i] = test_rand(&seed);
            double *c0 = malloc(sizeof(double) * m * nn);
            memcpy(c0, c, sizeof(double) * m * nn);
            blas_dgemm_tn(c, nn, a, m, b, nn, m, nn, k, -1.0, 1.0);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < nn; j++) {
                    double ref = c0[i * nn + j];
                    for (int p = 0; p < k; p++) ref -= a[p * m + i] * b[p * nn + j];
                    ck_assert_msg(fabs(c[i * nn + j] - ref) <= 1e-12 * (1 + fabs(ref)), "dgemm k %d", k);
                }
            free(x), free(h), free(l), free(u), free(inv), free(a), free(b), free(c), free(c0);
        }
        /* not positive definite: refused */
        double bad[4] = {1, 2, 2, 1};
        ck_assert_int_eq(blas_cholesky_lower(bad, 2), -1);
    }
    blas_double_loops(0);
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("gptq");
    TCase *tc = tcase_create("gptq");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_matches_reference_recurrence);
    tcase_add_test(tc, test_matches_reference_recurrence_plain_loops);
    tcase_add_test(tc, test_uncorrelated_inputs_give_plain_rounding);
    tcase_add_test(tc, test_output_error_below_plain_rounding);
    tcase_add_test(tc, test_non_finite_inputs_refused);
    tcase_add_test(tc, test_double_routines);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()
