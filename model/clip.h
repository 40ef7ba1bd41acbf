/* clip.h - the public API of clip.c, a bare-C inference runtime for CLIP models.
 *
 * A CLIP model maps an image and a text into one embedding space:
 *
 *   image file --decode/resize/crop/normalize--> pixels [3, S, S]
 *              --vision transformer-----------> embedding [D]
 *   text      --byte-level BPE----------------> ids [C]  (C = context length, 77)
 *              --causal text transformer------> embedding [D]
 *
 * and the cosine similarity of two embeddings says how well they match.
 *
 * Usage:
 *   clip_model *model;   clip_context *ctx;
 *   if (clip_model_load("weights/demo.clip", &model) != CLIP_OK) puts(clip_last_error());
 *   clip_context_new(model, 0, 1, &ctx);     // 0 threads = one per core, batches of 1
 *   const clip_config *cfg = clip_model_config(model);
 *   float *pix = malloc(sizeof(float) * 3 * cfg->image_size * cfg->image_size);
 *   float img[cfg->embed_dim], txt[cfg->embed_dim];  int32_t ids[cfg->text_context];
 *   clip_image_load(model, "cat.jpg", pix);
 *   clip_encode_images(ctx, pix, 1, img);
 *   clip_tokenize(model, "a photo of a cat", 16, ids);
 *   clip_encode_texts(ctx, ids, 1, txt);
 *   float cos = clip_cosine(img, txt, cfg->embed_dim);
 *
 * Every function that can fail returns CLIP_OK (0) or a negative CLIP_ERR_* code and
 * leaves a message for clip_last_error(). A model is read-only once loaded and may be
 * shared by several contexts; a context (its scratch memory) belongs to one thread.
 */
#ifndef CLIP_H
#define CLIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLIP_VERSION "0.1.0"

enum {
    CLIP_OK = 0,
    CLIP_ERR_IO = -1,     /* a file is missing, unreadable or cannot be written */
    CLIP_ERR_FORMAT = -2, /* a weight file or .npy file is malformed */
    CLIP_ERR_IMAGE = -3,  /* an image cannot be decoded or is out of limits */
    CLIP_ERR_NOMEM = -4,  /* out of memory */
    CLIP_ERR_ARG = -5,    /* the caller passed something invalid */
};

enum { CLIP_ACT_QUICK_GELU = 0, CLIP_ACT_GELU = 1 };

/* The model's hyper-parameters, as stored in the weight file (docs/FORMAT.md). */
typedef struct {
    int image_size;     /* S: the model sees S x S pixels */
    int patch_size;     /* P: S / P patches per side */
    int vision_width, vision_layers, vision_heads, vision_mlp;
    int text_vocab;     /* V: token ids are in [0, V) */
    int text_context;   /* C: every text is C ids (77 for CLIP) */
    int text_width, text_layers, text_heads, text_mlp;
    int embed_dim;      /* D: size of the joint embedding */
    int activation;     /* CLIP_ACT_QUICK_GELU or CLIP_ACT_GELU */
    float ln_eps;
    float image_mean[3], image_std[3];
    float logit_scale;  /* log of the similarity scale; logits = exp(logit_scale) * cosine */
    int sot_id, eot_id; /* start and end token ids */
    char name[128];     /* where the model came from */
} clip_config;

typedef struct clip_model clip_model;
typedef struct clip_context clip_context;

/* The message of the last failure on this thread. */
const char *clip_last_error(void);

/* Load a .clip file (memory-mapped, validated against its size and config). */
int clip_model_load(const char *path, clip_model **out);
void clip_model_free(clip_model *model);
const clip_config *clip_model_config(const clip_model *model);
/* Check every tensor's checksum (CLIP_OK, or CLIP_ERR_FORMAT naming the damaged tensor).
 * The encoders do this by themselves for the tower they use: the check runs on a thread
 * alongside the first forward pass, and no result is returned before it has passed. */
int clip_model_verify(const clip_model *model);

/* Tokenize `len` bytes of text (any bytes; invalid UTF-8 is replaced as Python does) into
 * exactly text_context ids: start token, BPE tokens, end token, zero padding. A text too
 * long is truncated, keeping the end token. Not thread-safe (the tokenizer caches words).
 * The first call builds the tokenizer's tables from the file (a few milliseconds, which a
 * process that only embeds images never pays); a vocabulary that fails their checks is
 * reported by that call and every later one. */
int clip_tokenize(const clip_model *model, const char *text, size_t len, int32_t *ids);

/* The same, and *truncated = 1 when the text had more tokens than fit in the context (the
 * reference raises an error for such texts unless asked to truncate), else 0. */
int clip_tokenize_check(const clip_model *model, const char *text, size_t len, int32_t *ids,
                        int *truncated);

/* A short identity of the weights (16 hex digits and a NUL): a hash of the config and of
 * every tensor's name, shape and stored checksum. Two files with the same weights have the
 * same identity wherever they are; a re-converted or retrained model has another. Indexes
 * of image embeddings record it so vectors of different models are never mixed. */
void clip_model_identity(const clip_model *model, char out[17]);

/* Decode an image file and preprocess it exactly as the reference does:
 * pixels [3, S, S] float32, normalized with the model's mean and std. */
int clip_image_load(const clip_model *model, const char *path, float *pixels);
/* The same for an image already in memory (`label` names it in error messages). */
int clip_image_load_memory(const clip_model *model, const void *data, size_t size,
                           const char *label, float *pixels);

/* A context owns the scratch memory of the forward passes and a pool of n_threads
 * threads (n_threads <= 0: one per core). max_batch (1..CLIP_MAX_BATCH; <= 0 means 1) is
 * how many images or texts one forward pass takes together: larger batches run faster per
 * input but the scratch memory grows with them (about 2.5 MB per image for ViT-B/32).
 * The environment variable CLIP_GEMM=native|openblas picks the matmul backend. */
#define CLIP_MAX_BATCH 1024
int clip_context_new(const clip_model *model, int n_threads, int max_batch, clip_context **out);
void clip_context_free(clip_context *ctx);
int clip_context_threads(const clip_context *ctx);

/* The matmul of the linear layers: "native" (clip.c's own kernels, the default) or
 * "openblas". clip_context_gemm describes the one in use (e.g. "avx512 5x4 NT"). */
int clip_context_set_gemm(clip_context *ctx, const char *name);
const char *clip_context_gemm(const clip_context *ctx);

/* Benchmarking: milliseconds spent in each stage of the forward passes since the context
 * was made or last reset. Fills up to max entries of ms and names; returns the number
 * of stages. */
int clip_context_stages(const clip_context *ctx, double *ms, const char **names, int max);
void clip_context_reset_stages(clip_context *ctx);

/* Encode n images, pixels [n, 3, S, S], into embeds [n, D] (the projection output,
 * not normalized), max_batch at a time. The result does not depend on the thread count
 * or the batch size. */
int clip_encode_images(clip_context *ctx, const float *pixels, int n, float *embeds);
/* Encode n texts, ids [n, C], into embeds [n, D] (not normalized). */
int clip_encode_texts(clip_context *ctx, const int32_t *ids, int n, float *embeds);

/* Helpers for embeddings. */
void clip_normalize(float *v, int n);                         /* v /= |v| (no-op for v = 0) */
float clip_cosine(const float *a, const float *b, int n);      /* a.b / (|a| |b|) */

#ifdef __cplusplus
}
#endif
#endif
