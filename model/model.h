/* model.h - the in-memory CLIP model and its forward-pass context (internal).
 *
 * A clip_model is the weight file's tensors bound to named fields, shape-checked against
 * the config. Weights stay in the read-only mapping of the file (version 2 files store
 * the linear layers already packed); only a version 1 file's linear weights are copied.
 * A clip_context holds every activation buffer the forward passes need, allocated once.
 */
#ifndef CLIP_MODEL_H
#define CLIP_MODEL_H

#include "../io/weightfile.h"
#include "../kernels/gemm.h"
#include "../kernels/threadpool.h"
#include "../tokenizer/tokenizer.h"
#include "clip.h"

/* The linear layers' weights are gemm_weights: panels packed by tools/convert.py into the
 * file and used in place, or, for a file of format version 1 (row-major), packed at load
 * into memory the model owns (model/bind.c). */

/* One pre-LayerNorm residual block: x += attn(ln1(x)); x += mlp(ln2(x)). */
typedef struct {
    const float *ln1_w, *ln1_b;      /* [d_model] */
    gemm_weight qkv_w;               /* [3 d_model, d_model] packed (kernels/gemm.h) */
    const float *qkv_b;              /* [3 d_model] */
    gemm_weight out_w;               /* [d_model, d_model] */
    const float *out_b;              /* [d_model] */
    const float *ln2_w, *ln2_b;      /* [d_model] */
    gemm_weight fc1_w;               /* [d_mlp, d_model] */
    const float *fc1_b;              /* [d_mlp] */
    gemm_weight fc2_w;               /* [d_model, d_mlp] */
    const float *fc2_b;              /* [d_model] */
} clip_block;

/* The shape of one transformer tower. */
typedef struct {
    int d_model, n_heads, d_mlp, n_layers;
    int activation;
    float ln_eps;
    clip_block *blocks;              /* [n_layers] */
    const char *name;                /* "vision" or "text": the prefix of its trace stages */
} clip_tower;

typedef struct {
    clip_tower tower;
    int n_patches;                   /* (S / P)^2 */
    gemm_weight patch_w;             /* [d_model, 3 P P] */
    const float *class_embed;        /* [d_model] */
    const float *pos_embed;          /* [n_patches + 1, d_model] */
    const float *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b;
    gemm_weight proj;                /* [embed_dim, d_model] */
} clip_vision;

typedef struct {
    clip_tower tower;
    const float *token_embed;        /* [vocab, d_model] row-major f32, or NULL: */
    gemm_weight token_embed_packed;  /*   in panels of another type (kernels/quant.h) */
    const float *pos_embed;          /* [context, d_model] */
    const float *ln_final_w, *ln_final_b;
    gemm_weight proj;                /* [embed_dim, d_model] */
} clip_text;

typedef struct model_verifier model_verifier;

/* The tokenizer's tables cost milliseconds to build and an image-only process never needs
 * them, so they are built when the first text is tokenized; a vocabulary that fails its
 * checks fails that call and every later one, with the same message (running out of
 * memory is not remembered: the next call tries again). */
typedef struct {
    int built;
    int status;                      /* CLIP_OK or the failure's code */
    clip_tokenizer *tokenizer;
    char message[512];
} model_tokenizer;

struct clip_model {
    weightfile file;
    clip_config config;
    clip_vision vision;
    clip_text text;
    model_tokenizer *tokenizer;      /* built by the first clip_tokenize (model/clip.c) */
    model_verifier *verifier;        /* the background checksum check (model/verify.c) */
    void **packed;                   /* weights packed at load (version 1 files), owned */
    int n_packed;
    size_t packed_bytes;
    unsigned char *copied;           /* per tensor of the file: 1 if packed at load, so its
                                        mapped pages are dropped once its checksum is read */
};

/* Tensor checksums (model/verify.c), per tower: the check starts on a thread when the
 * tower is first used; results wait for its verdict; freeing the model stops it. */
enum { MODEL_VISION = 0, MODEL_TEXT = 1 };
int model_verify_init(clip_model *model);
void model_verify_start(const clip_model *model, int tower);
int model_verify_wait(const clip_model *model, int tower);
void model_verify_free(clip_model *model);

/* Where a forward pass spends its time (clip_context_stage_ms). */
enum {
    STAGE_EMBED,       /* patch embedding (the patch matmul) or token embedding */
    STAGE_LAYERNORM,   /* every LayerNorm */
    STAGE_QKV,         /* the q, k, v projection */
    STAGE_ATTENTION,   /* softmax(q k^T) v */
    STAGE_OUT_PROJ,    /* attention output projection + residual */
    STAGE_MLP,         /* fc1 + activation, fc2 + residual */
    STAGE_HEAD,        /* pooling and the final projection */
    N_STAGES
};

/* Scratch for the forward passes of up to max_batch inputs of either tower, sized for the
 * larger one (rows = max_batch * max(image tokens, text context)), allocated once. */
struct clip_context {
    const clip_model *model;
    int n_threads, max_batch;
    threadpool *pool;        /* NULL with one thread */
    gemm_backend backend;
    float *x;        /* [rows, d_model]   the residual stream */
    float *h;        /* [rows, d_model]   LayerNorm output, attention output */
    float *qkv;      /* [rows, 3 d_model] */
    float *mlp;      /* [rows, d_mlp] */
    float *patches;  /* [max_batch * n_patches, 3 P P]  images unrolled into patch rows */
    float *attn;     /* [n_threads][attn_floats]  one head of one sequence, per thread */
    size_t attn_floats;
    float *gemm_work; /* scratch of the quantized products (kernels/gemm.h gemm_op.work) */
    void *arena;     /* the one allocation all of the above live in */
    double stage_ms[N_STAGES];
    clip_trace_fn *trace;    /* clip_context_set_trace; NULL: off */
    void *trace_user;
};

/* A trace stage (clip.h, clip_context_set_trace): MODEL_TRACE(ctx, data, n_dims, dims,
 * name_format, ...). Off, it is one test of ctx->trace; the name is formatted only when on. */
#define MODEL_TRACE(ctx, ...)                                  \
    do {                                                       \
        if ((ctx)->trace) model_trace_emit((ctx), __VA_ARGS__); \
    } while (0)
void model_trace_emit(const clip_context *ctx, const float *data, int n_dims, const int *dims,
                      const char *name_format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Milliseconds since an arbitrary start, for the stage timers. */
double model_now_ms(void);

/* Bind the weight file's tensors to the model's fields (model/bind.c). */
int model_bind(clip_model *model);

/* The towers (model/vision.c, model/text.c), for n <= max_batch inputs at once:
 * pixels [n, 3, S, S] or ids [n, C] -> out [n, embed_dim]. */
void vision_forward(clip_context *ctx, const float *pixels, int n, float *out);
void text_forward(clip_context *ctx, const int32_t *ids, int n, float *out);

/* A tower's residual blocks over ctx->x [n_seq * seq_len, d_model]: n_seq independent
 * sequences of seq_len tokens each (attention never mixes sequences). Only token keep[s] of
 * sequence s is wanted at the end (an image's class token, a text's end token), so the last
 * block computes that row alone past keys and values, and the tower leaves those rows
 * compacted in ctx->x [n_seq, d_model] (model/transformer.c). */
void tower_blocks(clip_context *ctx, const clip_tower *tower, int n_seq, int seq_len,
                  const int *keep, int causal);

/* Helpers shared by the towers (model/transformer.c): a linear layer through the context's
 * backend and pool, and LayerNorm over rows spread across the pool. */
void model_linear(clip_context *ctx, float *y, const float *x, const gemm_weight *w, const float *b,
                  int n_rows, int accumulate, gemm_activation act);
void model_layernorm(clip_context *ctx, float *out, const float *x, const float *gamma,
                     const float *beta, int n_rows, int dim, float eps);

#endif
