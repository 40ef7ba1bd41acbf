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
 * prompt), with exactly the same result. A batch of texts is padded to its longest such
 * prefix (seq_len): the padding rows come after every end token, so they change nothing.
 * In the last block only the end token's row is computed past the keys and values.
 */
#include <string.h>

#include "../kernels/kernels.h"
#include "model.h"

void text_forward(clip_context *ctx, const int32_t *ids, int n, float *out) {
    const clip_model *m = ctx->model;
    const clip_text *t = &m->text;
    const int d = t->tower.d_model, context = m->config.text_context;

    /* Each text's end position; the batch runs seq_len = the longest prefix needed. */
    int eot[n > 0 ? n : 1], seq_len = 1;
    for (int s = 0; s < n; s++) {
        const int32_t *text = ids + (size_t)s * context;
        eot[s] = 0;
        for (int i = 1; i < context; i++)
            if (text[i] > text[eot[s]]) eot[s] = i;
        if (eot[s] + 1 > seq_len) seq_len = eot[s] + 1;
    }

    double t0 = model_now_ms();
    float *x = ctx->x;
    for (int s = 0; s < n; s++) {
        float *xs = x + (size_t)s * seq_len * d;
        for (int i = 0; i < seq_len; i++)
            memcpy(xs + (size_t)i * d, t->token_embed + (size_t)ids[(size_t)s * context + i] * d,
                   sizeof(float) * d);
        add_inplace(xs, t->pos_embed, (size_t)seq_len * d);
    }
    ctx->stage_ms[STAGE_EMBED] += model_now_ms() - t0;

    /* Only the end token leaves the last block, compacted to x rows 0..n-1. */
    tower_blocks(ctx, &t->tower, n, seq_len, eot, 1);

    model_layernorm(ctx, ctx->h, x, t->ln_final_w, t->ln_final_b, n, d, t->tower.ln_eps);
    t0 = model_now_ms();
    model_linear(ctx, out, ctx->h, &t->proj, NULL, n, 0, GEMM_ACT_NONE);
    ctx->stage_ms[STAGE_HEAD] += model_now_ms() - t0;
}
