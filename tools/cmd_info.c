/* cmd_info.c - the commands that look at a model rather than embed: info (config, kernels,
 * matmul backend), tokenize (token ids of texts) and bench (in-process timings per stage,
 * GFLOP/s against the measured matmul peak).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../io/weightfile.h"
#include "../kernels/gemm.h"
#include "../kernels/kernels.h"
#include "../model/clip.h"
#include "cli.h"

/* Each tower's element types (share of its parameters) and bits per weight, e.g.
 *   weights:      vision q4_0 99.8%, f32 0.2%: 4.55 bits per weight; text ...; file 4.61 */
static void print_weight_types(const char *path) {
    weightfile wf;
    if (weightfile_open(path, &wf) != CLIP_OK) return;
    static const char *const towers[] = {"vision.", "text."};
    uint64_t all_params = 0, all_bytes = 0;
    printf("weights:     ");
    for (int tw = 0; tw < 2; tw++) {
        uint64_t params[256] = {0}, total = 0, bytes = 0;
        for (uint32_t i = 0; i < wf.n_tensors; i++) {
            const wf_tensor *t = &wf.tensors[i];
            if (strncmp(t->name, towers[tw], strlen(towers[tw])) != 0) continue;
            uint64_t n = 1;
            for (uint32_t d = 0; d < t->n_dims; d++) n *= t->dims[d];
            params[WF_TYPE(t->dtype)] += n;
            total += n;
            bytes += t->size;
        }
        printf("%s %.*s", tw ? ";" : "", (int)strlen(towers[tw]) - 1, towers[tw]);
        for (int type = 0, first = 1; type < 256; type++)
            if (params[type]) {
                const gemm_type_info *info = gemm_type_get((gemm_type)type);
                printf("%s %s %.1f%%", first ? "" : ",", info ? info->name : "?", 100.0 * params[type] / total);
                first = 0;
            }
        printf(": %.2f bits per weight", total ? 8.0 * bytes / total : 0);
        all_params += total, all_bytes += bytes;
    }
    printf("; file %.2f\n", all_params ? 8.0 * all_bytes / all_params : 0);
    weightfile_close(&wf);
}

/* What bench needs of the stored weights, in one pass over the directory: whether each
 * tower is all f32 (only then are its GFLOP/s comparable with the f32 peaks: a quantized
 * tower does the same work in other instructions, often beyond them), and the bytes of the
 * text tower's blocks as stored (what a short text streams from memory; the token
 * embedding gives it only a few rows). The file is opened again, as print_weight_types
 * does; if it cannot be, bench prints f32 rates and no stream rate. */
static void bench_weights(const char *path, int *f32_vision, int *f32_text, double *text_block_bytes) {
    weightfile wf;
    *f32_vision = *f32_text = 1, *text_block_bytes = 0;
    if (weightfile_open(path, &wf) != CLIP_OK) return;
    for (uint32_t i = 0; i < wf.n_tensors; i++) {
        const wf_tensor *t = &wf.tensors[i];
        const int f32 = WF_TYPE(t->dtype) == WF_F32;
        if (strncmp(t->name, "vision.", 7) == 0) *f32_vision &= f32;
        if (strncmp(t->name, "text.", 5) == 0) *f32_text &= f32;
        if (strncmp(t->name, "text.blocks.", 12) == 0) *text_block_bytes += (double)t->size;
    }
    weightfile_close(&wf);
}

int cmd_info(args *a) {
    if (a->n_pos != 1) return usage_error(a->cmd, "info takes one MODEL");
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const clip_config *c = s.cfg;
    int grid = c->image_size / c->patch_size;
    printf("model:        %s\n", a->pos[0]);
    printf("name:         %s\n", c->name[0] ? c->name : "(none)");
    printf("image:        %d x %d, patch %d (%d patches + class token)\n", c->image_size,
           c->image_size, c->patch_size, grid * grid);
    printf("vision:       width %d, %d layers, %d heads, MLP %d\n", c->vision_width,
           c->vision_layers, c->vision_heads, c->vision_mlp);
    printf("text:         width %d, %d layers, %d heads, MLP %d, context %d, vocabulary %d\n",
           c->text_width, c->text_layers, c->text_heads, c->text_mlp, c->text_context, c->text_vocab);
    printf("embedding:    %d, logit scale %.4f (exp %.4f)\n", c->embed_dim, c->logit_scale,
           exp(c->logit_scale));
    printf("activation:   %s, LayerNorm eps %g\n",
           c->activation == CLIP_ACT_GELU ? "gelu" : "quick_gelu", c->ln_eps);
    printf("normalize:    mean (%.8g, %.8g, %.8g), std (%.8g, %.8g, %.8g)\n", c->image_mean[0],
           c->image_mean[1], c->image_mean[2], c->image_std[0], c->image_std[1], c->image_std[2]);
    printf("tokens:       start %d, end %d\n", c->sot_id, c->eot_id);
    if (clip_model_verify(s.model) != CLIP_OK) {
        close_session(&s);
        return api_fail();
    }
    printf("checksums:    every tensor verified\n");
    print_weight_types(a->pos[0]);
    char features[128];
    printf("kernels:      %s (CPU supports %s; features: %s)\n", cpu_level_name(kernels_level()),
           cpu_level_name(cpu_detect()), cpu_features_string(cpu_features(), features, sizeof features));
    printf("matmul:       %s%s, %d threads\n", clip_context_gemm(s.ctx),
           strcmp(clip_context_gemm(s.ctx), "openblas") ? " (native; --gemm openblas: OpenBLAS)" : "",
           clip_context_threads(s.ctx));
    printf("gemm tuning:  %s\n", gemm_tuning_get(kernels_level())->why);
    /* the micro-kernel each weight type runs on (the int8 ones by extension: VNNI, sdot, smmla) */
    static const gemm_type types[] = {GEMM_F32, GEMM_F16, GEMM_BF16, GEMM_Q8_0, GEMM_Q4_0};
    printf("micro-kernels:");
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        printf("%s %s", i ? "," : "", gemm_ukernel_for(types[i], kernels_level())->name);
    printf("\n");
    close_session(&s);
    return 0;
}

int cmd_tokenize(args *a) {
    if (a->n_pos < 1) return usage_error(a->cmd, "tokenize needs MODEL and TEXT...");
    text_list t;
    session s;
    int rc = gather_texts(a, 1, &t);
    if (!rc) rc = open_session(a->pos[0], a, 0, &s);
    if (rc) { free_texts(&t); return rc; }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    if (!ids) rc = fail("out of memory");
    for (int i = 0; !rc && i < t.n; i++) {
        if (clip_tokenize(s.model, t.text[i], t.len[i], ids) != CLIP_OK) { rc = api_fail(); break; }
        if (a->json) {
            fputs("{\"text\": ", stdout);
            json_string(stdout, t.text[i], t.len[i]);
            fputs(", \"ids\": [", stdout);
        }
        for (int k = 0; k < s.cfg->text_context; k++)
            printf(a->json ? "%s%d" : "%s%d", k ? (a->json ? ", " : " ") : "", ids[k]);
        fputs(a->json ? "]}\n" : "\n", stdout);
    }
    free(ids);
    free_texts(&t);
    close_session(&s);
    return rc;
}

/* ---- bench: in-process timings ------------------------------------------------------------ */
static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int by_value(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *ms, int n) {
    qsort(ms, (size_t)n, sizeof *ms, by_value);
    return n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

/* Best GFLOP/s of the native driver on a product that fits the L2 cache (x 240 KB, W 512
 * KB): the matmul peak the forward passes are measured against. */
static double gemm_peak(int n_threads) {
    enum { M = 120, N = 256, K = 512 };
    float *x = aligned_alloc(64, sizeof(float) * M * K), *w = aligned_alloc(64, sizeof(float) * N * K);
    float *y = aligned_alloc(64, sizeof(float) * M * N), *packed = aligned_alloc(64, sizeof(float) * N * K);
    threadpool *pool = n_threads > 1 ? threadpool_new(n_threads) : NULL;
    double best = 0;
    if (x && w && y && packed) {
        for (int i = 0; i < M * K; i++) x[i] = (float)(i % 17) * 0.01f;
        for (int i = 0; i < N * K; i++) w[i] = (float)(i % 13) * 0.01f;
        gemm_weight pw;
        gemm_pack(&pw, packed, GEMM_F32, w, N, K);
        const gemm_op op = {y, x, &pw, NULL, M, 0, GEMM_ACT_NONE, NULL};
        const double end = now_ms() + 300;
        while (now_ms() < end) {
            double t0 = now_ms();
            gemm_run(pool, &op, GEMM_NATIVE, kernels_level());
            double gflops = 2.0 * M * N * K / ((now_ms() - t0) * 1e6);
            if (gflops > best) best = gflops;
        }
    }
    threadpool_free(pool);
    free(x), free(w), free(y), free(packed);
    return best;
}

/* Best GFLOP/s of OpenBLAS sgemm on a large square product (1024^3, row-major x W^T), with
 * the kernels OpenBLAS picks for this CPU: OPENBLAS_CORETYPE, if set, is removed before
 * OpenBLAS is first loaded (AVX-512 on an AVX-512 CPU). 0 without OpenBLAS. `core` gets
 * the core name OpenBLAS reports. */
static double openblas_square_peak(int n_threads, char *core, size_t core_size) {
    enum { S = 1024 };
    snprintf(core, core_size, "unavailable");
    if (getenv("OPENBLAS_CORETYPE")) unsetenv("OPENBLAS_CORETYPE");
    if (blas_load() != 0) return 0;
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_NOLOAD);
    char *(*corename)(void) = lib ? (char *(*)(void))dlsym(lib, "openblas_get_corename") : NULL;
    snprintf(core, core_size, "%s", corename ? corename() : "unknown core");
    if (lib) dlclose(lib);
    float *x = aligned_alloc(64, sizeof(float) * S * S), *w = aligned_alloc(64, sizeof(float) * S * S);
    float *y = aligned_alloc(64, sizeof(float) * S * S);
    double best = 0;
    if (x && w && y) {
        for (int i = 0; i < S * S; i++) x[i] = (float)(i % 17) * 0.01f, w[i] = (float)(i % 13) * 0.01f;
        blas_set_threads(n_threads);
        const double end = now_ms() + 400;
        for (int rep = 0; rep < 3 || now_ms() < end; rep++) {
            double t0 = now_ms();
            blas_sgemm_nt(y, x, w, S, S, S, 0.0f);
            double gflops = 2.0 * S * S * S / ((now_ms() - t0) * 1e6);
            if (gflops > best) best = gflops;
        }
    }
    free(x), free(w), free(y);
    return best;
}

/* Copy bandwidth (memcpy of 64 MB; bytes read + written per second), best of 5, GB/s. */
static double copy_bandwidth(void) {
    const size_t n = 64 << 20;
    char *a = malloc(n), *b = malloc(n);
    double best = 0;
    if (a && b) {
        memset(a, 1, n), memset(b, 2, n);
        for (int r = 0; r < 5; r++) {
            double t0 = now_ms();
            memcpy(b, a, n);
            double gbs = 2.0 * n / ((now_ms() - t0) * 1e6);
            if (gbs > best) best = gbs;
        }
    }
    free(a), free(b);
    return best;
}

/* Floating-point work actually done (the last blocks' single query row, class token or
 * end token, and the causal text cut included). */
static double image_flop(const clip_config *c) {
    const double w = c->vision_width, f = c->vision_mlp, grid = c->image_size / c->patch_size;
    const double n = grid * grid, t = n + 1;
    double flop = 2 * n * 3.0 * c->patch_size * c->patch_size * w + 2 * w * c->embed_dim;
    for (int l = 0; l < c->vision_layers; l++) {
        const double rows = l == c->vision_layers - 1 ? 1 : t;
        flop += 2 * t * w * 3 * w + 4 * rows * t * w + 2 * rows * w * w + 4 * rows * w * f;
    }
    return flop;
}

static double text_flop(const clip_config *c, int n_tokens) {
    const double w = c->text_width, f = c->text_mlp, t = n_tokens;
    double flop = 2 * w * c->embed_dim;
    for (int l = 0; l < c->text_layers; l++) {
        const int last = l == c->text_layers - 1;
        const double attn = last ? 4 * t * w : 2 * t * (t + 1) * w, rows = last ? 1 : t;
        flop += 2 * t * w * 3 * w + attn + 2 * rows * w * w + 4 * rows * w * f;
    }
    return flop;
}

typedef struct {
    session *s;
    int iters;
    double peak;                 /* native GFLOP/s at this thread count */
    double blas_peak;            /* OpenBLAS sgemm 1024^3 GFLOP/s at this thread count */
    double stream_bytes;         /* weight bytes a case streams from memory (short text), or 0 */
    double copy_gbs;             /* measured copy bandwidth */
    int f32_vision, f32_text;    /* the tower all f32: rates as % of the peaks, else as multiples */
} bench_run;

static void print_stages(const session *s, int iters) {
    double ms[16];
    const char *names[16];
    int n = clip_context_stages(s->ctx, ms, names, 16);
    printf("  stages, mean ms per run:");
    for (int i = 0; i < n && i < 16; i++) printf("  %s %.2f", names[i], ms[i] / iters);
    printf("\n");
}

/* Encode `count` images or texts `iters` times (after one warm-up run): median ms. */
static int time_encode(bench_run *b, const char *name, const float *pixels, const int32_t *ids,
                       int count, double flop, double extra_ms) {
    double *ms = malloc(sizeof(double) * (size_t)b->iters);
    float *embeds = malloc(sizeof(float) * (size_t)count * b->s->cfg->embed_dim);
    if (!ms || !embeds) { free(ms); free(embeds); return fail("out of memory"); }
    int rc = 0;
    for (int i = -1; !rc && i < b->iters; i++) {
        if (i == 0) clip_context_reset_stages(b->s->ctx);
        double t0 = now_ms();
        int r = pixels ? clip_encode_images(b->s->ctx, pixels, count, embeds)
                       : clip_encode_texts(b->s->ctx, ids, count, embeds);
        if (r != CLIP_OK) rc = api_fail();
        else if (i >= 0) ms[i] = now_ms() - t0;
    }
    if (!rc) {
        double min = ms[0];
        for (int i = 1; i < b->iters; i++) if (ms[i] < min) min = ms[i];
        double med = median(ms, b->iters) + extra_ms;
        const double rate = flop / ((med - extra_ms) * 1e6);   /* GFLOP/s */
        printf("%-13s %9.2f ms  (median of %d, min %.2f%s)  %.2f GFLOP, %.1f GFLOP/s", name, med, b->iters,
               min + extra_ms, extra_ms > 0 ? ", with preprocess" : "", flop * 1e-9, rate);
        const int f32 = pixels ? b->f32_vision : b->f32_text;
        if (f32) printf(" = %.0f%% of peak", 100 * rate / b->peak);
        else printf(" (f32-equivalent) = %.2fx the f32 peak", rate / b->peak);
        if (b->blas_peak > 0 && f32) printf(", %.0f%% of OpenBLAS", 100 * rate / b->blas_peak);
        else if (b->blas_peak > 0) printf(", %.2fx OpenBLAS sgemm", rate / b->blas_peak);
        if (count > 1) printf(", %.2f ms each", med / count);
        if (b->stream_bytes > 0)
            printf(", weights streamed at %.1f GB/s (copy bandwidth %.1f)", b->stream_bytes / (med * 1e6), b->copy_gbs);
        printf("\n");
        print_stages(b->s, b->iters);
    }
    free(ms);
    free(embeds);
    return rc;
}

int cmd_bench(args *a) {
    if (a->n_pos < 1 || a->n_pos > 2) return usage_error(a->cmd, "bench takes MODEL and optionally an IMAGE");
    args run_args = *a;
    const int batch = a->batch > 0 ? a->batch : 8;
    run_args.batch = batch;
    session s;
    int rc = open_session(a->pos[0], &run_args, 1, &s);
    if (rc) return rc;
    const clip_config *c = s.cfg;
    const int threads = clip_context_threads(s.ctx), context = c->text_context;
    const size_t image_len = (size_t)3 * c->image_size * c->image_size;

    const double native1 = gemm_peak(1), native_n = threads > 1 ? gemm_peak(threads) : native1;
    char core[64];
    const double blas1 = openblas_square_peak(1, core, sizeof core);
    const double blas_n = threads > 1 ? openblas_square_peak(threads, core, sizeof core) : blas1;
    const double copy_gbs = copy_bandwidth();
    printf("model         %s (vision %d x %d layers, text %d x %d layers)\n", a->pos[0],
           c->vision_width, c->vision_layers, c->text_width, c->text_layers);
    printf("matmul        %s, %d threads, batch %d\n", clip_context_gemm(s.ctx), threads, batch);
    printf("gemm tuning   %s\n", gemm_tuning_get(kernels_level())->why);
    printf("peak          native in-cache %.1f GFLOP/s (1 thread), %.1f (%d threads); "
           "OpenBLAS sgemm 1024^3 (%s kernels) %.1f (1 thread), %.1f (%d threads)\n", native1, native_n,
           threads, core, blas1, blas_n, threads);
    printf("memory        copy bandwidth %.1f GB/s (memcpy 64 MB, read + write)\n", copy_gbs);

    const int use_blas = strcmp(clip_context_gemm(s.ctx), "openblas") == 0;
    bench_run b = {&s, a->iters > 0 ? a->iters : 10, use_blas ? blas_n : native_n, blas_n, 0, copy_gbs, 1, 1};
    double text_block_bytes;
    bench_weights(a->pos[0], &b.f32_vision, &b.f32_text, &text_block_bytes);
    float *pixels = malloc(sizeof(float) * image_len * (size_t)batch);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)context * batch);
    if (!pixels || !ids) rc = fail("out of memory");
    unsigned seed = 12345;
    for (size_t i = 0; !rc && i < image_len * batch; i++) {
        seed = seed * 1664525u + 1013904223u;
        pixels[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }

    /* one image from a preprocessed tensor, and from an image file if given */
    if (!rc) rc = time_encode(&b, "image_npy", pixels, NULL, 1, image_flop(c), 0);
    if (!rc && a->n_pos == 2) {
        double *ms = malloc(sizeof(double) * (size_t)b.iters);
        if (!ms) rc = fail("out of memory");
        for (int i = 0; !rc && i < b.iters; i++) {
            double t0 = now_ms();
            if (clip_image_load(s.model, a->pos[1], pixels) != CLIP_OK) rc = api_fail();
            ms[i] = now_ms() - t0;
        }
        if (!rc) {
            double pre = median(ms, b.iters);
            printf("preprocess    %9.2f ms  (decode, resize, crop, normalize of %s)\n", pre, a->pos[1]);
            rc = time_encode(&b, "image_jpeg", pixels, NULL, 1, image_flop(c), pre);
        }
        free(ms);
    }

    /* texts: a short prompt, a full-context one */
    const char *short_text = "a photo of a dog.";
    char long_text[1024] = "";
    while (strlen(long_text) + 20 < sizeof long_text) strcat(long_text, "a photo of a big dog ");
    int short_len = 0;
    if (!rc && clip_tokenize(s.model, short_text, strlen(short_text), ids) != CLIP_OK) rc = api_fail();
    for (int i = 0; !rc && i < context; i++) if (ids[i]) short_len = i + 1;
    b.stream_bytes = text_block_bytes;
    if (!rc) rc = time_encode(&b, "text_short", NULL, ids, 1, text_flop(c, short_len), 0);
    b.stream_bytes = 0;
    if (!rc && clip_tokenize(s.model, long_text, strlen(long_text), ids) != CLIP_OK) rc = api_fail();
    if (!rc) rc = time_encode(&b, "text_long", NULL, ids, 1, text_flop(c, context), 0);

    /* batches */
    static const char *const nouns[] = {"dog", "cat", "car", "bird", "tree", "house", "boat", "person"};
    int batch_len = 0;
    for (int i = 0; !rc && i < batch; i++) {
        char text[64];
        snprintf(text, sizeof text, "a photo of a %s.", nouns[i % 8]);
        if (clip_tokenize(s.model, text, strlen(text), ids + (size_t)i * context) != CLIP_OK) rc = api_fail();
        for (int k = 0; !rc && k < context; k++) if (ids[(size_t)i * context + k] && k + 1 > batch_len) batch_len = k + 1;
    }
    char name[32];
    snprintf(name, sizeof name, "image_batch%d", batch);
    if (!rc) rc = time_encode(&b, name, pixels, NULL, batch, batch * image_flop(c), 0);
    snprintf(name, sizeof name, "text_batch%d", batch);
    if (!rc) rc = time_encode(&b, name, NULL, ids, batch, batch * text_flop(c, batch_len), 0);

    free(pixels);
    free(ids);
    close_session(&s);
    return rc;
}

