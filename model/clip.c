/* clip.c - the public API (clip.h): load a model, make contexts, encode, compare.
 *
 * This file is glue: the weight file is read by io/weightfile.c, tensors are bound by
 * model/bind.c, the towers run in model/vision.c and model/text.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/error.h"
#include "../io/image.h"
#include "../kernels/gemm.h"
#include "../kernels/kernels.h"
#include "model.h"

/* ---- Model ----------------------------------------------------------------------------- */
int clip_model_load(const char *path, clip_model **out) {
    *out = NULL;
    kernels_init();
    clip_model *m = calloc(1, sizeof *m);
    if (!m) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
    int rc = weightfile_open(path, &m->file);
    if (rc) {
        free(m);
        return rc;
    }
    m->config = m->file.config;
    m->tokenizer = calloc(1, sizeof *m->tokenizer);
    rc = m->tokenizer ? model_bind(m) : clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
    if (rc == CLIP_OK) rc = model_verify_init(m);
    if (rc) {
        clip_model_free(m);
        return rc;
    }
    *out = m;
    return CLIP_OK;
}

void clip_model_free(clip_model *m) {
    if (!m) return;
    model_verify_free(m);
    free(m->vision.tower.blocks);
    free(m->text.tower.blocks);
    for (int i = 0; i < m->n_packed; i++) free(m->packed[i]);
    free(m->packed);
    free(m->copied);
    if (m->tokenizer) tokenizer_free(m->tokenizer->tokenizer);
    free(m->tokenizer);
    weightfile_close(&m->file);
    free(m);
}

const clip_config *clip_model_config(const clip_model *m) { return &m->config; }

/* ---- Inputs ------------------------------------------------------------------------------ */
/* The tokenizer's tables, built on first use (see model_tokenizer in model.h). */
static int model_tokenizer_get(const clip_model *m, clip_tokenizer **out) {
    model_tokenizer *t = m->tokenizer;
    if (!t->built) {
        const wf_tokenizer *wt = &m->file.tokenizer;
        tokenizer_vocab vocab = {wt->n_vocab, wt->tokens, wt->token_lens, wt->n_merges, wt->merges,
                                 wt->sot_id, wt->eot_id};
        int rc = tokenizer_new(&vocab, &t->tokenizer);
        if (rc == CLIP_ERR_NOMEM) return rc;        /* not the file's fault: try again next time */
        t->built = 1;
        t->status = rc;
        if (t->status != CLIP_OK) {
            clip_error_prefix(m->file.path);
            snprintf(t->message, sizeof t->message, "%s", clip_last_error());
        }
    }
    *out = t->tokenizer;
    return t->status ? clip_fail(t->status, "%s", t->message) : CLIP_OK;
}

int clip_tokenize(const clip_model *m, const char *text, size_t len, int32_t *ids) {
    return clip_tokenize_check(m, text, len, ids, NULL);
}

int clip_tokenize_check(const clip_model *m, const char *text, size_t len, int32_t *ids, int *truncated) {
    clip_tokenizer *tok;
    if (truncated) *truncated = 0;
    int rc = model_tokenizer_get(m, &tok);
    if (rc) return rc;
    int n = tokenizer_encode_check(tok, text, len, ids, m->config.text_context, truncated);
    return n < 0 ? n : CLIP_OK;
}

/* FNV-1a, 64 bits: not cryptographic; it tells models apart, it does not authenticate them. */
static uint64_t fnv(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

void clip_model_identity(const clip_model *m, char out[17]) {
    const clip_config *c = &m->config;
    const int fields[] = {c->image_size, c->patch_size, c->vision_width, c->vision_layers, c->vision_heads,
                          c->vision_mlp, c->text_vocab, c->text_context, c->text_width, c->text_layers,
                          c->text_heads, c->text_mlp, c->embed_dim, c->activation, c->sot_id, c->eot_id};
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        uint32_t v = (uint32_t)fields[i];
        h = fnv(h, &v, 4);
    }
    for (uint32_t t = 0; t < m->file.n_tensors; t++) {
        const wf_tensor *w = &m->file.tensors[t];
        h = fnv(h, w->name, strlen(w->name) + 1);
        for (uint32_t d = 0; d < w->n_dims; d++) h = fnv(h, &w->dims[d], sizeof w->dims[d]);
        h = fnv(h, &w->checksum, sizeof w->checksum);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int image_finish(const clip_model *m, const uint8_t *rgb, float *pixels) {
    image_normalize(rgb, m->config.image_size, m->config.image_mean, m->config.image_std, pixels);
    return CLIP_OK;
}

int clip_image_load(const clip_model *m, const char *path, float *pixels) {
    const int s = m->config.image_size;
    uint8_t *rgb = malloc((size_t)s * s * 3);
    if (!rgb) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
    int rc = image_load_crop(path, s, rgb);
    if (rc == CLIP_OK) rc = image_finish(m, rgb, pixels);
    free(rgb);
    return rc;
}

int clip_image_load_memory(const clip_model *m, const void *data, size_t size, const char *label,
                           float *pixels) {
    const int s = m->config.image_size;
    uint8_t *rgb = malloc((size_t)s * s * 3);
    if (!rgb) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", label);
    int rc = image_load_crop_memory(data, size, label, s, rgb);
    if (rc == CLIP_OK) rc = image_finish(m, rgb, pixels);
    free(rgb);
    return rc;
}

/* ---- Contexts ------------------------------------------------------------------------------- */
static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

/* Round a float count up to a whole number of 64-byte lines, so every buffer is aligned. */
static size_t lines(size_t n_floats) { return (n_floats + 15) / 16 * 16; }

int clip_context_new(const clip_model *m, int n_threads, int max_batch, clip_context **out) {
    *out = NULL;
    const clip_config *c = &m->config;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (max_batch <= 0) max_batch = 1;
    if (max_batch > CLIP_MAX_BATCH)
        return clip_fail(CLIP_ERR_ARG, "clip_context_new: batch of %d is more than %d", max_batch,
                         CLIP_MAX_BATCH);
    gemm_backend backend = GEMM_NATIVE;
    const char *want = getenv("CLIP_GEMM");
    if (want && *want) {
        int b = gemm_backend_parse(want);
        if (b < 0) return clip_fail(CLIP_ERR_ARG, "CLIP_GEMM=%s: expected native or openblas", want);
        if (b == GEMM_OPENBLAS && blas_load() != 0) return CLIP_ERR_ARG;
        backend = (gemm_backend)b;
    }

    size_t seq = max_z((size_t)m->vision.n_patches + 1, (size_t)c->text_context);
    size_t rows = (size_t)max_batch * seq;
    size_t d_model = max_z((size_t)c->vision_width, (size_t)c->text_width);
    size_t d_mlp = max_z((size_t)c->vision_mlp, (size_t)c->text_mlp);
    size_t patch_len = 3 * (size_t)c->patch_size * c->patch_size;
    size_t head_dim = max_z((size_t)(c->vision_width / c->vision_heads),
                            (size_t)(c->text_width / c->text_heads));
    /* per thread: one head's qkv [seq, 3 hd], its output [seq, hd], scores [seq] */
    size_t attn_floats = lines(seq * 4 * head_dim + seq);
    size_t sizes[] = {lines(rows * d_model), lines(rows * d_model), lines(rows * 3 * d_model),
                      lines(rows * d_mlp), lines((size_t)max_batch * m->vision.n_patches * patch_len),
                      attn_floats * (size_t)n_threads,
                      /* quantized weights: x quantized per block, or rounded to bf16
                         (kernels/quant.h), for the widest input any linear layer has */
                      lines((max_z(gemm_work_bytes(GEMM_Q8_0, (int)rows, (int)max_z(max_z(d_mlp, patch_len), d_model)),
                                   gemm_work_bytes(GEMM_BF16, (int)rows, (int)max_z(max_z(d_mlp, patch_len), d_model)))
                             + sizeof(float) - 1) / sizeof(float))};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];

    clip_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx || posix_memalign(&ctx->arena, 64, total * sizeof(float)) != 0) {
        free(ctx);
        return clip_fail(CLIP_ERR_NOMEM, "out of memory for a context (%zu MB)",
                         total * sizeof(float) >> 20);
    }
    float *p = ctx->arena;
    float **bufs[] = {&ctx->x, &ctx->h, &ctx->qkv, &ctx->mlp, &ctx->patches, &ctx->attn, &ctx->gemm_work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i] = p;
        p += sizes[i];
    }
    ctx->attn_floats = attn_floats;
    if (n_threads > 1 && !(ctx->pool = threadpool_new(n_threads))) {
        free(ctx->arena);
        free(ctx);
        return clip_fail(CLIP_ERR_NOMEM, "cannot start %d threads", n_threads);
    }
    ctx->model = m;
    ctx->n_threads = n_threads;
    ctx->max_batch = max_batch;
    ctx->backend = backend;
    *out = ctx;
    return CLIP_OK;
}

void clip_context_set_trace(clip_context *ctx, clip_trace_fn *fn, void *user) {
    ctx->trace = fn;
    ctx->trace_user = user;
}

void model_trace_emit(const clip_context *ctx, const float *data, int n_dims, const int *dims,
                      const char *name_format, ...) {
    char name[96];
    va_list ap;
    va_start(ap, name_format);
    vsnprintf(name, sizeof name, name_format, ap);
    va_end(ap);
    ctx->trace(ctx->trace_user, name, n_dims, dims, data);
}

void clip_context_free(clip_context *ctx) {
    if (!ctx) return;
    threadpool_free(ctx->pool);
    free(ctx->arena);
    free(ctx);
}

int clip_context_set_gemm(clip_context *ctx, const char *name) {
    int b = gemm_backend_parse(name);
    if (b < 0) return clip_fail(CLIP_ERR_ARG, "unknown matmul backend '%s' (native or openblas)",
                                name ? name : "(null)");
    if (b == GEMM_OPENBLAS && blas_load() != 0) return CLIP_ERR_ARG;   /* loaded on first use */
    ctx->backend = (gemm_backend)b;
    return CLIP_OK;
}

const char *clip_context_gemm(const clip_context *ctx) {
    return ctx->backend == GEMM_OPENBLAS ? "openblas" : gemm_kernel_name(kernels_level());
}

int clip_context_threads(const clip_context *ctx) { return ctx->n_threads; }

static const char *const stage_names[N_STAGES] = {
    [STAGE_EMBED] = "embed", [STAGE_LAYERNORM] = "layernorm", [STAGE_QKV] = "qkv_proj",
    [STAGE_ATTENTION] = "attention", [STAGE_OUT_PROJ] = "out_proj", [STAGE_MLP] = "mlp",
    [STAGE_HEAD] = "head",
};

int clip_context_stages(const clip_context *ctx, double *ms, const char **names, int max) {
    for (int i = 0; i < N_STAGES && i < max; i++) {
        if (ms) ms[i] = ctx->stage_ms[i];
        if (names) names[i] = stage_names[i];
    }
    return N_STAGES;
}

void clip_context_reset_stages(clip_context *ctx) { memset(ctx->stage_ms, 0, sizeof ctx->stage_ms); }

/* ---- Encoders -------------------------------------------------------------------------- */
/* The BLAS library runs only with the openblas backend; the native one keeps it at one
 * thread so the two never compete for cores. */
static void set_blas_threads(const clip_context *ctx) {
    blas_set_threads(ctx->backend == GEMM_OPENBLAS ? ctx->n_threads : 1);
}

/* Results leave only from a model whose checksums passed, and never as NaN or infinity
 * (which finite inputs through valid weights cannot produce). */
static int check_results(const clip_model *m, int tower, const float *embeds, size_t n) {
    int rc = model_verify_wait(m, tower);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(embeds[i]))
            return clip_fail(CLIP_ERR_FORMAT, "%s: the model produced NaN or infinity (damaged weights or out-of-range input)",
                             m->file.path);
    return CLIP_OK;
}

int clip_model_verify(const clip_model *m) {
    model_verify_start(m, MODEL_VISION);
    model_verify_start(m, MODEL_TEXT);
    int rc = model_verify_wait(m, MODEL_VISION);
    return rc ? rc : model_verify_wait(m, MODEL_TEXT);
}

int clip_encode_images(clip_context *ctx, const float *pixels, int n, float *embeds) {
    const clip_config *c = &ctx->model->config;
    if (n < 0) return clip_fail(CLIP_ERR_ARG, "clip_encode_images: negative image count");
    set_blas_threads(ctx);
    model_verify_start(ctx->model, MODEL_VISION); /* runs alongside the forward pass */
    size_t image_len = (size_t)3 * c->image_size * c->image_size;
    for (int i = 0; i < n; i += ctx->max_batch) {
        int count = n - i < ctx->max_batch ? n - i : ctx->max_batch;
        vision_forward(ctx, pixels + i * image_len, count, embeds + (size_t)i * c->embed_dim);
    }
    return check_results(ctx->model, MODEL_VISION, embeds, (size_t)n * c->embed_dim);
}

int clip_encode_texts(clip_context *ctx, const int32_t *ids, int n, float *embeds) {
    const clip_config *c = &ctx->model->config;
    if (n < 0) return clip_fail(CLIP_ERR_ARG, "clip_encode_texts: negative text count");
    for (size_t i = 0; i < (size_t)n * c->text_context; i++)
        if (ids[i] < 0 || ids[i] >= c->text_vocab)
            return clip_fail(CLIP_ERR_ARG, "token id %d at position %zu is outside the vocabulary (0..%d)",
                             ids[i], i % c->text_context, c->text_vocab - 1);
    set_blas_threads(ctx);
    model_verify_start(ctx->model, MODEL_TEXT);
    for (int i = 0; i < n; i += ctx->max_batch) {
        int count = n - i < ctx->max_batch ? n - i : ctx->max_batch;
        text_forward(ctx, ids + (size_t)i * c->text_context, count, embeds + (size_t)i * c->embed_dim);
    }
    return check_results(ctx->model, MODEL_TEXT, embeds, (size_t)n * c->embed_dim);
}

/* ---- Embedding helpers --------------------------------------------------------------------- */
void clip_normalize(float *v, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)v[i] * v[i];
    if (sum <= 0) return;
    float inv = (float)(1.0 / sqrt(sum));
    for (int i = 0; i < n; i++) v[i] *= inv;
}

float clip_cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
}
