/* model.h - the in-memory CLIP model and its forward-pass context (internal).
 *
 * A clip_model is the weight file's tensors bound to named fields, shape-checked against
 * the config. Weights stay in the read-only mapping of the file; nothing is copied.
 * A clip_context holds every activation buffer the forward passes need, allocated once.
 */
#ifndef CLIP_MODEL_H
#define CLIP_MODEL_H

#include "../io/weightfile.h"
#include "../tokenizer/tokenizer.h"
#include "clip.h"

/* One pre-LayerNorm residual block: x += attn(ln1(x)); x += mlp(ln2(x)). */
typedef struct {
    const float *ln1_w, *ln1_b;      /* [d_model] */
    const float *qkv_w, *qkv_b;      /* [3 d_model, d_model], [3 d_model] */
    const float *out_w, *out_b;      /* [d_model, d_model], [d_model] */
    const float *ln2_w, *ln2_b;      /* [d_model] */
    const float *fc1_w, *fc1_b;      /* [d_mlp, d_model], [d_mlp] */
    const float *fc2_w, *fc2_b;      /* [d_model, d_mlp], [d_model] */
} clip_block;

/* The shape of one transformer tower. */
typedef struct {
    int d_model, n_heads, d_mlp, n_layers;
    int activation;
    float ln_eps;
    clip_block *blocks;              /* [n_layers] */
} clip_tower;

typedef struct {
    clip_tower tower;
    int n_patches;                   /* (S / P)^2 */
    const float *patch_w;            /* [d_model, 3 P P] */
    const float *class_embed;        /* [d_model] */
    const float *pos_embed;          /* [n_patches + 1, d_model] */
    const float *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b;
    const float *proj;               /* [embed_dim, d_model] */
} clip_vision;

typedef struct {
    clip_tower tower;
    const float *token_embed;        /* [vocab, d_model] */
    const float *pos_embed;          /* [context, d_model] */
    const float *ln_final_w, *ln_final_b;
    const float *proj;               /* [embed_dim, d_model] */
} clip_text;

struct clip_model {
    weightfile file;
    clip_config config;
    clip_vision vision;
    clip_text text;
    clip_tokenizer *tokenizer;
};

/* Scratch for one forward pass of either tower, sized for the larger one. */
struct clip_context {
    const clip_model *model;
    int n_threads;
    float *x;        /* [n_tokens, d_model]   the residual stream */
    float *h;        /* [n_tokens, d_model]   LayerNorm output, attention output */
    float *qkv;      /* [n_tokens, 3 d_model] */
    float *mlp;      /* [n_tokens, d_mlp] */
    float *patches;  /* [n_patches, 3 P P]    image unrolled into patch rows */
    float *scores;   /* [n_tokens]            attention scratch */
    void *arena;     /* the one allocation all of the above live in */
};

/* Bind the weight file's tensors to the model's fields (model/bind.c). */
int model_bind(clip_model *model);

/* The towers (model/vision.c, model/text.c); out: [embed_dim]. */
void vision_forward(clip_context *ctx, const float *pixels, float *out);
void text_forward(clip_context *ctx, const int32_t *ids, float *out);

/* One residual block over x [n_tokens, d_model]; only the first n_out rows of the result
 * are needed afterwards (n_out < n_tokens lets the last block skip work). */
void transformer_block(clip_context *ctx, const clip_tower *tower, const clip_block *block,
                       int n_tokens, int n_out, int causal);

#endif
