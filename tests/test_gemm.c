/* test_gemm.c - the linear layers' matmul (kernels/gemm.c) and the thread pool.
 *
 * References:
 *   - a naive double-precision loop written here (sum_k x w + b, then the activation
 *     from libm), which every kernel level and both backends must match within the
 *     worst-case float summation error;
 *   - the scalar reference micro-kernel, which every micro-kernel this CPU can run must
 *     match bit for bit (the same fma chain per output, kernels/gemm.h) on every tile
 *     edge: each row count up to MR, column counts around each panel edge, odd k;
 *   - the single-thread, one-row-at-a-time result, which every thread count and batch
 *     must reproduce exactly (each output is summed in one fixed order by design);
 *   - at the model level, golden-tiny encoded one input at a time on one thread, which
 *     batches and other thread counts must reproduce.
 * Output buffers carry guard floats after the data to catch stray writes.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

#include "testutil.h"
#include "../kernels/gemm.h"
#include "../model/clip.h"

#define GUARD 16
#define SENTINEL 12345.678f

#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

static float *random_floats(size_t n, unsigned seed) {
    float *p = malloc((n + GUARD) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) p[i] = test_rand(&seed);
    for (int g = 0; g < GUARD; g++) p[n + g] = SENTINEL;
    return p;
}

static void check_guard(const float *p, size_t n, const char *what) {
    for (int g = 0; g < GUARD; g++)
        ck_assert_msg(p[n + g] == SENTINEL, "%s wrote past its output (guard %d)", what, g);
}

static double act_ref(double v, gemm_activation act) {
    if (act == GEMM_ACT_QUICK_GELU) return v / (1 + exp(-1.702 * v));
    if (act == GEMM_ACT_GELU) return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    return v;
}

/* Compare y with the naive double loop on (y0 = y before the call if accumulating).
 * Tolerance: the worst-case error of a float sum of k products, (k + 2) u sum|terms|. */
static void check_against_naive(const float *y, const float *y0, const float *x, const float *w,
                                const gemm_op *op, const char *what) {
    const double u = 1.0 / (1 << 24);
    const int n = op->w->n, k = op->w->k;
    for (int i = 0; i < op->m; i++)
        for (int j = 0; j < n; j++) {
            double sum = op->bias ? op->bias[j] : 0, mag = op->bias ? fabs(op->bias[j]) : 0;
            for (int p = 0; p < k; p++) {
                double t = (double)x[(size_t)i * k + p] * w[(size_t)j * k + p];
                sum += t;
                mag += fabs(t);
            }
            if (op->accumulate) {
                sum += y0[(size_t)i * n + j];
                mag += fabs(y0[(size_t)i * n + j]);
            }
            const double want = act_ref(sum, op->act);
            const double tol = 1.2 * (k + 3) * u * mag + 2e-6 * fabs(want) + 1e-7;
            const double got = y[(size_t)i * n + j];
            ck_assert_msg(fabs(got - want) <= tol,
                          "%s: m %d n %d k %d acc %d act %d: y[%d,%d] = %.9g, want %.9g (tol %.3g)",
                          what, op->m, n, k, op->accumulate, op->act, i, j, got, want, tol);
        }
}

static int have(cpu_level level) { return cpu_level_usable(level); }

/* A packed copy of w [n, k] (the caller frees .panels). */
static gemm_weight pack(const float *w, int n, int k) {
    void *panels = aligned_alloc(64, gemm_packed_bytes(GEMM_F32, n, k) + 64);
    ck_assert_ptr_nonnull(panels);
    gemm_weight out;
    ck_assert_int_eq(gemm_pack(&out, panels, GEMM_F32, w, n, k), 0);
    return out;
}

START_TEST(test_pack_layout) {
    const int n = 37, k = 5;
    float *w = random_floats((size_t)n * k, 77);
    gemm_weight pw = pack(w, n, k);
    ck_assert_uint_eq(pw.panel_bytes, (size_t)k * 16 * 4);
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++) ck_assert(gemm_weight_at(&pw, j, p) == w[(size_t)j * k + p]);
    const float *panels = pw.panels;           /* the padding features of the last panel are 0 */
    for (int p = 0; p < k; p++)
        for (int c = n % 16; c < 16; c++) ck_assert(panels[2 * (size_t)k * 16 + (size_t)p * 16 + c] == 0.0f);
    free((void *)pw.panels), free(w);
}
END_TEST

/* ---- every micro-kernel against the scalar reference, bit for bit, on every tile edge ---- */
static const int tile_k[] = {1, 2, 7, 15, 16, 17, 63, 65, 300};

START_TEST(test_ukernels_match_scalar) {
    int n_uk;
    const gemm_ukernel *uk = gemm_ukernels(&n_uk);
    for (int u = 0; u < n_uk; u++) {
        if (uk[u].type != GEMM_F32) continue;      /* the other types: tests/test_quant.c */
        if (!have(uk[u].isa)) {
            TEST_SKIP_PART("%s: this CPU has no %s", uk[u].name, cpu_level_name(uk[u].isa));
            continue;
        }
        const int mr = uk[u].mr, nr = uk[u].nr;
        for (int m = 1; m <= mr; m++)
            for (int n = 1; n <= nr; n += (n == 1 || n >= nr - 1 || n % 16 >= 15 || n % 16 == 0) ? 1 : 6)
                for (int ki = 0; ki < COUNT(tile_k); ki++)
                    for (int variant = 0; variant < 4; variant++) {
                        const int k = tile_k[ki], use_bias = variant & 1, load_y = variant >> 1;
                        const int ldx = k + 3, ldy = n + 5;   /* strides wider than the tile */
                        float *x = random_floats((size_t)m * ldx, 1 + m + 7 * k);
                        float *w = random_floats((size_t)n * k, 2 + n + 11 * k);
                        float *bias = random_floats((size_t)n, 3 + n);
                        float *y = random_floats((size_t)m * ldy, 4 + m * n);
                        float *ref = random_floats((size_t)m * ldy, 4 + m * n);
                        gemm_weight pw = pack(w, n, k);
                        gemm_tile t = {.x = x, .ldx = (size_t)ldx, .w = pw.panels, .panel_bytes = pw.panel_bytes,
                                       .y = y, .ldy = (size_t)ldy, .bias = use_bias ? bias : NULL, .m = m, .n = n,
                                       .k = k, .load_y = load_y, .next_w = variant == 3 ? pw.panels : NULL,
                                       .type = GEMM_F32};
                        uk[u].run(&t);
                        t.y = ref;
                        gemm_f32_scalar_4x16(&t);
                        check_guard(y, (size_t)m * ldy, uk[u].name);
                        ck_assert_msg(memcmp(y, ref, sizeof(float) * (size_t)m * ldy) == 0,
                                      "%s: m %d n %d k %d bias %d load_y %d differs from the scalar reference",
                                      uk[u].name, m, n, k, use_bias, load_y);
                        free(x), free(w), free(bias), free(y), free(ref), free((void *)pw.panels);
                    }
    }
}
END_TEST

/* ---- the whole product: backends, levels, epilogues, threads ---------------------------- */
typedef struct { int m, n, k; } shape;
static const shape shapes[] = {
    {1, 1, 1}, {7, 65, 63}, {63, 7, 65}, {65, 63, 17}, {50, 96, 64}, {5, 130, 2500}, {121, 72, 40},
    {15, 17, 1025}, {3, 16, 0},
};

START_TEST(test_gemm_backends_epilogues) {
    threadpool *pool3 = threadpool_new(3);
    ck_assert_ptr_nonnull(pool3);
    for (int si = 0; si < COUNT(shapes); si++)
        for (int backend = GEMM_NATIVE; backend <= GEMM_OPENBLAS; backend++) {
            if (backend == GEMM_OPENBLAS && blas_load() != CLIP_OK) {
                if (si == 0) TEST_SKIP_PART("openblas: %s; needs Debian package libopenblas0", clip_last_error());
                continue;
            }
            for (int level = CPU_SCALAR; level < CPU_LEVEL_COUNT; level++) {
                if (!have((cpu_level)level)) {
                    if (si == 0 && backend == GEMM_NATIVE)
                        TEST_SKIP_PART("%s: this CPU has no %s", cpu_level_name(level), cpu_level_name(level));
                    continue;
                }
                for (int act = GEMM_ACT_NONE; act <= GEMM_ACT_GELU; act++)
                    for (int accumulate = 0; accumulate < 2; accumulate++) {
                        if (act != GEMM_ACT_NONE && accumulate) continue;
                        const shape s = shapes[si];
                        float *x = random_floats((size_t)s.m * s.k, 10 + si);
                        float *w = random_floats((size_t)s.n * s.k, 20 + si);
                        float *bias = random_floats((size_t)s.n, 30 + si);
                        float *y = random_floats((size_t)s.m * s.n, 40 + si);
                        float *y0 = random_floats((size_t)s.m * s.n, 40 + si);
                        gemm_weight pw = pack(w, s.n, s.k);
                        gemm_op op = {y, x, &pw, bias, s.m, accumulate, (gemm_activation)act, NULL};
                        gemm_run(pool3, &op, (gemm_backend)backend, (cpu_level)level);
                        char what[64];
                        snprintf(what, sizeof what, "%s/%s", gemm_backend_name((gemm_backend)backend),
                                 cpu_level_name((cpu_level)level));
                        check_guard(y, (size_t)s.m * s.n, what);
                        check_against_naive(y, y0, x, w, &op, what);
                        free(x), free(w), free(bias), free(y), free(y0), free((void *)pw.panels);
                    }
            }
        }
    threadpool_free(pool3);
}
END_TEST

/* Every thread count, every row computed alone, and every SIMD level give bit-identical
 * results (without an activation, whose SIMD versions round differently). */
START_TEST(test_gemm_threads_and_rows_identical) {
    const int m = 67, n = 203, k = 1100;   /* k chunks, ragged column tasks and row tiles */
    float *x = random_floats((size_t)m * k, 5), *w = random_floats((size_t)n * k, 6);
    float *bias = random_floats((size_t)n, 7);
    float *ref = random_floats((size_t)m * n, 8), *y = random_floats((size_t)m * n, 8);
    float *scalar = random_floats((size_t)m * n, 8);
    gemm_weight pw = pack(w, n, k);
    gemm_op base = {scalar, x, &pw, bias, m, 0, GEMM_ACT_NONE, NULL};
    gemm_run(NULL, &base, GEMM_NATIVE, CPU_SCALAR);
    for (int level = CPU_SCALAR; level < CPU_LEVEL_COUNT; level++) {
        if (!have((cpu_level)level)) continue;
        for (int act = GEMM_ACT_NONE; act <= GEMM_ACT_QUICK_GELU; act++) {
            gemm_op one = {ref, x, &pw, bias, m, 0, (gemm_activation)act, NULL};
            gemm_run(NULL, &one, GEMM_NATIVE, (cpu_level)level);
            if (act == GEMM_ACT_NONE)
                ck_assert_msg(memcmp(scalar, ref, sizeof(float) * m * n) == 0, "%s differs from scalar",
                              cpu_level_name((cpu_level)level));
            for (int threads = 1; threads <= 3; threads++) {
                threadpool *pool = threadpool_new(threads);
                ck_assert_ptr_nonnull(pool);
                for (int repeat = 0; repeat < 20; repeat++) {
                    memset(y, 0, sizeof(float) * m * n);
                    gemm_op op = {y, x, &pw, bias, m, 0, (gemm_activation)act, NULL};
                    gemm_run(pool, &op, GEMM_NATIVE, (cpu_level)level);
                    ck_assert_msg(memcmp(y, ref, sizeof(float) * m * n) == 0,
                                  "%s: %d threads differ from 1", cpu_level_name((cpu_level)level), threads);
                }
                threadpool_free(pool);
            }
            for (int r = 0; r < m; r++) {
                gemm_op row = {y, x + (size_t)r * k, &pw, bias, 1, 0, (gemm_activation)act, NULL};
                gemm_run(NULL, &row, GEMM_NATIVE, (cpu_level)level);
                ck_assert_msg(memcmp(y, ref + (size_t)r * n, sizeof(float) * n) == 0,
                              "%s: row %d alone differs from the batch", cpu_level_name((cpu_level)level), r);
            }
        }
    }
    free(x), free(w), free(bias), free(ref), free(y), free(scalar), free((void *)pw.panels);
}
END_TEST

/* ---- thread pool -------------------------------------------------------------------------- */
typedef struct {
    atomic_int *hits;
    atomic_int max_thread;
} count_job;

static void count_task(void *arg, int task, int thread) {
    count_job *j = arg;
    atomic_fetch_add(&j->hits[task], 1);
    int seen = atomic_load(&j->max_thread);
    while (thread > seen && !atomic_compare_exchange_weak(&j->max_thread, &seen, thread)) {}
}

START_TEST(test_threadpool_every_task_once) {
    enum { MAX_TASKS = 257 };
    atomic_int hits[MAX_TASKS];
    for (int threads = 1; threads <= 4; threads++) {
        threadpool *pool = threadpool_new(threads);
        ck_assert_ptr_nonnull(pool);
        ck_assert_int_eq(threadpool_size(pool), threads);
        for (int round = 0; round < 300; round++) {
            const int n_tasks = round % MAX_TASKS;
            for (int t = 0; t < MAX_TASKS; t++) atomic_init(&hits[t], 0);
            count_job job = {hits, 0};
            threadpool_run(pool, n_tasks, count_task, &job);
            for (int t = 0; t < MAX_TASKS; t++)
                ck_assert_msg(atomic_load(&hits[t]) == (t < n_tasks),
                              "%d threads, %d tasks: task %d ran %d times", threads, n_tasks, t,
                              atomic_load(&hits[t]));
            ck_assert_int_lt(atomic_load(&job.max_thread), threads);
        }
        threadpool_free(pool);
    }
    count_job job = {hits, 0};                    /* no pool: everything on the caller */
    for (int t = 0; t < 5; t++) atomic_init(&hits[t], 0);
    threadpool_run(NULL, 5, count_task, &job);
    for (int t = 0; t < 5; t++) ck_assert_int_eq(atomic_load(&hits[t]), 1);
}
END_TEST

/* ---- the model: batches and threads reproduce one-at-a-time, one-thread embeddings ---- */
static void encode_all(const clip_model *model, int threads, int max_batch, const char *gemm_name,
                       const float *pixels, int n_images, const int32_t *ids, int n_texts,
                       float *image_out, float *text_out) {
    clip_context *ctx;
    ck_assert_int_eq(clip_context_new(model, threads, max_batch, &ctx), CLIP_OK);
    if (gemm_name) ck_assert_int_eq(clip_context_set_gemm(ctx, gemm_name), CLIP_OK);
    ck_assert_int_eq(clip_encode_images(ctx, pixels, n_images, image_out), CLIP_OK);
    ck_assert_int_eq(clip_encode_texts(ctx, ids, n_texts, text_out), CLIP_OK);
    clip_context_free(ctx);
}

START_TEST(test_model_batch_and_threads) {
    clip_model *model;
    ck_assert_int_eq(clip_model_load(test_model("golden-openai.clip"), &model), CLIP_OK);
    const clip_config *c = clip_model_config(model);
    enum { N_IMAGES = 5, N_TEXTS = 5 };
    const size_t image_len = (size_t)3 * c->image_size * c->image_size;
    const int d = c->embed_dim;
    float *pixels = random_floats(image_len * N_IMAGES, 99);
    int32_t *ids = calloc((size_t)N_TEXTS * c->text_context, sizeof *ids);
    const char *texts[N_TEXTS] = {"a dog", "a photo of a cat sitting on a red sofa in the sun", "x",
                                  "two birds", "an extremely long caption that goes on and on about "
                                  "many things, far beyond what a short prompt would hold, and more"};
    for (int i = 0; i < N_TEXTS; i++)
        ck_assert_int_eq(clip_tokenize(model, texts[i], strlen(texts[i]), ids + (size_t)i * c->text_context), CLIP_OK);

    float *ref_img = malloc(sizeof(float) * N_IMAGES * d), *ref_txt = malloc(sizeof(float) * N_TEXTS * d);
    float *img = malloc(sizeof(float) * N_IMAGES * d), *txt = malloc(sizeof(float) * N_TEXTS * d);
    encode_all(model, 1, 1, "native", pixels, N_IMAGES, ids, N_TEXTS, ref_img, ref_txt);
    const struct { int threads, batch; const char *gemm; double tol; } runs[] = {
        {2, 1, NULL, 0}, {3, 1, NULL, 0}, {1, 3, NULL, 0}, {2, 3, NULL, 0}, {3, 5, NULL, 0},
        {1, 8, NULL, 0}, {2, 2, "openblas", 1e-5},
    };
    for (int r = 0; r < COUNT(runs); r++) {
        encode_all(model, runs[r].threads, runs[r].batch, runs[r].gemm, pixels, N_IMAGES, ids, N_TEXTS,
                   img, txt);
        for (int i = 0; i < N_IMAGES; i++) {
            double e = rel_l2(img + (size_t)i * d, ref_img + (size_t)i * d, (size_t)d);
            ck_assert_msg(e <= runs[r].tol, "image %d, %d threads, batch %d: rel error %g",
                          i, runs[r].threads, runs[r].batch, e);
        }
        for (int i = 0; i < N_TEXTS; i++) {
            double e = rel_l2(txt + (size_t)i * d, ref_txt + (size_t)i * d, (size_t)d);
            ck_assert_msg(e <= runs[r].tol, "text %d, %d threads, batch %d: rel error %g",
                          i, runs[r].threads, runs[r].batch, e);
        }
    }
    free(pixels), free(ids), free(ref_img), free(ref_txt), free(img), free(txt);
    clip_model_free(model);
}
END_TEST

START_TEST(test_context_arguments) {
    clip_model *model;
    clip_context *ctx;
    ck_assert_int_eq(clip_model_load(test_model("golden-openai.clip"), &model), CLIP_OK);
    ck_assert_int_eq(clip_context_new(model, 1, CLIP_MAX_BATCH + 1, &ctx), CLIP_ERR_ARG);
    ck_assert_ptr_null(ctx);
    ck_assert_int_eq(clip_context_new(model, 2, 0, &ctx), CLIP_OK);
    ck_assert_int_eq(clip_context_set_gemm(ctx, "cublas"), CLIP_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(clip_last_error(), "cublas"));
    ck_assert_int_eq(clip_context_set_gemm(ctx, "openblas"), CLIP_OK);
    ck_assert_str_eq(clip_context_gemm(ctx), "openblas");
    clip_context_free(ctx);
    clip_model_free(model);
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pack_layout);
    tcase_add_test(tc, test_ukernels_match_scalar);
    tcase_add_test(tc, test_gemm_backends_epilogues);
    tcase_add_test(tc, test_gemm_threads_and_rows_identical);
    tcase_add_test(tc, test_threadpool_every_task_once);
    tcase_add_test(tc, test_model_batch_and_threads);
    tcase_add_test(tc, test_context_arguments);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()
