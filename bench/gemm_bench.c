/* gemm_bench.c - GFLOP/s of the native GEMM driver on CLIP ViT-B/32's linear layers, next
 * to OpenBLAS sgemm on the same products in the same process.
 *
 *   sh bench/gemm_report.sh    (builds it; or: build/gemm_bench [threads] [seconds per case] [type])
 *
 * Shapes (m x n x k): one image (50 tokens), a batch of 8 (400), a 7-token text, and a
 * large square product (the OpenBLAS peak of issue 11). For few-row products the weights
 * stream from memory: the GB/s of the weight stream is printed next to a measured copy
 * bandwidth. CLIP_GEMM_TILE / _KC / _MC / _NC / _PREFETCH override the per-CPU choice.
 * type: the weights' type, f32 (default), f16, bf16, q8_0 or q4_0 (quantized from the same
 * random weights; OpenBLAS runs only f32, so its column shows the f32 product for scale).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/gemm.h"

/* With one thread, the thread's CPU time: time the scheduler gave to other processes on a
 * shared machine is not counted (their cache traffic still is). */
static clockid_t clock_id = CLOCK_MONOTONIC;
static double now(void) {
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct { const char *name; int m, n, k, copies; } shape;

/* copies: distinct weight matrices cycled through, so few-row cases stream from memory as
 * in a forward pass (12 layers' weights do not fit any cache) */
static const shape shapes[] = {
    {"image qkv", 50, 2304, 768, 1},    {"image out", 50, 768, 768, 1},
    {"image fc1", 50, 3072, 768, 1},    {"image fc2", 50, 768, 3072, 1},
    {"batch8 fc1", 400, 3072, 768, 1},  {"batch8 fc2", 400, 768, 3072, 1},
    {"text7 qkv", 7, 1536, 512, 24},    {"text7 fc1", 7, 2048, 512, 24},
    {"text7 fc2", 7, 512, 2048, 24},    {"text1 fc1", 1, 2048, 512, 24},
    {"square 1024", 1024, 1024, 1024, 1},
};

static gemm_type wtype = GEMM_F32;   /* the native side's weight type (argv[3]) */

/* Pack w [n, k] as wtype into fresh 64-byte-aligned memory. */
static void pack(gemm_weight *out, const float *w, int n, int k) {
    void *p = aligned_alloc(64, gemm_packed_bytes(wtype, n, k));
    if (!p || gemm_pack(out, p, wtype, w, n, k) != 0) {
        fprintf(stderr, "gemm_bench: cannot pack a %d x %d %s weight\n", n, k, gemm_type_get(wtype)->name);
        exit(1);
    }
}

/* Bytes per weight of wtype, for the weight-stream GB/s. */
static double weight_bytes(int n, int k) { return (double)gemm_packed_bytes(wtype, n, k) / ((double)n * k); }

static float *rnd(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) exit(1);
    unsigned s = 1;
    for (size_t i = 0; i < n; i++) s = s * 1664525u + 1013904223u, p[i] = (float)(s >> 9) / 8388608.0f - 0.5f;
    return p;
}

/* A tower's linear layers in forward order, each layer's weights distinct (from memory as
 * in a real forward pass): the rate over all of them. */
typedef struct { const char *name; int m, d, f, layers; } tower;
static const tower towers[] = {
    {"image tower", 50, 768, 3072, 12}, {"batch8 tower", 400, 768, 3072, 12}, {"text7 tower", 7, 512, 2048, 12},
};

static double tower_rate(const tower *t, threadpool *pool, int use_blas, double budget) {
    const int shapes_nk[4][2] = {{3 * t->d, t->d}, {t->d, t->d}, {t->f, t->d}, {t->d, t->f}};
    gemm_weight *pw = malloc(sizeof *pw * 4 * t->layers);
    float **rows = malloc(sizeof *rows * 4 * t->layers);
    float *x = rnd((size_t)t->m * t->f), *y = rnd((size_t)t->m * 3 * t->d > (size_t)t->m * t->f ? (size_t)t->m * 3 * t->d : (size_t)t->m * t->f);
    double flop = 0;
    for (int l = 0; l < 4 * t->layers; l++) {
        const int n = shapes_nk[l % 4][0], k = shapes_nk[l % 4][1];
        rows[l] = rnd((size_t)n * k);
        pack(&pw[l], rows[l], n, k);
        flop += 2.0 * t->m * n * k;
    }
    void *work = malloc(gemm_work_bytes(wtype, t->m, t->f) + 64);
    double best = 1e9;
    const double t0 = now();
    for (int rep = 0; rep < 3 || now() - t0 < budget; rep++) {
        const double t1 = now();
        for (int l = 0; l < 4 * t->layers; l++) {
            if (use_blas) blas_sgemm_nt(y, x, rows[l], t->m, pw[l].n, pw[l].k, 0.0f);
            else {
                gemm_op op = {y, x, &pw[l], NULL, t->m, 0, GEMM_ACT_NONE, work};
                gemm_run(pool, &op, GEMM_NATIVE, kernels_level());
            }
        }
        const double el = now() - t1;
        if (el < best) best = el;
    }
    for (int l = 0; l < 4 * t->layers; l++) free((void *)pw[l].panels), free(rows[l]);
    free(pw), free(rows), free(x), free(y), free(work);
    return flop / best * 1e-9;
}


static double copy_gbs(void) {
    const size_t n = 64 << 20;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n), memset(b, 2, n);
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        memcpy(b, a, n);
        double t = now() - t0;
        if (t < best) best = t;
    }
    free(a), free(b);
    return 2.0 * n / best * 1e-9;   /* bytes read + written */
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 1;
    const double budget = argc > 2 ? atof(argv[2]) : 0.3;
    if (argc > 3) {
        static const gemm_type types[] = {GEMM_F32, GEMM_F16, GEMM_BF16, GEMM_Q8_0, GEMM_Q4_0};
        int found = 0;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(argv[3], gemm_type_get(types[i])->name) == 0) wtype = types[i], found = 1;
        if (!found) {
            fprintf(stderr, "gemm_bench: unknown weight type '%s' (f32, f16, bf16, q8_0, q4_0)\n", argv[3]);
            return 2;
        }
    }
    kernels_init();
    const gemm_tuning *tune = gemm_tuning_get(kernels_level());
    printf("tuning: %s\n", tune->why);
    printf("copy bandwidth (memcpy 64 MB, read + write): %.1f GB/s\n", copy_gbs());
    threadpool *pool = threads > 1 ? threadpool_new(threads) : NULL;
    if (threads == 1) clock_id = CLOCK_THREAD_CPUTIME_ID;
    blas_set_threads(threads);
    printf("weights: %s (native); OpenBLAS: f32\n", gemm_type_get(wtype)->name);
    printf("%-12s %5s %5s %5s  %9s %9s  %s\n", "case", "m", "n", "k", "native", "openblas", "(GFLOP/s; W stream GB/s)");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape c = shapes[s];
        float *x = rnd((size_t)c.m * c.k), *y = rnd((size_t)c.m * c.n), *w = rnd((size_t)c.n * c.k);
        gemm_weight *pw = malloc(sizeof *pw * c.copies);
        float **rows = malloc(sizeof *rows * c.copies);
        for (int i = 0; i < c.copies; i++) {
            rows[i] = i == 0 ? w : rnd((size_t)c.n * c.k);
            pack(&pw[i], rows[i], c.n, c.k);
        }
        void *work = malloc(gemm_work_bytes(wtype, c.m, c.k) + 64);
        /* the fastest of many timed calls: other processes on the cores only ever slow a
         * call down, so the minimum is the least disturbed measurement */
        double rate[2] = {0, 0};
        for (int backend = 0; backend < 2; backend++) {
            long calls = 0;
            double best = 1e9;
            const double t0 = now();
            while (now() - t0 < budget || calls < 5) {
                const int i = (int)(calls % c.copies);
                const double t1 = now();
                if (backend == 0) {
                    gemm_op op = {y, x, &pw[i], NULL, c.m, 0, GEMM_ACT_NONE, work};
                    gemm_run(pool, &op, GEMM_NATIVE, kernels_level());
                } else {
                    blas_sgemm_nt(y, x, rows[i], c.m, c.n, c.k, 0.0f);
                }
                const double t = now() - t1;
                if (t < best) best = t;
                calls++;
            }
            rate[backend] = 2.0 * c.m * c.n * c.k / best * 1e-9;
        }
        printf("%-12s %5d %5d %5d  %9.1f %9.1f", c.name, c.m, c.n, c.k, rate[0], rate[1]);
        if (c.copies > 1)
            printf("  W %.1f / %.1f GB/s", rate[0] / (2.0 * c.m) * weight_bytes(c.n, c.k), rate[1] / (2.0 * c.m) * 4);
        printf("\n");
        for (int i = 0; i < c.copies; i++) {
            free((void *)pw[i].panels);
            if (i) free(rows[i]);
        }
        free(pw), free(rows), free(x), free(y), free(w), free(work);
    }
    for (size_t i = 0; i < sizeof towers / sizeof towers[0]; i++) {
        const double a = tower_rate(&towers[i], pool, 0, budget * 4), b = tower_rate(&towers[i], pool, 1, budget * 4);
        printf("%-12s %5d  12 layers     %9.1f %9.1f", towers[i].name, towers[i].m, a, b);
        if (towers[i].m < 16)
            printf("  W %.1f / %.1f GB/s", a / (2.0 * towers[i].m) * weight_bytes(towers[i].d, towers[i].f),
                   b / (2.0 * towers[i].m) * 4);
        printf("\n");
    }
    threadpool_free(pool);
    return 0;
}
