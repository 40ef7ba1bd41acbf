/* text.c - the text tower (a causal transformer over BPE tokens).
 *
 *   ids [C] (start token, tokens, end token, zero padding)
 *   -> token embedding + position embedding                    -> [n, W]
 *   -> n_layers residual blocks with a causal mask
 *   -> ln_final of the end token's row -> projection            -> [D]
 *
 * The end token sits at argmax(ids) (it has the highest id; the reference pools there).
 * Under a causal mask no position sees a later one, so rows after the end token cannot
 * change it: only the first eot+1 positions are computed (8 instead of 77 for a short
 * prompt), with exactly the same result.
 */
#include <string.h>

#include "../kernels/kernels.h"
#include "model.h"

void text_forward(clip_context *ctx, const int32_t *ids, float *out) {
    const clip_model *m = ctx->model;
    const clip_text *t = &m->text;
    const int d = t->tower.d_model, context = m->config.text_context;

    int eot = 0;
    for (int i = 1; i < context; i++)
        if (ids[i] > ids[eot]) eot = i;
    const int n_tokens = eot + 1;

    float *x = ctx->x;
    for (int i = 0; i < n_tokens; i++)
        memcpy(x + (size_t)i * d, t->token_embed + (size_t)ids[i] * d, sizeof(float) * d);
    add_inplace(x, t->pos_embed, (size_t)n_tokens * d);

    for (int l = 0; l < t->tower.n_layers; l++)
        transformer_block(ctx, &t->tower, &t->tower.blocks[l], n_tokens, n_tokens, 1);

    layernorm(ctx->h, x + (size_t)eot * d, t->ln_final_w, t->ln_final_b, 1, d, t->tower.ln_eps);
    linear(out, ctx->h, t->proj, NULL, 1, d, m->config.embed_dim);
}
