/* vision.c - the image tower (a Vision Transformer).
 *
 *   pixels [3, S, S]
 *   -> patch_embed: cut into N = (S/P)^2 patches, each flattened to [3 P P] in (channel,
 *      row, column) order, times W^T: a stride-P convolution as one matmul  -> [N, W]
 *   -> prepend the class token, add position embeddings                    -> [N+1, W]
 *   -> ln_pre -> n_layers residual blocks
 *   -> ln_post of the class token -> projection                            -> [D]
 */
#include <string.h>

#include "../kernels/kernels.h"
#include "model.h"

/* Unroll pixels [3, S, S] into patches [N, 3 P P], patch (py, px) at row py * grid + px. */
static void patch_unroll(float *patches, const float *pixels, int image_size, int patch) {
    const int grid = image_size / patch;
    for (int py = 0; py < grid; py++)
        for (int px = 0; px < grid; px++) {
            float *row = patches + (size_t)(py * grid + px) * 3 * patch * patch;
            for (int c = 0; c < 3; c++)
                for (int ky = 0; ky < patch; ky++) {
                    const float *src = pixels + ((size_t)c * image_size + py * patch + ky) * image_size
                                       + px * patch;
                    memcpy(row, src, sizeof(float) * patch);
                    row += patch;
                }
        }
}

void vision_forward(clip_context *ctx, const float *pixels, float *out) {
    const clip_model *m = ctx->model;
    const clip_vision *v = &m->vision;
    const int d = v->tower.d_model, n_tokens = v->n_patches + 1, p = m->config.patch_size;
    float *x = ctx->x;

    /* patch_embed: row 0 is the class token, rows 1..N the patches. */
    patch_unroll(ctx->patches, pixels, m->config.image_size, p);
    linear(x + d, ctx->patches, v->patch_w, NULL, v->n_patches, 3 * p * p, d);
    memcpy(x, v->class_embed, sizeof(float) * d);
    add_inplace(x, v->pos_embed, (size_t)n_tokens * d);
    layernorm(x, x, v->ln_pre_w, v->ln_pre_b, n_tokens, d, v->tower.ln_eps);

    for (int l = 0; l < v->tower.n_layers; l++) {
        int last = l == v->tower.n_layers - 1;
        transformer_block(ctx, &v->tower, &v->tower.blocks[l], n_tokens, last ? 1 : n_tokens, 0);
    }

    /* The class token summarizes the image. */
    layernorm(ctx->h, x, v->ln_post_w, v->ln_post_b, 1, d, v->tower.ln_eps);
    linear(out, ctx->h, v->proj, NULL, 1, d, m->config.embed_dim);
}
