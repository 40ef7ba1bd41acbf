/* transformer.c - one pre-LayerNorm residual block, shared by both towers.
 *
 *   x [n_tokens, d_model]
 *   x = x + out_proj(attention(qkv_proj(ln1(x))))      attention: n_heads heads
 *   x = x + fc2(act(fc1(ln2(x))))                       act: quick_gelu or gelu
 *
 * When only the first n_out rows are needed afterwards (the last vision block, whose
 * only consumer is the class token), attention is computed for those queries alone and
 * everything after it runs on n_out rows: the result for those rows is unchanged.
 */
#include "../kernels/kernels.h"
#include "model.h"

static void activation(float *x, size_t n, int kind) {
    if (kind == CLIP_ACT_GELU) gelu(x, n);
    else quick_gelu(x, n);
}

void transformer_block(clip_context *ctx, const clip_tower *tw, const clip_block *b,
                       int n_tokens, int n_out, int causal) {
    const int d = tw->d_model, f = tw->d_mlp;
    float *x = ctx->x, *h = ctx->h;

    /* Attention sub-block. Keys and values need every token, queries only n_out. */
    layernorm(h, x, b->ln1_w, b->ln1_b, n_tokens, d, tw->ln_eps);
    linear(ctx->qkv, h, b->qkv_w, b->qkv_b, n_tokens, d, 3 * d);
    attention(h, ctx->qkv, n_tokens, n_out, d, tw->n_heads, causal, ctx->scores);
    linear(ctx->qkv, h, b->out_w, b->out_b, n_out, d, d);   /* qkv is free again: reuse */
    add_inplace(x, ctx->qkv, (size_t)n_out * d);

    /* MLP sub-block. */
    layernorm(h, x, b->ln2_w, b->ln2_b, n_out, d, tw->ln_eps);
    linear(ctx->mlp, h, b->fc1_w, b->fc1_b, n_out, d, f);
    activation(ctx->mlp, (size_t)n_out * f, tw->activation);
    linear(h, ctx->mlp, b->fc2_w, b->fc2_b, n_out, f, d);
    add_inplace(x, h, (size_t)n_out * d);
}
